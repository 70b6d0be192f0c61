"""Every scorer answers a skipped neuron (sample metadata ``skip``) without raising.

The neuron here has no random records, so any scorer that read its scoring split would
raise; and no model is bound, so any scorer that called one would fail too.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from inspect_ai.model import ModelName
from inspect_ai.scorer import Target
from inspect_ai.solver import TaskState

from neuronbench.datasets import DatasetError
from neuronbench.scorers import build_scorers
from neuronbench.scorers._classify import METRIC_KEYS
from neuronbench.scorers.correlation import GROUPS
from neuronbench.scorers.detection import detection
from neuronbench.scorers.embedding_scorer import embedding
from neuronbench.scorers.fuzzing import fuzzing
from neuronbench.scorers.simulation import CALIBRATED, simulation
from tests.scorers.conftest import planted_neuron

REASON = "valid split needs >=1 top and >=1 random record; neuron has 3 top and 0 random records"


def _state(skip: object = REASON, explanation: str = "") -> TaskState:
    neuron = planted_neuron(layer=4, index=2, random=[])
    metadata = {
        "neuron": neuron.to_dict(),
        **neuron.summary(),
        "split": "valid",
        "skip": skip,
        "explanation": explanation,
        "explanation_flags": [],
    }
    return TaskState(
        model=ModelName("mockllm/model"),
        sample_id=neuron.id.key,
        epoch=1,
        input="explain",
        messages=[],
        metadata=metadata,
    )


@pytest.mark.parametrize(
    ("make", "keys"),
    [
        (lambda: simulation(simulator="generation"), GROUPS),
        (lambda: simulation(simulator="lexical", calibrate=True), (*GROUPS, *CALIBRATED)),
        (detection, METRIC_KEYS),
        (fuzzing, METRIC_KEYS),
        (embedding, ("auc",)),
    ],
    ids=["simulation", "simulation-calibrated", "detection", "fuzzing", "embedding"],
)
def test_every_scorer_marks_a_skipped_neuron_skipped(make, keys) -> None:  # type: ignore[no-untyped-def]
    score = asyncio.run(make()(_state(), Target("")))
    assert score.metadata["status"] == "skipped"
    assert score.metadata["reason"] == REASON
    assert score.metadata["neuron_id"] == "test-subject-L4-N2"
    assert score.metadata["layer"] == 4
    assert set(score.value) == {*keys, "scored"}
    assert all(math.isnan(score.value[k]) for k in keys)
    assert score.value["scored"] == 0.0


def test_build_scorers_all_skip_and_without_the_key_the_records_are_read() -> None:
    scorers = build_scorers(["simulation", "embedding"], simulator="lexical")
    for s in scorers:
        assert asyncio.run(s(_state(), Target(""))).metadata["status"] == "skipped"
    # without a skip reason the scorers read the records, and this neuron has no random ones
    for s in scorers:
        for no_skip in (None, ""):
            with pytest.raises(DatasetError, match="missing"):
                asyncio.run(s(_state(no_skip, "London"), Target("")))
