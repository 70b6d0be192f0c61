"""Our scores, calibration and 0-10 normalization equal OpenAI's functions on the same inputs.

OpenAI's pipeline is run as it is: a ``NeuronSimulator`` (here one that replays fixed
predictions) wrapped in ``LinearCalibratedNeuronSimulator`` calibrated on the calibration
records, then ``simulate_and_score`` on the scored records. Random data, atol 1e-12.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from neuronbench.datasets import ActivationRecord, ScoringSet
from neuronbench.datasets.normalize import normalize, relu_max
from neuronbench.evals.strategies._base import nonzero_fraction
from neuronbench.scorers.correlation import (
    absolute_deviation_explained,
    correlation_score,
    fit_linear_calibration,
    r2,
    score_simulation,
)
from neuronbench.scorers.simulators.base import Simulation

ATOL = 1e-12
SEEDS = range(8)


def _vectors(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse real activations (mostly at rest, some negative) and noisy predictions of them."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    scale = 10.0 ** rng.uniform(-3, 3)
    real = scale * rng.gamma(0.7, 1.0, n) * (rng.random(n) < 0.3) - scale * 0.05 * rng.random(n)
    pred = np.clip(10 * real / real.max() + rng.normal(0, 2, n), 0, 10)
    return real, pred


@pytest.mark.parametrize("seed", SEEDS)
def test_correlation_r2_and_absolute_deviation_equal_openai(
    seed: int, neuron_explainer: ModuleType
) -> None:
    from neuron_explainer.explanations import scoring

    real, pred = _vectors(seed)
    assert correlation_score(real, pred) == pytest.approx(
        scoring.correlation_score(real, pred), abs=ATOL
    )
    assert r2(real, pred) == pytest.approx(
        scoring.rsquared_score_from_sequences(real, pred), abs=ATOL
    )
    assert absolute_deviation_explained(real, pred) == pytest.approx(
        scoring.absolute_dev_explained_score_from_sequences(real, pred), abs=ATOL
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_calibration_equals_openai(seed: int, neuron_explainer: ModuleType) -> None:
    from neuron_explainer.explanations.calibrated_simulator import LinearCalibratedNeuronSimulator

    real, pred = _vectors(seed)
    slope, intercept = fit_linear_calibration(real, pred)
    theirs = LinearCalibratedNeuronSimulator(None)  # type: ignore[arg-type]
    theirs._calibrate_from_flattened_activations(real, pred)
    probe = np.linspace(-2.0, 12.0, 29)
    np.testing.assert_allclose(
        slope * probe + intercept, theirs.apply_calibration(list(probe)), rtol=0, atol=ATOL
    )


# --------------------------------------------------------------------- whole pipeline


def _records(rng: np.random.Generator, n: int, tag: str, top: bool) -> list[ActivationRecord]:
    out = []
    for k in range(n):
        length = int(rng.integers(5, 40))
        acts = rng.gamma(0.6, 1.0, length) * (rng.random(length) < (0.5 if top else 0.1))
        if top:
            acts[rng.integers(length)] += 3.0
        out.append(
            ActivationRecord(
                tokens=[f" {tag}{k}_{i}" for i in range(length)],
                activations=[float(a) for a in acts - 0.02 * rng.random(length)],
            )
        )
    return out


def _predict(rng: np.random.Generator, records: Sequence[ActivationRecord]) -> list[list[float]]:
    return [
        [
            float(v)
            for v in np.clip(
                2.5 * np.asarray(r.activations) + rng.normal(0, 1.5, len(r.tokens)), 0, 10
            )
        ]
        for r in records
    ]


class Replay:
    """Builds an OpenAI ``NeuronSimulator`` that returns our predictions for each token list."""

    def __init__(self, table: dict[tuple[str, ...], list[float]]) -> None:
        self.table = table

    def simulator(self) -> Any:
        from neuron_explainer.explanations.explanations import ActivationScale, SequenceSimulation
        from neuron_explainer.explanations.simulator import NeuronSimulator

        table = self.table

        class ReplaySimulator(NeuronSimulator):
            async def simulate(self, tokens: Sequence[str]) -> SequenceSimulation:
                expected = table[tuple(tokens)]
                return SequenceSimulation(
                    tokens=list(tokens),
                    expected_activations=list(expected),
                    activation_scale=ActivationScale.SIMULATED_NORMALIZED_ACTIVATIONS,
                    distribution_values=[[v] for v in expected],
                    distribution_probabilities=[[1.0] for _ in expected],
                )

        return ReplaySimulator()


def _theirs(records: Sequence[ActivationRecord]) -> list[Any]:
    from neuron_explainer.activations.activations import ActivationRecord as OpenAIRecord

    return [OpenAIRecord(tokens=list(r.tokens), activations=list(r.activations)) for r in records]


@pytest.mark.parametrize("seed", SEEDS)
def test_scored_simulation_with_calibration_equals_openai(
    seed: int, neuron_explainer: ModuleType
) -> None:
    """Pooled correlations per group, and r² / absolute deviation explained after a linear
    calibration fitted on the calibration records, against OpenAI's simulate_and_score."""
    from neuron_explainer.explanations.calibrated_simulator import LinearCalibratedNeuronSimulator
    from neuron_explainer.explanations.scoring import simulate_and_score

    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 6))
    scored = ScoringSet(top=_records(rng, n, "t", True), random=_records(rng, n, "r", False))
    cal = ScoringSet(top=_records(rng, n, "ct", True), random=_records(rng, n, "cr", False))
    sim, cal_sim = _predict(rng, scored.all), _predict(rng, cal.all)
    ours = score_simulation(
        Simulation(predictions=sim), scored, (Simulation(predictions=cal_sim), cal)
    )

    replay = Replay(
        {tuple(r.tokens): p for r, p in zip([*scored.all, *cal.all], [*sim, *cal_sim], strict=True)}
    ).simulator()

    async def openai_scores() -> dict[str, Any]:
        calibrated = LinearCalibratedNeuronSimulator(replay)
        await calibrated.calibrate(_theirs(cal.all))
        return {
            "top_and_random": await simulate_and_score(replay, _theirs(scored.all)),
            "top_only": await simulate_and_score(replay, _theirs(scored.top)),
            "random_only": await simulate_and_score(replay, _theirs(scored.random)),
            "calibrated": await simulate_and_score(calibrated, _theirs(scored.all)),
        }

    theirs = asyncio.run(openai_scores())
    for group in ("top_and_random", "top_only", "random_only"):
        assert getattr(ours, group) == pytest.approx(
            theirs[group].ev_correlation_score, abs=ATOL
        ), group
    assert ours.r2 == pytest.approx(theirs["calibrated"].rsquared_score, abs=ATOL)
    assert ours.absolute_deviation_explained == pytest.approx(
        theirs["calibrated"].absolute_dev_explained_score, abs=ATOL
    )


