"""``neuronbench score``: given explanations scored through the real CLI, checked against numpy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from neuronbench.cli import main
from neuronbench.datasets import (
    ActivationRecord,
    DatasetCard,
    NeuronDataset,
    NeuronRecord,
    scoring_records,
)
from neuronbench.scorers.score_explanations import load_candidates
from neuronbench.scorers.simulators.lexical import LexicalSimulator
from tests.conftest import make_neuron
from tests.evals._helpers import unique_neuron


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Two full unique-token neurons and one without random records (a hand-written file)."""
    ds = NeuronDataset(card=DatasetCard(subject="test-subject", corpus="unit"))
    no_random = make_neuron(layer=1, index=0, n_random=0, n_tokens_per_record=12, seed=3)
    ds.add([unique_neuron(0, 0), unique_neuron(0, 1), no_random])
    return ds.save(tmp_path / "ds")


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out.strip().splitlines(), out.err


def naming(records: list[ActivationRecord]) -> str:
    """An explanation quoting the strongest token of each record: predictions that vary."""
    tokens = [r.tokens[int(np.argmax(r.activations))].strip() for r in records]
    return "the tokens " + ", ".join(f'"{t}"' for t in tokens)


def correlations(
    top: list[ActivationRecord], rand: list[ActivationRecord], preds: list[list[float]]
) -> dict[str, float | None]:
    """Pearson correlation of pooled real activations and predictions, by numpy; a constant
    prediction of varying activations explains nothing (0); no records: None."""

    def corr(recs: list[ActivationRecord], pred: list[list[float]]) -> float | None:
        if not recs:
            return None
        real, predicted = np.concatenate([r.activations for r in recs]), np.concatenate(pred)
        assert real.std() > 0
        if predicted.std() == 0:
            return 0.0
        return float(np.corrcoef(real, predicted)[0, 1])

    return {
        "top_and_random": corr(top + rand, preds),
        "top_only": corr(top, preds[: len(top)]),
        "random_only": corr(rand, preds[len(top) :]),
    }


def oracle(
    explanation: str, top: list[ActivationRecord], rand: list[ActivationRecord]
) -> dict[str, float | None]:
    """:func:`correlations` of the lexical simulator's own predictions."""
    sim = asyncio.run(LexicalSimulator().simulate(explanation, [r.tokens for r in top + rand]))
    assert sim.predictions is not None
    return correlations(top, rand, sim.predictions)


def neuron(ds: Path, key: str) -> NeuronRecord:
    return next(n for n in NeuronDataset.load(ds) if n.id.key == key)


def test_scores_equal_numpy_correlation_of_lexical_predictions(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n0, n1 = neuron(dataset, "test-subject-L0-N0"), neuron(dataset, "test-subject-L0-N1")
    test0, valid1, test1 = (
        scoring_records(n, s) for n, s in ((n0, "test"), (n1, "valid"), (n1, "test"))
    )
    expl = {
        "a": naming(test0.top[:3] + test0.random[:3]),
        "b": naming(test0.top[3:]),
        "c": naming(valid1.top[:2] + test1.random[:4]),  # valid tokens predict nothing on test
    }
    f = tmp_path / "expl.jsonl"
    lines = [
        {"neuron": "0/0", "explanation": expl["a"], "name": "mine"},
        {"neuron": "test-subject/0/0", "explanation": expl["b"]},  # unnamed: numbered 2
        {"neuron": "test-subject-L0-N1", "explanation": expl["c"]},
    ]
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))

    rc, out, _ = cli(["score", str(dataset), "--explanations", str(f), "--simulator",
                      "lexical", "--split", "test", "--json"], capsys)  # fmt: skip
    assert rc == 0
    rows = json.loads(out[-1])["rows"]
    assert [(r["neuron"], r["candidate"]) for r in rows] == [
        ("test-subject-L0-N0", "mine"),
        ("test-subject-L0-N0", "2"),
        ("test-subject-L0-N1", "1"),
    ]
    wanted = [
        oracle(expl["a"], test0.top, test0.random),
        oracle(expl["b"], test0.top, test0.random),
    ]
    wanted.append(oracle(expl["c"], test1.top, test1.random))
    for row, want in zip(rows, wanted, strict=True):
        assert row["status"] == "ok", row
        for group, value in want.items():
            assert row[group] == pytest.approx(value, abs=1e-12), (row["candidate"], group)
    assert 0 not in (rows[0]["random_only"], rows[2]["random_only"])  # real correlations too
    assert rows[0]["top_and_random"] > 0.2  # names test records: a real, non-trivial score
    assert any(f"{rows[0]['top_and_random']:8.3f}" in line for line in out[:-1])


