"""Splits: OpenAI's round-robin dealing, no train/scoring overlap, 1:1 scoring sets."""

from __future__ import annotations

import pytest

from neuronbench.datasets import DatasetError, scoring_records, train_records
from neuronbench.datasets.splits import SCORING_SPLITS
from tests.conftest import make_neuron

TOP = ["train", "calibration", "valid", "test"]
RANDOM = ["calibration", "valid", "test"]


def by_split(neuron, split):  # brute force, straight from OpenAI's rule
    top = [r for i, r in enumerate(neuron.top) if TOP[i % 4] == split]
    rand = [r for i, r in enumerate(neuron.random) if RANDOM[i % 3] == split]
    return top, rand


def test_round_robin_matches_openai_rule() -> None:
    n = make_neuron(n_top=40, n_random=30, n_tokens_per_record=8)
    assert [r.position for r in train_records(n)] == [r.position for r in by_split(n, "train")[0]]
    assert [r.position for r in train_records(n)] == list(range(0, 40, 4))
    for split in SCORING_SPLITS:
        s = scoring_records(n, split)
        top, rand = by_split(n, split)
        assert [r.position for r in s.top] == [r.position for r in top]
        assert [r.position for r in s.random] == [r.position for r in rand]
        assert len(s.top) == len(s.random) == 10
        assert s.all == [*s.top, *s.random]


def test_train_never_overlaps_scoring_and_splits_are_disjoint() -> None:
    n = make_neuron(n_top=40, n_random=30, n_tokens_per_record=8)
    seen = {r.position for r in train_records(n)}
    scored: list[set[int]] = [
        {r.position for r in scoring_records(n, s).all} for s in SCORING_SPLITS
    ]
    for s in scored:
        assert not seen & s
    assert (
        not (scored[0] & scored[1]) and not (scored[1] & scored[2]) and not (scored[0] & scored[2])
    )
    assert seen | set().union(*scored) == {r.position for r in [*n.top, *n.random]}


@pytest.mark.parametrize(
    ("n_top", "n_random", "n", "expected"),
    [(40, 30, None, 10), (40, 30, 4, 4), (40, 9, None, 3), (13, 30, None, 3)],
)
def test_scoring_sets_are_one_to_one(
    n_top: int, n_random: int, n: int | None, expected: int
) -> None:
    neuron = make_neuron(n_top=n_top, n_random=n_random, n_tokens_per_record=8)
    for split in SCORING_SPLITS:
        s = scoring_records(neuron, split, n)
        assert len(s.top) == len(s.random) == expected


def test_train_n_and_bad_split() -> None:
    n = make_neuron(n_top=40, n_random=30, n_tokens_per_record=8)
    assert [r.position for r in train_records(n, 3)] == [0, 4, 8]
    with pytest.raises(DatasetError, match="not a scoring split"):
        scoring_records(n, "train")
