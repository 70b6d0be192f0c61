"""Leaderboard from real (synthetic) inspect logs: rows, CIs vs truth, paired differences."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import MAIN_SPECS, RowSpec, neuron_key, true_score, write_logs

from neuronbench.results._cli import register
from neuronbench.results.leaderboard import build_leaderboard, write_leaderboard

STRONG, WEAK, CONTROL = MAIN_SPECS


def _expected(spec: RowSpec) -> dict[str, float]:
    skip = set(spec.failed) | set(spec.unscored) | set(spec.skipped)
    return {
        neuron_key(i): 0.0 if i in spec.constant else true_score(spec, i)
        for i in range(spec.neurons)
        if i not in skip
    }


COMMON = sorted(set.intersection(*(set(_expected(s)) for s in MAIN_SPECS)))
"""Neurons every main row scored: the weak row's 26 (it has 30 neurons, 4 not scored)."""


@pytest.fixture(scope="module")
def lb(main_logs: Path):  # type: ignore[no-untyped-def]
    return build_leaderboard(main_logs, n_resamples=4000)


def test_one_row_per_explainer_strategy_simulator_sorted_by_score(lb) -> None:  # type: ignore[no-untyped-def]
    assert [(r.explainer, r.strategy) for r in lb.rows] == [
        ("mockllm/strong", "token_activation_pairs"),
        ("mockllm/weak", "token_activation_pairs"),
        ("mockllm/strong", "shuffled"),
    ]
    assert [r.rank for r in lb.rows] == [1, 2, 3]
    assert [r.control for r in lb.rows] == [False, False, True]
    assert {r.simulator for r in lb.rows} == {"generation (mockllm/sim)"}
    assert {(r.dataset, r.split) for r in lb.rows} == {("synthetic", "valid")}


def test_row_figures_match_the_generated_scores(lb) -> None:  # type: ignore[no-untyped-def]
    assert len(COMMON) == 26
    for row, spec in zip(lb.rows, MAIN_SPECS, strict=True):
        expected = _expected(spec)
        on_common = [expected[k] for k in COMMON]
        assert row.neuron_scores == pytest.approx(expected)
        assert row.common == COMMON and row.n_common == 26
        assert row.mean == pytest.approx(np.mean(on_common))
        assert row.mean_own == pytest.approx(np.mean(list(expected.values())))
        assert row.random_only == pytest.approx(row.mean - 0.2)
        assert row.top_only == pytest.approx(row.mean + 0.1)
        assert row.frac_ge_0_8 == pytest.approx(np.mean([s >= 0.8 for s in on_common]))
        assert row.n_neurons == spec.neurons
        assert row.n_scored == len(expected)
        assert (row.failed, row.unscored) == (len(spec.failed), len(spec.unscored))
        assert (row.skipped, row.constant_simulation) == (0, 0)
        # two mock generate calls per sample (explainer + simulator), 110 tokens and $0.001 each
        assert row.tokens_per_neuron == 220
        assert row.explainer_tokens_per_neuron == 110
        assert row.cost_per_neuron == pytest.approx(0.002)
        assert row.epochs == 1 and math.isnan(row.retest_pearson)


def test_cis_contain_the_true_means(lb) -> None:  # type: ignore[no-untyped-def]
    for row, spec in zip(lb.rows, MAIN_SPECS, strict=True):
        assert row.ci_low < spec.mu < row.ci_high, row.label
        assert row.ci_low < row.mean < row.ci_high


def test_paired_differences_use_shared_neurons_only(lb) -> None:  # type: ignore[no-untyped-def]
    strong, weak, control = lb.rows
    assert lb.baseline == strong.label
    by_row = {c.row: c for c in lb.comparisons}
    assert set(by_row) == {weak.label, control.label}
    c = by_row[weak.label]
    assert c.n_shared == len(COMMON) == 26
    diff = np.mean(
        [
            true_score(WEAK, int(k.split("N")[-1])) - true_score(STRONG, int(k.split("N")[-1]))
            for k in COMMON
        ]
    )
    assert c.diff == pytest.approx(diff)
    # both means are over the same neurons, so the difference of means is the paired mean
    assert c.diff == pytest.approx(weak.mean - strong.mean, abs=1e-12)
    assert c.diff != pytest.approx(weak.mean_own - strong.mean_own, abs=1e-3)
    assert c.ci_low < WEAK.mu - STRONG.mu < c.ci_high
    # pairing cancels the shared per-neuron difficulty: far narrower than either row's CI
    assert (c.ci_high - c.ci_low) < 0.5 * (weak.ci_high - weak.ci_low)
    assert by_row[control.label].n_shared == 26


