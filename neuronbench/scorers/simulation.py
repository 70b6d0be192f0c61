"""The simulation scorer: predict held-out activations from the explanation, correlate.

Reads the explanation the solver left in ``state.metadata["explanation"]`` and the
neuron's records from the sample metadata (``"neuron"``), simulates the scoring split's
top + random records with the chosen simulator, and scores the simulation with
:func:`neuronbench.scorers.correlation.score_simulation`.

Score value: ``{"top_and_random", "random_only", "top_only"}`` correlations (NaN when
there is no score: inspect's sentinel, skipped by every metric), ``"scored"`` (1.0 / 0.0,
always finite so failures can be counted) and, with ``calibrate=True``, ``"r2"`` and
``"absolute_deviation_explained"``.

Score metadata ``status`` says whose side a missing score is on:

- ``ok``: scored. A simulation that is constant on a neuron whose activations vary scores
  0 and sets ``constant_simulation`` (it explains nothing, and is counted). The empty
  explanation (the ``empty`` control) is simulated like any other: it measures what the
  simulator predicts from the tokens alone.
- ``failed``: the explainer failed (flagged explanation) or the simulation did (no parse,
  wrong shape, non-finite correlation): counts against the row.
- ``unscored``: data side only: the real activations are constant over the scored records.
- ``skipped``: the neuron's records cannot fill the split (sample metadata ``skip``);
  nothing was simulated.

The metadata also keeps what a viewer needs to show the per-token predictions next to
the real activations.
"""

from __future__ import annotations

import math
from typing import Any

from inspect_ai.scorer import Metric, Score, Scorer, Target, mean, scorer, stderr
from inspect_ai.solver import TaskState

from neuronbench.datasets import NeuronRecord, ScoringSet, scoring_records
from neuronbench.scorers._skip import sample_base, skip_reason, skipped_score
from neuronbench.scorers.correlation import GROUPS, SimulationScores, score_simulation, shape_error
from neuronbench.scorers.metrics import (
    bootstrap_ci,
    frac_ge,
    mean_by_layer,
    n_constant_simulation,
    n_failed,
    n_skipped,
    n_unscored,
)
from neuronbench.scorers.simulators.base import Simulation, Simulator

CALIBRATED = ("r2", "absolute_deviation_explained")
"""Value keys present only with ``calibrate=True``."""


def simulation_metrics() -> dict[str, list[Metric]]:
    """Dict-form metrics, one list per value key (inspect's list form would give 0 for dicts)."""

    def headline() -> list[Metric]:
        return [mean(), stderr(), bootstrap_ci(), frac_ge()]

    return {
        "top_and_random": [*headline(), mean_by_layer()],
        "random_only": headline(),
        "top_only": headline(),
        "scored": [mean(), n_failed(), n_unscored(), n_skipped(), n_constant_simulation()],
        # absent keys resolve to nothing, so these appear only for calibrated runs
        "r2": [mean(), stderr()],
        "absolute_deviation_explained": [mean(), stderr()],
    }


def _value(scores: SimulationScores, calibrate: bool) -> dict[str, float]:
    def f(x: float | None) -> float:
        return math.nan if x is None else float(x)

    value = {g: f(getattr(scores, g)) for g in GROUPS}
    value["scored"] = 0.0 if scores.top_and_random is None else 1.0
    if calibrate:
        value.update({k: f(getattr(scores, k)) for k in CALIBRATED})
    return value


def _records_metadata(scoring: ScoringSet, sim: Simulation | None) -> list[dict[str, Any]]:
    preds = sim.predictions if sim is not None and sim.predictions is not None else None
    if preds is not None and shape_error(sim, scoring.all) is not None:  # type: ignore[arg-type]
        preds = None
    out = []
    for i, (group, rec) in enumerate(
        [("top", r) for r in scoring.top] + [("random", r) for r in scoring.random]
    ):
        out.append(
            {
                "group": group,
                "position": rec.position,
                "tokens": list(rec.tokens),
                "activations": [float(a) for a in rec.activations],
                "predictions": None if preds is None else [float(p) for p in preds[i]],
            }
        )
    return out


def _summary(scores: SimulationScores) -> str:
    def f(x: float | None) -> str:
        return "unscored" if x is None else f"{x:.3f}"

    return (
        f"top_and_random={f(scores.top_and_random)} random_only={f(scores.random_only)} "
        f"top_only={f(scores.top_only)}"
    )


