"""Plots: written as PNGs, and readable: the figure objects are inspected for labels that
name the simulator, marked rows without scores, a labelled 0.8 line, a legend that covers
no point, ticks that suit the range, and an all-failed log that says so without warnings."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import RowSpec, write_logs

from neuronbench.results._cli import register
from neuronbench.results.leaderboard import Leaderboard, build_leaderboard
from neuronbench.results.plots import (
    PLOTS,
    WELL_EXPLAINED,
    figures,
    make_plots,
    no_score_note,
    plots_dir,
    row_label,
)

N = 6
"""Neurons per synthetic row here: enough for a box and a layer mean, fast to log."""


@pytest.fixture(scope="module")
def mixed_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the real run's shape: one non-LLM baseline per simulator (same explainer and
    # strategy), and LLM rows that failed on every neuron
    return write_logs(
        tmp_path_factory.mktemp("mixed"),
        [
            RowSpec("none", "baseline", mu=0.3, neurons=N, simulator="embedding", seed=1),
            RowSpec("none", "baseline", mu=0.2, neurons=N, seed=2),
            RowSpec("smol", "highlighted", mu=0.5, neurons=N, failed=list(range(N)), seed=3),
        ],
    )


@pytest.fixture(scope="module")
def all_failed_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(
        tmp_path_factory.mktemp("all_failed"),
        [
            RowSpec("smol", "highlighted", mu=0.5, neurons=4, failed=[0, 1, 2, 3], seed=1),
            RowSpec(
                "smol", "baseline", mu=0.5, neurons=4, failed=[0], unscored=[1], skipped=[2, 3]
            ),
        ],
    )


@pytest.fixture()
def figs_of() -> Iterator[Any]:
    """Build (and afterwards close) the figures of a leaderboard, drawn so that tick labels
    and extents are final."""
    import matplotlib.pyplot as plt

    made: list[Any] = []

    def build(lb: Leaderboard, *stems: str) -> dict[str, Any]:
        figs = figures(lb, stems or PLOTS)
        made.extend(figs.values())
        for fig in figs.values():
            fig.canvas.draw()
        return figs

    yield build
    for fig in made:
        plt.close(fig)


def texts(fig: Any) -> list[str]:
    """Every free text, title and legend entry of ``fig``'s single axes."""
    [ax] = fig.axes
    legend = ax.get_legend()
    out = [t.get_text() for t in ax.texts] + [ax.get_title()]
    return out + ([t.get_text() for t in legend.get_texts()] if legend else [])


def legend_labels(fig: Any) -> list[str]:
    legend = fig.axes[0].get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def points(ax: Any) -> np.ndarray:
    """Display coordinates of every scatter point on ``ax``."""
    offsets = [c.get_offsets() for c in ax.collections if len(c.get_offsets())]
    return ax.transData.transform(np.concatenate(offsets)) if offsets else np.empty((0, 2))


def test_make_plots_writes_four_pngs(main_logs: Path, tmp_path: Path) -> None:
    lb = build_leaderboard(main_logs, n_resamples=200)
    paths = make_plots(lb, tmp_path)
    assert sorted(paths) == sorted(PLOTS)
    import matplotlib.image as mpimg

    for path in paths.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(path)
        assert img.shape[0] > 200 and img.shape[1] > 300
        assert img.std() > 0.01  # not a blank canvas


def test_labels_name_explainer_strategy_and_simulator(mixed_logs: Path, figs_of: Any) -> None:
    lb = build_leaderboard(mixed_logs, n_resamples=100)
    figs = figs_of(lb)
    ticks = [t.get_text() for t in figs["score_distribution"].axes[0].get_yticklabels()]
    assert ticks == [row_label(r) for r in lb.rows]
    assert len(set(ticks)) == 3  # the two none · baseline rows differ by simulator
    for r, label in zip(lb.rows, ticks, strict=True):
        assert f"{r.explainer} · {r.strategy} · {r.simulator}" in label
    baselines = [t for t in ticks if "none · baseline" in t]
    assert [t.endswith(" · embedding") for t in baselines].count(True) == 1
    scored = [row_label(r) for r in lb.rows if r.n_scored]
    for stem in ("score_by_layer", "score_vs_firing_rate", "cost_vs_score"):
        assert legend_labels(figs[stem]) == scored, stem


def test_rows_without_scores_are_marked_not_drawn(mixed_logs: Path, figs_of: Any) -> None:
    lb = build_leaderboard(mixed_logs, n_resamples=100)
    [failed] = [r for r in lb.rows if not r.n_scored]
    assert no_score_note(failed) == f"all failed (n={N})"
    figs = figs_of(lb)
    ax = figs["score_distribution"].axes[0]
    # the marker sits on the failed row's own line of the plot
    position = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)}
    [marker] = [t for t in ax.texts if t.get_text() == f"all failed (n={N})"]
    assert marker.get_position()[1] == position[row_label(failed)]
    # the failed row has no dots: only the scored rows' neurons are drawn
    assert len(points(ax)) == N * 2
    for stem in ("score_by_layer", "score_vs_firing_rate", "cost_vs_score"):
        fig = figs[stem]
        assert row_label(failed) not in legend_labels(fig), stem
        note = f"{row_label(failed)}: all failed (n={N})"
        assert any(note in t for t in texts(fig)), stem
    assert all(len(c.get_offsets()) for c in figs["score_vs_firing_rate"].axes[0].collections)