def test_baseline_option_picks_a_row_and_rejects_ambiguity(main_logs: Path) -> None:
    lb = build_leaderboard(main_logs, baseline="shuffled", n_resamples=500)
    assert lb.baseline is not None and "shuffled" in lb.baseline
    assert all(c.diff > 0 for c in lb.comparisons)
    assert build_leaderboard(main_logs, baseline="2", n_resamples=500).baseline == lb.rows[1].label
    with pytest.raises(ValueError, match="matches 2 rows"):
        build_leaderboard(main_logs, baseline="token_activation_pairs", n_resamples=500)


def test_written_markdown_csv_json(lb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = write_leaderboard(lb, tmp_path)
    md = paths["md"].read_text()
    assert "shuffled (control)" in md and "| 26/30 · 3 failed · 1 unscored |" in md
    assert "| 26 | 40/40 |" in md  # compared neurons, then coverage of a complete row
    assert "Paired differences" in md
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["explainer"] for r in rows] == ["mockllm/strong", "mockllm/weak", "mockllm/strong"]
    assert float(rows[1]["mean"]) == pytest.approx(lb.rows[1].mean)
    assert float(rows[1]["mean_own"]) == pytest.approx(lb.rows[1].mean_own)
    assert [rows[1][k] for k in ("n_common", "failed", "unscored", "skipped")] == [
        "26",
        "3",
        "1",
        "0",
    ]
    assert rows[1]["constant_simulation"] == "0"
    data = json.loads(paths["json"].read_text())
    assert data["rows"][0]["retest_pearson"] is None  # NaN → null, valid JSON
    assert data["comparisons"][0]["n_shared"] == 26


def test_epochs_give_test_retest_agreement(tmp_path: Path) -> None:
    spec = RowSpec("strong", "token_activation_pairs", mu=0.5, neurons=30, epochs=3, seed=5)
    write_logs(tmp_path, [spec])
    lb = build_leaderboard(tmp_path, epochs=3, n_resamples=500)
    [row] = lb.rows
    assert row.epochs == 3 and row.n_neurons == 30
    per_neuron = {
        neuron_key(i): np.mean([true_score(spec, i, e) for e in (1, 2, 3)]) for i in range(30)
    }
    assert row.neuron_scores == pytest.approx(per_neuron)
    assert row.retest_pearson > 0.9  # difficulty (sd 0.15) dominates noise (sd 0.03)
    assert 0.015 < row.retest_within_sd < 0.05
    assert build_leaderboard(tmp_path, epochs=2, n_resamples=500).rows[0].epochs == 2
    with pytest.raises(ValueError, match="fewer epochs"):
        build_leaderboard(tmp_path, epochs=4, n_resamples=500)


