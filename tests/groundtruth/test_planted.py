"""Planted neurons follow their rules exactly, carry distinct decoys, and form a valid dataset."""

from __future__ import annotations

import re

import numpy as np
import pytest

from neuronbench.datasets import DatasetError, NeuronDataset
from neuronbench.groundtruth.planted import (
    DECOY_KINDS,
    FAMILIES,
    PlantedNeuron,
    PlantOptions,
    activations,
    check_specs,
    default_specs,
    load_planted,
    member_weight,
    plant,
    rule_levels,
)

DECOYS = {"too_broad": "b", "too_narrow": "n", "different": "d"}


def spec(rule: dict, name: str = "x", family: str = "word_set", number: int = 0) -> PlantedNeuron:
    return PlantedNeuron(name, family, rule, "truth", dict(DECOYS), number)


def fired(rule: dict, tokens: list[str], by_name: dict | None = None) -> list[bool]:
    return [bool(v > 0) for v in rule_levels(rule, [(0, tokens)], by_name)[0]]


def test_word_rule_fires_iff_member_word_case_insensitive_with_graded_levels() -> None:
    words = ["mother", "aunt"]
    toks = [" My", " Mother", " and", " aunt", ",", " my", " motherly", " aunts"]
    levels = rule_levels({"kind": "words", "words": words}, [(0, toks)])[0]
    expected = [t.strip().lower() in words for t in toks]
    assert [bool(v > 0) for v in levels] == expected
    assert levels[1] == pytest.approx(member_weight("mother"))
    assert levels[3] == pytest.approx(member_weight("aunt"))
    assert fired({"kind": "words", "words": ["May"], "case_sensitive": True}, [" May", " may"]) == [
        True,
        False,
    ]


def test_word_rule_fires_on_every_subword_piece_of_a_member_word() -> None:
    # byte-level BPE display strings, with and without the Ġ marker
    toks = ["\u0120grand", "mother", "\u0120said", " grand", "father", "ly"]
    assert fired({"kind": "words", "words": ["grandmother"]}, toks) == [True, True] + [False] * 4


def test_after_rule_needs_whitespace_only_gap_and_optional_period() -> None:
    toks = [" the", " cat", " the", ".", " dog", " The", " same", " Mr", ".", " Darcy"]
    assert fired({"kind": "after", "words": ["the"]}, toks) == [
        False, True, False, False, False, False, True, False, False, False,
    ]  # fmt: skip
    title = {"kind": "after", "words": ["mr"], "skip_periods": True}
    assert fired(title, toks)[-1] is True
    assert fired({"kind": "after", "words": ["mr"]}, toks)[-1] is False


def test_quote_state_spans_contiguous_records_and_resets_at_newline_and_gaps() -> None:
    rule = {"kind": "inside_quotes"}
    a = [" He", " said", ' "', "Yes", " sir"]
    b = [" indeed", '."', " Then", ' "', "no"]
    c = [" more", "\n", " out"]
    got = [[bool(v > 0) for v in lv] for lv in rule_levels(rule, [(0, a), (1, b), (2, c)])]
    assert got == [
        [False, False, False, True, True],
        [True, False, False, False, True],
        [True, False, False],
    ]
    # record 5 does not follow record 3: the open quote does not leak into it
    got = rule_levels(rule, [(3, [' "', "Hi"]), (5, [" there"])])
    assert [bool(v > 0) for v in got[1]] == [False]
    curly = rule_levels(rule, [(0, [" \u201cOh", " no", "\u201d", " she"])])[0]
    assert [bool(v > 0) for v in curly] == [True, True, False, False]


