"""Bootstrap CIs: coverage of the truth on simulated data, pairing, test-retest."""

from __future__ import annotations

import numpy as np
import pytest

from neuronbench.results.bootstrap import bootstrap_mean, paired_bootstrap_diff, retest_agreement


def test_mean_ci_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    true_mean, hits, trials = 0.4, 0, 300
    for seed in range(trials):
        x = np.random.default_rng(seed).normal(true_mean, 0.2, size=60)
        ci = bootstrap_mean(x, n_resamples=2000, seed=seed)
        assert ci.estimate == pytest.approx(x.mean())
        hits += ci.low <= true_mean <= ci.high
    # percentile bootstrap at n=60 covers ~94%; binomial sd over 300 trials is ~1.4%
    assert 0.90 <= hits / trials <= 0.985


def test_mean_ci_is_seeded_and_shrinks_with_n() -> None:
    x = np.random.default_rng(0).normal(0.5, 0.2, size=400)
    assert bootstrap_mean(x, seed=3) == bootstrap_mean(x, seed=3)
    wide = bootstrap_mean(x[:25])
    narrow = bootstrap_mean(x)
    assert (narrow.high - narrow.low) < 0.5 * (wide.high - wide.low)
    # the 95% half-width is ~1.96 standard errors
    assert (narrow.high - narrow.low) / 2 == pytest.approx(1.96 * x.std() / np.sqrt(400), rel=0.1)


def test_mean_rejects_nan_and_handles_tiny_inputs() -> None:
    with pytest.raises(ValueError, match="unscored"):
        bootstrap_mean([0.1, float("nan")])
    assert bootstrap_mean([]).n == 0 and np.isnan(bootstrap_mean([]).estimate)
    one = bootstrap_mean([0.3])
    assert one.estimate == 0.3 and np.isnan(one.low)


def test_paired_diff_uses_shared_keys_only_and_pairing_narrows_the_ci() -> None:
    rng = np.random.default_rng(1)
    difficulty = rng.normal(0, 0.3, size=100)
    a = {f"n{i}": 0.6 + d + rng.normal(0, 0.02) for i, d in enumerate(difficulty)}
    b = {f"n{i}": 0.5 + d + rng.normal(0, 0.02) for i, d in enumerate(difficulty) if i % 4}
    b["only-b"] = -5.0  # not in a: must not enter the difference
    d = paired_bootstrap_diff(a, b)
    shared = [k for k in a if k in b]
    assert d.n == len(shared) == 75
    assert d.estimate == pytest.approx(np.mean([a[k] - b[k] for k in shared]))
    assert d.low <= 0.1 <= d.high
    unpaired_width = bootstrap_mean(list(a.values())).high - bootstrap_mean(list(a.values())).low
    assert (d.high - d.low) < 0.2 * unpaired_width


def test_paired_diff_coverage_on_simulated_data() -> None:
    hits = 0
    for seed in range(100):
        rng = np.random.default_rng(100 + seed)
        difficulty = rng.normal(0, 0.3, size=40)
        a = {str(i): 0.3 + x + rng.normal(0, 0.05) for i, x in enumerate(difficulty)}
        b = {str(i): 0.2 + x + rng.normal(0, 0.05) for i, x in enumerate(difficulty)}
        d = paired_bootstrap_diff(a, b, n_resamples=2000, seed=seed)
        hits += d.low <= 0.1 <= d.high
    assert 0.88 <= hits / 100 <= 1.0


def test_retest_agreement_separates_stable_from_noisy_scores() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(0.5, 0.2, size=80)
    stable = {str(i): {e: t + rng.normal(0, 0.02) for e in (1, 2, 3)} for i, t in enumerate(truth)}
    noisy = {str(i): {e: float(rng.normal(0.5, 0.2)) for e in (1, 2, 3)} for i in range(80)}
    s, n = retest_agreement(stable), retest_agreement(noisy)
    assert s.epochs == 3 and s.n_neurons == 80
    assert s.pearson > 0.95 and abs(n.pearson) < 0.3
    assert s.within_sd == pytest.approx(0.02, rel=0.2)
    assert n.within_sd == pytest.approx(0.2, rel=0.2)
