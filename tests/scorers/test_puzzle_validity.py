"""Puzzle validity: exact win counts with a word-matching simulator, and the CLI table.

The toy simulator predicts 1 on a token whose word is named in the explanation, so every
correlation is a phi coefficient of two 0/1 vectors, worked out by hand below."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from neuronbench.cli import main
from neuronbench.groundtruth.puzzles import load_puzzles, puzzle_records
from neuronbench.scorers import registry
from neuronbench.scorers.simulators.base import Simulation
from neuronbench.scorers.validity import (
    bootstrap_ci,
    score_puzzles,
    summarize_puzzles,
    validate_puzzles,
)
from tests.groundtruth.puzzle_helpers import ToyTokenizer

TOY = """puzzles:
- name: colours
  truth: red blue green
  false_explanations:
  - literal: red blue
  - too_broad: red blue green hat sky trees
  - different: dog
  sentences:
  - "A [red:10] hat."
  - "The [blue:10] sky."
  - "A wet dog."
  - "Tall [green:10] trees."
- name: pets
  truth: cat
  false_explanations:
  - literal: cat dog
  - too_broad: cat dog hat
  - different: hat
  - too_broad: cat dog hat red
  sentences:
  - "A [cat:10] sat."
  - "The [dog:10] ran."
  - "A red hat."
  - "Some [cat:10] food."
"""


def phi(n: int, n_real: int, n_pred: int, both: int) -> float:
    """Pearson r of two 0/1 vectors of length n."""
    return (both * n - n_real * n_pred) / math.sqrt(n_real * (n - n_real) * n_pred * (n - n_pred))


class WordSim:
    """Predicts 1 on tokens whose (lower-case) word the explanation names."""

    name = "words"

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        words = set(re.findall(r"[a-z]+", explanation.lower()))
        return Simulation([[float(t.strip().lower() in words) for t in r] for r in records])


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(TOY, encoding="utf-8")
    return path


def test_exact_scores_and_win_counts(toy: Path) -> None:
    puzzles = load_puzzles(toy)
    neurons = puzzle_records(puzzles, ToyTokenizer())
    scores = asyncio.run(score_puzzles(WordSim(), "words", puzzles, neurons))
    # 16 tokens per puzzle, 3 fire. colours: the truth names exactly the firing words
    assert scores["colours"] == pytest.approx(
        {
            "truth": 1.0,
            "literal": phi(16, 3, 2, 2),
            "too_broad": phi(16, 3, 6, 3),
            "different": phi(16, 3, 1, 0),
        }
    )
    # pets: "cat" misses the dog, so the literal list (exact) and the first too_broad win
    assert scores["pets"] == pytest.approx(
        {
            "truth": phi(16, 3, 2, 2),
            "literal": 1.0,
            "too_broad": phi(16, 3, 4, 3),
            "different": phi(16, 3, 1, 0),
            "too_broad_2": phi(16, 3, 5, 3),
        }
    )
    kinds = {p.name: p.candidate_kinds() for p in puzzles}
    assert kinds["pets"]["too_broad_2"] == "too_broad"
    r = summarize_puzzles("words", scores, kinds)
    assert (r.wins, r.n_puzzles, r.win_rate) == (1, 2, 0.5)
    assert r.random_expectation == pytest.approx((1 / 4 + 1 / 5) / 2)
    assert r.per_kind == {"different": 1.0, "literal": 0.5, "too_broad": 0.5}
    assert r.per_kind_n == {"different": 2, "literal": 2, "too_broad": 2}
    assert r.auc == pytest.approx((3 + 2) / 7)  # pets: beats different and too_broad_2
    assert r.top_kind == {"literal": 1, "truth": 1}
    assert r.ci[0] <= 0.5 <= r.ci[1] and r.ci[0] >= 0 and r.ci[1] <= 1


def test_ties_never_count_as_wins() -> None:
    scores = {"p": {"truth": 0.0, "literal": 0.0, "different": None}}
    r = summarize_puzzles("x", scores, {"p": {"literal": "literal", "different": "different"}})
    assert r.wins == 0 and r.per_kind == {"different": 1.0, "literal": 0.0}
    assert r.top_kind == {"literal": 1, "truth": 1} and r.n_unscored == 1
    # the same predictions correlate to within float rounding: still a tie
    near = {"p": {"truth": 0.522562972935014, "literal": 0.5225629729350139, "different": 0.1}}
    r = summarize_puzzles("x", near, {"p": {"literal": "literal", "different": "different"}})
    assert r.wins == 0 and r.auc == 0.75 and r.top_kind == {"literal": 1, "truth": 1}


def test_bootstrap_ci_matches_a_brute_force_resample() -> None:
    values = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    lo, hi = bootstrap_ci(values, n_boot=500, seed=3)
    idx = np.random.default_rng(3).integers(0, 8, size=(500, 8))
    means = np.asarray(values)[idx].mean(axis=1)
    assert (lo, hi) == (np.percentile(means, 2.5), np.percentile(means, 97.5))
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = registry.SimulatorSpec(lambda model: WordSim(), needs_model=False)
    monkeypatch.setitem(registry.SIMULATORS, "words", spec)
    monkeypatch.setattr("neuronbench.scorers._cli.load_tokenizer", lambda name: ToyTokenizer())


def test_validate_puzzles_runs_registered_simulators(toy: Path, fake_registry: None) -> None:
    (r,) = validate_puzzles(str(toy), ["words"], ToyTokenizer())
    assert r.simulator == "words" and r.wins == 1


def test_cli_prints_the_table_and_json(
    toy: Path, fake_registry: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["validate", "--puzzles", str(toy), "--simulator", "words", "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    header = next(i for i, x in enumerate(lines) if x.startswith("simulator"))
    assert lines[header].split()[-3:] == ["different", "literal", "too_broad"]
    row = lines[header + 1].split()
    assert row[:3] == ["words", "1/2", "0.50"] and row[-3:] == ["1.00", "0.50", "0.50"]
    assert any(x.strip() == "words      literal 1, truth 1" for x in lines)
    out = json.loads(lines[-1])["simulators"]["words"]
    assert out["wins"] == 1 and out["scores"]["colours"]["truth"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate"], "give a planted dataset directory or --puzzles FILE"),
        (["validate", "somewhere", "--puzzles", "x.yaml"], "(one of them)"),
        (["validate", "--puzzles", "TOY", "--simulator", "nope"], "unknown simulator 'nope'"),
        (["validate", "--puzzles", "TOY", "--scorer", "embedding"], "simulators only"),
        (["validate", "--puzzles", "TOY", "--simulator", "logprob"], "needs --model"),
        (["validate", "--puzzles", "BAD", "--simulator", "words"], "puzzle 2 ('pets') sentence 1"),
    ],
)
def test_cli_errors_are_one_line(
    toy: Path,
    fake_registry: None,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    bad = toy.with_name("bad.yaml")
    bad.write_text(TOY.replace("[cat:10] sat", "[cat:10 sat"), encoding="utf-8")
    argv = [{"TOY": str(toy), "BAD": str(bad)}.get(a, a) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("neuronbench validate: error: ")
    assert message in err[0]