@scorer(metrics=simulation_metrics())
def simulation(
    simulator: str = "logprob",
    split: str | None = None,
    n_records: int | None = None,
    calibrate: bool = False,
    model: str | None = None,
    simulator_examples: str = "default",
) -> Scorer:
    """Score an explanation by how well a simulator predicts activations from it alone.

    Args:
        simulator: Simulator kind: ``logprob`` | ``generation`` | ``lexical`` | ``embedding``
            (see ``neuronbench.scorers.registry.SIMULATORS``).
        split: Scoring split (``valid`` for development, ``test`` for leaderboards);
            None = the sample's ``split`` metadata, else ``valid``.
        n_records: Top and random records each to score (None = all in the split).
        calibrate: Also simulate the calibration split, fit a linear map from predictions
            to activations there, and report r² and absolute deviation explained.
        model: Simulator model name; None = the ``simulator`` model role (required for
            model-based simulators, never a silent fallback to the explainer).
        simulator_examples: ``logprob``: few-shot examples, ``default``, ``openai`` (OpenAI's
            original set, from the optional ``neuron-explainer`` package) or a JSON path.
    """
    from neuronbench.scorers.registry import make_simulator, simulator_needs_model

    sim_holder: list[Simulator] = []

    def get_simulator() -> Simulator:
        if not sim_holder:
            m = None
            if simulator_needs_model(simulator):
                from inspect_ai.model import get_model

                m = get_model(model) if model else get_model(role="simulator", required=True)
            sim_holder.append(make_simulator(simulator, m, examples=simulator_examples))
        return sim_holder[0]

    async def score(state: TaskState, target: Target) -> Score:
        meta = state.metadata
        skipped = skip_reason(meta)
        if skipped is not None:  # the neuron cannot fill the split: nothing to simulate
            keys = [*GROUPS, *(CALIBRATED if calibrate else ())]
            meta_skip = {**sample_base(state, "simulation"), "simulator": simulator}
            return skipped_score(keys, skipped, {**meta_skip, "constant_simulation": False})
        if not isinstance(meta.get("neuron"), dict):
            raise ValueError(
                f"sample {state.sample_id}: no 'neuron' record in the sample metadata "
                "(the simulation scorer scores explain_neurons samples)"
            )
        neuron = NeuronRecord.from_dict(meta["neuron"])
        use_split = split or meta.get("split") or "valid"
        scoring = scoring_records(neuron, use_split, n_records)  # type: ignore[arg-type]
        explanation = meta.get("explanation")
        if not isinstance(explanation, str):
            explanation = state.output.completion if state.output else ""
        flags = list(meta.get("explanation_flags") or [])
        sim_impl = get_simulator()
        base: dict[str, Any] = {
            "simulator": sim_impl.name,
            "explanation": explanation,
            "explanation_flags": flags,
            "split": use_split,
            "neuron_id": neuron.id.key,
            "layer": neuron.id.layer,
        }

        sim: Simulation | None = None
        reason: str | None
        code: str | None
        if flags:
            # The explainer failed (empty, refusal, over-long, copied the prompt...): that
            # counts against it as a failure, never as a score of 0 or a silent drop.
            why = f"explanation flagged: {', '.join(flags)}"
            scores = SimulationScores(None, None, None, {g: why for g in GROUPS})
            status, reason, code = "failed", why, "no_response"
        else:
            # An empty explanation (the `empty` control) is simulated too: what the
            # simulator predicts from the tokens alone is the floor explainers must beat.
            sim = await sim_impl.simulate(explanation, [r.tokens for r in scoring.all])
            calibration = None
            if calibrate:
                # dealt first, so calibration has records whenever the scoring split has
                cal_set = scoring_records(neuron, "calibration", n_records)
                cal_sim = await sim_impl.simulate(explanation, [r.tokens for r in cal_set.all])
                calibration = (cal_sim, cal_set)
            scores = score_simulation(sim, scoring, calibration)
            status, reason = scores.outcome()
            code = {"failed": "grader_failed", "unscored": "unscorable"}.get(status)

        metadata = {
            **base,
            "status": status,
            "reason": reason,
            "unscored": dict(scores.unscored),
            "constant_simulation": "top_and_random" in scores.constant_simulation,
            "constant_groups": list(scores.constant_simulation),
            "n_tokens": scores.n_tokens,
            "records": _records_metadata(scoring, sim),
            "raw_output": None if sim is None else sim.raw_output,
            "simulation_details": {} if sim is None else sim.details,
        }
        return Score(
            value=_value(scores, calibrate),
            answer=explanation,
            explanation=reason if reason is not None else _summary(scores),
            reason=code,
            metadata=metadata,
        )

    return score