def test_an_all_failed_log_says_so_without_warnings(
    all_failed_logs: Path, tmp_path: Path, figs_of: Any
) -> None:
    lb = build_leaderboard(all_failed_logs, n_resamples=100)
    assert [r.n_scored for r in lb.rows] == [0, 0]
    assert sorted(no_score_note(r) or "" for r in lb.rows) == [
        "all failed (n=4)",
        "no scores: 1 failed, 1 unscored, 2 skipped (n=4)",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found" included
        figs = figs_of(lb)
        paths = make_plots(lb, tmp_path)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths.values())
    for stem, fig in figs.items():
        [ax] = fig.axes
        said = [t for t in [*ax.texts, ax.title] if "No scores to plot" in t.get_text()]
        assert len(said) == 1, stem
        assert "none of the 2 rows scored a neuron" in said[0].get_text()
        # the message fits the figure (a reader sees all of it)
        box = said[0].get_window_extent()
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, stem
        assert len(points(ax)) == 0 and not ax.lines[1:], stem
        if stem != "score_distribution":  # only the 0.8 line has a legend entry
            assert ax.get_legend() is None, stem
    marks = [t.get_text() for t in figs["score_distribution"].axes[0].texts]
    assert sorted(marks) == sorted(no_score_note(r) or "" for r in lb.rows)


def test_well_explained_line_is_labelled(mixed_logs: Path, figs_of: Any) -> None:
    lb = build_leaderboard(mixed_logs, n_resamples=100)
    fig = figs_of(lb, "score_distribution")["score_distribution"]
    [ax] = fig.axes
    [line] = [ln for ln in ax.lines if list(ln.get_xdata()) == [WELL_EXPLAINED] * 2]
    [entry] = [t for t in legend_labels(fig) if t == line.get_label()]
    assert entry.startswith("0.8: 'well explained'") and "Bills et al. 2023" in entry


@pytest.mark.parametrize("plot", ["score_vs_firing_rate", "score_by_layer", "cost_vs_score"])
def test_legend_covers_no_point(main_logs: Path, figs_of: Any, plot: str) -> None:
    fig = figs_of(build_leaderboard(main_logs, n_resamples=100), plot)[plot]
    [ax] = fig.axes
    legend = ax.get_legend().get_window_extent()
    drawn = np.concatenate(
        [points(ax)] + [ax.transData.transform(ln.get_xydata()) for ln in ax.lines]
    )
    assert len(drawn) > 0
    assert not any(legend.contains(x, y) for x, y in drawn)
    assert not legend.overlaps(ax.get_window_extent())
    tight = fig.get_tightbbox()  # what savefig(bbox_inches="tight") keeps
    assert tight.x1 * fig.dpi >= legend.x1 - 1  # the legend is in the PNG, not cut off


def tick_labels(ax: Any) -> list[tuple[float, str]]:
    """(value, text) of the x tick labels inside the view, majors and minors."""
    lo, hi = sorted(ax.get_xlim())
    ticks = [*ax.xaxis.get_major_ticks(), *ax.xaxis.get_minor_ticks()]
    return [
        (t.get_loc(), t.label1.get_text())
        for t in ticks
        if lo <= t.get_loc() <= hi and t.label1.get_text()
    ]


@pytest.mark.parametrize(
    ("low", "high", "scale"), [(0.3, 0.8, "linear"), (0.1, 0.9, "linear"), (0.002, 0.8, "log")]
)
def test_firing_rate_ticks_suit_the_range(
    mixed_logs: Path, figs_of: Any, low: float, high: float, scale: str
) -> None:
    lb = build_leaderboard(mixed_logs, n_resamples=100)
    # firing rates spread evenly (linear) or geometrically (log) over [low, high]
    t = lb.samples["index"].astype(float) / (N - 1)
    lb.samples["firing_rate"] = (
        low + (high - low) * t if scale == "linear" else low * (high / low) ** t
    )
    ax = figs_of(lb, "score_vs_firing_rate")["score_vs_firing_rate"].axes[0]
    assert ax.get_xscale() == scale  # log only over a decade or more
    labels = tick_labels(ax)
    assert len(labels) >= 3
    for value, text in labels:  # plain decimals: no "4×10⁻¹", no mathtext, no offset
        assert float(text.replace("\N{MINUS SIGN}", "-")) == pytest.approx(value, rel=1e-6), text
    assert ax.xaxis.get_offset_text().get_text() == ""
    in_range = [v for v, _ in labels if low <= v <= high]
    assert len(in_range) >= 2


def test_leaderboard_and_run_write_plots_to_the_same_place(
    mixed_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from neuronbench.pipeline import RunConfig, publish

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    cli_out = tmp_path / "leaderboard"
    args = parser.parse_args(["leaderboard", str(mixed_logs), "--out", str(cli_out)])
    assert args.func(args) == 0
    run_out = tmp_path / "run"
    publish(RunConfig(out=str(run_out), viewer=False), run_out, mixed_logs)
    expected = sorted(f"{stem}.png" for stem in PLOTS)
    for out in (cli_out, run_out):
        assert plots_dir(out) == out / "plots"
        assert sorted(p.name for p in plots_dir(out).iterdir()) == expected
        assert not list(out.glob("*.png"))  # none beside leaderboard.md
    capsys.readouterr()
    with pytest.raises(SystemExit):
        parser.parse_args(["leaderboard", "--help"])
    assert "OUT/plots" in " ".join(capsys.readouterr().out.split())
