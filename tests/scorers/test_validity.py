"""Scorer validity on planted neurons: rates and AUC by hand, and the offline floor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from neuronbench.groundtruth.planted import PlantOptions, default_specs, plant
from neuronbench.scorers.validity import beats, score_candidates, summarize, validate

FAM = {"a": "word_set", "b": "word_set", "c": "context"}


def test_summarize_rates_ties_and_unscored() -> None:
    scores = {
        "a": {"truth": 0.9, "too_broad": 0.5, "too_narrow": 0.7, "different": 0.1},  # wins all
        "b": {"truth": 0.5, "too_broad": 0.5, "too_narrow": 0.2, "different": None},  # tie on broad
        "c": {"truth": None, "too_broad": None, "too_narrow": 0.1, "different": 0.0},  # unscored
    }
    r = summarize("x", scores, FAM)
    assert r.truth_beats_decoys == pytest.approx(1 / 3)
    assert r.per_kind == pytest.approx(
        {"too_broad": 1 / 3, "too_narrow": 2 / 3, "different": 2 / 3}
    )
    # pairs: a 1,1,1; b 0.5,1,1; c 0.5,0,0
    assert r.auc == pytest.approx(6 / 9)
    assert r.per_family["word_set"]["all"] == 0.5 and r.per_family["context"]["all"] == 0.0
    assert r.n_unscored == 3
    assert beats(0.2, None) == 1.0 and beats(None, None) == 0.5


def test_decidable_figures_count_only_pairs_the_reference_separates() -> None:
    from neuronbench.scorers.validity import decidable_figures

    kinds = ("too_broad", "too_narrow", "different", "literal")
    ref = {
        "a": {"truth": 1.0, "too_broad": 1.0, "too_narrow": 0.5, "different": 0.0, "literal": 0.9},
        "b": {"truth": 0.9, "too_broad": 0.8, "too_narrow": 0.9, "different": 0.1, "literal": 1.0},
        "c": {"truth": 0.8, "too_broad": 0.8, "too_narrow": 0.8, "different": 0.8, "literal": 0.8},
    }
    sim = {  # a: broad undecidable (its "win" must not count); b: narrow, literal undecidable
        "a": {"truth": 0.6, "too_broad": 0.1, "too_narrow": 0.7, "different": 0.2, "literal": 0.5},
        "b": {"truth": 0.4, "too_broad": 0.4, "too_narrow": 0.0, "different": None, "literal": 0.0},
        "c": {"truth": 0.9, "too_broad": 0.1, "too_narrow": 0.1, "different": 0.1, "literal": 0.1},
        "d": {"truth": 0.9, "too_broad": 0.1, "too_narrow": 0.1, "different": 0.1, "literal": 0.1},
    }  # c: nothing decidable; d: no reference
    d = decidable_figures(sim, ref, kinds)
    # decidable pairs: a narrow (lost), a different (won), a literal (won); b broad (tie), b different (won)
    assert d["n_pairs"] == 5 and d["auc"] == pytest.approx((0 + 1 + 1 + 0.5 + 1) / 5)
    assert (d["n_too_broad"], d["n_too_narrow"], d["n_different"], d["n_literal"]) == (1, 1, 2, 1)
    assert d["too_broad"] == 0.0 and d["too_narrow"] == 0.0 and d["different"] == 1.0
    assert d["literal"] == 1.0
    assert d["all"] == 0.0 and d["all_three"] == 0.0  # a lost narrow, b tied broad
    r = summarize("x", sim, dict.fromkeys(sim, "f"), {k: "dev" for k in sim}, kinds, reference=ref)
    assert r.decidable == d and r.per_split_decidable == {"dev": d}
    assert r.summary()["decidable"] == d


class Oracle:
    """Scores an explanation by whether it is the truth: validity must come out perfect."""

    def __init__(self, truths):
        self.truths = truths

    async def __call__(self, explanation, neuron):
        return 1.0 if explanation in self.truths else 0.0


def _records(n=60):
    import numpy as np

    rng = np.random.default_rng(0)
    vocab = [
        " the",
        " mother",
        " red",
        " said",
        ",",
        " Emma",
        ' "',
        "Yes",
        " two",
        " very",
        " good",
        ".",
    ]
    return [(p, [str(t) for t in rng.choice(vocab, size=16)]) for p in range(n)]


def test_oracle_scorer_gets_perfect_validity_and_a_reversed_one_zero() -> None:
    specs = default_specs()
    ds = plant(_records(), specs, PlantOptions(top_k=12, n_random=9))
    planted = {s.neuron_id.key: s for s in specs}
    truths = {s.truth for s in specs}
    scores = asyncio.run(score_candidates(Oracle(truths), ds, planted))
    r = summarize("oracle", scores, {k: s.family for k, s in planted.items()})
    assert r.truth_beats_decoys == 1.0 and r.auc == 1.0 and r.n_neurons == len(specs)

    async def reversed_oracle(explanation, neuron):
        return -(await Oracle(truths)(explanation, neuron))

    scores = asyncio.run(score_candidates(reversed_oracle, ds, planted))
    assert summarize("rev", scores, {k: s.family for k, s in planted.items()}).auc == 0.0


def test_lexical_simulator_validity_on_a_toy_plant() -> None:
    ds = plant(
        _records(),
        [s for s in default_specs() if s.family == "word_set"],
        PlantOptions(top_k=12, n_random=9),
    )
    [r] = validate(ds, ["lexical"])
    assert r.scorer == "simulator:lexical" and r.n_neurons == 6
    assert 0.0 <= r.auc <= 1.0 and set(r.per_kind) == {"too_broad", "too_narrow", "different"}


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: the embeddings are many small batches, where more threads only
    contend (several times slower on a busy 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_embedding_simulator_truth_beats_different_concept_on_austen(
    one_torch_thread: None,
) -> None:
    """The offline floor: truth beats the different-concept decoy for >= 90% of neurons.

    Runs by default: every planted neuron, on 50k tokens of Austen (enough records for
    each of them), 2 top + 2 random scored records each; about 26 CPU-seconds in a fresh
    process, most of it loading the SmolLM2 tokenizer and the embedding model.
    """
    from neuronbench.groundtruth.planted import plant_corpus
    from neuronbench.scorers._cli import load_tokenizer

    ds = plant_corpus(load_tokenizer("smollm2"), "austen", n_tokens=50_000)
    assert len(ds.neurons) >= 20  # the floor is over all planted neurons, not a few
    [r] = validate(ds, ["embedding"], n_records=2)
    assert r.per_kind["different"] >= 0.9, r.summary()
