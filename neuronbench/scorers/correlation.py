"""Explanation scores: how well simulated activations track real ones.

A stack of tiny pure functions (:func:`correlation_score`, :func:`r2`,
:func:`absolute_deviation_explained`, :func:`fit_linear_calibration`) and one aggregator,
:func:`score_simulation`. A score that cannot be computed (a constant vector, no tokens,
a failed simulation) is ``None`` with a reason, never 0 and never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neuronbench.datasets import ActivationRecord, ScoringSet
from neuronbench.scorers.simulators.base import Simulation

GROUPS = ("top_and_random", "random_only", "top_only")
"""Score names, headline first: the records each one pools (top + random 1:1, random, top)."""


class Unscorable(ValueError):
    """A score is undefined for these vectors; ``reason`` says why (for score metadata)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _pair(
    real: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(real, dtype=np.float64).ravel()
    y = np.asarray(predicted, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{x.size} real activations but {y.size} predictions")
    if x.size == 0:
        raise Unscorable("no tokens to score")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise Unscorable("non-finite real or simulated activations")
    return x, y


def correlation_score(
    real: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> float:
    """Pearson correlation of real vs predicted activations.

    Raises:
        Unscorable: either vector is constant (the correlation is undefined, not 0).
    """
    x, y = _pair(real, predicted)
    if np.ptp(x) == 0:
        raise Unscorable(f"real activations are constant (all {x[0]:g})")
    if np.ptp(y) == 0:
        raise Unscorable(f"simulated activations are constant (all {y[0]:g})")
    xc, yc = x - x.mean(), y - y.mean()
    r = float(np.dot(xc, yc) / np.sqrt(np.dot(xc, xc) * np.dot(yc, yc)))
    return max(-1.0, min(1.0, r))


def r2(real: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    """1 - mean squared error / mean squared real activation.

    The baseline is predicting 0 everywhere (the neuron at rest), as in OpenAI's
    neuron-explainer, not the centred coefficient of determination: a neuron is mostly
    silent, so "always 0" is the natural null simulator.
    """
    x, y = _pair(real, predicted)
    denom = float(np.mean(x**2))
    if denom == 0:
        raise Unscorable("real activations are all 0")
    return 1.0 - float(np.mean((x - y) ** 2)) / denom


def absolute_deviation_explained(
    real: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> float:
    """1 - mean absolute error / mean absolute real activation (baseline: predicting 0)."""
    x, y = _pair(real, predicted)
    denom = float(np.mean(np.abs(x)))
    if denom == 0:
        raise Unscorable("real activations are all 0")
    return 1.0 - float(np.mean(np.abs(x - y))) / denom


def fit_linear_calibration(
    real: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` mapping predictions (0-10 scale) to real activations.

    Correlation is invariant to this map; r² and absolute deviation explained are not,
    which is why they are computed after calibrating on a separate split.
    """
    x, y = _pair(real, predicted)
    if np.ptp(y) == 0:
        raise Unscorable("calibration predictions are constant")
    slope, intercept = np.polyfit(y, x, 1)
    return float(slope), float(intercept)


def shape_error(sim: Simulation, records: Sequence[ActivationRecord]) -> str | None:
    """Why ``sim`` does not fit ``records`` (count, lengths, non-finite values), or None."""
    if sim.predictions is None:
        return sim.error or "simulation failed"
    if len(sim.predictions) != len(records):
        return f"simulator returned {len(sim.predictions)} records of predictions for {len(records)} records"
    for i, (pred, rec) in enumerate(zip(sim.predictions, records, strict=True)):
        if len(pred) != len(rec.tokens):
            return f"record {i}: {len(pred)} predictions for {len(rec.tokens)} tokens"
        if not all(np.isfinite(p) for p in pred):
            return f"record {i}: non-finite prediction"
    return None


@dataclass
class SimulationScores:
    """Correlation scores of one simulation, per record group, with reasons for missing ones."""

    top_and_random: float | None
    """Correlation over top + random records pooled (1:1): the headline score."""
    random_only: float | None
    """Correlation over the random records only (how well the explanation covers typical text)."""
    top_only: float | None
    """Correlation over the top records only (how well it ranks strong activations)."""
    unscored: dict[str, str] = field(default_factory=dict)
    """Reason for each score above (and each calibrated one) that is None, by name."""
    r2: float | None = None
    """r² (baseline: predicting 0) of linearly calibrated predictions on top + random; None if not calibrated."""
    absolute_deviation_explained: float | None = None
    """Absolute deviation explained by calibrated predictions on top + random; None if not calibrated."""
    n_tokens: int = 0
    """Tokens pooled into the headline score."""

    def as_dict(self) -> dict[str, float | None]:
        return {g: getattr(self, g) for g in GROUPS}


def _flat(groups: Sequence[Sequence[Sequence[float]]]) -> np.ndarray:
    return np.asarray([v for group in groups for rec in group for v in rec], dtype=np.float64)


def score_simulation(
    sim: Simulation,
    scoring: ScoringSet,
    calibration: tuple[Simulation, ScoringSet] | None = None,
) -> SimulationScores:
    """Score a simulation of ``scoring.all`` (top records first, then random).

    Each score pools all tokens of all its records into one vector and correlates that:
    it is *not* the mean of per-record correlations (which would be undefined for
    records where the neuron never fires, and would weight a 3-token record like a
    64-token one). ``calibration`` = (simulation, records) of the calibration split:
    a linear map fitted there turns predictions into activations for r² and ADE.
    """
    records = scoring.all
    problem = shape_error(sim, records)
    if problem is not None:
        reason = f"simulation failed: {problem}"
        return SimulationScores(None, None, None, {g: reason for g in GROUPS})
    assert sim.predictions is not None
    n_top = len(scoring.top)
    preds = {"top": sim.predictions[:n_top], "random": sim.predictions[n_top:]}
    reals = {
        "top": [r.activations for r in scoring.top],
        "random": [r.activations for r in scoring.random],
    }
    members = {
        "top_and_random": ("top", "random"),
        "random_only": ("random",),
        "top_only": ("top",),
    }
    values: dict[str, float | None] = {}
    unscored: dict[str, str] = {}
    for name, parts in members.items():
        try:
            values[name] = correlation_score(
                _flat([reals[p] for p in parts]), _flat([preds[p] for p in parts])
            )
        except Unscorable as e:
            values[name], unscored[name] = None, e.reason
    scores = SimulationScores(
        top_and_random=values["top_and_random"],
        random_only=values["random_only"],
        top_only=values["top_only"],
        unscored=unscored,
        n_tokens=sum(len(r.tokens) for r in records),
    )
    if calibration is not None:
        _calibrate(
            scores, calibration, _flat([reals["top"], reals["random"]]), _flat([sim.predictions])
        )
    return scores


def _calibrate(
    scores: SimulationScores,
    calibration: tuple[Simulation, ScoringSet],
    real: np.ndarray,
    predicted: np.ndarray,
) -> None:
    cal_sim, cal_set = calibration
    problem = shape_error(cal_sim, cal_set.all)
    try:
        if problem is not None:
            raise Unscorable(f"calibration simulation failed: {problem}")
        assert cal_sim.predictions is not None
        slope, intercept = fit_linear_calibration(
            _flat([[r.activations for r in cal_set.all]]), _flat([cal_sim.predictions])
        )
    except Unscorable as e:
        scores.unscored["r2"] = scores.unscored["absolute_deviation_explained"] = e.reason
        return
    calibrated = slope * predicted + intercept
    for name, fn in (("r2", r2), ("absolute_deviation_explained", absolute_deviation_explained)):
        try:
            setattr(scores, name, fn(real, calibrated))
        except Unscorable as e:
            scores.unscored[name] = e.reason
