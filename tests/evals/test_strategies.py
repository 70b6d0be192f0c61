"""Strategy internals: explanation files, the shuffled derangement, best-of-k selection, context fit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from neuronbench.datasets import DatasetError, NeuronId, train_records
from neuronbench.evals.extraction import extract_explanation
from neuronbench.evals.strategies._base import fit_prompt
from neuronbench.evals.strategies.best_of_k import Candidate, choose, pick_best
from neuronbench.evals.strategies.from_file import explanation_for, load_explanations
from neuronbench.evals.strategies.shuffled import assign, cycle
from neuronbench.evals.strategies.token_activation_pairs import build_messages
from neuronbench.scorers.simulators.base import Simulation
from tests.evals._helpers import unique_neuron, write_dataset

NID = NeuronId("gpt2", 3, 17)


# ---------------------------------------------------------------- from_file


def test_jsonl_json_csv_and_key_forms(tmp_path: Path) -> None:
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text(
        json.dumps(
            {"neuron": NID.key, "explanation": "the main thing this neuron does is find cats."}
        )
        + "\n"
        + json.dumps({"layer": 1, "index": 2, "explanation": "dogs"})
        + "\n"
    )
    table = load_explanations(jsonl)
    assert explanation_for(table, NID).explanation == "cats"
    assert explanation_for(table, NeuronId("gpt2", 1, 2)).explanation == "dogs"
    js = tmp_path / "e.json"
    js.write_text(json.dumps({"gpt2/3/17": "cats", "4/5": {"explanation": "owls"}}))
    table = load_explanations(js)
    assert explanation_for(table, NID).explanation == "cats"
    assert explanation_for(table, NeuronId("x", 4, 5)).explanation == "owls"
    csv = tmp_path / "e.csv"
    csv.write_text('layer,index,explanation\n3,17,"cats, mostly"\n')
    assert explanation_for(load_explanations(csv), NID).explanation == "cats, mostly"


def test_openai_published_explanations(tmp_path: Path) -> None:
    """OpenAI's NeuronSimulationResults, as a JSONL file and as their {layer}/{neuron}.jsonl tree."""
    result = {
        "dataclass_name": "NeuronSimulationResults",
        "neuron_id": {"dataclass_name": "NeuronId", "layer_index": 3, "neuron_index": 17},
        "scored_explanations": [
            {
                "dataclass_name": "ScoredExplanation",
                "explanation": " references to cats",
                "scored_simulation": {"ev_correlation_score": 0.41},
            }
        ],
    }
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "17.jsonl").write_text(json.dumps(result) + "\n")
    assert explanation_for(load_explanations(tmp_path), NID).explanation == "references to cats"
    flat = tmp_path / "all.jsonl"
    flat.write_text(json.dumps(result) + "\n")
    assert explanation_for(load_explanations(flat), NID).explanation == "references to cats"


def test_missing_neuron_is_flagged_not_silently_empty(tmp_path: Path) -> None:
    f = tmp_path / "e.json"
    f.write_text(json.dumps({"0/0": "cats"}))
    out = explanation_for(load_explanations(f), NID)
    assert out.explanation == "" and out.flags == ["missing"]


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_explanations(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"explanation": "no neuron"}\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:1"):
        load_explanations(bad)


# ---------------------------------------------------------------- shuffled


def test_cycle_is_a_deterministic_derangement() -> None:
    keys = [f"n{i}" for i in range(7)]
    ring = cycle(keys, seed=3)
    assert sorted(ring) == keys and ring == cycle(list(reversed(keys)), seed=3)
    assert ring != cycle(keys, seed=4)
    out = assign({k: f"exp {k}" for k in keys}, keys, seed=3)
    assert all(donor != k and text == f"exp {donor}" for k, (donor, text) in out.items())
    assert sorted(d for d, _ in out.values()) == keys  # a permutation: every source used once


def test_shuffled_never_returns_own_text() -> None:
    exps = {"a": 'the tokens "the"', "b": 'the tokens "the"', "c": "cats"}
    out = assign(exps, ["a", "b", "c"], seed=0)
    for k, (_, text) in out.items():
        assert text != exps[k]
    assert assign({"a": "x"}, ["a"], seed=0) == {"a": (None, "")}
    same = assign({"a": "x", "b": "x"}, ["a", "b"], seed=0)
    assert same == {"a": (None, ""), "b": (None, "")}


