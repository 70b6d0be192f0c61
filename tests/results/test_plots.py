"""Plots: the four PNGs are written, valid, and drawn from the leaderboard's samples."""

from __future__ import annotations

from pathlib import Path

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
