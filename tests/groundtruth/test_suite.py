"""Suite v2: deterministic, split by concept family, activations follow the truth rule,
and every decoy's rule differs from the truth's on the corpus in the promised direction."""

from __future__ import annotations

import numpy as np
import pytest

from neuronbench.groundtruth import rules as R
from neuronbench.groundtruth.suite import (
    DECOY_KINDS,
    DEFAULT_NEURONS,
    FAMILIES,
    KINDS,
    SPLITS,
    activations,
    assign_splits,
    generate,
    load_suite,
    plant_suite,
    tokenize_corpus,
    write_suite,
)

N_TOKENS = 8_000
N_NEURONS = 60
MIN_FIRING = 8


@pytest.fixture(scope="module")
def records() -> list[tuple[int, list[str]]]:
    from neuronbench.subjects.models import tiny_tokenizer

    return tokenize_corpus(tiny_tokenizer(), "austen", n_tokens=N_TOKENS, record_length=64)


def _planted(records):  # type: ignore[no-untyped-def]
    s = generate(records, seed=3, n_neurons=N_NEURONS, min_firing=MIN_FIRING)
    plant_suite(s, records, top_k=10, n_random=8, corpus="austen")
    return s


@pytest.fixture(scope="module")
def suite(records):  # type: ignore[no-untyped-def]
    return _planted(records)


@pytest.fixture(scope="module")
def again(records):  # type: ignore[no-untyped-def]
    return _planted(records)


@pytest.fixture(scope="module")
def analysis(records) -> R.Analysis:  # type: ignore[no-untyped-def]
    return R.analyze([t for _, t in records])


def fired(rule: dict, a: R.Analysis) -> np.ndarray:
    return R.levels(rule, a) > 0


def test_same_seed_same_suite_written_byte_identical(tmp_path, suite, again) -> None:
    assert again.digest() == suite.digest()
    a = write_suite(suite, tmp_path / "a")
    loaded = load_suite(a)
    assert loaded.digest() == suite.digest()
    assert [n.to_dict() for n in loaded.neurons] == [n.to_dict() for n in suite.neurons]
    b = write_suite(again, tmp_path / "b")
    assert (a / "suite.json").read_bytes() == (b / "suite.json").read_bytes()
    for n in suite.neurons[:5]:
        assert loaded.dataset is not None and suite.dataset is not None
        assert loaded.dataset[n.id].top == suite.dataset[n.id].top


def test_every_neuron_has_all_kinds_in_distinct_words(suite) -> None:
    assert len(suite.neurons) == N_NEURONS
    assert {n.family for n in suite.neurons} <= set(FAMILIES)
    assert len({n.family for n in suite.neurons}) >= 5
    for n in suite.neurons:
        assert set(n.explanations) == set(KINDS)
        texts = [e.text.lower() for e in n.explanations.values()]
        assert len(set(texts)) == len(texts), n.key
        assert n.explanations["paraphrase"].rule == n.rule
        for e in n.explanations.values():
            R.check_rule(e.rule)


def test_splits_never_share_a_concept(suite) -> None:
    by_split: dict[str, set[str]] = {s: set() for s in SPLITS}
    for n in suite.neurons:
        assert n.split == suite.info["splits"][n.group]
        for e in n.explanations.values():
            by_split[n.split].update(e.concepts)
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not by_split[a] & by_split[b], (a, b, by_split[a] & by_split[b])
    groups: dict[str, set[str]] = {}
    for n in suite.neurons:
        groups.setdefault(n.group, set()).add(n.split)
    assert all(len(s) == 1 for s in groups.values())


def test_assign_splits_is_a_function_of_the_groups_near_the_target_shares() -> None:
    weights = {f"g{i}": float(1 + i % 7) for i in range(60)}
    got = assign_splits(weights)
    assert got == assign_splits(dict(reversed(list(weights.items()))))
    total = sum(weights.values())
    shares = {s: sum(w for g, w in weights.items() if got[g] == s) / total for s in SPLITS}
    assert shares["train"] == pytest.approx(0.6, abs=0.05)
    assert shares["test"] == pytest.approx(0.2, abs=0.05)


def test_activation_positive_iff_truth_rule_fires(records, suite, analysis) -> None:
    assert suite.dataset is not None
    for n in suite.neurons:
        acts = activations(n, records, suite.seed, analysis.split(R.levels(n.rule, analysis)))
        flat = np.concatenate(acts)
        assert ((flat > 0) == fired(n.rule, analysis)).all(), n.key
        assert flat.max() > 0, n.key
        rec = suite.dataset[n.id]
        for r in rec.top[:2] + rec.random[:1]:  # evaluate() on one record agrees with the corpus
            lv = R.evaluate(n.rule, r.tokens)
            assert ((np.asarray(r.activations) > 0) == (lv > 0)).all(), n.key


