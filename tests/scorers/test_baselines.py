"""Model-free baseline simulators: lexical matching and sentence-embedding similarity."""

from __future__ import annotations

import asyncio

from neuronbench.datasets import scoring_records
from neuronbench.scorers import score_simulation
from neuronbench.scorers.simulators.embedding import EmbeddingSimulator, token_windows
from neuronbench.scorers.simulators.lexical import LexicalSimulator, named_terms, token_fires
from tests.scorers.conftest import planted_neuron


def test_named_terms_keep_content_words_and_quotes_drop_boilerplate():
    terms = named_terms('Fires on the token "London" and mentions of rivers, or ","')
    assert terms.words == {"london", "rivers"}
    assert terms.quoted == {"london", ","}


def test_token_fires_on_words_subwords_inflections_and_quoted_punctuation():
    terms = named_terms('the word London, cat, and the comma ","')
    assert token_fires(" London", terms)
    assert token_fires("ĠLond", terms)  # subword start, GPT-2 marker
    assert token_fires("▁LONDON's", terms)
    assert token_fires(" cats", terms)  # inflection
    assert token_fires(",", terms)
    assert not token_fires(" Lo", terms)  # too short to count as a prefix
    assert not token_fires(" the", terms)  # stopword is never named
    assert not token_fires(" dog", terms)
    assert not token_fires("\n", terms)


def test_lexical_simulator_scores_a_planted_neuron_and_a_floor_for_a_wrong_explanation():
    neuron = planted_neuron(" London")
    scoring = scoring_records(neuron, "valid")
    records = [r.tokens for r in scoring.all]
    good = asyncio.run(LexicalSimulator().simulate("mentions of London", records))
    assert good.predictions is not None
    for rec, preds in zip(records, good.predictions, strict=True):
        assert preds == [10.0 if t == " London" else 0.0 for t in rec]
    assert score_simulation(good, scoring).top_and_random > 0.9
    wrong = asyncio.run(LexicalSimulator().simulate("rivers", records))
    good_score = score_simulation(good, scoring).top_and_random
    wrong_scores = score_simulation(wrong, scoring)
    assert wrong_scores.top_and_random is not None and wrong_scores.top_and_random < good_score
    nothing = asyncio.run(LexicalSimulator().simulate("the token", records))
    constant = score_simulation(nothing, scoring)  # predicts nothing: explains nothing
    assert constant.top_and_random == 0.0 and "top_and_random" in constant.constant_simulation


def test_token_windows_clip_at_record_ends():
    assert token_windows(["a", "b", "c", "d"], 1) == ["ab", "abc", "bcd", "cd"]
    assert token_windows(["a", " b"], 0) == ["a", "b"]


def test_embedding_simulator_ranks_the_explained_concept_first():
    """Real all-MiniLM-L6-v2 from the bundled package (offline, ~5 s to load)."""
    neuron = planted_neuron(" London")
    scoring = scoring_records(neuron, "valid", n=2)
    records = [r.tokens for r in scoring.all]
    sim = asyncio.run(EmbeddingSimulator().simulate("the city of London", records))
    assert sim.predictions is not None
    assert [len(p) for p in sim.predictions] == [len(r) for r in records]
    assert all(0.0 <= v <= 10.0 for p in sim.predictions for v in p)
    by_token = {}
    for rec, preds in zip(records, sim.predictions, strict=True):
        for t, v in zip(rec, preds, strict=True):
            by_token.setdefault(t, []).append(v)
    mean = {t: sum(v) / len(v) for t, v in by_token.items()}
    assert mean[" London"] == max(mean.values())
    scores = score_simulation(sim, scoring)
    assert scores.top_and_random is not None and scores.top_and_random > 0.3
    empty = asyncio.run(EmbeddingSimulator().simulate("  ", records))
    assert score_simulation(empty, scoring).constant_simulation == [
        "top_and_random",
        "random_only",
        "top_only",
    ]
