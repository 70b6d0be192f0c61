"""Correlation scoring: pooled Pearson vs numpy, unscored reasons, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from neuronbench.datasets import scoring_records
from neuronbench.scorers import (
    Simulation,
    Unscorable,
    absolute_deviation_explained,
    correlation_score,
    fit_linear_calibration,
    r2,
    score_simulation,
)
from tests.conftest import make_neuron


def _random_sim(records, seed=1):
    rng = np.random.default_rng(seed)
    return Simulation(predictions=[list(rng.random(len(r.tokens)) * 10) for r in records])


def test_scores_equal_numpy_corrcoef_on_pooled_tokens():
    neuron = make_neuron(n_tokens_per_record=12)
    scoring = scoring_records(neuron, "valid")
    # correlated with the truth, plus noise, so the scores are far from 0
    rng = np.random.default_rng(3)
    preds = [[a + rng.normal() for a in r.activations] for r in scoring.all]
    scores = score_simulation(Simulation(predictions=preds), scoring)

    def pooled(recs, ps):
        real = np.concatenate([r.activations for r in recs])
        return np.corrcoef(real, np.concatenate(ps))[0, 1]

    n_top = len(scoring.top)
    assert scores.top_and_random == pytest.approx(pooled(scoring.all, preds), abs=1e-12)
    assert scores.top_only == pytest.approx(pooled(scoring.top, preds[:n_top]), abs=1e-12)
    assert scores.random_only == pytest.approx(pooled(scoring.random, preds[n_top:]), abs=1e-12)
    assert scores.unscored == {}
    assert scores.n_tokens == 12 * len(scoring.all)
    # pooled, not the mean of per-record correlations
    per_record = np.mean(
        [np.corrcoef(r.activations, p)[0, 1] for r, p in zip(scoring.all, preds, strict=True)]
    )
    assert abs(per_record - scores.top_and_random) > 1e-3


def test_scores_headline_is_balanced_top_and_random():
    neuron = make_neuron(n_top=40, n_random=30)
    scoring = scoring_records(neuron, "test", n=4)
    assert len(scoring.top) == len(scoring.random) == 4
    scores = score_simulation(_random_sim(scoring.all), scoring)
    assert scores.n_tokens == 8 * 64


def test_constant_real_vector_is_unscored_with_reason():
    neuron = make_neuron(n_tokens_per_record=8)
    scoring = scoring_records(neuron, "valid")
    for r in scoring.random:
        r.activations = [0.0] * len(r.tokens)
    scores = score_simulation(_random_sim(scoring.all), scoring)
    assert scores.random_only is None
    assert "real activations are constant" in scores.unscored["random_only"]
    assert scores.top_and_random is not None and scores.top_only is not None


def test_constant_predictions_are_unscored_never_zero():
    neuron = make_neuron(n_tokens_per_record=8)
    scoring = scoring_records(neuron, "valid")
    sim = Simulation(predictions=[[3.0] * len(r.tokens) for r in scoring.all])
    scores = score_simulation(sim, scoring)
    assert scores.as_dict() == {"top_and_random": None, "random_only": None, "top_only": None}
    assert all("simulated activations are constant" in v for v in scores.unscored.values())


def test_failed_or_misshapen_simulation_is_unscored_with_the_error():
    scoring = scoring_records(make_neuron(n_tokens_per_record=8), "valid")
    failed = score_simulation(Simulation(None, error="bad output", raw_output="junk"), scoring)
    assert failed.top_and_random is None
    assert "bad output" in failed.unscored["top_and_random"]
    short = Simulation(predictions=[[1.0, 2.0]] * len(scoring.all))
    scores = score_simulation(short, scoring)
    assert scores.top_and_random is None
    assert "record 0: 2 predictions for 8 tokens" in scores.unscored["top_and_random"]


def test_correlation_score_rejects_constant_and_empty():
    with pytest.raises(Unscorable, match="real activations are constant"):
        correlation_score([1, 1, 1], [1, 2, 3])
    with pytest.raises(Unscorable, match="no tokens"):
        correlation_score([], [])
    assert correlation_score([0, 1, 2], [0, 2, 4]) == pytest.approx(1.0)
    assert correlation_score([0, 1, 2], [4, 2, 0]) == pytest.approx(-1.0)


def test_r2_and_ade_against_hand_computation():
    real, pred = np.array([0.0, 2.0, 4.0]), np.array([1.0, 2.0, 3.0])
    assert r2(real, pred) == pytest.approx(1 - (1 + 0 + 1) / 3 / ((0 + 4 + 16) / 3))
    assert absolute_deviation_explained(real, pred) == pytest.approx(1 - (2 / 3) / 2)
    with pytest.raises(Unscorable):
        r2([0, 0], [1, 2])


def test_linear_calibration_recovers_a_scaled_simulator():
    neuron = make_neuron(n_tokens_per_record=8)
    scoring = scoring_records(neuron, "valid")
    cal_set = scoring_records(neuron, "calibration")

    # predictions are an exact affine image of the truth: calibration must undo it
    def affine(recs):
        return Simulation(predictions=[[2.0 * a + 1.0 for a in r.activations] for r in recs])

    slope, intercept = fit_linear_calibration(
        np.concatenate([r.activations for r in cal_set.all]),
        np.concatenate(affine(cal_set.all).predictions),
    )
    assert (slope, intercept) == pytest.approx((0.5, -0.5))
    scores = score_simulation(
        affine(scoring.all), scoring, calibration=(affine(cal_set.all), cal_set)
    )
    assert scores.r2 == pytest.approx(1.0)
    assert scores.absolute_deviation_explained == pytest.approx(1.0)
    uncal = score_simulation(affine(scoring.all), scoring)
    assert uncal.r2 is None and "r2" not in uncal.unscored


def test_calibration_with_constant_predictions_is_unscored():
    neuron = make_neuron(n_tokens_per_record=8)
    scoring, cal_set = scoring_records(neuron, "valid"), scoring_records(neuron, "calibration")
    flat = Simulation(predictions=[[1.0] * len(r.tokens) for r in cal_set.all])
    scores = score_simulation(_random_sim(scoring.all), scoring, calibration=(flat, cal_set))
    assert scores.r2 is None
    assert scores.unscored["r2"] == "calibration predictions are constant"
