"""Bootstrap confidence intervals and test-retest agreement for per-neuron scores.

Pure numpy, seeded, vectorized. Every leaderboard number with an uncertainty comes
from here, so the resampling unit is fixed in one place: the **neuron**. Records inside
a neuron are not resampled, because a neuron's score is one correlation pooled over its
records, and neurons (not records) are what an explainer is evaluated on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
"""Bootstrap resamples: enough that the percentile CI's Monte Carlo error is ~0.002."""

_CHUNK_CELLS = 4_000_000
"""Upper bound on resample-matrix cells held at once (about 32 MB of float64)."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap confidence interval."""

    estimate: float
    """The statistic on the observed data (mean, or mean paired difference)."""
    low: float
    """Lower end of the CI (NaN when there are no observations)."""
    high: float
    """Upper end of the CI (NaN when there are no observations)."""
    n: int
    """Observations the statistic was computed over (neurons)."""


def _resampled_means(x: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of ``x`` (chunked to bound memory)."""
    rng = np.random.default_rng(seed)
    n = x.size
    per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, per_chunk):
        stop = min(n_resamples, start + per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))  # (chunk, n)
        out[start:stop] = x[idx].mean(axis=1)
    return out


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean of ``values`` with a percentile bootstrap CI.

    Args:
        values: Per-neuron scores; NaN is an error (filter unscored neurons first,
            so a missing score is never averaged in as something else).
        confidence: Two-sided coverage of the interval.
        n_resamples: Bootstrap resamples.
        seed: RNG seed; the same inputs always give the same interval.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"bootstrap_mean expects a 1-d array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_mean got NaN/inf scores: drop unscored neurons first")
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    if x.size == 1:
        return Interval(float(x[0]), float("nan"), float("nan"), 1)
    means = _resampled_means(x, n_resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(x.mean()), float(low), float(high), int(x.size))


def paired_bootstrap_diff(
    a: dict[str, float],
    b: dict[str, float],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean of ``a[k] - b[k]`` over the keys both score, with a paired bootstrap CI.

    Pairing matters: neuron difficulty varies far more than explainer quality, so
    resampling the per-neuron *differences* cancels that shared variance, and only
    neurons scored by both sides are compared (a neuron one side failed on would
    otherwise bias the difference by who failed on the hard neurons).

    Args:
        a: Neuron key → score for the first row (finite scores only).
        b: Neuron key → score for the second row.
    """
    shared = sorted(set(a) & set(b))
    diffs = np.array([a[k] - b[k] for k in shared], dtype=float)
    return bootstrap_mean(diffs, confidence=confidence, n_resamples=n_resamples, seed=seed)


def two_sample_bootstrap_diff(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """``mean(a) − mean(b)`` for two *independent* samples, with a percentile CI from
    resampling each on its own (``a`` with ``seed``, ``b`` with ``seed + 1``).

    For groups with no units in common, e.g. MLP neurons against SAE latents: nothing can
    be paired, so the shared-difficulty variance that pairing cancels stays in the CI.
    The CI is NaN when either side has fewer than two values (a single value has no
    spread to resample); the estimate is NaN when either side is empty.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError("two_sample_bootstrap_diff expects two 1-d arrays")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("two_sample_bootstrap_diff got NaN/inf scores: drop unscored units first")
    nan = float("nan")
    if x.size == 0 or y.size == 0:
        return Interval(nan, nan, nan, int(x.size + y.size))
    estimate = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return Interval(estimate, nan, nan, int(x.size + y.size))
    diffs = _resampled_means(x, n_resamples, seed) - _resampled_means(y, n_resamples, seed + 1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    return Interval(estimate, float(low), float(high), int(x.size + y.size))


@dataclass(frozen=True)
class Agreement:
    """Test-retest agreement of per-neuron scores across repeated explanations (epochs)."""

    epochs: int
    """Epochs compared (explanations sampled independently per neuron)."""
    n_neurons: int
    """Neurons scored in at least two epochs."""
    pearson: float
    """Mean over epoch pairs of the Pearson correlation of scores across neurons
    scored in both epochs: do reruns rank neurons the same way?"""
    within_sd: float
    """Root mean within-neuron variance of scores across epochs: how much one
    neuron's score moves between reruns (same units as the score)."""


def retest_agreement(scores: dict[str, dict[int, float]]) -> Agreement:
    """Agreement of scores between epochs, from ``neuron key → {epoch: score}``."""
    epochs = sorted({e for per in scores.values() for e in per})
    pair_r: list[float] = []
    for i, e1 in enumerate(epochs):
        for e2 in epochs[i + 1 :]:
            keys = [k for k, per in scores.items() if e1 in per and e2 in per]
            if len(keys) < 3:
                continue
            x = np.array([scores[k][e1] for k in keys])
            y = np.array([scores[k][e2] for k in keys])
            if x.std() == 0 or y.std() == 0:
                continue
            pair_r.append(float(np.corrcoef(x, y)[0, 1]))
    repeated = [np.array(list(per.values())) for per in scores.values() if len(per) >= 2]
    within = (
        float(np.sqrt(np.mean([v.var(ddof=1) for v in repeated]))) if repeated else float("nan")
    )
    return Agreement(
        epochs=len(epochs),
        n_neurons=len(repeated),
        pearson=float(np.mean(pair_r)) if pair_r else float("nan"),
        within_sd=within,
    )
