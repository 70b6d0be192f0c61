"""Explanation scores: how well simulated activations track real ones.

A stack of tiny pure functions (:func:`correlation_score`, :func:`r2`,
:func:`absolute_deviation_explained`, :func:`fit_linear_calibration`) and one aggregator,
:func:`score_simulation`.

What is a score and what is not, in one place:

- *Data side, unscored* (``None`` with a reason, :class:`Unscorable`): the neuron's real
  activations are constant over the records (the correlation is undefined whatever the
  explanation), or there are no tokens. No simulator could do better, so such a neuron is
  no one's fault and is left out of every mean.
- *Constant simulation, scored 0*: a simulator that predicts the same value on every token
  of a neuron whose real activations vary explains none of the variation, so its
  correlation is 0 (not undefined; OpenAI's ``np.corrcoef`` would give NaN). It is counted
  (``SimulationScores.constant_simulation``) so a leaderboard shows how often it happens.
- *Failure* (``SimulationScores.failure``): the simulation is missing or misshapen, or the
  correlation came out non-finite (:class:`NonFiniteScore`). Never clamped, never 0.

r² and absolute deviation explained follow the same rule through the calibration: a
constant calibration simulation is fitted with slope 0 (the least-squares fit, and what
OpenAI's ``LinearRegression`` calibration gives), so its calibrated predictions are the
calibration split's mean activation everywhere: no credit for explaining variation. Both
keep OpenAI's baseline of predicting 0, so that constant can still score above 0 on
them; they are unscored only when the real activations are all 0 (data side).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neuronbench.datasets import ActivationRecord, ScoringSet
from neuronbench.scorers.simulators.base import Simulation

GROUPS = ("top_and_random", "random_only", "top_only")
"""Score names, headline first: the records each one pools (top + random 1:1, random, top)."""


class Unscorable(ValueError):
    """A score is undefined for these vectors (data side); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NonFiniteScore(ArithmeticError):
    """A correlation came out NaN, infinite or beyond ±1 from finite inputs (a numeric fault)."""


OVERSHOOT = 1e-9
"""How far floating-point rounding may push a correlation past ±1 before it is an error."""


def checked_correlation(r: float) -> float:
    """``r`` with rounding overshoot (|r| ≤ 1 + :data:`OVERSHOOT`) clamped into [-1, 1].

    Anything else is a fault, not a score: clamping NaN or a real overshoot would turn
    a numeric failure into a perfect (or perfectly wrong) explanation.

    Raises:
        NonFiniteScore: ``r`` is NaN, infinite, or further than the overshoot past ±1.
    """
    if not math.isfinite(r) or abs(r) > 1.0 + OVERSHOOT:
        raise NonFiniteScore(f"correlation is {r!r}, not a finite value in [-1, 1]")
    return max(-1.0, min(1.0, r))


