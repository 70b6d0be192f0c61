"""Embedding scorer: retrieval AUC on a hand-built case, and the inspect scorer offline."""

from __future__ import annotations

import math

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample

from neuronbench.datasets import ActivationRecord, NeuronId, NeuronRecord
from neuronbench.scorers._classify import Labelled, auc
from neuronbench.scorers.embedding_scorer import embedding, embedding_auc
from tests.scorers.test_detection import scripted

WEATHER = [
    "It rained all day and the wind was cold.",
    "A storm of snow and sleet.",
    "The rain fell.",
]
OTHER = ["She paid the bill at the bank.", "He counted his money.", "The price of bread rose."]


def rec(text: str, fire: bool, pos: int) -> ActivationRecord:
    toks = text.split(" ")
    return ActivationRecord(
        [toks[0]] + [" " + t for t in toks[1:]], [3.0 if fire else 0.0] * len(toks), pos
    )


def test_auc_ties_and_one_class() -> None:
    assert auc([1, 0, 1, 0], [0.9, 0.1, 0.5, 0.5]) == 0.875
    assert math.isnan(auc([1, 1], [0.1, 0.2]))


def test_explanation_about_the_records_concept_retrieves_them() -> None:
    labelled = Labelled(
        [rec(t, True, i) for i, t in enumerate(WEATHER)],
        [rec(t, False, 9 + i) for i, t in enumerate(OTHER)],
        0.3,
    )
    right, sims = embedding_auc("weather: rain, wind, snow and storms", labelled)
    wrong, _ = embedding_auc("money, prices and banks", labelled)
    assert right == 1.0 and wrong == 0.0
    assert len(sims) == 6


def test_inspect_scorer_offline(tmp_path) -> None:
    top = [rec(WEATHER[i % 3], True, i) for i in range(8)]
    rand = [rec(OTHER[j % 3], False, 100 + j) for j in range(6)]
    neuron = NeuronRecord(id=NeuronId("t", 0, 0), top=top, random=rand)
    sample = Sample(id="n", input="x", metadata={"neuron": neuron.to_dict(), "split": "valid"})
    task = Task(
        dataset=[sample, Sample(id="e", input="x", metadata=sample.metadata)],
        solver=scripted("rain and storms"),
        scorer=embedding(),
    )
    [log] = eval(task, model="mockllm/model", log_dir=str(tmp_path), display="none")
    score = log.samples[0].scores["embedding"]
    assert score.value == {"auc": 1.0, "scored": 1.0} and score.metadata["status"] == "ok"
    assert [r["group"] for r in score.metadata["records"]] == ["activating"] * 2 + [
        "non_activating"
    ] * 2
