"""Explainer strategies: one module per strategy, its prompt text in ``prompts/``.

Each module has a ``@solver`` (typed, serializable arguments, so the log records how it
was built) and ``build(opts)``, which picks that strategy's knobs from the task's
:class:`StrategyOptions`. ``-T strategy=NAME`` selects one.
"""

from __future__ import annotations

from collections.abc import Callable

from inspect_ai.solver import Solver

from neuronbench.evals.strategies import (
    baseline,
    best_of_k,
    chain_of_thought,
    empty,
    from_file,
    highlighted,
    shuffled,
    token_activation_pairs,
    top_tokens,
    with_negatives,
)
from neuronbench.evals.strategies._base import StrategyOptions

STRATEGIES: dict[str, Callable[[StrategyOptions], Solver]] = {
    "token_activation_pairs": token_activation_pairs.build,
    "highlighted": highlighted.build,
    "top_tokens": top_tokens.build,
    "with_negatives": with_negatives.build,
    "chain_of_thought": chain_of_thought.build,
    "best_of_k": best_of_k.build,
    "from_file": from_file.build,
    "baseline": baseline.build,
    "empty": empty.build,
    "shuffled": shuffled.build,
}
"""Strategy name -> builder."""

NO_MODEL = frozenset({"from_file", "baseline", "empty", "shuffled"})
"""Strategies that never call the explainer model (floors, controls, imported explanations)."""


def build_strategy(opts: StrategyOptions) -> Solver:
    """The solver for ``opts.name``; a clear error listing the options for an unknown name."""
    try:
        builder = STRATEGIES[opts.name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {opts.name!r}; choose one of: {', '.join(STRATEGIES)}"
        ) from None
    return builder(opts)


__all__ = ["NO_MODEL", "STRATEGIES", "StrategyOptions", "build_strategy"]
