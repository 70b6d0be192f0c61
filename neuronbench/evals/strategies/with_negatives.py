"""The paper's format plus contrast: records where the neuron stays (almost) silent.

Negatives come from the neuron's lowest quantile samples (drawn by the task into the
sample's ``negatives`` metadata), never from ``random`` records: every random record
belongs to a scoring split. They are shown on the same 0-10 scale as the activating
records (normalized by the activating records' max), so the explainer sees their true
values. Text lives in ``prompts/with_negatives.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspect_ai.model import (
    ChatMessage,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.datasets import ActivationRecord
from neuronbench.evals.strategies._base import (
    FewShotExample,
    StrategyOptions,
    explain_once,
    few_shot_chat,
    format_records,
    load_data,
    load_few_shot,
    max_over,
    negatives_of,
)
from neuronbench.evals.strategies.token_activation_pairs import neuron_block


def _user(
    p: dict[str, str],
    index: int,
    records: Sequence[ActivationRecord],
    negatives: Sequence[ActivationRecord],
) -> str:
    text = neuron_block(p, index, records)
    if negatives:
        text += p["negatives"].format(index=index) + format_records(negatives, max_over(records))
    return text + p["ask"].format(index=index)


def build_messages(
    records: Sequence[ActivationRecord],
    negatives: Sequence[ActivationRecord],
    few_shot: Sequence[FewShotExample],
) -> list[ChatMessage]:
    """The explainer prompt with each neuron's activating records followed by its negatives."""
    p = load_data("with_negatives.json")
    return few_shot_chat(
        p["system"],
        p["answer"],
        few_shot,
        lambda i, recs, neg: _user(p, i, recs, neg),
        records,
        negatives,
    )


@solver
def with_negatives(
    n_examples: int = 5,
    n_negatives: int = 2,
    max_prompt_tokens: int = 4000,
    few_shot: str = "default",
) -> Solver:
    """Explain from top train records plus ``n_negatives`` silent quantile records as contrast.

    Args:
        n_examples: Train records shown (fewer if the prompt must be trimmed to fit).
        n_negatives: Contrast records shown (the sample may hold fewer; the count shown is recorded).
        max_prompt_tokens: Context budget; activating records are dropped from the end to fit.
        few_shot: Few-shot set, ``default``, ``test`` or a JSON path.
    """
    shots = load_few_shot(few_shot)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        negatives = negatives_of(state, n_negatives)
        return await explain_once(
            state,
            generate,
            lambda recs, k: build_messages(recs, negatives, shots[:k]),
            strategy="with_negatives",
            n_examples=n_examples,
            n_few_shot=len(shots),
            max_prompt_tokens=max_prompt_tokens,
            extra_shown=negatives,
            negatives_shown=len(negatives),
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    return with_negatives(
        n_examples=opts.n_examples,
        n_negatives=opts.n_negatives,
        max_prompt_tokens=opts.max_prompt_tokens,
        few_shot=opts.few_shot,
    )
