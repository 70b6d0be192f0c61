"""Non-LLM baseline explainer: the explanation names the neuron's top activating train tokens.

The paper's point of comparison for "does the explainer add anything beyond a token
look-up table": e.g. ``the tokens "not", "n't", "never"``. It sees exactly the train
records ``token_activation_pairs`` sees and makes no model call. A neuron whose shown
records never fire gets an empty explanation, flagged ``empty``.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.datasets import ActivationRecord
from neuronbench.evals.extraction import Extraction
from neuronbench.evals.strategies._base import (
    StrategyOptions,
    finish,
    load_data,
    no_trim,
    shown_records,
    top_activating_tokens,
)


def baseline_explanation(
    records: Sequence[ActivationRecord], n_tokens: int | None = None
) -> Extraction:
    """``the tokens "a", "b", ...`` for the top ``n_tokens`` tokens of ``records`` (default from the data file)."""
    p = load_data("baseline.json")
    tokens = top_activating_tokens(records, n_tokens or int(p["max_tokens"]))
    if not tokens:
        return Extraction(explanation="", flags=["empty"])
    return Extraction(
        explanation=p["template"].format(tokens=", ".join(f'"{t}"' for t, _ in tokens))
    )


@solver
def baseline(n_examples: int = 5, n_tokens: int = 5) -> Solver:
    """Explain a neuron as the list of its top activating train tokens; no model call.

    Args:
        n_examples: Train records the tokens are drawn from.
        n_tokens: Tokens named in the explanation.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        records = shown_records(state, n_examples)
        return finish(
            state,
            baseline_explanation(records, n_tokens),
            strategy="baseline",
            trimmed=no_trim(),
            shown=records,
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    return baseline(
        n_examples=opts.n_examples,
        n_tokens=min(opts.n_tokens, int(load_data("baseline.json")["max_tokens"])),
    )
