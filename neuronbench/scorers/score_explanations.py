"""Score explanations written elsewhere (people, published files, other tools) with any simulator.

``neuronbench score`` runs on these functions. No explainer and no eval: each candidate
is simulated and correlated by the same ``simulate`` + :func:`score_simulation` the
``simulation`` scorer uses, so a candidate gets the number an eval would give it, and a
scorer check on external data is one command.

Explanation files hold one or several candidates per neuron:

- ``.jsonl``: one ``{"neuron": KEY, "explanation": TEXT, "name": NAME}`` per line; ``name``
  is optional (a neuron's unnamed candidates are numbered ``1``, ``2``... in file order).
- any other file is read as JSON: ``{KEY: TEXT}``, ``{KEY: [TEXT, ...]}`` (numbered as
  above), ``{KEY: {NAME: TEXT, ...}}``, or a list of the JSONL line objects.

KEY is any key form the task accepts (``NeuronId.key``, ``subject/layer/index``,
``layer/index``); the caller resolves it. Records scored: a scoring split (top + random
1:1, as an eval scores) or ``all`` (every top and random record, for small hand-written
neurons whose few records cannot fill a split).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from neuronbench.datasets import DatasetError, NeuronRecord, ScoringSet, scoring_records

Status = Literal["ok", "unscored", "failed", "skipped", "missing"]
STATUSES: tuple[Status, ...] = ("ok", "unscored", "failed", "skipped", "missing")
ALL_RECORDS = "all"
"""``records`` value that scores every top and random record instead of a split."""

Candidates = dict[str, dict[str, str]]
"""Neuron key → candidate name → explanation text."""


@dataclass
class CandidateScore:
    """One candidate explanation of one neuron, scored by one simulator."""

    neuron: str
    """``NeuronId.key`` of the neuron."""
    candidate: str
    """Candidate name (from the file, or its 1-based number); ``-`` for a missing neuron."""
    explanation: str
    """The explanation text simulated."""
    simulator: str
    """Simulator kind (``lexical``, ``embedding``, ``logprob``, ``generation``)."""
    top_and_random: float | None
    """Correlation over top + random records pooled (the headline); None unless ``ok``."""
    random_only: float | None
    """Correlation over the random records only; None when unscorable (reason in ``unscored``)."""
    top_only: float | None
    """Correlation over the top records only; None when unscorable."""
    status: Status
    """``ok``; ``unscored`` (no correlation defined: constant real activations, no tokens);
    ``failed`` (the simulation failed); ``skipped`` (the neuron's records cannot fill the
    requested split); ``missing`` (a requested neuron has no explanation in the file)."""
    reason: str | None
    """Why the headline score is None; None when ``ok``."""
    n_tokens: int = 0
    """Tokens pooled into the headline score."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers as None)."""
        d = asdict(self)
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in d.items()
        }


# ---------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class Entry:
    """One explanation as the file gives it, before its neuron key is resolved."""

    key: str
    """Neuron key as written."""
    text: str
    """Explanation text."""
    name: str | None
    """Candidate name, None when the file gives none."""
    where: str
    """File position (``path:line``), for errors."""


def _entry(key: Any, text: Any, name: Any, where: str) -> Entry:
    if not isinstance(key, str) or not key.strip():
        raise DatasetError(f"{where}: the neuron key must be a non-empty string (got {key!r})")
    if not isinstance(text, str):
        raise DatasetError(f"{where}: explanation of {key!r} must be a string (got {text!r})")
    return Entry(key, text, None if name is None else str(name), where)


def _line(obj: Any, where: str) -> Entry:
    if not isinstance(obj, dict) or "neuron" not in obj or "explanation" not in obj:
        raise DatasetError(
            f'{where}: expected {{"neuron": KEY, "explanation": TEXT, "name": optional}}'
        )
    return _entry(obj["neuron"], obj["explanation"], obj.get("name"), where)