# --------------------------------------------------------------------- normalization


@pytest.mark.parametrize("seed", SEEDS)
def test_normalization_equals_openai(seed: int, neuron_explainer: ModuleType) -> None:
    from neuron_explainer.activations import activation_records as oa

    rng = np.random.default_rng(200 + seed)
    records = [
        ActivationRecord(
            tokens=[f"x{i}" for i in range(m)],
            activations=[float(a) for a in rng.normal(0.2, 1.0, m) * 10.0 ** rng.uniform(-3, 3)],
        )
        for m in rng.integers(1, 50, size=4)
    ]
    theirs = _theirs(records)
    top = relu_max(records)
    assert top == oa.calculate_max_activation(theirs)
    for max_activation in (top, top / 3, top * 7.0, 0.0, -1.0):
        for r in records:
            assert normalize(r.activations, max_activation) == oa.normalize_activations(
                r.activations, max_activation
            )
    assert nonzero_fraction(records, top) == pytest.approx(
        oa.non_zero_activation_proportion(theirs, top), abs=ATOL
    )


def test_normalization_boundaries_equal_openai(neuron_explainer: ModuleType) -> None:
    """Values on the bucket edges (exact tenths of the max, the max itself, just under)."""
    from neuron_explainer.activations.activation_records import normalize_activations

    top = 0.3  # not exactly representable: floor(10 * a / top) is where rounding bites
    values = [k * top / 10 for k in range(11)] + [np.nextafter(top, 0.0), top * 1.0000001, -0.0]
    assert normalize(values, top) == normalize_activations(values, top)