def main(argv: list[str]) -> int:
    """Run a results subcommand through its own parser (other areas' commands may be mid-build)."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except FileNotFoundError:  # what neuronbench.cli.main turns into exit code 2
        return 2


def test_cli_writes_outputs_and_prints_json(
    main_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["leaderboard", str(main_logs), "--out", str(tmp_path), "--json", "--no-plots"]) == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    assert [r["rank"] for r in data["rows"]] == [1, 2, 3]
    assert (tmp_path / "leaderboard.md").exists() and (tmp_path / "leaderboard.csv").exists()
    assert main(["leaderboard", str(tmp_path / "nope")]) == 2


def test_rows_are_compared_only_within_their_simulator(tmp_path) -> None:
    from neuronbench.results import build_leaderboard
    from tests.results.conftest import RowSpec, write_logs

    logs = write_logs(
        tmp_path,
        [
            RowSpec("a", "baseline", mu=0.5, neurons=12, seed=1, simulator="lexical"),
            RowSpec("a", "shuffled", mu=0.0, neurons=12, seed=2, simulator="lexical"),
            RowSpec("a", "baseline", mu=0.2, neurons=12, seed=3),
            RowSpec("a", "shuffled", mu=0.1, neurons=12, seed=4),
        ],
    )
    lb = build_leaderboard(logs, n_resamples=500)
    labels = {r.label: r for r in lb.rows}
    assert any(r.simulator == "lexical" for r in lb.rows)  # model-free: no role model in label
    assert len(lb.comparisons) == 2
    for c in lb.comparisons:
        assert labels[c.row].simulator == labels[c.baseline].simulator
        assert "baseline" in c.baseline and "shuffled" in c.row


TWO_SIMULATORS = [
    RowSpec("a", "token_activation_pairs", mu=0.5, neurons=12, seed=1, failed=[3]),
    RowSpec("a", "shuffled", mu=0.0, neurons=12, seed=2),
    RowSpec("a", "token_activation_pairs", mu=0.3, neurons=12, seed=3, simulator="lexical"),
    RowSpec("a", "shuffled", mu=0.1, neurons=12, seed=4, simulator="lexical", failed=[7]),
]
"""The default run's shape: the same strategies scored by two simulators."""


@pytest.fixture(scope="module")
def two_simulator_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("two_sims"), TWO_SIMULATORS)


def test_baseline_substring_is_matched_per_simulator(two_simulator_logs: Path) -> None:
    """`--baseline shuffled` on a two-simulator run: each row against its own simulator's
    shuffled row, paired on that simulator's common neurons (the help's own example)."""
    lb = build_leaderboard(two_simulator_logs, baseline="shuffled", n_resamples=500)
    by_label = {r.label: r for r in lb.rows}
    assert len(lb.comparisons) == 2
    for c in lb.comparisons:
        row, base = by_label[c.row], by_label[c.baseline]
        assert base.strategy == "shuffled" and row.strategy == "token_activation_pairs"
        assert row.simulator == base.simulator
        # oracle: the paired mean over the neurons both rows of this simulator scored
        lexical = row.simulator == "lexical"
        row_spec, base_spec = [s for s in TWO_SIMULATORS if (s.simulator == "lexical") == lexical]
        expected_row, expected_base = _expected(row_spec), _expected(base_spec)
        shared = sorted(set(expected_row) & set(expected_base))
        assert c.n_shared == len(shared) == 11
        assert c.diff == pytest.approx(
            np.mean([expected_row[k] - expected_base[k] for k in shared])
        )
    # a rank still names one row: only its simulator gets comparisons
    ranked = build_leaderboard(two_simulator_logs, baseline="1", n_resamples=500)
    assert [c.baseline for c in ranked.comparisons] == [lb.rows[0].label]
    with pytest.raises(ValueError, match="matches no row"):
        build_leaderboard(two_simulator_logs, baseline="highlighted", n_resamples=500)
    # two rows of ONE simulator match: ambiguous, and the message names them
    with pytest.raises(ValueError, match=r"matches 2 rows of one simulator \(mockllm/a · "):
        build_leaderboard(two_simulator_logs, baseline="mockllm/a", n_resamples=500)


def test_cli_baseline_per_simulator_prints_one_table_per_simulator(
    two_simulator_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["leaderboard", str(two_simulator_logs), "--out", str(tmp_path), "--no-plots"]
    assert main([*args, "--baseline", "shuffled"]) == 0
    out = capsys.readouterr().out
    assert out.count("Paired differences vs **mockllm/a · shuffled · ") == 2
    assert main([*args, "--baseline", "mockllm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuronbench leaderboard: error: --baseline 'mockllm' matches 2 rows")


def test_help_texts_print_no_doubled_percent() -> None:
    """argparse %-formats argument help but not descriptions: a '%%' written into a
    description prints as '%%' (and a bare '%' in argument help crashes --help)."""
    from neuronbench.cli import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert "leaderboard" in sub.choices
    for name, subparser in sub.choices.items():
        assert "%%" not in subparser.format_help(), name
    assert "bootstrap 95% CI" in " ".join(sub.choices["leaderboard"].format_help().split())
