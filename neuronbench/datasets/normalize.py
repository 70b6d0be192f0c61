"""The paper's 0-10 activation scale, shared by explainer prompts and simulator prompts.

Explainers see integers, not raw activations: raw scales differ wildly between neurons,
layers and models, while "10 = this neuron's strongest firing" means the same everywhere.
Negative values count as rest (relu), which suits GELU/SiLU MLPs whose negative tail is small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from neuronbench.datasets.schema import ActivationRecord


def relu_max(records: Sequence[ActivationRecord]) -> float:
    """Largest non-negative activation over all tokens of ``records`` (0.0 if none fire)."""
    return max((max(0.0, a) for r in records for a in r.activations), default=0.0)


def normalize(activations: Sequence[float], max_activation: float) -> list[int]:
    """``min(10, floor(10 * relu(a) / max_activation))`` per value; all 0 when ``max <= 0``."""
    if max_activation <= 0:
        return [0] * len(activations)
    return [min(10, math.floor(10 * max(0.0, a) / max_activation)) for a in activations]


def normalize_activations(
    records: Sequence[ActivationRecord], max_activation: float | None = None
) -> list[list[int]]:
    """Each record's activations on the 0-10 scale.

    Args:
        records: The records to normalize (e.g. the ones shown in one prompt).
        max_activation: The value that maps to 10. ``None`` uses the max over ``records``
            themselves, as the paper does for the records shown in a prompt; pass the
            neuron's max to put several prompts on one scale.
    """
    top = relu_max(records) if max_activation is None else max_activation
    return [normalize(r.activations, top) for r in records]
