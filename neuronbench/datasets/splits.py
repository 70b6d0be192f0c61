"""Deterministic train / calibration / valid / test splits, dealt as OpenAI deals them.

Records are dealt round-robin with stride = number of splits: top record ``i`` goes to
``TOP_SPLITS[i % 4]`` and random record ``i`` to ``RANDOM_SPLITS[i % 3]``. The explainer
sees only ``train`` (top records); scoring uses ``valid`` during development and ``test``
for leaderboards, each = its top + random records, 1:1. Because every record is dealt to
exactly one split, and a neuron's random sample never holds one of its top records (the
recorder draws it per neuron, excluding them), no scored record can be shown to the explainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from neuronbench.datasets.errors import DatasetError
from neuronbench.datasets.schema import ActivationRecord, NeuronRecord

Split = Literal["train", "calibration", "valid", "test"]
TOP_SPLITS: tuple[Split, ...] = ("train", "calibration", "valid", "test")
RANDOM_SPLITS: tuple[Split, ...] = ("calibration", "valid", "test")
SCORING_SPLITS: tuple[Split, ...] = ("calibration", "valid", "test")


def deal(
    records: list[ActivationRecord], splits: tuple[Split, ...], split: Split
) -> list[ActivationRecord]:
    """Records ``i`` with ``splits[i % len(splits)] == split``, in their original order."""
    if split not in splits:
        return []
    k = splits.index(split)
    return records[k :: len(splits)]


@dataclass
class ScoringSet:
    """Held-out records a simulator predicts: top and random, kept apart for per-group scores."""

    top: list[ActivationRecord]
    """Top-activating records of the split."""
    random: list[ActivationRecord]
    """Random records of the split."""

    @property
    def all(self) -> list[ActivationRecord]:
        return [*self.top, *self.random]


def train_records(neuron: NeuronRecord, n: int | None = None) -> list[ActivationRecord]:
    """The only records an explainer may see: top records dealt to ``train``."""
    recs = deal(neuron.top, TOP_SPLITS, "train")
    if not recs:
        raise DatasetError(f"neuron {neuron.id}: no train records (need >= 1 top record)")
    return recs if n is None else recs[:n]


def scoring_records(neuron: NeuronRecord, split: Split, n: int | None = None) -> ScoringSet:
    """Top + random records of a scoring split, balanced 1:1 (``n`` of each when given)."""
    if split not in SCORING_SPLITS:
        raise DatasetError(f"split {split!r} is not a scoring split (use one of {SCORING_SPLITS})")
    top = deal(neuron.top, TOP_SPLITS, split)
    rand = deal(neuron.random, RANDOM_SPLITS, split)
    if not top or not rand:
        raise DatasetError(
            f"neuron {neuron.id}: split {split!r} is missing "
            f"({len(top)} top, {len(rand)} random records; need >= 1 of each)"
        )
    k = min(len(top), len(rand)) if n is None else min(n, len(top), len(rand))
    return ScoringSet(top=top[:k], random=rand[:k])
