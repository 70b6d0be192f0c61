"""Metrics skip unscored values explicitly and count failures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from inspect_ai.scorer import SampleScore, Score

from neuronbench.scorers import bootstrap_ci, frac_ge, mean_by_layer, n_failed, n_unscored


def _ss(value, status="ok", layer=None, sample_layer=None):
    meta = {"status": status} | ({} if layer is None else {"layer": layer})
    sample_meta = None if sample_layer is None else {"neuron": {"id": {"layer": sample_layer}}}
    return SampleScore(score=Score(value=value, metadata=meta), sample_metadata=sample_meta)


SCORES = [
    _ss(0.9, layer=0),
    _ss(0.6, layer=0),
    _ss(0.3, sample_layer=2),  # layer only in the sample's neuron record
    _ss(math.nan, status="unscored", layer=0),
    _ss(math.nan, status="failed", layer=2),
]


def test_non_finite_values_are_skipped_not_zero():
    assert frac_ge()(SCORES) == {"0.8": pytest.approx(1 / 3), "0.5": pytest.approx(2 / 3)}
    assert mean_by_layer()(SCORES) == {"L0": pytest.approx(0.75), "L2": pytest.approx(0.3)}


def test_failures_and_unscored_are_counted():
    assert n_failed()(SCORES) == 1
    assert n_unscored()(SCORES) == 1


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible():
    rng = np.random.default_rng(0)
    scores = [_ss(float(v)) for v in rng.normal(0.5, 0.1, size=200)]
    ci = bootstrap_ci()(scores)
    mean = np.mean([s.score.value for s in scores])
    assert ci["low"] < mean < ci["high"]
    assert ci["high"] - ci["low"] == pytest.approx(2 * 1.96 * 0.1 / np.sqrt(200), rel=0.3)
    assert bootstrap_ci()(scores) == ci
    assert bootstrap_ci()([_ss(math.nan, status="failed")]) == {}
