"""Leaderboard plots (matplotlib, Agg backend, PNG).

Four views a reader needs beside the table: how scores are spread per row (a mean
hides a bimodal explainer), how they vary by layer (later layers are harder in the
paper), score against firing rate (rare neurons have few nonzero activations, so their
correlations are noisy and often inflated by one top record: the rare-neuron caveat),
and cost against score (what a point of score costs).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuronbench._atomic import atomic_path
from neuronbench.results.bootstrap import bootstrap_mean

if TYPE_CHECKING:
    from neuronbench.results.leaderboard import Leaderboard, Row

PLOTS = ("score_distribution", "score_by_layer", "score_vs_firing_rate", "cost_vs_score")
"""File stems of the plots ``make_plots`` writes (``<stem>.png``)."""


def _short(row: Row) -> str:
    control = " (control)" if row.control else ""
    return f"#{row.rank} {row.explainer} · {row.strategy}{control}"


def _scored(lb: Leaderboard, row: Row) -> Any:
    """This row's scored samples, averaged over epochs: one line per neuron."""
    s = lb.samples
    s = s[(s["row"] == row.label) & (s["dataset"] == row.dataset) & (s["split"] == row.split)]
    s = s[s["status"] == "ok"]
    return s.groupby("neuron").agg(
        score=("score", "mean"), layer=("layer", "first"), firing_rate=("firing_rate", "first")
    )


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def make_plots(lb: Leaderboard, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the four PNG plots of ``lb`` into ``out_dir``; returns stem → path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    out = Path(out_dir)
    paths = {stem: out / f"{stem}.png" for stem in PLOTS}
    rows = lb.rows
    per_row = [_scored(lb, r) for r in rows]
    colors = plt.get_cmap("tab10")
    height = max(3.0, 0.5 * len(rows) + 1.5)

    # score distribution: box per row plus the neurons as jittered dots
    fig, ax = plt.subplots(figsize=(8, height))
    data = [d["score"].to_numpy() for d in per_row]
    positions = list(range(len(rows), 0, -1))
    nonempty = [(p, x) for p, x in zip(positions, data, strict=True) if x.size]
    if nonempty:
        ax.boxplot(
            [x for _, x in nonempty],
            positions=[p for p, _ in nonempty],
            vert=False,
            widths=0.6,
            showfliers=False,
        )
    rng = np.random.default_rng(0)
    for i, (p, x) in enumerate(zip(positions, data, strict=True)):
        ax.scatter(x, p + rng.uniform(-0.2, 0.2, x.size), s=8, alpha=0.5, color=colors(i % 10))
    ax.set_yticks(positions, [_short(r) for r in rows])
    ax.axvline(0.8, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("simulation score (top-and-random correlation) per neuron")
    ax.set_title("Score distribution per explainer")
    _save(fig, paths["score_distribution"])
    plt.close(fig)

    # mean score by layer, bootstrap 95% CI as error bars
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (r, d) in enumerate(zip(rows, per_row, strict=True)):
        layers = sorted(int(v) for v in d["layer"].dropna().unique())
        if not layers:
            continue
        cis = [
            bootstrap_mean(d[d["layer"] == layer]["score"].to_numpy(), n_resamples=2000)
            for layer in layers
        ]
        means = np.array([c.estimate for c in cis])
        err = np.array([[c.estimate - c.low, c.high - c.estimate] for c in cis]).T
        err = np.nan_to_num(err)
        ax.errorbar(
            layers, means, yerr=err, marker="o", capsize=3, label=_short(r), color=colors(i % 10)
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("mean score (95% CI)")
    ax.set_title("Mean score by layer")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _save(fig, paths["score_by_layer"])
    plt.close(fig)

    # score vs firing rate (log x): rare neurons are where scores are least reliable
    fig, ax = plt.subplots(figsize=(8, 4.5))
    plotted = False
    for i, (r, d) in enumerate(zip(rows, per_row, strict=True)):
        d = d[d["firing_rate"] > 0]
        plotted = plotted or not d.empty
        ax.scatter(
            d["firing_rate"], d["score"], s=10, alpha=0.6, label=_short(r), color=colors(i % 10)
        )
    if plotted:  # a log axis with no positive data cannot be drawn (no row scored anything)
        ax.set_xscale("log")
    ax.set_xlabel("firing rate (fraction of tokens with activation > 0)")
    ax.set_ylabel("score")
    ax.set_title("Score vs firing rate (rare neurons: few nonzero activations, noisy scores)")
    ax.legend(fontsize=7)
    _save(fig, paths["score_vs_firing_rate"])
    plt.close(fig)

    # cost vs score: dollars when priced, else tokens
    priced = any(math.isfinite(r.cost_per_neuron) for r in rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, r in enumerate(rows):
        x = r.cost_per_neuron if priced else r.tokens_per_neuron
        if not math.isfinite(x) or not math.isfinite(r.mean):
            continue
        yerr = None
        if math.isfinite(r.ci_low):
            yerr = [[r.mean - r.ci_low], [r.ci_high - r.mean]]
        ax.errorbar(
            [x], [r.mean], yerr=yerr, marker="o", capsize=3, color=colors(i % 10), label=_short(r)
        )
        ax.annotate(
            f"#{r.rank}", (x, r.mean), textcoords="offset points", xytext=(5, 5), fontsize=8
        )
    ax.set_xlabel("cost per neuron ($)" if priced else "tokens per neuron (no pricing in the logs)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.set_ylabel("mean score (95% CI)")
    ax.set_title("Cost vs score")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    _save(fig, paths["cost_vs_score"])
    plt.close(fig)
    return paths