def test_records_all_scores_every_record_and_splits_skip_small_neurons(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = neuron(dataset, "test-subject-L1-N0")
    full = neuron(dataset, "test-subject-L0-N0")
    text = {"small": naming(small.top[:4]), "full": naming(full.top[:5] + full.random[:5])}
    f = tmp_path / "expl.json"
    f.write_text(json.dumps({"1/0": [text["small"]], "0/0": {"x": text["full"]}}))
    base = ["score", str(dataset), "--explanations", str(f), "--simulator", "lexical", "--json"]

    rc, out, _ = cli(base, capsys)  # default split valid: the small neuron cannot fill it
    assert rc == 0
    rows = {r["neuron"]: r for r in json.loads(out[-1])["rows"]}
    skipped = rows["test-subject-L1-N0"]
    assert skipped["status"] == "skipped" and skipped["top_and_random"] is None
    assert "test-subject/1/0" in skipped["reason"] and "'valid'" in skipped["reason"]
    assert rows["test-subject-L0-N0"]["status"] == "ok"
    assert json.loads(out[-1])["summary"]["lexical"]["skipped"] == 1

    rc, out, _ = cli([*base, "--records", "all"], capsys)
    assert rc == 0
    rows = {r["neuron"]: r for r in json.loads(out[-1])["rows"]}
    want_small = oracle(text["small"], small.top, [])
    assert rows["test-subject-L1-N0"]["status"] == "ok"
    assert rows["test-subject-L1-N0"]["top_and_random"] == pytest.approx(
        want_small["top_and_random"], abs=1e-12
    )
    assert rows["test-subject-L1-N0"]["random_only"] is None  # it has no random records
    want_full = oracle(text["full"], full.top, full.random)
    for group, value in want_full.items():
        assert rows["test-subject-L0-N0"][group] == pytest.approx(value, abs=1e-12)


def test_neurons_filter_and_missing_explanations(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "expl.json"
    f.write_text(json.dumps({"0/0": 'the tokens "r2x1"', "0/1": "anything"}))
    rc, out, _ = cli(["score", str(dataset), "--explanations", str(f), "--simulator", "lexical",
                      "--neurons", "0/0,1/0", "--json"], capsys)  # fmt: skip
    assert rc == 0
    rows = json.loads(out[-1])["rows"]
    assert [(r["neuron"], r["status"]) for r in rows] == [
        ("test-subject-L0-N0", "ok"),
        ("test-subject-L1-N0", "missing"),
    ]


@pytest.mark.parametrize(
    ("content", "name", "words"),
    [
        (json.dumps({"9/9": "x"}), "x.json", ["x.json", "'9/9'", "not in dataset"]),
        ("{not json", "x.json", ["x.json", "not JSON"]),
        ('{"neuron": "0/0"}\n', "x.jsonl", ["x.jsonl:1", "explanation"]),
        (json.dumps({"0/0": 3}), "x.json", ["x.json", "must be a string"]),
        (None, "absent.json", ["absent.json", "cannot read"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    name: str,
    words: list[str],
) -> None:
    f = tmp_path / name
    if content is not None:
        f.write_text(content)
    rc, out, err = cli(
        ["score", str(dataset), "--explanations", str(f), "--simulator", "lexical"], capsys
    )
    assert rc == 2 and out == []
    assert len(err.strip().splitlines()) == 1 and err.startswith("neuronbench score: error:")
    assert all(w in err for w in words), err


@pytest.mark.parametrize(
    ("simulator", "words"),
    [("logprob", ["'logprob'", "--model"]), ("nope", ["'nope'", "lexical"])],
)
def test_simulator_errors(
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    simulator: str,
    words: list[str],
) -> None:
    f = tmp_path / "e.json"
    f.write_text(json.dumps({"0/0": "x"}))
    rc, _, err = cli(
        ["score", str(dataset), "--explanations", str(f), "--simulator", simulator], capsys
    )
    assert rc == 2 and all(w in err for w in words), err


def test_candidate_file_forms(tmp_path: Path) -> None:
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"a": "one", "b": ["x", "y"], "c": {"h": "human", "g": "gpt"}}))
    assert load_candidates(f) == {
        "a": {"1": "one"},
        "b": {"1": "x", "2": "y"},
        "c": {"h": "human", "g": "gpt"},
    }
    lines = [{"neuron": "a", "explanation": "x", "name": "n"}, {"neuron": "a", "explanation": "y"}]
    listed = tmp_path / "l.json"
    listed.write_text(json.dumps(lines))
    assert load_candidates(listed) == {"a": {"n": "x", "2": "y"}}
    dup = tmp_path / "d.jsonl"
    dup.write_text("".join(json.dumps({**x, "name": "n"}) + "\n" for x in lines))
    with pytest.raises(Exception, match=r"d.jsonl:2: neuron 'a' has two candidates named 'n'"):
        load_candidates(dup)


def test_model_simulators_score_like_the_lexical_oracle(dataset: Path) -> None:
    """The generation simulator through score_explanations, its model scripted to answer 10
    on the quoted tokens: the scores are numpy's correlation of those answers."""
    from inspect_ai.model import get_model

    from neuronbench.scorers.score_explanations import score_explanations
    from tests.scorers.conftest import scripted_answer

    n0 = neuron(dataset, "test-subject-L0-N0")
    valid = scoring_records(n0, "valid", 2)
    text = naming(valid.top + valid.random)
    fired = {t.strip() for t in text.split('"')[1::2]}
    answer = scripted_answer(lambda tok: 10 if tok.strip() in fired else 0)
    model = get_model("mockllm/model", custom_outputs=answer)
    (row,) = score_explanations(
        [n0], {n0.id.key: {"x": text}}, ["generation"], model=model, n_records=2
    )
    assert row.status == "ok" and answer.calls == 4  # one call per record, 2 top + 2 random
    preds = [[10.0 if t.strip() in fired else 0.0 for t in r.tokens] for r in valid.all]
    want = correlations(valid.top, valid.random, preds)
    for group, value in want.items():
        assert getattr(row, group) == pytest.approx(value, abs=1e-12), group
