"""The contract every simulator meets: explanation + token lists in, per-token predictions out.

A simulator never sees real activations. It either returns one prediction per token
of every record, or a flagged failure with the reason and the raw model output:
never a silent row of zeros.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable


@dataclass
class Simulation:
    """A simulator's predictions for the records of one neuron under one explanation."""

    predictions: list[list[float]] | None
    """Predicted activation (0-10 scale) per token, per record; None when the simulation failed."""
    error: str | None = None
    """Why the simulation failed (unparseable output, length mismatch...); None on success."""
    raw_output: str | None = None
    """The model's raw output, kept for failures and for inspection."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra per-simulator information (e.g. forward passes used, per-position distributions)."""

    @property
    def failed(self) -> bool:
        return self.predictions is None


@runtime_checkable
class Simulator(Protocol):
    """Predicts a neuron's activations on token sequences from an explanation alone."""

    name: str
    """Short identifier recorded in scores and leaderboards (e.g. ``logprob``, ``embedding``)."""

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        """Predict an activation for every token of every record."""
        ...


async def simulate_offline(
    load: Callable[[], Any],
    explanation: str,
    records: Sequence[Sequence[str]],
    label: str,
    details: dict[str, Any],
) -> Simulation:
    """Shared ``simulate`` of the trained offline simulators: ``load()`` returns an object
    whose blocking ``predict(explanation, records)`` gives 0-10 predictions; both run in a
    worker thread. An empty explanation predicts a constant (scored 0, not a failure); a
    non-finite prediction is a flagged failure naming ``label``."""
    import anyio

    if not explanation.strip():
        return Simulation(
            predictions=[[0.0] * len(r) for r in records], details={"empty_explanation": True}
        )
    model = await anyio.to_thread.run_sync(load)
    preds = await anyio.to_thread.run_sync(model.predict, explanation, [list(r) for r in records])
    if any(not math.isfinite(v) for p in preds for v in p):
        return Simulation(None, error=f"non-finite prediction from the {label}")
    return Simulation(predictions=preds, details=details)


M = TypeVar("M")


class ModelCache(Generic[M]):
    """Offline simulator models by directory, each read once per process: a simulator is
    called once per explanation, and reading its weights every time would dominate."""

    def __init__(self, read: Callable[[Path], M]) -> None:
        self._read = read
        self._models: dict[str, M] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> M:
        key = str(path.resolve())
        with self._lock:
            if key not in self._models:
                self._models[key] = self._read(path)
            return self._models[key]
