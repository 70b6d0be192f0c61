"""inspect metrics over per-neuron explanation scores.

Failed, unscored and skipped samples carry NaN in the score keys (inspect's unscored
sentinel): inspect drops them before a dict-form metric runs, and every metric here drops
non-finite values again itself, so a missing score never counts as 0. They are counted
instead, on the score's always-finite ``scored`` key, by :func:`n_failed`,
:func:`n_unscored` and :func:`n_skipped` (which read ``status`` from the score
metadata). A constant simulation is a score (0), counted by :func:`n_constant_simulation`.

In the log, dict-valued metrics are expanded (``bootstrap_ci_low``, ``frac_ge_0.8``,
``mean_by_layer_L3``), and inspect prefixes metric keys with ``neuronbench/`` when the
package is installed (not when run from a source tree): read them by the part after
the last ``/``, or by ``EvalMetric.group`` + ``EvalMetric.name``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
from inspect_ai.scorer import Metric, SampleScore, metric


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def finite_values(scores: list[SampleScore]) -> np.ndarray:
    """The finite numeric score values (unscored NaN / None / non-numbers dropped)."""
    vals = [v for s in scores if (v := _finite(s.score.value)) is not None]
    return np.asarray(vals, dtype=np.float64)


@metric
def bootstrap_ci(level: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> Metric:
    """Percentile bootstrap confidence interval of the mean over neurons (``low``, ``high``).

    Args:
        level: Coverage of the interval.
        n_resamples: Bootstrap resamples of the neurons.
        seed: RNG seed, so a log recomputes to the same interval.
    """

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        x = finite_values(scores)
        if x.size == 0:
            return {}
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(
            axis=1
        )  # (n_resamples,)
        alpha = (1.0 - level) / 2.0
        low, high = np.quantile(means, [alpha, 1.0 - alpha])
        return {"low": float(low), "high": float(high)}

    return compute


@metric
def frac_ge(thresholds: list[float] | None = None) -> Metric:
    """Fraction of scored neurons with score >= each threshold (default 0.8 and 0.5).

    Args:
        thresholds: Score thresholds; one metric entry each, named by the threshold.
    """
    cuts = [0.8, 0.5] if thresholds is None else list(thresholds)

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        x = finite_values(scores)
        if x.size == 0:
            return {}
        return {f"{t:g}": float(np.mean(x >= t)) for t in cuts}

    return compute


def _status(s: SampleScore) -> str | None:
    meta = s.score.metadata or {}
    status = meta.get("status")
    return status if isinstance(status, str) else None


@metric
def n_failed() -> Metric:
    """Number of samples whose simulation failed (unparseable output, wrong shape)."""

    def compute(scores: list[SampleScore]) -> int:
        return sum(_status(s) == "failed" for s in scores)

    return compute


@metric
def n_unscored() -> Metric:
    """Number of samples with no score for data-side reasons (constant real activations)."""

    def compute(scores: list[SampleScore]) -> int:
        return sum(_status(s) == "unscored" for s in scores)

    return compute


@metric
def n_skipped() -> Metric:
    """Number of samples whose neuron's records cannot fill the split (nothing was run)."""

    def compute(scores: list[SampleScore]) -> int:
        return sum(_status(s) == "skipped" for s in scores)

    return compute


@metric
def n_constant_simulation() -> Metric:
    """Number of samples scored 0 because the simulation was constant on a varying neuron."""

    def compute(scores: list[SampleScore]) -> int:
        return sum((s.score.metadata or {}).get("constant_simulation") is True for s in scores)

    return compute


def sample_layer(s: SampleScore) -> int | None:
    """The neuron's layer: from score metadata, else sample metadata (summary or record)."""
    for meta in (s.score.metadata or {}, s.sample_metadata or {}):
        layer = meta.get("layer")
        if layer is None and isinstance(meta.get("neuron"), dict):
            layer = (meta["neuron"].get("id") or {}).get("layer")
        if isinstance(layer, int) and not isinstance(layer, bool):
            return layer
    return None


@metric
def mean_by_layer() -> Metric:
    """Mean score of the scored neurons of each layer, keyed ``L<layer>`` (``L?`` if unknown)."""

    def compute(scores: list[SampleScore]) -> dict[str, float]:
        groups: dict[str, list[float]] = defaultdict(list)
        for s in scores:
            v = _finite(s.score.value)
            if v is not None:
                layer = sample_layer(s)
                groups["L?" if layer is None else f"L{layer}"].append(v)

        def order(key: str) -> tuple[int, int]:
            return (1, 0) if key == "L?" else (0, int(key[1:]))

        return {k: float(np.mean(groups[k])) for k in sorted(groups, key=order)}

    return compute