def test_decoy_rules_differ_from_truth_in_the_promised_direction(analysis, suite) -> None:
    for n in suite.neurons:
        truth = fired(n.rule, analysis)
        broad = fired(n.explanations["too_broad"].rule, analysis)
        narrow = fired(n.explanations["too_narrow"].rule, analysis)
        different = fired(n.explanations["different"].rule, analysis)
        assert not (truth & ~broad).any() and (broad & ~truth).any(), (n.key, "too_broad")
        assert narrow.any() and not (narrow & ~truth).any(), (n.key, "too_narrow")
        assert (truth & ~narrow).any(), (n.key, "too_narrow strict")
        assert different.any() and (different != truth).any(), (n.key, "different")
        literal = fired(n.explanations["literal"].rule, analysis)
        assert literal.any() and (literal != truth).any(), (n.key, "literal")
        if n.rule["kind"] in ("concept", "words", "suffix", "pos", "inflection"):
            assert not (literal & ~truth).any(), (n.key, "literal within a word rule")
    for kind in DECOY_KINDS:
        assert all(n.explanations[kind].rule != n.rule for n in suite.neurons), kind


def test_rule_errors_name_the_problem() -> None:
    with pytest.raises(R.RuleError, match="unknown rule kind"):
        R.check_rule({"kind": "vowels"})
    with pytest.raises(R.RuleError, match="non-empty 'words'"):
        R.check_rule({"kind": "words", "words": []})
    with pytest.raises(R.RuleError, match="unknown lexicon concept"):
        R.check_rule({"kind": "concept", "id": "nope.n.99"})


def test_context_rules_on_hand_made_records() -> None:
    toks = [' He', ' said', ' "', 'Yes', ',', ' Mr', '.', ' Darcy', '."', ' Then', ' she',
            ' left', '.', ' She', ' saw', ' Darcy', ' again']  # fmt: skip

    def on(rule: dict) -> list[str]:
        return [t for t, v in zip(toks, R.evaluate(rule, toks), strict=True) if v > 0]

    assert on({"kind": "sentence_start"}) == [" Then", " She"]
    assert on({"kind": "inside_quotes"}) == ["Yes", " Mr", " Darcy"]
    assert on({"kind": "inside_quotes", "any": True}) == ["Yes", ",", " Mr", ".", " Darcy", '."']
    assert on({"kind": "repeat", "min_len": 3}) == [" Darcy"]
    assert on({"kind": "after", "words": ["mr"], "skip_periods": True}) == [" Darcy"]
    assert on({"kind": "before", "chars": ["."]}) == [" Mr", " Darcy", " left"]
    assert on({"kind": "chars", "chars": [","]}) == [","]
    # a record that starts inside a quotation: the first mark closes it
    assert [bool(v) for v in R.evaluate({"kind": "inside_quotes"}, [" yes", '",', " he"])] == [
        True, False, False,
    ]  # fmt: skip


@pytest.mark.slow
def test_default_size_has_at_least_500_neurons() -> None:
    from neuronbench.subjects.models import tiny_tokenizer

    recs = tokenize_corpus(tiny_tokenizer(), "austen", n_tokens=100_000)
    assert DEFAULT_NEURONS >= 500
    assert len(generate(recs).neurons) >= 500


def test_an_oracle_that_reads_each_explanations_rule_ranks_the_truth_first(suite, analysis) -> None:
    """Scoring each explanation by the correlation of its rule's levels with the neuron's
    activations: the truth wins against every decoy and ties its paraphrase, so the decoys
    are separable in principle and validity measures the simulator, not the suite."""
    from neuronbench.scorers.validity import summarize

    acts = {n.key: np.concatenate(activations(n, [(p, t) for p, t in _records_of(analysis)],
                                              suite.seed, analysis.split(R.levels(n.rule, analysis))))
            for n in suite.neurons}  # fmt: skip
    scores = {
        n.key: {k: float(np.corrcoef(R.levels(e.rule, analysis), acts[n.key])[0, 1])
                for k, e in n.explanations.items()}
        for n in suite.neurons
    }  # fmt: skip
    splits = {n.key: n.split for n in suite.neurons}
    r = summarize("oracle", scores, {n.key: n.family for n in suite.neurons}, splits, DECOY_KINDS)
    assert r.truth_beats_decoys >= 0.95 and r.auc >= 0.97
    assert r.paraphrase_gap == 0.0
    assert set(r.per_split) == set(splits.values())
    for name, row in r.per_split.items():
        keys = [k for k, s in splits.items() if s == name]
        assert row["n"] == len(keys)
        wins = [all(scores[k]["truth"] > scores[k][d] for d in DECOY_KINDS) for k in keys]
        assert row["all"] == pytest.approx(np.mean(wins))


def _records_of(a: R.Analysis) -> list[tuple[int, list[str]]]:
    return list(enumerate(a.texts))


def test_rule_simulator_predicts_each_explanations_rule_and_flags_an_unknown_one(suite) -> None:
    import asyncio

    from neuronbench.scorers.simulators.rules import RuleSimulator, suite_rules

    sim = RuleSimulator(suite_rules(suite))
    n = suite.neurons[0]
    recs = [list(r.tokens) for r in suite.dataset[n.id].top[:3]]
    for e in n.explanations.values():
        got = asyncio.run(sim.simulate(e.text, recs)).predictions
        want = R.evaluate_records(e.rule, recs)
        assert got is not None and len(got) == len(recs)
        for g, w in zip(got, want, strict=True):
            assert np.allclose(g, 10.0 * np.asarray(w))
    bad = asyncio.run(sim.simulate("no such explanation", recs))
    assert bad.failed and "no such explanation" in (bad.error or "")