# ---------------------------------------------------------------- best_of_k


class FakeSimulator:
    """Predicts the true activations with less noise the more 'good' is in the explanation;
    'bad' explanations predict a constant (explains nothing: correlation 0)."""

    name = "fake"

    def __init__(self, truth: Sequence[Sequence[float]]) -> None:
        self.truth = truth

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        if "bad" in explanation:
            return Simulation(predictions=[[1.0] * len(r) for r in records])
        noise = 1.0 / (1 + explanation.count("good"))
        preds = [[a + noise * ((i * 7919) % 13) for i, a in enumerate(t)] for t in self.truth]
        return Simulation(predictions=preds)


def test_best_of_k_keeps_the_best_calibration_score() -> None:
    from neuronbench.datasets import scoring_records

    neuron = unique_neuron()
    scoring = scoring_records(neuron, "calibration")
    sim = FakeSimulator([r.activations for r in scoring.all])
    raws = [" good things.", " good good good things.", " bad things.", "I'm sorry, I cannot."]
    best, candidates, index, note = asyncio.run(choose(raws, neuron, sim))
    assert index == 1 and best.explanation == "good good good things" and note is None
    assert candidates[0].score is not None and candidates[1].score > candidates[0].score
    assert candidates[2].score == 0.0 and candidates[2].reason is None  # constant: scored 0
    assert candidates[0].score > 0.0
    assert candidates[3].flags == ["refusal"] and candidates[3].score is None


def test_best_of_k_without_scores_keeps_first_valid_and_says_so() -> None:
    cands = [
        Candidate("", ["empty"], None, "flagged"),
        Candidate("cats", [], None, "constant"),
    ]
    assert pick_best(cands) == (1, "no candidate could be scored; kept the first valid one")


# ---------------------------------------------------------------- context fit


def test_fit_drops_whole_records_from_the_end_and_says_why() -> None:
    records = train_records(unique_neuron(n_tokens=12), 5)
    full = asyncio.run(fit_prompt(lambda r, k: build_messages(r, []), records, 0, 10_000, None))
    assert full.trimmed["dropped"] == 0 and full.trimmed["reason"] is None
    budget = full.trimmed["prompt_tokens"] - 1
    fitted = asyncio.run(fit_prompt(lambda r, k: build_messages(r, []), records, 0, budget, None))
    assert fitted.records == records[: len(fitted.records)] and len(fitted.records) < 5
    assert (
        fitted.trimmed["dropped"] == 5 - len(fitted.records)
        and "dropped" in fitted.trimmed["reason"]
    )
    assert fitted.trimmed["prompt_tokens"] <= budget
    text = fitted.messages[-1].text
    assert text.count("<start>") == text.count("<end>")  # never cut mid-record
    tiny = asyncio.run(fit_prompt(lambda r, k: build_messages(r, []), records, 0, 10, None))
    assert len(tiny.records) == 1 and "exceeds" in tiny.trimmed["reason"]


def test_extraction_is_used_for_file_explanations() -> None:
    assert extract_explanation("  'cats'. ").explanation == "cats"


def test_zero_shot_prompt_has_no_examples() -> None:
    from neuronbench.evals.strategies._base import load_few_shot
    from neuronbench.evals.strategies.token_activation_pairs import build_messages
    from tests.conftest import make_record

    assert load_few_shot("none") == ()
    messages = build_messages([make_record()], ())
    assert [m.role for m in messages].count("assistant") == 0
    assert "Neuron 1" in messages[-1].text  # the target is the first (and only) neuron


def test_openai_few_shot_names_the_install_when_the_package_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``few_shot=openai`` without OpenAI's package: one line saying how to install it."""
    import sys

    from neuronbench.evals import explain_neurons
    from neuronbench.evals.strategies._base import load_few_shot

    monkeypatch.setitem(sys.modules, "neuron_explainer.explanations.few_shot_examples", None)
    load_few_shot.cache_clear()
    try:
        with pytest.raises(ValueError, match=r'pip install -e "\.\[openai-reference\]"') as e:
            load_few_shot("openai")
        assert "\n" not in str(e.value)
        with pytest.raises(ValueError, match="openai-reference"):
            explain_neurons(
                dataset=str(write_dataset(tmp_path / "ds")), few_shot="openai", scorer=""
            )
    finally:
        load_few_shot.cache_clear()
