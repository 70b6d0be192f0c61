"""The paper's 0-10 normalization: min(10, floor(10 * relu(a) / max))."""

from __future__ import annotations

import math

from neuronbench.datasets import ActivationRecord
from neuronbench.datasets.normalize import normalize, normalize_activations


def rec(acts: list[float]) -> ActivationRecord:
    return ActivationRecord(tokens=[f"t{i}" for i in range(len(acts))], activations=acts)


def test_max_over_records_maps_to_10_and_negatives_to_0() -> None:
    out = normalize_activations([rec([0.0, 2.0, -1.0]), rec([4.0, 3.99, 0.39])])
    assert out == [[0, 5, 0], [10, 9, 0]]


def test_explicit_max_and_clip_at_10() -> None:
    assert normalize_activations([rec([1.0, 8.0, 16.0])], max_activation=8.0) == [[1, 10, 10]]


def test_dead_neuron_is_all_zero_not_nan() -> None:
    assert normalize_activations([rec([-1.0, 0.0])]) == [[0, 0]]
    assert normalize([1.0], 0.0) == [0]


def test_matches_formula_on_many_values() -> None:
    values = [i * 0.173 - 3.0 for i in range(100)]
    top = max(values)
    expected = [min(10, math.floor(10 * max(0.0, a) / top)) for a in values]
    assert normalize(values, top) == expected