@pytest.mark.parametrize(
    ("prop", "tokens", "expected"),
    [
        ("punctuation", [" ,", ".", ' "', " a", "?!", " ", "x."], [1, 1, 1, 0, 1, 0, 0]),
        ("digit", [" 1811", " one", "2", "a3"], [1, 0, 1, 1]),
        ("capitalized", [" Emma", " said", " I", " sir", " Wood", "house"], [1, 0, 1, 0, 1, 1]),
        ("ends_ly", [" really", " fly", " family", " only"], [1, 0, 1, 1]),
        ("long_word", [" acquaintance", " short", " particular", "ly"], [1, 0, 1, 1]),
    ],
)
def test_token_properties(prop: str, tokens: list[str], expected: list[int]) -> None:
    assert fired({"kind": "property", "property": prop}, tokens) == [bool(e) for e in expected]


def test_union_is_elementwise_max_of_its_parts_levels() -> None:
    a = spec({"kind": "words", "words": ["two"]}, name="a")
    b = spec({"kind": "property", "property": "punctuation"}, name="b", number=1)
    union = {"kind": "union", "rules": [{"ref": "a"}, {"ref": "b", "level": 0.5}]}
    toks = [" two", ",", " cats", " two"]
    lv = rule_levels(union, [(0, toks)], {"a": a, "b": b})[0]
    assert lv.tolist() == pytest.approx([member_weight("two"), 0.5, 0.0, member_weight("two")])


def test_activations_are_zero_exactly_where_the_rule_fails_and_noisy_where_it_holds() -> None:
    s = spec({"kind": "words", "words": ["cat"]})
    recs = [(i, [" a", " cat", " sat", " cat"] * 4) for i in range(20)]
    acts = activations(s, recs, seed=3)
    flat = np.concatenate(acts)
    rule = np.concatenate(rule_levels(s.rule, recs))
    assert ((flat > 0) == (rule > 0)).all()
    assert len(np.unique(flat[flat > 0])) == int((flat > 0).sum())  # graded, not constant
    # noise depends on (seed, neuron, position) only, not on the other records planted
    assert np.array_equal(activations(s, recs[5:6], seed=3)[0], acts[5])
    assert not np.array_equal(activations(s, recs, seed=4)[5], acts[5])


def _corpus(n: int = 120) -> list[tuple[int, list[str]]]:
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
        " of",
        ".",
        " 12",
    ]
    return [(p, [str(t) for t in rng.choice(vocab, size=16)]) for p in range(n)]


def test_plant_selects_exact_top_k_random_and_moments() -> None:
    recs = _corpus()
    specs = default_specs()
    ds = plant(recs, specs, PlantOptions(top_k=12, n_random=9, seed=1, corpus="toy"))
    assert len(ds) == len(specs)
    by_name = {s.name: s for s in specs}
    samples: list[tuple[int, ...]] = []
    for s in specs:
        n = ds[s.neuron_id]
        acts = activations(s, recs, 1, by_name)
        maxes = [float(a.max()) for a in acts]
        brute = sorted(range(len(recs)), key=lambda i: (-maxes[i], i))[:12]
        assert [r.position for r in n.top] == brute
        assert [r.max_activation for r in n.top] == [maxes[i] for i in brute]
        flat = np.concatenate(acts)
        assert n.mean == pytest.approx(flat.mean())
        assert n.variance == pytest.approx(flat.var())
        assert n.firing_rate == pytest.approx(float((flat > 0).mean()))
        assert n.n_tokens == flat.size
        positions = [r.position for r in n.random]
        assert len(set(positions)) == 9
        # drawn per neuron, never one of the neuron's own top (train) records
        assert not set(positions) & {r.position for r in n.top}
        samples.append(tuple(positions))
        assert n.id.subject == "planted" and n.id.layer == FAMILIES.index(s.family)
    assert len(set(samples)) > 1  # independent samples, not one shared by every neuron


def test_planted_dataset_round_trips_with_truth_and_decoys(tmp_path) -> None:
    ds = plant(_corpus(40), options=PlantOptions(top_k=8, n_random=6))
    ds.save(tmp_path / "planted")
    loaded = NeuronDataset.load(tmp_path / "planted")
    truths = load_planted(loaded)
    assert set(truths) == {n.id.key for n in loaded}
    assert truths == load_planted(ds)
    with pytest.raises(DatasetError, match="not a planted dataset"):
        load_planted(NeuronDataset(card=type(ds.card)(subject="gpt2")))


