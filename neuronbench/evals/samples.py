"""Which neurons an eval runs on, and what each sample carries.

One sample per neuron: id = ``NeuronId.key`` (file-name safe), metadata = the neuron's
records (top + random, needed by the scorers; quantile samples left out), its summary
statistics (so results group by layer), the scoring split, and ``negatives``: a few
near-silent quantile records for ``with_negatives``, chosen so that none of them is a
top or random record (those belong to splits, and scoring records must never be shown).

A neuron whose records cannot fill the splits a run needs (a hand-written neuron with a
handful of sentences, a neuron without random records) still gets its sample, with
``metadata["skip"]`` saying what is missing: one small neuron must not stop an eval of
hundreds, and the skip must show in the log and the leaderboard's coverage, not vanish.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, TypeAlias

from inspect_ai.dataset import Sample

from neuronbench.datasets import (
    ActivationRecord,
    DatasetError,
    NeuronDataset,
    NeuronId,
    NeuronRecord,
    scoring_records,
    train_records,
)
from neuronbench.datasets.normalize import normalize


def stratified_ids(ids: Sequence[NeuronId], n: int, seed: int) -> list[NeuronId]:
    """``n`` neurons spread evenly over layers (round-robin), each layer's picks seeded by ``seed``."""
    rng = random.Random(seed)
    by_layer: dict[int, list[NeuronId]] = {}
    for nid in sorted(ids):
        by_layer.setdefault(nid.layer, []).append(nid)
    pools = [rng.sample(group, len(group)) for _, group in sorted(by_layer.items())]
    picked: list[NeuronId] = []
    while len(picked) < n and any(pools):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return sorted(picked)


Neurons: TypeAlias = str | int | Sequence[str | int] | None
"""A neuron selection: all, a count, ``stratified:N`` or keys (a comma-separated string or a
list: inspect's ``-T neurons=0/1,0/2`` arrives as a list)."""


def select_ids(ids: Sequence[NeuronId], neurons: Neurons, seed: int = 0) -> list[NeuronId]:
    """The ids :func:`select_neurons` would pick, from ids alone (before loading any records)."""
    everything = sorted(ids)
    if isinstance(neurons, Sequence) and not isinstance(neurons, str):
        neurons = ",".join(str(n).strip() for n in neurons)
    if neurons is None or (isinstance(neurons, str) and not neurons.strip()):
        return everything
    if isinstance(neurons, int) or neurons.strip().isdigit():
        count = int(neurons)
        if count < 1:
            raise ValueError(f"neurons={neurons!r}: need at least 1 neuron")
        return everything[:count]
    text = neurons.strip()
    if text.startswith("stratified:"):
        count_text = text.split(":", 1)[1]
        if not count_text.strip().isdigit() or int(count_text) < 1:
            raise ValueError(f"neurons={neurons!r}: use stratified:N with N >= 1")
        return stratified_ids(everything, int(count_text), seed)
    picked = [resolve_key(everything, k) for k in text.split(",") if k.strip()]
    return sorted(set(picked))


def resolve_key(ids: Sequence[NeuronId], key: str) -> NeuronId:
    """The neuron ``key`` names, as ``NeuronId.key``, ``subject/layer/index`` or ``layer/index``
    (the first by id when ``layer/index`` is ambiguous); :class:`DatasetError` if none."""
    key = key.strip()
    everything = sorted(ids)
    for i in everything:
        if key in (i.key, str(i), f"{i.layer}/{i.index}"):
            return i
    some = ", ".join(i.key for i in everything[:3])
    raise DatasetError(
        f"neuron {key!r} not in dataset ({len(everything)} neurons; keys look "
        f"like {some}, or 'subject/layer/index', or 'layer/index')"
    )


def select_neurons(ds: NeuronDataset, neurons: Neurons, seed: int = 0) -> list[NeuronRecord]:
    """The neurons to evaluate, sorted by id.

    Args:
        ds: The loaded dataset.
        neurons: ``None`` (all), a count N (the first N by id), ``"stratified:N"`` (N spread
            over layers, seeded), or keys (``NeuronId.key``, ``subject/layer/index`` or
            ``layer/index``), comma-separated or as a list.
        seed: Seed for ``stratified:N``.
    """
    return [ds.neurons[i] for i in select_ids(list(ds.neurons), neurons, seed)]


def negatives(neuron: NeuronRecord, n: int) -> list[ActivationRecord]:
    """Up to ``n`` quantile records, lowest max first, that read 0 on the neuron's 0-10 scale.

    Records also present among top or random records (same position, or same tokens when
    positions are unknown) are skipped: those are dealt to splits, some of them scored.
    """
    seen_pos = {r.position for r in [*neuron.top, *neuron.random] if r.position >= 0}
    seen_tok = {tuple(r.tokens) for r in [*neuron.top, *neuron.random]}
    top = neuron.max_activation
    pool = [r for q in neuron.quantile for r in q]
    pool = [
        r
        for r in pool
        if r.position not in seen_pos
        and tuple(r.tokens) not in seen_tok
        and max(normalize(r.activations, top)) == 0
    ]
    return sorted(pool, key=lambda r: (r.max_activation, r.position))[:n]


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    """NaN statistics (unknown, e.g. imported data) as None, which JSON logs can hold."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in d.items()}


def skip_reason(neuron: NeuronRecord, split: str) -> str | None:
    """Why ``neuron`` cannot run: no train record, or no top or no random record in the
    scoring ``split`` (one line naming the neuron and the counts); None if it can."""
    try:
        train_records(neuron)
        scoring_records(neuron, split)  # type: ignore[arg-type]
    except DatasetError as e:
        return f"{e} ({len(neuron.top)} top, {len(neuron.random)} random records in all)"
    return None


def sample_for(neuron: NeuronRecord, split: str, n_negatives: int = 2) -> Sample:
    """One sample per neuron; ``metadata["skip"]`` says why when the neuron lacks train
    records or the scoring ``split``. Records are dealt round-robin with calibration first,
    so a neuron that fills ``valid`` or ``test`` also fills ``calibration`` (best_of_k,
    calibrate)."""
    record = neuron.to_dict()
    record.pop("quantile")
    metadata: dict[str, Any] = {
        "neuron": _json_safe(record),
        **_json_safe(neuron.summary()),
        "split": split,
        "negatives": [r.to_dict() for r in negatives(neuron, n_negatives)],
    }
    reason = skip_reason(neuron, split)
    if reason is not None:
        metadata["skip"] = reason
    return Sample(
        id=neuron.id.key,
        input=f"Explain neuron {neuron.id} (layer {neuron.id.layer}, index {neuron.id.index}).",
        metadata=metadata,
    )
