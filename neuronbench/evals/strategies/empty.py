"""Control ``empty``: the empty explanation, the floor every real explainer must beat.

Deliberately empty, so it is *not* flagged ``empty`` (flags mark explainer failures, and
a flagged explanation may be left unscored; this one must be scored). No model call.
"""

from __future__ import annotations

from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.evals.extraction import Extraction
from neuronbench.evals.strategies._base import StrategyOptions, finish, no_trim


@solver
def empty() -> Solver:
    """Give every neuron the empty explanation."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        return finish(
            state, Extraction(explanation=""), strategy="empty", trimmed=no_trim(), control=True
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    return empty()
