"""Rows are ranked and compared on the neurons every row of a simulator scored.

The trap the common set closes: row B scores exactly 0.05 below row A on every neuron,
but B has no score on its 73 hardest neurons (failed, unscored, skipped). Averaged over
its own scored neurons, B looks better than A; on the common neurons it is 0.05 worse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import RowSpec, neuron_key, true_score, write_logs

from neuronbench.results.bootstrap import bootstrap_mean
from neuronbench.results.leaderboard import build_leaderboard, to_markdown

N = 200
A = RowSpec("a", "token_activation_pairs", mu=0.40, neurons=N, seed=11)
_HARDEST = sorted(range(N), key=lambda i: true_score(A, i))[:73]
B = RowSpec(
    "b",
    "token_activation_pairs",
    mu=0.35,
    neurons=N,
    seed=11,  # same noise as A: B − A is exactly −0.05 on every neuron
    failed=_HARDEST[:40],
    unscored=_HARDEST[40:60],
    skipped=_HARDEST[60:],
)
RESAMPLES = 2000


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("common"), [A, B])


def test_row_missing_its_hardest_neurons_ranks_below_the_better_row(logs: Path) -> None:
    lb = build_leaderboard(logs, n_resamples=RESAMPLES)
    a, b = lb.rows
    assert (a.explainer, b.explainer) == ("mockllm/a", "mockllm/b")  # A ranks first
    common = sorted(neuron_key(i) for i in range(N) if i not in _HARDEST)
    assert a.common == b.common == common and a.n_common == b.n_common == 127
    # the trap: over their own scored neurons B looks better than A
    assert b.mean_own > a.mean_own
    # B's mean and CI are over the common neurons, exactly as a bootstrap of those scores
    b_scores = [true_score(B, int(k.split("N")[-1])) for k in common]
    expected = bootstrap_mean(b_scores, n_resamples=RESAMPLES, seed=0)
    assert (b.mean, b.ci_low, b.ci_high) == pytest.approx(
        (expected.estimate, expected.low, expected.high)
    )
    assert b.mean - a.mean == pytest.approx(-0.05, abs=1e-12)
    [c] = lb.comparisons
    assert (c.row, c.baseline, c.n_shared) == (b.label, a.label, 127)
    assert c.diff == pytest.approx(-0.05, abs=1e-12)
    assert c.ci_low == pytest.approx(-0.05, abs=1e-12) and c.ci_high == pytest.approx(-0.05)
    # coverage is its own set of columns, from each sample's score status
    assert (a.n_scored, a.failed, a.unscored, a.skipped) == (200, 0, 0, 0)
    assert (b.n_scored, b.failed, b.unscored, b.skipped) == (127, 40, 20, 13)
    md = to_markdown(lb)
    assert "| 127/200 · 40 failed · 20 unscored · 13 skipped |" in md


def test_constant_simulations_are_scored_zero_and_counted(tmp_path: Path) -> None:
    ok = RowSpec("a", "baseline", mu=0.5, neurons=12, seed=1)
    flat = RowSpec("b", "baseline", mu=0.5, neurons=12, seed=2, constant=[0, 3, 7], failed=[1])
    lb = build_leaderboard(write_logs(tmp_path, [ok, flat]), n_resamples=500)
    row = next(r for r in lb.rows if r.explainer == "mockllm/b")
    assert row.constant_simulation == 3 and row.failed == 1
    assert row.n_scored == 11 and row.n_common == 11  # constant neurons are scored (0)
    scores = [0.0 if i in flat.constant else true_score(flat, i) for i in range(12) if i != 1]
    assert row.mean == pytest.approx(np.mean(scores))
    assert [row.neuron_scores[neuron_key(i)] for i in flat.constant] == [0.0, 0.0, 0.0]
    line = next(ln for ln in to_markdown(lb).splitlines() if "mockllm/b" in ln)
    assert "| 11/12 · 1 failed | 3 |" in line


def test_a_row_that_scored_nothing_does_not_empty_the_comparison(tmp_path: Path) -> None:
    good = RowSpec("a", "baseline", mu=0.5, neurons=10, seed=1)
    dead = RowSpec("b", "baseline", mu=0.5, neurons=10, seed=2, failed=list(range(10)))
    lb = build_leaderboard(write_logs(tmp_path, [good, dead]), n_resamples=500)
    first, last = lb.rows
    assert first.explainer == "mockllm/a" and first.n_common == 10
    assert last.n_scored == 0 and last.n_common == 0 and np.isnan(last.mean)
    [c] = lb.comparisons
    assert c.n_shared == 0 and np.isnan(c.diff)
