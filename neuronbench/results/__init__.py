"""neuronbench.results: leaderboards, paired comparisons, plots and a static neuron viewer.

Everything here is built from ``explain_neurons`` inspect logs only (no model code).
Importing this package is light: pandas, inspect and matplotlib load inside functions.
"""

from neuronbench.results.bootstrap import (
    Agreement,
    Interval,
    bootstrap_mean,
    paired_bootstrap_diff,
    retest_agreement,
)
from neuronbench.results.leaderboard import (
    Comparison,
    Leaderboard,
    Row,
    build_leaderboard,
    to_csv,
    to_markdown,
    write_leaderboard,
)
from neuronbench.results.logs import load_samples
from neuronbench.results.plots import make_plots
from neuronbench.results.viewer import write_viewer

__all__ = [
    "Agreement",
    "Comparison",
    "Interval",
    "Leaderboard",
    "Row",
    "bootstrap_mean",
    "build_leaderboard",
    "load_samples",
    "make_plots",
    "paired_bootstrap_diff",
    "retest_agreement",
    "to_csv",
    "to_markdown",
    "write_leaderboard",
    "write_viewer",
]
