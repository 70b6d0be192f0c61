"""explain_neurons end to end, offline: mockllm explainer, tiny datasets, real inspect logs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import eval
from inspect_ai.model import get_model

from neuronbench.datasets import DatasetCard, NeuronDataset
from neuronbench.evals import STRATEGIES, explain_neurons, select_neurons
from neuronbench.evals.strategies import NO_MODEL
from tests.conftest import make_neuron
from tests.evals._helpers import mock_output, run, unique_neuron

LLM_STRATEGIES = sorted(set(STRATEGIES) - NO_MODEL)


def test_end_to_end_explanations_in_the_log(dataset_dir: Path, tmp_path: Path) -> None:
    log = run(dataset_dir, tmp_path, neurons=2)
    ds = NeuronDataset.load(dataset_dir)
    assert log.eval.metadata["content_hash"] == ds.card.content_hash
    assert log.eval.metadata["dataset"]["subject"] == "test-subject"
    assert log.eval.metadata["strategy"] == "token_activation_pairs"
    assert log.eval.task_args["neurons"] == 2
    assert [s.id for s in log.samples] == [n.id.key for n in list(ds)[:2]]
    for s in log.samples:
        assert s.metadata["explanation"] == "capitalised names of places"
        assert s.metadata["explanation_flags"] == []
        assert s.output.completion == "capitalised names of places"
        assert s.metadata["layer"] == 0 and s.metadata["split"] == "valid"
        assert "quantile" not in s.metadata["neuron"] and s.metadata["neuron"]["top"]
        assert s.metadata["prompt_trimmed"]["dropped"] == 0


def test_from_file_scores_external_explanations(dataset_dir: Path, tmp_path: Path) -> None:
    f = tmp_path / "human.jsonl"
    f.write_text(json.dumps({"neuron": "0/1", "explanation": "Explanation: tok words."}) + "\n")
    log = run(
        dataset_dir, tmp_path, strategy="from_file", explanation_file=str(f), neurons="0/1,1/2"
    )
    by_id = {s.id: s.metadata for s in log.samples}
    assert by_id["test-subject-L0-N1"]["explanation"] == "tok words"
    assert by_id["test-subject-L1-N2"]["explanation_flags"] == ["missing"]


def test_chain_of_thought_and_refusals_are_flagged(dataset_dir: Path, tmp_path: Path) -> None:
    cot = run(
        dataset_dir,
        tmp_path,
        ["Thinking.\nEXPLANATION: place names."] * 6,
        strategy="chain_of_thought",
    )
    assert {s.metadata["explanation"] for s in cot.samples} == {"place names"}
    refused = run(dataset_dir, tmp_path, ["I'm sorry, I can't help."] * 6, neurons=1)
    assert refused.samples[0].metadata["explanation_flags"] == ["refusal"]


def test_best_of_k_records_candidates(dataset_dir: Path, tmp_path: Path) -> None:
    outs = [" tok words.", "I cannot.", " r words and numbers."] * 2
    log = run(
        dataset_dir, tmp_path, outs, strategy="best_of_k", k=3, simulator="lexical", neurons=2
    )
    for s in log.samples:
        cands = s.metadata["candidates"]
        assert len(cands) == 3 and s.metadata["selection_split"] == "calibration"
        assert any(c["flags"] == ["refusal"] for c in cands)
        scores = [c["score"] for c in cands if c["score"] is not None]
        # the refusal is never scored; the two real candidates are (a constant lexical
        # simulation scores 0, not None), and the chosen one has the best calibration score
        assert len(scores) == 2
        assert cands[s.metadata["best_index"]]["score"] == max(scores)
        assert cands[s.metadata["best_index"]]["flags"] != ["refusal"]


def test_best_of_k_llm_simulator_needs_the_role(dataset_dir: Path, tmp_path: Path) -> None:
    model = get_model("mockllm/model", custom_outputs=[mock_output("x")] * 4)
    (log,) = eval(
        explain_neurons(
            dataset=str(dataset_dir),
            strategy="best_of_k",
            simulator="logprob",
            scorer="",
            neurons=1,
            simulator_model="none",
        ),
        model=model,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "error" and "--model-role simulator" in str(log.error)


def test_llm_simulator_defaults_explicitly_to_the_offline_model(dataset_dir: Path) -> None:
    task = explain_neurons(dataset=str(dataset_dir), simulator="logprob", neurons=1)
    assert task.model_roles is not None
    assert str(task.model_roles["simulator"]) == "neuronbench/smollm2"
    lexical = explain_neurons(dataset=str(dataset_dir), simulator="lexical", neurons=1)
    assert not lexical.model_roles  # no model needed, none bound


def test_scored_with_lexical_simulator(dataset_dir: Path, tmp_path: Path) -> None:
    log = run(dataset_dir, tmp_path, strategy="baseline", scorer="simulation", simulator="lexical")
    for s in log.samples:
        (score,) = s.scores.values()
        assert score.metadata["explanation"] == s.metadata["explanation"]
        assert set(score.value) >= {"top_and_random", "random_only", "top_only"}


def test_neuron_selection(dataset_dir: Path) -> None:
    ds = NeuronDataset.load(dataset_dir)
    assert len(select_neurons(ds, None)) == 6
    assert [n.id.key for n in select_neurons(ds, 2)] == [n.id.key for n in list(ds)[:2]]
    strat = select_neurons(ds, "stratified:4", seed=1)
    assert [n.id.layer for n in strat] == [0, 0, 1, 1]
    assert strat == select_neurons(ds, "stratified:4", seed=1)
    keys = select_neurons(ds, "test-subject-L1-N2, 0/1,test-subject/1/0")
    assert [n.id.key for n in keys] == [
        "test-subject-L0-N1",
        "test-subject-L1-N0",
        "test-subject-L1-N2",
    ]
    with pytest.raises(Exception, match="not in dataset"):
        select_neurons(ds, "9/9")


def test_clear_errors(dataset_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token_activation_pairs, highlighted"):
        explain_neurons(dataset=str(dataset_dir), strategy="nope", scorer="")
    monkeypatch.delenv("NEURONBENCH_DATASET", raising=False)
    monkeypatch.chdir(tmp_path)  # no default recording (results/dataset) here
    with pytest.raises(ValueError, match="NEURONBENCH_DATASET"):
        explain_neurons(scorer="")
    with pytest.raises(ValueError, match="explanation_file"):
        explain_neurons(dataset=str(dataset_dir), strategy="from_file", scorer="")
    with pytest.raises(ValueError, match="split"):
        explain_neurons(dataset=str(dataset_dir), split="train", scorer="")


def test_listing_does_not_import_torch() -> None:
    code = (
        "import sys, neuronbench.evals, neuronbench.evals.task;"
        "from neuronbench.evals.strategies import STRATEGIES;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_calibrate_adds_r2_and_ade(dataset_dir: Path, tmp_path: Path) -> None:
    log = run(
        dataset_dir,
        tmp_path,
        strategy="baseline",
        scorer="simulation",
        simulator="lexical",
        calibrate=True,
    )
    assert log.eval.task_args["calibrate"] is True
    for s in log.samples:
        (score,) = s.scores.values()
        assert {"r2", "absolute_deviation_explained"} <= set(score.value)


@pytest.fixture
def small_neurons_dir(tmp_path: Path) -> Path:
    """One full neuron, one with no random records, one with only 2 top records (train and
    calibration get one each; valid gets none), as small hand-written files have."""
    ds = NeuronDataset(card=DatasetCard(subject="test-subject", corpus="unit"))
    no_random = make_neuron(layer=0, index=1, n_random=0, n_tokens_per_record=12, seed=1)
    two_top = make_neuron(layer=1, index=0, n_top=2, n_tokens_per_record=12, seed=2)
    ds.add([unique_neuron(0, 0), no_random, two_top])
    return ds.save(tmp_path / "small")


@pytest.mark.parametrize(
    "strategy", ["token_activation_pairs", "best_of_k", "baseline", "shuffled"]
)
def test_neurons_too_small_for_the_split_are_skipped_not_fatal(
    small_neurons_dir: Path, tmp_path: Path, strategy: str
) -> None:
    log = run(
        small_neurons_dir,
        tmp_path,
        [" words."] * 8,
        strategy=strategy,
        simulator="lexical",
        scorer="simulation",
        k=2,
    )
    by_id = {str(s.id): s for s in log.samples}
    assert sorted(by_id) == ["test-subject-L0-N0", "test-subject-L0-N1", "test-subject-L1-N0"]
    full = by_id["test-subject-L0-N0"]
    assert "skip" not in full.metadata and not full.metadata.get("skipped")
    assert full.scores and full.scores["simulation"].metadata["status"] != "skipped"
    reasons = {
        "test-subject-L0-N1": ("neuron test-subject/0/1", "'valid'", "0 random"),
        "test-subject-L1-N0": ("neuron test-subject/1/0", "'valid'", "0 top"),
    }
    for key, words in reasons.items():
        s = by_id[key]
        assert all(w in s.metadata["skip"] for w in words), s.metadata["skip"]
        assert "\n" not in s.metadata["skip"]
        assert s.metadata["skipped"] is True and s.metadata["strategy"] == strategy
        assert s.output.completion == "" and s.metadata["explanation"] == ""
        assert s.metadata["explanation_flags"] == []  # not an explainer failure
        assert not s.model_usage  # no explainer (or simulator) call for a skipped neuron
        assert "candidates" not in s.metadata and "shuffled_from" not in s.metadata
        score = s.scores["simulation"]
        assert score.metadata["status"] == "skipped"
        assert s.metadata["skip"] in (score.explanation or "") + str(score.metadata)
    if strategy in ("token_activation_pairs", "best_of_k"):
        assert full.model_usage  # the usable neuron did reach the explainer
    if strategy == "shuffled":  # the only usable neuron has no donor among usable neurons
        assert full.metadata["explanation_flags"] == ["no_donor"]
