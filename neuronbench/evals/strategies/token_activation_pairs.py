"""The paper's explainer (Bills et al. 2023): token<TAB>activation lines, completed sentence.

A chat: the system message explains the format; each few-shot neuron is a user turn
("Neuron N / Activations: <start> ... <end>", values 0-10 normalized by the max over the
records shown, plus the zeros-filtered repeat when under 20% of values are non-zero)
ending in "Explanation of neuron N behavior: the main thing this neuron does is find",
answered by the example's explanation. The neuron under study comes last and the
explainer completes the sentence. Text lives in ``prompts/token_activation_pairs.json``.
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
    nonzero_fraction,
)

REPEAT_BELOW = 0.2
"""Repeat the records with zeros filtered out when fewer than this fraction of values are non-zero."""


def neuron_block(prompt: dict[str, str], index: int, records: Sequence[ActivationRecord]) -> str:
    """One neuron's records in the paper's format, with the zeros-filtered repeat if sparse."""
    top = max_over(records)
    text = prompt["neuron"].format(index=index) + format_records(records, top)
    if nonzero_fraction(records, top) < REPEAT_BELOW:
        text += prompt["zeros_filtered"] + format_records(records, top, omit_zeros=True)
    return text


def build_messages(
    records: Sequence[ActivationRecord], few_shot: Sequence[FewShotExample]
) -> list[ChatMessage]:
    """The full explainer prompt for ``records`` after the ``few_shot`` examples."""
    p = load_data("token_activation_pairs.json")
    return few_shot_chat(
        p["system"],
        p["answer"],
        few_shot,
        lambda i, recs, _neg: neuron_block(p, i, recs) + p["ask"].format(index=i),
        records,
    )


@solver
def token_activation_pairs(
    n_examples: int = 5, max_prompt_tokens: int = 4000, few_shot: str = "default"
) -> Solver:
    """Explain a neuron from its top train records in the paper's token<TAB>activation format.

    Args:
        n_examples: Train records shown (fewer if the prompt must be trimmed to fit).
        max_prompt_tokens: Context budget; whole records are dropped from the end to fit.
        few_shot: Few-shot set, ``default``, ``test`` or a JSON path.
    """
    shots = load_few_shot(few_shot)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        return await explain_once(
            state,
            generate,
            lambda recs, k: build_messages(recs, shots[:k]),
            strategy="token_activation_pairs",
            n_examples=n_examples,
            n_few_shot=len(shots),
            max_prompt_tokens=max_prompt_tokens,
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    return token_activation_pairs(
        n_examples=opts.n_examples, max_prompt_tokens=opts.max_prompt_tokens, few_shot=opts.few_shot
    )