def _pair(
    real: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(real, dtype=np.float64).ravel()
    y = np.asarray(predicted, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"{x.size} real activations but {y.size} predictions")
    if x.size == 0:
        raise Unscorable("no tokens to score")
    if not np.isfinite(x).all():
        raise Unscorable("non-finite real activations")
    if not np.isfinite(y).all():
        raise NonFiniteScore("non-finite simulated activations")
    return x, y


def correlation_score(
    real: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> float:
    """Pearson correlation of real vs predicted activations; 0 for a constant prediction.

    Both vectors are centred and scaled by their largest deviation before the dot
    products, so finite inputs of any magnitude (1e200, 1e-300) neither overflow nor
    underflow.

    Raises:
        Unscorable: the real activations are constant (undefined whatever is predicted),
            or there are no tokens.
        NonFiniteScore: the correlation is not finite (see :func:`checked_correlation`).
    """
    x, y = _pair(real, predicted)
    if is_constant(x):
        raise Unscorable(f"real activations are constant (all {x[0]:g})")
    if is_constant(y):
        return 0.0
    with np.errstate(all="ignore"):  # overflow shows as a non-finite r, checked below
        xc, yc = x - x.mean(), y - y.mean()
        xc, yc = xc / np.abs(xc).max(), yc / np.abs(yc).max()
        r = float(np.dot(xc, yc) / np.sqrt(np.dot(xc, xc) * np.dot(yc, yc)))
    return checked_correlation(r)


def is_constant(values: Sequence[float] | np.ndarray) -> bool:
    """True when every value is equal (a simulation that predicts nothing token by token)."""
    v = np.asarray(values, dtype=np.float64)
    return v.size > 0 and bool(np.all(v == v.flat[0]))


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
    return _finite("r2", 1.0 - float(np.mean((x - y) ** 2)) / denom)


def absolute_deviation_explained(
    real: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> float:
    """1 - mean absolute error / mean absolute real activation (baseline: predicting 0)."""
    x, y = _pair(real, predicted)
    denom = float(np.mean(np.abs(x)))
    if denom == 0:
        raise Unscorable("real activations are all 0")
    return _finite("absolute deviation explained", 1.0 - float(np.mean(np.abs(x - y))) / denom)


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise NonFiniteScore(f"{name} is {value!r}, not finite")
    return value


def fit_linear_calibration(
    real: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` mapping predictions (0-10 scale) to real activations.

    Correlation is invariant to this map; r² and absolute deviation explained are not,
    which is why they are computed after calibrating on a separate split. Constant
    predictions get slope 0 and the mean real activation as intercept (as sklearn's
    ``LinearRegression`` in OpenAI's calibrated simulator does).
    """
    x, y = _pair(real, predicted)
    if np.ptp(y) == 0:
        # constant predictions carry no information: the least-squares fit is the mean
        return 0.0, float(x.mean())
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
    failure: str | None = None
    """Why the simulation could not be scored at all (missing or misshapen predictions, a
    non-finite headline correlation); None when the headline is a score or data-side unscored."""
    constant_simulation: list[str] = field(default_factory=list)
    """Groups (of :data:`GROUPS`) whose predictions were constant while the real activations
    varied: scored 0, and listed so they can be counted."""
    r2: float | None = None
    """r² (baseline: predicting 0) of linearly calibrated predictions on top + random; None if not calibrated."""
    absolute_deviation_explained: float | None = None
    """Absolute deviation explained by calibrated predictions on top + random; None if not calibrated."""
    n_tokens: int = 0
    """Tokens pooled into the headline score."""

    def as_dict(self) -> dict[str, float | None]:
        return {g: getattr(self, g) for g in GROUPS}

    def outcome(self) -> tuple[str, str | None]:
        """``(status, reason)`` of the headline: ``failed``, ``unscored`` or ``ok``.

        One rule for every consumer (the inspect scorer, ``neuronbench score``), so a
        failure is never reported as unscored in one place and failed in another.
        """
        if self.failure is not None:
            return "failed", self.failure
        if self.top_and_random is None:
            return "unscored", self.unscored.get("top_and_random", "no score")
        return "ok", None


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
        return SimulationScores(None, None, None, {g: reason for g in GROUPS}, failure=problem)
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
    constant: list[str] = []
    failure: str | None = None
    for name, parts in members.items():
        real, predicted = _flat([reals[p] for p in parts]), _flat([preds[p] for p in parts])
        try:
            values[name] = correlation_score(real, predicted)
        except Unscorable as e:
            values[name], unscored[name] = None, e.reason
            continue
        except NonFiniteScore as e:
            values[name], unscored[name] = None, str(e)
            if name == "top_and_random":
                failure = str(e)
            continue
        if is_constant(predicted):
            constant.append(name)
    scores = SimulationScores(
        top_and_random=values["top_and_random"],
        random_only=values["random_only"],
        top_only=values["top_only"],
        unscored=unscored,
        failure=failure,
        constant_simulation=constant,
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
    except (Unscorable, NonFiniteScore) as e:
        scores.unscored["r2"] = scores.unscored["absolute_deviation_explained"] = str(e)
        return
    calibrated = slope * predicted + intercept
    for name, fn in (("r2", r2), ("absolute_deviation_explained", absolute_deviation_explained)):
        try:
            setattr(scores, name, fn(real, calibrated))
        except Unscorable as e:
            scores.unscored[name] = e.reason
        except NonFiniteScore as e:
            scores.unscored[name] = str(e)
