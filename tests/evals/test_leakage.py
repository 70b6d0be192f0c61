"""No record of a scoring split reaches any explainer prompt; controls call no model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neuronbench.datasets import scoring_records
from neuronbench.evals import STRATEGIES
from neuronbench.evals.strategies import NO_MODEL
from tests.evals._helpers import run, unique_neuron

LLM_STRATEGIES = sorted(set(STRATEGIES) - NO_MODEL)


@pytest.mark.parametrize("strategy", LLM_STRATEGIES)
def test_no_scoring_record_in_any_prompt(strategy: str, dataset_dir: Path, tmp_path: Path) -> None:
    """Every token names its record, so a scoring record in a prompt would show up verbatim."""
    extra = {"simulator": "lexical"} if strategy == "best_of_k" else {}
    log = run(dataset_dir, tmp_path, strategy=strategy, split="test", neurons=3, **extra)
    for s in log.samples:
        neuron = unique_neuron(s.metadata["layer"], s.metadata["index"])
        prompt = "\n".join(m.text for m in s.messages)
        words = set(re.findall(r"[rq]\d+x\d+", prompt))  # every token of the neuron, however quoted
        for split in ("calibration", "valid", "test"):
            for r in scoring_records(neuron, split).all:
                assert not words & {t.strip() for t in r.tokens}, (strategy, split, r.position)
        scored = {
            r.position
            for sp in ("calibration", "valid", "test")
            for r in scoring_records(neuron, sp).all
        }
        assert s.metadata["shown_positions"] and not scored & set(s.metadata["shown_positions"])
        assert f"r{s.metadata['shown_positions'][0]}x" in prompt  # a train record is shown


@pytest.mark.parametrize("strategy", sorted(NO_MODEL - {"from_file"}))
def test_controls_make_no_model_call(strategy: str, dataset_dir: Path, tmp_path: Path) -> None:
    log = run(dataset_dir, tmp_path, strategy=strategy)
    assert all(not s.model_usage for s in log.samples)
    texts = {s.id: s.metadata["explanation"] for s in log.samples}
    if strategy == "empty":
        assert set(texts.values()) == {""}
        assert all(s.metadata["explanation_flags"] == [] for s in log.samples)
    if strategy == "shuffled":
        base = run(dataset_dir, tmp_path, strategy="baseline")
        own = {s.id: s.metadata["explanation"] for s in base.samples}
        assert sorted(texts.values()) == sorted(own.values())  # a permutation of the sources
        assert all(texts[k] != own[k] for k in texts)
