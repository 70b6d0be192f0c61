"""The simulation @scorer end to end: a tiny inspect eval with a scripted explanation solver."""

from __future__ import annotations

import math

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import get_model
from inspect_ai.solver import Generate, TaskState, solver

from neuronbench.datasets import ActivationRecord, scoring_records
from neuronbench.scorers import Simulation, build_scorers, score_simulation, simulation
from neuronbench.scorers.simulators.lexical import LexicalSimulator
from tests.scorers.conftest import planted_neuron, scripted_answer


@solver
def fixed_explanation():
    """Leaves the sample's scripted explanation where the real solvers leave theirs."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        text = state.metadata["scripted"]
        state.metadata["explanation"] = text
        # The `empty` control carries no flag; an explainer failure carries its flags.
        state.metadata["explanation_flags"] = list(state.metadata.get("scripted_flags", []))
        return state

    return solve


def _sample(
    explanation: str, flags: tuple[str, ...] = (), skip: str | None = None, **neuron_kw
) -> Sample:
    neuron = planted_neuron(**neuron_kw)
    extra = {} if skip is None else {"skip": skip}
    return Sample(
        id=neuron.id.key,
        input="explain",
        metadata={
            "neuron": neuron.to_dict(),
            **neuron.summary(),
            "split": "valid",
            "scripted": explanation,
            "scripted_flags": list(flags),
            **extra,
        },
    )


def _flat_records(first: int, n: int) -> list[ActivationRecord]:
    """Records on which the neuron never varies (activation 1.0 on every token)."""
    return [
        ActivationRecord(tokens=[" a", " London", " b"], activations=[1.0] * 3, position=first + i)
        for i in range(n)
    ]


SKIP = "valid split needs >=1 top and >=1 random record; neuron has 8 top and 0 random records"


def _run(tmp_path, samples, scorer, **kw):
    task = Task(dataset=samples, solver=fixed_explanation(), scorer=scorer)
    [log] = eval(task, model="mockllm/model", log_dir=str(tmp_path), display="none", **kw)
    assert log.status == "success", log.error
    return log


def _metrics(log):
    """Metric values by score key, then metric key without the install-dependent prefix."""
    return {
        s.name: {k.split("/")[-1]: m.value for k, m in s.metrics.items()}
        for s in log.results.scores
    }


def test_lexical_scorer_values_metadata_and_metrics(tmp_path):
    samples = [
        _sample("mentions of London", layer=0, index=0, seed=0),
        _sample("mentions of London", layer=1, index=1, seed=1),
        _sample("rivers", layer=1, index=2, seed=2),
        _sample("", layer=1, index=3, seed=3),  # the empty control
        _sample("the token", layer=2, index=4, seed=4),  # names nothing: constant prediction
        _sample("mentions of London", ("copied_from_prompt",), layer=2, index=5, seed=5),
        # data side: real activations constant over the scored records
        _sample(
            "mentions of London",
            layer=3,
            index=6,
            top=_flat_records(0, 8),
            random=_flat_records(1000, 6),
        ),
        # too few records to fill the split: skipped, and scoring it would raise
        _sample("mentions of London", skip=SKIP, layer=3, index=7, random=[]),
    ]
    log = _run(tmp_path, samples, simulation(simulator="lexical"))
    scores = {s.id: s.scores["simulation"] for s in log.samples}

    # the value is exactly score_simulation of the lexical simulation on the valid split
    neuron = planted_neuron(layer=0, index=0, seed=0)
    scoring = scoring_records(neuron, "valid")
    import asyncio

    sim = asyncio.run(
        LexicalSimulator().simulate("mentions of London", [r.tokens for r in scoring.all])
    )
    expected = score_simulation(sim, scoring)
    first = scores[neuron.id.key]
    assert first.value["top_and_random"] == pytest.approx(expected.top_and_random)
    assert first.value["random_only"] == pytest.approx(expected.random_only)
    assert first.value["top_only"] == pytest.approx(expected.top_only)
    assert first.value["scored"] == 1.0
    meta = first.metadata
    assert meta["status"] == "ok" and meta["reason"] is None
    assert meta["simulator"] == "lexical" and meta["explanation"] == "mentions of London"
    assert [r["group"] for r in meta["records"]] == ["top"] * 2 + ["random"] * 2
    rec = meta["records"][0]
    assert rec["tokens"] == scoring.top[0].tokens
    assert rec["activations"] == scoring.top[0].activations
    assert rec["predictions"] == sim.predictions[0]
    assert rec["position"] == scoring.top[0].position

    # the empty control is simulated too; lexically it predicts 0 everywhere: explains nothing
    empty = scores["test-subject-L1-N3"]
    assert empty.metadata["status"] == "ok" and empty.metadata["constant_simulation"] is True
    assert empty.value == {
        "top_and_random": 0.0,
        "random_only": 0.0,
        "top_only": 0.0,
        "scored": 1.0,
    }
    assert empty.metadata["records"][0]["predictions"] == [0.0] * 16

    constant = scores["test-subject-L2-N4"]  # a constant simulation of a varying neuron: 0
    assert constant.metadata["status"] == "ok" and constant.metadata["reason"] is None
    assert constant.metadata["constant_simulation"] is True
    assert constant.metadata["constant_groups"] == ["top_and_random", "random_only", "top_only"]
    assert constant.value["top_and_random"] == 0.0 and constant.value["scored"] == 1.0
    assert first.metadata["constant_simulation"] is False

    flat = scores["test-subject-L3-N6"]  # the neuron never varies: unscored, whatever is said
    assert flat.metadata["status"] == "unscored"
    assert flat.metadata["reason"].startswith("real activations are constant")
    assert math.isnan(flat.value["top_and_random"]) and flat.value["scored"] == 0.0

    skipped = scores["test-subject-L3-N7"]
    assert skipped.metadata["status"] == "skipped" and skipped.metadata["reason"] == SKIP
    assert skipped.metadata["neuron_id"] == "test-subject-L3-N7"
    assert all(math.isnan(skipped.value[k]) for k in ("top_and_random", "random_only", "top_only"))
    assert skipped.value["scored"] == 0.0 and skipped.reason == "skipped"

    flagged = scores["test-subject-L2-N5"]  # an explainer failure: failed, not 0, not dropped
    assert flagged.metadata["status"] == "failed"
    assert "copied_from_prompt" in flagged.metadata["reason"]
    assert math.isnan(flagged.value["top_and_random"]) and flagged.value["scored"] == 0.0

    m = _metrics(log)
    scored = [scores[k].value["top_and_random"] for k in scores if scores[k].value["scored"]]
    assert len(scored) == 5 and scored.count(0.0) == 2
    assert m["top_and_random"]["mean"] == pytest.approx(sum(scored) / 5)
    low, high = (m["top_and_random"][f"bootstrap_ci_{k}"] for k in ("low", "high"))
    assert low <= m["top_and_random"]["mean"] <= high
    assert m["top_and_random"]["frac_ge_0.8"] == pytest.approx(sum(v >= 0.8 for v in scored) / 5)
    by_layer = {k: v for k, v in m["top_and_random"].items() if "mean_by_layer" in k}
    assert set(by_layer) == {"mean_by_layer_L0", "mean_by_layer_L1", "mean_by_layer_L2"}
    assert by_layer["mean_by_layer_L0"] == pytest.approx(first.value["top_and_random"])
    assert by_layer["mean_by_layer_L2"] == 0.0
    assert m["scored"]["n_unscored"] == 1
    assert m["scored"]["n_failed"] == 1
    assert m["scored"]["n_skipped"] == 1
    assert m["scored"]["n_constant_simulation"] == 2
    assert m["scored"]["mean"] == pytest.approx(5 / 8)


def test_generation_scorer_flags_malformed_output_and_reuses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path / "cache"))
    answer = scripted_answer(lambda tok: 9 if "London" in tok else 0)

    def fn(input, tools, tool_choice, config):
        out = answer(input, tools, tool_choice, config)
        if "Neuron explanation: garbled" in input[-1].text:
            out.choices[0].message.content = "lol no"
            out.completion = "lol no"
        return out

    simulator = get_model("mockllm/model", custom_outputs=fn, memoize=False)
    samples = [_sample("London", index=0, seed=0), _sample("garbled", index=1, seed=1)]
    scorer = build_scorers(["simulation"], simulator="generation", split="valid", n_records=1)
    log = _run(tmp_path / "a", samples, scorer, model_roles={"simulator": simulator})
    scores = {s.id: s.scores["simulation"] for s in log.samples}
    ok, bad = scores["test-subject-L0-N0"], scores["test-subject-L0-N1"]
    assert ok.metadata["status"] == "ok" and ok.value["top_and_random"] > 0.9
    assert bad.metadata["status"] == "failed"
    assert "expected 16 token<TAB>value lines, found 0" in bad.metadata["reason"]
    assert "lol no" in bad.metadata["raw_output"]
    assert math.isnan(bad.value["top_and_random"]) and bad.value["scored"] == 0.0
    assert _metrics(log)["scored"]["n_failed"] == 1
    calls = answer.calls
    assert calls == 4  # 2 neurons x (1 top + 1 random record)

    # a rerun (new eval, same explanations) is served from inspect's cache
    log2 = _run(tmp_path / "b", samples, scorer, model_roles={"simulator": simulator})
    assert answer.calls == calls
    again = {s.id: s.scores["simulation"].value for s in log2.samples}
    assert again["test-subject-L0-N0"] == ok.value


def test_model_simulator_requires_the_simulator_role(tmp_path):
    task = Task(
        dataset=[_sample("London")], solver=fixed_explanation(), scorer=simulation("generation")
    )
    [log] = eval(task, model="mockllm/model", log_dir=str(tmp_path), display="none")
    assert log.status == "error"
    assert "simulator" in str(log.error)


def test_calibrated_scorer_reports_r2_and_ade(tmp_path):
    log = _run(tmp_path, [_sample("London")], simulation(simulator="lexical", calibrate=True))
    [sample] = log.samples
    value = sample.scores["simulation"].value
    assert set(value) == {
        "top_and_random",
        "random_only",
        "top_only",
        "scored",
        "r2",
        "absolute_deviation_explained",
    }
    assert 0.5 < value["r2"] <= 1.0 and 0.0 < value["absolute_deviation_explained"] <= 1.0
    assert _metrics(log)["r2"]["mean"] == pytest.approx(value["r2"])


def test_build_scorers_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown scorer"):
        build_scorers(["nope"], simulator="lexical")
    with pytest.raises(ValueError, match="unknown simulator"):
        build_scorers(["simulation"], simulator="nope")
    assert len(build_scorers("simulation", simulator="lexical")) == 1


def test_simulation_value_never_zero_for_failure():
    # the contract the scorer relies on: a failed simulation has no score at all
    scoring = scoring_records(planted_neuron(), "valid")
    scores = score_simulation(Simulation(None, error="x"), scoring)
    assert scores.as_dict() == {"top_and_random": None, "random_only": None, "top_only": None}
