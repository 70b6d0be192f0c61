"""Plots: the four PNGs are written, valid, and drawn from the leaderboard's samples."""

from __future__ import annotations

from pathlib import Path

from conftest import RowSpec, write_logs

from neuronbench.results.leaderboard import build_leaderboard
from neuronbench.results.plots import PLOTS, make_plots


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


def test_plots_of_a_leaderboard_with_no_scored_neuron(tmp_path: Path) -> None:
    # every neuron skipped (e.g. a recording without random records): plots, not a crash
    spec = RowSpec("a", "baseline", mu=0.5, neurons=3, skipped=[0, 1, 2])
    lb = build_leaderboard(write_logs(tmp_path / "logs", [spec]), n_resamples=100)
    [row] = lb.rows
    assert (row.n_scored, row.skipped) == (0, 3)
    paths = make_plots(lb, tmp_path / "plots")
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths.values())
