"""Our train / calibration / valid / test records are the ones OpenAI's NeuronRecord deals.

OpenAI interleaves with stride = number of splits (``get_slices_for_splits``): top records
over train/calibration/valid/test, random records over calibration/valid/test, the same
number per split (``ActivationRecordSliceParams.n_examples_per_split``, default the most
that fits). Records are compared by their tokens, which name the record.

Where the record counts are not multiples of the stride, or top and random give different
counts per split, the two differ by design (see the last test): OpenAI leaves the remainder
records out and may score top and random unequally; we deal every record and score them 1:1.
"""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest

from neuronbench.datasets import NeuronRecord, scoring_records, train_records
from tests.conftest import make_neuron

SCORING = ("calibration", "valid", "test")


def _neuron(n_top: int, n_random: int) -> NeuronRecord:
    """A neuron whose record tokens name the record (`` t3x0``, `` r3x0``)."""
    n = make_neuron(n_top=n_top, n_random=n_random, n_tokens_per_record=4)
    n.top = [replace(r, tokens=[f" t{i}x{j}" for j in range(4)]) for i, r in enumerate(n.top)]
    n.random = [replace(r, tokens=[f" r{i}x{j}" for j in range(4)]) for i, r in enumerate(n.random)]
    return n


def _openai(neuron: NeuronRecord) -> Any:
    from neuron_explainer.activations.activations import ActivationRecord as OpenAIRecord
    from neuron_explainer.activations.activations import NeuronId
    from neuron_explainer.activations.activations import NeuronRecord as OpenAINeuron

    def conv(rs: list[Any]) -> list[Any]:
        return [OpenAIRecord(tokens=list(r.tokens), activations=list(r.activations)) for r in rs]

    return OpenAINeuron(
        neuron_id=NeuronId(layer_index=neuron.id.layer, neuron_index=neuron.id.index),
        random_sample=conv(neuron.random),
        most_positive_activation_records=conv(neuron.top),
    )


def _theirs(record: Any, split: str, n: int | None) -> list[tuple[str, ...]]:
    from neuron_explainer.activations.activations import ActivationRecordSliceParams

    method = getattr(record, f"{split}_activation_records")
    return [tuple(r.tokens) for r in method(ActivationRecordSliceParams(n_examples_per_split=n))]


def _ours(neuron: NeuronRecord, split: str, n: int | None) -> list[tuple[str, ...]]:
    recs = train_records(neuron, n) if split == "train" else scoring_records(neuron, split, n).all
    return [tuple(r.tokens) for r in recs]


@pytest.mark.parametrize("shape", [(40, 30), (20, 15), (4, 3), (12, 9)])
def test_default_splits_equal_openai(shape: tuple[int, int], neuron_explainer: ModuleType) -> None:
    """Counts that divide evenly (top/4 == random/3, OpenAI's layout): identical splits."""
    neuron = _neuron(*shape)
    record = _openai(neuron)
    for split in ("train", *SCORING):
        assert _ours(neuron, split, None) == _theirs(record, split, None), split


@pytest.mark.parametrize("shape", [(40, 30), (43, 31), (40, 60), (17, 9)])
def test_n_per_split_equals_openai(shape: tuple[int, int], neuron_explainer: ModuleType) -> None:
    """Any shape, with the count per split given (as the task's n_examples / n_score_records)."""
    neuron = _neuron(*shape)
    record = _openai(neuron)
    for n in range(1, min(shape[0] // 4, shape[1] // 3) + 1):
        for split in ("train", *SCORING):
            assert _ours(neuron, split, n) == _theirs(record, split, n), (split, n)


def test_where_defaults_differ_from_openai(neuron_explainer: ModuleType) -> None:
    """The documented differences with the default count, pinned so a change is noticed:
    OpenAI drops remainder records (43 top: 10 per split, record 40-42 never used) and takes
    every random record of a split even when it outnumbers the top ones (40 top, 60 random:
    10 top + 20 random); we deal every record (train gets 11) and score 1:1 (10 + 10).
    Where they differ, one is always a prefix of the other."""
    remainder, unbalanced = _neuron(43, 30), _neuron(40, 60)
    assert len(_ours(remainder, "train", None)) == 11
    assert len(_theirs(_openai(remainder), "train", None)) == 10
    assert len(_ours(unbalanced, "valid", None)) == 20
    assert len(_theirs(_openai(unbalanced), "valid", None)) == 30
    for neuron in (remainder, unbalanced):
        record = _openai(neuron)
        per_split = len(neuron.top) // 4  # OpenAI's top records per split, listed first
        for split in SCORING:
            ours, theirs = scoring_records(neuron, split), _theirs(record, split, None)
            for mine, their in (
                ([tuple(r.tokens) for r in ours.top], theirs[:per_split]),
                ([tuple(r.tokens) for r in ours.random], theirs[per_split:]),
            ):
                assert mine and their and mine[: len(their)] == their[: len(mine)], split
        ours_train, theirs_train = _ours(neuron, "train", None), _theirs(record, "train", None)
        short, long = sorted((ours_train, theirs_train), key=len)
        assert long[: len(short)] == short
