"""Correlation scoring: pooled Pearson vs numpy, constant and non-finite cases, calibration."""

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
from neuronbench.scorers.correlation import NonFiniteScore, checked_correlation
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


def test_constant_predictions_of_a_varying_neuron_score_zero_and_are_flagged():
    neuron = make_neuron(n_tokens_per_record=8)
    scoring = scoring_records(neuron, "valid")
    sim = Simulation(predictions=[[3.0] * len(r.tokens) for r in scoring.all])
    scores = score_simulation(sim, scoring)
    assert scores.as_dict() == {"top_and_random": 0.0, "random_only": 0.0, "top_only": 0.0}
    assert scores.constant_simulation == ["top_and_random", "random_only", "top_only"]
    assert scores.unscored == {} and scores.failure is None


def test_constant_on_one_group_only_is_flagged_for_that_group():
    neuron = make_neuron(n_tokens_per_record=8)
    scoring = scoring_records(neuron, "valid")
    n_top = len(scoring.top)
    # varies on the top records, predicts 0 everywhere on the random ones
    preds = [list(r.activations) for r in scoring.top] + [[0.0] * 8 for _ in scoring.random]
    scores = score_simulation(Simulation(predictions=preds), scoring)
    assert scores.constant_simulation == ["random_only"]
    assert scores.random_only == 0.0 and scores.top_only == pytest.approx(1.0)
    real = np.concatenate([r.activations for r in scoring.all])
    assert scores.top_and_random == pytest.approx(
        np.corrcoef(real, np.concatenate(preds))[0, 1], abs=1e-12
    )
    assert n_top == len(scoring.random)


def test_constant_real_and_constant_prediction_is_unscored_not_zero():
    # data side wins: nothing could be predicted for a neuron that never varies
    with pytest.raises(Unscorable, match="real activations are constant"):
        correlation_score([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert correlation_score([0.0, 1.0, 2.0], [5.0, 5.0, 5.0]) == 0.0


def test_non_finite_correlations_are_never_clamped():
    assert checked_correlation(1.0 + 1e-15) == 1.0  # rounding overshoot
    assert checked_correlation(-1.0 - 1e-15) == -1.0
    assert checked_correlation(0.25) == 0.25
    for bad in (float("nan"), float("inf"), -float("inf"), 1.1, -1.0 - 1e-6):
        with pytest.raises(NonFiniteScore):
            checked_correlation(bad)
    # activations so large that the mean overflows: an error, where min/max clamping
    # turned the NaN into a perfect 1.0
    with pytest.raises(NonFiniteScore):
        correlation_score([1.7e308, 1.7e308, -1.7e308], [0.0, 1.0, 2.0])
    with pytest.raises(NonFiniteScore, match="non-finite simulated"):
        correlation_score([0.0, 1.0], [0.0, float("nan")])


def test_correlation_is_exact_for_huge_and_tiny_magnitudes():
    x = np.array([0.0, 1.0, 3.0, 2.0])
    y = np.array([3.0, 2.0, 0.0, 1.5])
    r = np.corrcoef(x, y)[0, 1]
    for scale in (1e200, 1e-300, 1.0):
        # unscaled dot products overflow (1e200) or underflow (1e-300) here
        assert correlation_score(x * scale, y * scale) == pytest.approx(r, abs=1e-12)


def test_non_finite_headline_is_a_failure_not_a_score():
    neuron = make_neuron(n_tokens_per_record=8)
    scoring = scoring_records(neuron, "valid")
    for rec in scoring.all:  # finite, but the pooled mean overflows
        rec.activations = [1.7e308 if i % 3 else -1.7e308 for i in range(len(rec.tokens))]
    scores = score_simulation(_random_sim(scoring.all), scoring)
    assert scores.top_and_random is None
    assert scores.failure is not None and "not a finite value" in scores.failure


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


def test_calibration_with_constant_predictions_predicts_the_calibration_mean():
    neuron = make_neuron(n_tokens_per_record=8)
    scoring, cal_set = scoring_records(neuron, "valid"), scoring_records(neuron, "calibration")
    flat = Simulation(predictions=[[1.0] * len(r.tokens) for r in cal_set.all])
    cal_real = np.concatenate([r.activations for r in cal_set.all])
    assert fit_linear_calibration(cal_real, np.ones_like(cal_real)) == pytest.approx(
        (0.0, cal_real.mean())
    )
    scores = score_simulation(_random_sim(scoring.all), scoring, calibration=(flat, cal_set))
    # slope 0: the scoring predictions carry no weight, every token gets the calibration mean
    real = np.concatenate([r.activations for r in scoring.all])
    c = cal_real.mean()
    assert scores.r2 == pytest.approx(1 - np.mean((real - c) ** 2) / np.mean(real**2))
    assert scores.absolute_deviation_explained == pytest.approx(
        1 - np.mean(np.abs(real - c)) / np.mean(np.abs(real))
    )
    assert "r2" not in scores.unscored


def test_outcome_is_one_rule_for_failed_unscored_and_ok() -> None:
    from neuronbench.scorers.correlation import SimulationScores

    failed = SimulationScores(None, None, None, {"top_and_random": "x"}, failure="misshapen")
    assert failed.outcome() == ("failed", "misshapen")
    unscored = SimulationScores(None, 0.1, None, {"top_and_random": "real activations constant"})
    assert unscored.outcome() == ("unscored", "real activations constant")
    assert SimulationScores(0.4, 0.1, 0.2).outcome() == ("ok", None)