def _named(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text)}


def test_bundled_specs_cover_every_family_and_decoys_differ_from_truth() -> None:
    specs = default_specs()
    assert 20 <= len(specs) <= 30
    assert {s.family for s in specs} == set(FAMILIES)
    truths = {s.truth for s in specs}
    assert len(truths) == len(specs)
    for s in specs:
        assert set(s.decoys) == set(DECOY_KINDS)
        assert len({s.truth, *s.decoys.values()}) == 4, s.name
        if s.word_set:
            members = {w.lower() for w in s.word_set}
            # a too-narrow decoy names a member; a different-concept decoy names none
            assert _named(s.decoys["too_narrow"]) & members, s.name
            assert not _named(s.decoys["different"]) & members, s.name
            assert len(_named(s.truth) & members) >= 3, s.name


def test_check_specs_rejects_bad_specs() -> None:
    ok = spec({"kind": "words", "words": ["a"]})
    with pytest.raises(DatasetError, match="decoys"):
        check_specs([PlantedNeuron("x", "word_set", ok.rule, "t", {"too_broad": "b"})])
    with pytest.raises(DatasetError, match="repeats the truth"):
        check_specs([PlantedNeuron("x", "word_set", ok.rule, "t", {**DECOYS, "different": "T"})])
    with pytest.raises(DatasetError, match="unknown property"):
        check_specs([spec({"kind": "property", "property": "vowels"})])
    with pytest.raises(DatasetError, match="reference"):
        check_specs([spec({"kind": "union", "rules": [{"ref": "nope"}]})])


def test_plant_on_tokenized_tiny_corpus_matches_words_in_the_text() -> None:
    """With a real byte-level BPE (words split into pieces), every firing token overlaps a
    member word of the text and every member word's tokens fire."""
    from neuronbench.groundtruth.planted import plant_corpus
    from neuronbench.subjects.models import tiny_tokenizer

    fam = next(s for s in default_specs() if s.name == "family")
    ds = plant_corpus(tiny_tokenizer(), "tiny", n_tokens=1024, record_length=32, specs=[fam])
    members = {w.lower() for w in fam.word_set}
    n_fired = 0
    for rec in ds[fam.neuron_id].top + ds[fam.neuron_id].random:
        text = "".join(rec.tokens)
        ends = np.cumsum([len(t) for t in rec.tokens])
        hits = np.zeros(len(rec.tokens), dtype=bool)
        for m in re.finditer(r"[A-Za-z0-9]+", text):
            if m.group().lower() in members:
                first = int(np.searchsorted(ends, m.start(), side="right"))
                last = int(np.searchsorted(ends, m.end() - 1, side="right"))
                hits[first : last + 1] = True
        assert ((np.asarray(rec.activations) > 0) == hits).all(), rec.tokens
        n_fired += int(hits.sum())
    assert n_fired > 0


def test_planted_ids_name_the_subject_once_and_old_cards_still_load(tmp_path) -> None:
    """Keys are ``planted-L<family>-N<number>``; a card written under the old doubled keys
    (``planted-planted-L0-N0``, as the published results/planted) maps onto them."""
    ds = plant(_corpus(40), options=PlantOptions(top_k=8, n_random=6))
    for n in ds:
        assert n.id.site == "planted"
        assert n.id.key == f"planted-L{n.id.layer}-N{n.id.index}"
    assert {s.neuron_id.key for s in default_specs()} == {n.id.key for n in ds}
    old = {
        f"planted-planted-{k.removeprefix('planted-')}": v
        for k, v in ds.card.extra["planted"].items()
    }
    ds.card.extra["planted"] = old
    ds.save(tmp_path / "old")
    loaded = NeuronDataset.load(tmp_path / "old")
    truths = load_planted(loaded)
    assert set(truths) == {n.id.key for n in loaded}
    assert all(not k.startswith("planted-planted-") for k in truths)
