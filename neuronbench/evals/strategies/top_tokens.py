"""The paper's token-space baseline: the explainer sees only a list of top-activating tokens.

Tokens are the distinct (whitespace-stripped) tokens of the shown train records, ranked by
their max activation there, so this strategy sees exactly what ``token_activation_pairs``
sees minus the context. Format follows the paper's ``TokenSpaceRepresentationExplainer``;
text lives in ``prompts/top_tokens.json``.
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
    load_data,
    load_few_shot,
    top_activating_tokens,
)


def token_list(records: Sequence[ActivationRecord], n_tokens: int) -> str:
    """``'a', 'b', ...``: the top ``n_tokens`` tokens, quoted as the paper quotes them."""
    return ", ".join(f"'{t}'" for t, _ in top_activating_tokens(records, n_tokens))


def build_messages(
    records: Sequence[ActivationRecord], few_shot: Sequence[FewShotExample], *, n_tokens: int = 20
) -> list[ChatMessage]:
    """The token-list prompt for ``records`` after the ``few_shot`` examples."""
    p = load_data("top_tokens.json")
    return few_shot_chat(
        p["system"],
        p["answer"],
        few_shot,
        lambda _i, recs, _neg: p["user"].format(tokens=token_list(recs, n_tokens)),
        records,
    )


@solver
def top_tokens(
    n_examples: int = 5,
    n_tokens: int = 20,
    max_prompt_tokens: int = 4000,
    few_shot: str = "default",
) -> Solver:
    """Explain from the list of tokens with the highest activations in the train records.

    Args:
        n_examples: Train records the tokens are drawn from.
        n_tokens: Tokens listed.
        max_prompt_tokens: Context budget; records are dropped from the end to fit.
        few_shot: Few-shot set, ``default``, ``test`` or a JSON path.
    """
    shots = load_few_shot(few_shot)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        return await explain_once(
            state,
            generate,
            lambda recs, k: build_messages(recs, shots[:k], n_tokens=n_tokens),
            strategy="top_tokens",
            n_examples=n_examples,
            n_few_shot=len(shots),
            max_prompt_tokens=max_prompt_tokens,
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    return top_tokens(
        n_examples=opts.n_examples,
        n_tokens=opts.n_tokens,
        max_prompt_tokens=opts.max_prompt_tokens,
        few_shot=opts.few_shot,
    )