def read_entries(path: str | Path) -> list[Entry]:
    """Every explanation in ``path``, in file order (formats: module docstring)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: cannot read the explanations file ({e})") from None
    out: list[Entry] = []
    if p.suffix.lower() == ".jsonl":
        for i, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{p}:{i}: not JSON ({e})") from None
                out.append(_line(obj, f"{p}:{i}"))
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{p}: not JSON ({e}); use .jsonl for one object per line") from None
    if isinstance(data, list):
        return [_line(obj, f"{p}[{i}]") for i, obj in enumerate(data)]
    if not isinstance(data, dict):
        raise DatasetError(f"{p}: expected a JSON object or list, got {type(data).__name__}")
    for key, value in data.items():
        where = f"{p}: {key!r}"
        if isinstance(value, list):
            out += [_entry(key, t, None, where) for t in value]
        elif isinstance(value, dict):
            out += [_entry(key, t, name, where) for name, t in value.items()]
        else:
            out.append(_entry(key, value, None, where))
    return out


def load_candidates(
    path: str | Path, resolve: Callable[[str], str] = lambda key: key.strip()
) -> Candidates:
    """Candidates by neuron from ``path``; ``resolve`` maps a key as written to the neuron's
    key (so ``0/1`` and ``subj-L0-N1`` meet), and raises for a key that names no neuron.
    Unnamed candidates are numbered per neuron after resolving, in file order."""
    out: Candidates = {}
    for e in read_entries(path):
        cands = out.setdefault(resolve(e.key), {})
        label = e.name if e.name is not None else str(len(cands) + 1)
        if label in cands:
            raise DatasetError(f"{e.where}: neuron {e.key!r} has two candidates named {label!r}")
        cands[label] = e.text
    if not out:
        raise DatasetError(f"{path}: no explanations in the file")
    return out


# ---------------------------------------------------------------------------- scoring


def records_for(neuron: NeuronRecord, records: str, n_records: int | None = None) -> ScoringSet:
    """The records a candidate is scored on: a split (``n_records`` of each group at most)
    or ``all``; :class:`DatasetError` naming the neuron when there are none."""
    if records == ALL_RECORDS:
        if not neuron.top and not neuron.random:
            raise DatasetError(f"neuron {neuron.id}: no top or random records")
        return ScoringSet(top=list(neuron.top), random=list(neuron.random))
    return scoring_records(neuron, records, n_records)  # type: ignore[arg-type]


async def score_candidate(
    simulator: Any, kind: str, neuron: str, name: str, text: str, scoring: ScoringSet
) -> CandidateScore:
    """Simulate ``text`` on ``scoring`` and correlate, as the ``simulation`` scorer does."""
    from neuronbench.scorers.correlation import score_simulation

    def row(status: Status, reason: str | None, scores: Any = None) -> CandidateScore:
        v = scores.as_dict() if scores is not None else {}
        return CandidateScore(
            neuron=neuron,
            candidate=name,
            explanation=text,
            simulator=kind,
            top_and_random=v.get("top_and_random"),
            random_only=v.get("random_only"),
            top_only=v.get("top_only"),
            status=status,
            reason=reason,
            n_tokens=scores.n_tokens if scores is not None else 0,
        )

    # an empty explanation is simulated too, as the scorer does (the tokens-alone floor)
    sim = await simulator.simulate(text, [r.tokens for r in scoring.all])
    scores = score_simulation(sim, scoring)
    status, reason = scores.outcome()
    return row(status, reason, scores)  # type: ignore[arg-type]


async def _score_neuron(
    neuron: NeuronRecord,
    candidates: Mapping[str, str],
    simulators: Mapping[str, Any],
    records: str,
    n_records: int | None,
) -> list[CandidateScore]:
    key = neuron.id.key

    def unscored(name: str, text: str, kind: str, status: Status, why: str) -> CandidateScore:
        return CandidateScore(key, name, text, kind, None, None, None, status, why)

    if not candidates:
        return [unscored("-", "", k, "missing", "no explanation in the file") for k in simulators]
    try:
        scoring = records_for(neuron, records, n_records)
    except DatasetError as e:
        return [
            unscored(name, text, kind, "skipped", str(e))
            for name, text in candidates.items()
            for kind in simulators
        ]
    jobs = [
        score_candidate(sim, kind, key, name, text, scoring)
        for name, text in candidates.items()
        for kind, sim in simulators.items()
    ]
    return list(await asyncio.gather(*jobs))


def score_explanations(
    neurons: Sequence[NeuronRecord],
    candidates: Mapping[str, Mapping[str, str]],
    simulators: Sequence[str],
    *,
    model: Any = None,
    records: str = "valid",
    n_records: int | None = None,
) -> list[CandidateScore]:
    """Score every candidate of every neuron with every simulator kind.

    Args:
        neurons: The neurons to score, in output order.
        candidates: Candidate name → text, by ``NeuronId.key`` (a neuron absent here is
            reported ``missing``).
        simulators: Simulator kinds (``lexical``, ``embedding``, ``logprob``, ``generation``).
        model: inspect model (or model name, e.g. ``neuronbench/smollm2``) for the
            ``logprob`` and ``generation`` simulators.
        records: A scoring split (``calibration``, ``valid``, ``test``) or ``all``.
        n_records: With a split: top and random records each, at most (None = all in it).
    """
    from neuronbench.scorers.registry import make_simulator, simulator_needs_model

    if records != ALL_RECORDS and records not in ("calibration", "valid", "test"):
        raise ValueError(f"records={records!r}: use calibration, valid, test or {ALL_RECORDS}")
    needs = [k for k in simulators if simulator_needs_model(k)]
    if needs and model is None:
        raise ValueError(
            f"simulator {needs[0]!r} needs a model: pass --model (e.g. neuronbench/smollm2)"
        )
    if isinstance(model, str):
        from inspect_ai.model import get_model

        import neuronbench.models.provider  # noqa: F401  (registers neuronbench/<model>)

        model = get_model(model)
    sims = {k: make_simulator(k, model if simulator_needs_model(k) else None) for k in simulators}

    async def run() -> list[CandidateScore]:
        out: list[CandidateScore] = []
        for neuron in neurons:  # one neuron at a time: a local model batches its records
            out += await _score_neuron(
                neuron, candidates.get(neuron.id.key, {}), sims, records, n_records
            )
        return out

    return asyncio.run(run())


def summarize(rows: Sequence[CandidateScore]) -> dict[str, dict[str, Any]]:
    """Per simulator: rows by status and the mean headline score over ``ok`` rows."""
    out: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(r.simulator for r in rows):
        mine = [r for r in rows if r.simulator == kind]
        ok = [r.top_and_random for r in mine if r.status == "ok" and r.top_and_random is not None]
        counts: dict[str, Any] = {s: sum(r.status == s for r in mine) for s in STATUSES}
        out[kind] = {**counts, "mean_top_and_random": sum(ok) / len(ok) if ok else None}
    return out
