"""The reader simulator: its features, batching, a tiny end-to-end training run, and the
shipped model (loads offline, reproduces its card, reads explanations as they are phrased)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neuronbench.datasets.errors import DatasetError  # noqa: E402
from neuronbench.groundtruth import rules as R  # noqa: E402
from neuronbench.scorers.simulators import reader as RD  # noqa: E402
from neuronbench.scorers.simulators import reader_training as RT  # noqa: E402
from neuronbench.scorers.simulators import training as TR  # noqa: E402

RECORD = [' "', "I", " am", " interested", " in", " ent", "reated", " cats", ',"', " said",
          " Emma", ".", " The", " cat", " sat", "."]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def col(f: np.ndarray, name: str) -> list[float]:
    return [float(v) for v in f[:, RD.FEATURES.index(name)]]


def test_features_spell_out_matches_context_and_the_rules_text_conventions() -> None:
    f = RD.features('words ending in "ted" right after "am", and the word cat', RECORD)
    assert f.shape == (len(RECORD), RD.K)
    # "interested" and both pieces of "entreated" end with the quoted letters
    assert [i for i, v in enumerate(col(f, "quoted_suffix")) if v] == [3, 5, 6]
    assert [i for i, v in enumerate(col(f, "quoted")) if v] == [2]  # "am"
    assert [i for i, v in enumerate(col(f, "prev_named")) if v] == [3, 14]  # after "am", "cat"
    assert [i for i, v in enumerate(col(f, "word")) if v] == [2, 13]  # am, cat (not "cats")
    assert col(f, "stem")[7] == 0.0  # "cats" shares only 3 letters with "cat"
    # quotes, sentence starts, repetition: exactly the suite's own text analysis
    a = R.analyze([RECORD])
    assert col(f, "in_quotes") == [float(v) for v in a.quoted_any]
    starts = {int(a.w_first[j]) for j in np.flatnonzero(a.sentence_start)}
    assert {
        i for i, v in enumerate(col(f, "sentence_start")) if v and col(f, "first_piece")[i]
    } == starts
    assert col(f, "first_piece")[5] == 1.0 and col(f, "first_piece")[6] == 0.0
    assert col(f, "punctuation")[11] == 1.0 and col(f, "punctuation")[3] == 0.0
    # the word-level similarity is shared by a word's pieces
    assert col(f, "sim_explanation")[5] == col(f, "sim_explanation")[6]


def _tiny_examples() -> list[TR.Example]:
    rng = np.random.default_rng(0)
    words = [" cat", " dog", " house", " walked", " jumped", " the", " a", ".", " red", " blue"]
    out = []
    for i in range(24):
        toks = tuple(str(w) for w in rng.choice(words, 12))
        for text, hit in (('the words "cat" and "dog"', {" cat", " dog"}),
                          ("words ending in -ed", {" walked", " jumped"})):  # fmt: skip
            out.append(TR.Example(text, toks, np.array([float(t in hit) for t in toks]), str(i)))
    return out


def test_tiny_training_run_saves_a_loadable_deterministic_reader(tmp_path: Path) -> None:
    opts = RT.ReaderOptions(steps=40, batch=8, evals=2, threads=1)
    a = RT.train_reader(_tiny_examples(), opts, dev_eval=lambda m: {"auc": 0.5})
    b = RT.train_reader(_tiny_examples(), opts, dev_eval=lambda m: {"auc": 0.5})
    assert [r["step"] for r in a.history] == [20, 40]
    for (k, v), (k2, v2) in zip(
        a.net.state_dict().items(), b.net.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v, v2), k  # seeded
    RD.save_model(a.net, opts.config, tmp_path, {"note": "tiny"})
    model = RD.read_model(tmp_path)
    assert model.meta["note"] == "tiny"
    recs = [list(e.tokens) for e in _tiny_examples()[:3]]
    live = RD.ReaderModel(a.net, opts.config).predict("words ending in -ed", recs)
    assert model.predict("words ending in -ed", recs) == live
    # it learned something: -ed words above the rest under the -ed explanation
    p = model.predict("words ending in -ed", [[" walked", " cat", " jumped", " the", " red"]])[0]
    assert min(p[0], p[2]) > max(p[1], p[3], p[4])


def test_batched_prediction_equals_one_record_at_a_time() -> None:
    model = RD.ReaderModel(RD.build_network(RD.ReaderConfig()).eval(), RD.ReaderConfig())
    recs = [RECORD, RECORD[:5], [" Emma", " said"]]
    together = model.predict("names of people", recs)
    alone = [model.predict("names of people", [r])[0] for r in recs]
    assert [len(p) for p in together] == [len(r) for r in recs]
    for x, y in zip(together, alone, strict=True):
        assert x == pytest.approx(y, abs=1e-6)


def test_missing_or_stale_weights_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="train-simulator --arch reader"):
        RD.read_model(tmp_path)
    RD.save_model(RD.build_network(RD.ReaderConfig()), RD.ReaderConfig(), tmp_path, {})
    doc = json.loads((tmp_path / RD.CONFIG_FILE).read_text())
    doc["config"]["features"] = ["word", "quoted"]
    (tmp_path / RD.CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="trained on features"):
        RD.read_model(tmp_path)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the reader simulator tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_shipped_reader_loads_offline_and_reproduces_its_card(no_network: None) -> None:
    card = json.loads((RD.MODEL_DIR / RD.CONFIG_FILE).read_text())
    check = card["dev_check"]
    neurons = TR.load_check_set(RD.MODEL_DIR / check["file"])
    scores = TR.candidate_scores(RD.load_model().predict, neurons)
    for key, row in check["scores"].items():
        for kind, value in row.items():
            assert scores[key][kind] == pytest.approx(value, abs=5e-3), (key, kind)
    assert TR.validity_figures(scores) == pytest.approx(check["figures"], abs=0.09)
    # the shipped card is what the code renders from the build's record (figures, ceiling)
    config = RD.ReaderConfig.from_dict(card["config"])
    assert (RD.MODEL_DIR / "MODEL_CARD.md").read_text(encoding="utf-8") == RT.model_card(
        card, config
    )
    assert "test: ceiling (rule executor)" in RT.model_card(card, config)
    assert sum(f.stat().st_size for f in RD.MODEL_DIR.iterdir()) <= 5 * 2**20


def test_shipped_reader_reads_a_word_list_literally_and_a_suffix_by_spelling() -> None:
    from neuronbench.scorers.registry import make_simulator

    sim = make_simulator("reader", None)
    rec = [" She", " walked", " home", " with", " her", " sister", " and", " started", " laughing",
           " at", " her", " brother", "."]  # fmt: skip
    lit = np.array(
        asyncio.run(sim.simulate('the words "sister" and "brother"', [rec])).predictions[0]
    )
    named = [rec.index(" sister"), rec.index(" brother")]
    assert lit[named].min() > np.delete(lit, named).max()
    suf = np.array(asyncio.run(sim.simulate("words ending in -ed", [rec])).predictions[0])
    ed = [rec.index(" walked"), rec.index(" started")]
    assert suf[ed].min() > np.delete(suf, ed).max()
    empty = asyncio.run(sim.simulate("  ", [rec]))
    assert empty.predictions == [[0.0] * len(rec)] and empty.details["empty_explanation"]


def test_offline_simulate_flags_a_non_finite_prediction_and_keeps_the_rest() -> None:
    from neuronbench.scorers.simulators.base import simulate_offline

    class Fake:
        def __init__(self, value: float) -> None:
            self.value = value

        def predict(self, explanation: str, records: list[list[str]]) -> list[list[float]]:
            return [[self.value] * len(r) for r in records]

    bad = asyncio.run(simulate_offline(lambda: Fake(float("nan")), "x", [["a", "b"]], "fake", {}))
    assert bad.failed and bad.error == "non-finite prediction from the fake"
    ok = asyncio.run(
        simulate_offline(lambda: Fake(2.0), "x", [["a"], ["b", "c"]], "fake", {"k": 1})
    )
    assert ok.predictions == [[2.0], [2.0, 2.0]] and ok.details == {"k": 1}


def test_model_cache_reads_each_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neuronbench.scorers.simulators.base import ModelCache

    reads: list[Path] = []
    cache = ModelCache(lambda p: reads.append(p) or len(reads))
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path)
    assert cache.get(Path("a")) == cache.get(tmp_path / "a") == 1  # same directory, one read
    assert cache.get(tmp_path) == 2 and len(reads) == 2
