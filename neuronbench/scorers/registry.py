"""Name → factory tables for simulators and scorers, so the CLI and tasks pick them by string.

Extend by adding an entry: ``SIMULATORS["mine"] = SimulatorSpec(factory, needs_model=True)``
or ``SCORERS["mine"] = factory`` (a callable taking the keyword arguments of
:class:`ScorerFactory`). Factories import their modules lazily, so importing the
registry (and listing tasks) stays light: no torch, no sentence-transformers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from inspect_ai.model import Model
    from inspect_ai.scorer import Scorer

    from neuronbench.scorers.simulators.base import Simulator


@dataclass(frozen=True)
class SimulatorSpec:
    """How to build one kind of simulator."""

    factory: Callable[..., Simulator]
    """Builds the simulator from the simulator model (None for model-free kinds) and options."""
    needs_model: bool
    """Whether the kind calls a model (then the scorer binds the ``simulator`` role)."""
    options: tuple[str, ...] = ()
    """Construction options this kind takes as keywords (``make_simulator(..., **options)``)."""


def _logprob(
    model: Model | None, examples: str = "default", layout: str = "all_at_once"
) -> Simulator:
    from neuronbench.scorers.simulators.logprob import LogprobSimulator

    assert model is not None
    return LogprobSimulator(model, few_shot=examples, layout=layout)  # type: ignore[arg-type]


def _generation(model: Model | None) -> Simulator:
    from neuronbench.scorers.simulators.generation import GenerationSimulator

    assert model is not None
    return GenerationSimulator(model)


def _lexical(model: Model | None) -> Simulator:
    from neuronbench.scorers.simulators.lexical import LexicalSimulator

    return LexicalSimulator()


def _embedding(model: Model | None) -> Simulator:
    from neuronbench.scorers.simulators.embedding import EmbeddingSimulator

    return EmbeddingSimulator()


def _trained(model: Model | None) -> Simulator:
    import os

    from neuronbench.scorers.simulators.trained import TrainedSimulator

    # a model rebuilt with `neuronbench train-simulator --out DIR` is tried without reinstalling
    return TrainedSimulator(path=os.environ.get("NEURONBENCH_TRAINED_SIMULATOR") or None)


def _reader(model: Model | None) -> Simulator:
    import os

    from neuronbench.scorers.simulators.reader import ReaderSimulator

    # a reader rebuilt with `neuronbench train-simulator --arch reader --out DIR`
    return ReaderSimulator(path=os.environ.get("NEURONBENCH_READER_SIMULATOR") or None)


SIMULATORS: dict[str, SimulatorSpec] = {
    "logprob": SimulatorSpec(_logprob, needs_model=True, options=("examples", "layout")),
    "generation": SimulatorSpec(_generation, needs_model=True),
    "lexical": SimulatorSpec(_lexical, needs_model=False),
    "embedding": SimulatorSpec(_embedding, needs_model=False),
    "trained": SimulatorSpec(_trained, needs_model=False),
    "reader": SimulatorSpec(_reader, needs_model=False),
}
"""Simulator kinds by name: the paper's logprob method, generation, two model-free baselines,
and two offline simulators trained on planted neurons: the cross-encoder
(``simulators/trained.py``) and the reader (``simulators/reader.py``)."""


def _spec(kind: str) -> SimulatorSpec:
    if kind not in SIMULATORS:
        raise ValueError(f"unknown simulator {kind!r} (choose from {', '.join(SIMULATORS)})")
    return SIMULATORS[kind]


def simulator_needs_model(kind: str) -> bool:
    """Whether simulator ``kind`` calls a model."""
    return _spec(kind).needs_model


def make_simulator(kind: str, model: Model | None, **options: Any) -> Simulator:
    """Build simulator ``kind``; ``model`` is required for model-based kinds, ignored otherwise.

    ``options`` (e.g. ``examples="openai"``, ``layout="packed"`` for ``logprob``) reach the
    kinds that take them; the other kinds ignore them, so one run can name them once.
    """
    spec = _spec(kind)
    known = {o for s in SIMULATORS.values() for o in s.options}
    if set(options) - known:
        raise ValueError(f"unknown simulator option(s) {sorted(set(options) - known)}")
    if spec.needs_model and model is None:
        raise ValueError(f"simulator {kind!r} needs a model (bind the 'simulator' model role)")
    return spec.factory(model, **{k: v for k, v in options.items() if k in spec.options})


class ScorerFactory(Protocol):
    """Builds one inspect scorer from the run's common scoring options."""

    def __call__(
        self,
        *,
        simulator: str,
        split: str | None,
        n_records: int | None,
        calibrate: bool = False,
        simulator_examples: str = "default",
    ) -> Scorer: ...


def _simulation(
    *,
    simulator: str,
    split: str | None,
    n_records: int | None,
    calibrate: bool = False,
    simulator_examples: str = "default",
) -> Scorer:
    from neuronbench.scorers.simulation import simulation

    return simulation(
        simulator=simulator,
        split=split,
        n_records=n_records,
        calibrate=calibrate,
        simulator_examples=simulator_examples,
    )


def _detection(
    *,
    simulator: str,
    split: str | None,
    n_records: int | None,
    calibrate: bool = False,
    simulator_examples: str = "default",
) -> Scorer:
    from neuronbench.scorers.detection import detection

    return detection(split=split, n_records=n_records)


def _fuzzing(
    *,
    simulator: str,
    split: str | None,
    n_records: int | None,
    calibrate: bool = False,
    simulator_examples: str = "default",
) -> Scorer:
    from neuronbench.scorers.fuzzing import fuzzing

    return fuzzing(split=split, n_records=n_records)


def _embedding_scorer(
    *,
    simulator: str,
    split: str | None,
    n_records: int | None,
    calibrate: bool = False,
    simulator_examples: str = "default",
) -> Scorer:
    from neuronbench.scorers.embedding_scorer import embedding

    return embedding(split=split, n_records=n_records)


SCORERS: dict[str, ScorerFactory] = {
    "simulation": _simulation,
    "detection": _detection,
    "fuzzing": _fuzzing,
    "embedding": _embedding_scorer,
}
"""Scorers by name (``-T scorer=simulation,detection``); factories may ignore options they do not use."""


def build_scorers(
    names: list[str] | str,
    *,
    simulator: str = "logprob",
    split: str | None = None,
    n_records: int | None = None,
    calibrate: bool = False,
    simulator_examples: str = "default",
) -> list[Scorer]:
    """inspect scorers for ``names`` (a list, or one comma-separated string), in order.

    ``calibrate`` adds r² and absolute deviation explained (linear calibration fitted on the
    calibration split) to the simulation scorer; ``simulator_examples`` (``default``,
    ``openai`` or a JSON path) picks the logprob simulator's few-shot examples. The other
    scorers ignore both.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise ValueError(f"unknown scorer(s) {unknown} (choose from {', '.join(SCORERS)})")
    _spec(simulator)  # fail on a typo before the eval starts
    return [
        SCORERS[n](
            simulator=simulator,
            split=split,
            n_records=n_records,
            calibrate=calibrate,
            simulator_examples=simulator_examples,
        )
        for n in names
    ]
