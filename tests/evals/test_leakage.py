"""No record of a scoring split reaches any explainer prompt; controls call no model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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


def test_recorded_neurons_never_score_a_record_the_explainer_saw(tmp_path: Path) -> None:
    """Record a tiny random-init model over so few records that one random sample shared by
    all neurons would have to hold some neuron's train record: per neuron, no scored record
    is a train record, and through the task no scored record reaches the explainer."""
    import dataclasses

    from neuronbench.datasets import NeuronDataset, train_records
    from neuronbench.datasets.splits import SCORING_SPLITS
    from neuronbench.subjects import tiny_subject
    from neuronbench.subjects.recorder import record

    n_records = 40
    recorded = record(tiny_subject("llama", n_layers=2, d_mlp=24), "tiny", [0, 1],
                      n_tokens=n_records * 8, record_length=8, top_k=8, n_random=6,
                      n_quantiles=2, per_quantile=2, boundary_records=10, progress=False,
                      checkpoint_every=None)  # fmt: skip
    assert isinstance(recorded, NeuronDataset)
    neurons = list(recorded)
    train = {n.id.key: {r.position for r in train_records(n)} for n in neurons}
    # Fewer than 6 records are nobody's train record: any shared 6-record sample collides.
    assert len(set().union(*train.values())) > n_records - 6
    for n in neurons:
        top, rand = {r.position for r in n.top}, {r.position for r in n.random}
        quant = {r.position for q in n.quantile for r in q}
        assert len(rand) == 6 and not top & rand and not (top | rand) & quant, n.id
        for split in SCORING_SPLITS:
            scored = {r.position for r in scoring_records(n, split).all}
            assert scored and not scored & train[n.id.key], (n.id, split)
    assert len({tuple(sorted(r.position for r in n.random)) for n in neurons}) > 1

    def named(r: Any) -> Any:  # every token names its record, as in unique_neuron
        return dataclasses.replace(r, tokens=[f" r{r.position}x{i}" for i in range(len(r.tokens))])

    unique = NeuronDataset(card=recorded.card)
    unique.add(
        dataclasses.replace(n, top=[named(r) for r in n.top], random=[named(r) for r in n.random],
                            quantile=[[named(r) for r in q] for q in n.quantile])
        for n in neurons
    )  # fmt: skip
    log = run(unique.save(tmp_path / "ds"), tmp_path, ["fires on commas."] * len(neurons),
              split="test")  # fmt: skip
    assert len(log.samples) == len(neurons)
    by_id = {(n.id.layer, n.id.index): n for n in unique}
    for s in log.samples:
        neuron = by_id[(s.metadata["layer"], s.metadata["index"])]
        words = set(re.findall(r"r\d+x\d+", "\n".join(m.text for m in s.messages)))
        assert words, s.id  # train records are shown
        for split in SCORING_SPLITS:
            for r in scoring_records(neuron, split).all:
                assert not words & {t.strip() for t in r.tokens}, (s.id, split, r.position)
        assert not set(s.metadata["shown_positions"]) - train[neuron.id.key]
