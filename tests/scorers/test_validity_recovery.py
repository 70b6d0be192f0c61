"""Explainer recovery: similarity to the truth and the judge-free word check."""

from __future__ import annotations

import pytest

from neuronbench.groundtruth.planted import PlantOptions, default_specs, plant
from neuronbench.scorers.recovery import recovery, recovery_metrics, words_named

SPECS = {s.name: s for s in default_specs()}
ALL = {s.neuron_id.key: s for s in SPECS.values()}


def test_words_named_whole_words_case_insensitive() -> None:
    assert words_named("Mother, sisters and grandmothers", ["mother", "sister", "sisters"]) == [
        "mother",
        "sisters",
    ]


def test_truth_recovers_and_decoy_does_not() -> None:
    fam = SPECS["family"]
    good = recovery("relatives like mother, aunt and cousin", fam)
    assert good["closer_to_truth"] and good["word_check"] is True
    assert good["words_named"] == [["aunt", "cousin", "mother"]]
    bad = recovery(fam.decoys["different"], fam)
    assert not bad["closer_to_truth"] and bad["word_check"] is False
    assert bad["decoy_similarity"]["different"] == pytest.approx(1.0, abs=1e-5)
    assert recovery("anything", SPECS["in_quotes"])["word_check"] is None


def test_union_needs_words_of_both_parts() -> None:
    union = SPECS["family_or_numbers"]
    assert recovery("mother, sister, two, three", union, ALL)["word_check"] is True
    assert recovery("mother and sister", union, ALL)["word_check"] is False


def test_recovery_metrics_by_neuron_key() -> None:
    ds = plant([(0, [" the", " mother", " two"] * 5)], options=PlantOptions(top_k=1, n_random=1))
    key = SPECS["family"].neuron_id.key
    [row] = recovery_metrics(ds, [(key, "mothers and aunts")])
    assert row["neuron_id"] == key and row["neuron"] == "family"
    with pytest.raises(KeyError, match="nope"):
        recovery_metrics(ds, [("nope", "x")])
