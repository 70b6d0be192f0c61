"""Leaderboard plots (matplotlib, Agg backend, PNG).

Four views a reader needs beside the table: how scores are spread per row (a mean
hides a bimodal explainer), how they vary by layer (later layers are harder in the
paper), score against firing rate (rare neurons have few nonzero activations, so their
correlations are noisy and often inflated by one top record: the rare-neuron caveat),
and cost against score (what a point of score costs).

Every label names explainer · strategy · simulator, because rows of different
simulators share explainer and strategy (the non-LLM baseline runs once per simulator)
and are not on one scale. Rows without a single score are said to be so in words (a
marker on their row, a note under the other plots) rather than drawn as empty series,
and a leaderboard where no row scored anything gets a figure that says that instead of
empty axes. Legends sit outside the axes, so they never cover a point.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuronbench._atomic import atomic_path
from neuronbench.results.bootstrap import bootstrap_mean

if TYPE_CHECKING:
    from collections.abc import Callable

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from neuronbench.results.leaderboard import Leaderboard, Row

PLOTS = ("score_distribution", "score_by_layer", "score_vs_firing_rate", "cost_vs_score")
"""File stems of the plots ``make_plots`` writes (``<stem>.png``)."""

PLOTS_DIR = "plots"
"""Subdirectory of a results directory that holds the PNGs (see :func:`plots_dir`)."""

WELL_EXPLAINED = 0.8
"""Score Bills et al. (2023) count as a well-explained neuron; the leaderboard's ≥0.8 column."""

WELL_EXPLAINED_LABEL = f"{WELL_EXPLAINED}: 'well explained' (Bills et al. 2023; the ≥0.8 column)"
"""Legend text of the reference line at :data:`WELL_EXPLAINED`."""


def plots_dir(results_dir: str | os.PathLike[str]) -> Path:
    """Where the plots of a results directory go: ``<results_dir>/plots``.

    ``neuronbench run`` and ``neuronbench leaderboard`` both call this, so a reader finds
    the PNGs at the same place beside ``leaderboard.md`` whichever command wrote them.
    """
    return Path(results_dir) / PLOTS_DIR


def row_label(row: Row, *, where: bool = False, site_only: bool = False) -> str:
    """``#rank explainer · strategy · simulator``; ``where`` adds ``[site, dataset/split]``
    for leaderboards that mix sites, datasets or splits (the same row can then appear
    several times), or just ``[site]`` with ``site_only`` (each site one recording)."""
    control = " (control)" if row.control else ""
    label = f"#{row.rank} {row.explainer} · {row.strategy}{control} · {row.simulator}"
    if not where:
        return label
    return (
        f"{label} [{row.site}]" if site_only else f"{label} [{row.site}, {row.dataset}/{row.split}]"
    )


def no_score_note(row: Row) -> str | None:
    """Why ``row`` has no score, e.g. ``all failed (n=16)``; None when it scored a neuron.

    ``n`` counts samples (neuron × epoch), the unit of the leaderboard's failed /
    unscored / skipped columns; a row with no score has every sample in one of them.
    """
    if row.n_scored:
        return None
    counts = {"failed": row.failed, "unscored": row.unscored, "skipped": row.skipped}
    n = sum(counts.values())
    present = [(what, k) for what, k in counts.items() if k]
    if len(present) == 1:
        return f"all {present[0][0]} (n={n})"
    if not present:
        return "no samples"
    return "no scores: " + ", ".join(f"{k} {what}" for what, k in present) + f" (n={n})"


def no_scores_message(rows: list[Row]) -> str:
    """What a figure shows in place of data when no row scored a neuron."""
    if not rows:
        return "No scores to plot: the logs hold no leaderboard row"
    return (
        f"No scores to plot: none of the {len(rows)} rows scored a neuron\n"
        "(every sample failed, was unscored or skipped:\n"
        "see the leaderboard's coverage column)"
    )


def _scored(lb: Leaderboard, row: Row) -> Any:
    """This row's scored samples, averaged over epochs: one line per neuron."""
    s = lb.samples
    s = s[(s["row"] == row.label) & (s["dataset"] == row.dataset) & (s["split"] == row.split)]
    s = s[s["status"] == "ok"]
    return s.groupby("neuron").agg(
        score=("score", "mean"), layer=("layer", "first"), firing_rate=("firing_rate", "first")
    )


def _legend_outside(ax: Axes) -> None:
    """A legend right of the axes (it cannot cover data there); none without labels, so
    matplotlib has nothing to warn about."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _say_no_scores(ax: Axes, message: str) -> None:
    """Replace empty axes by ``message``: a reader must not mistake them for a plot."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(
        0.5,
        0.5,
        message,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=10,
    )


def _note_left_out(ax: Axes, left_out: list[str]) -> None:
    """List under the axes the rows this plot could not draw, and why."""
    if not left_out:
        return
    ax.text(
        0.0,
        -0.16,
        "not shown:\n" + "\n".join(left_out),
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize=7,
        color="dimgray",
    )


def _score_distribution(lb: Leaderboard, per_row: list[Any], labels: list[str]) -> Figure:
    """Box per row plus its neurons as jittered dots; rows without scores say why."""
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.transforms import blended_transform_factory

    rows = lb.rows
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.5 * len(rows) + 1.5)))
    positions = list(range(len(rows), 0, -1))
    data = [d["score"].to_numpy() for d in per_row]
    nonempty = [(p, x) for p, x in zip(positions, data, strict=True) if x.size]
    if nonempty:
        # ``vert`` is deprecated from matplotlib 3.10, ``orientation`` is new there
        old = tuple(int(v) for v in matplotlib.__version__.split(".")[:2]) < (3, 10)
        ax.boxplot(
            [x for _, x in nonempty],
            positions=[p for p, _ in nonempty],
            widths=0.6,
            showfliers=False,
            **({"vert": False} if old else {"orientation": "horizontal"}),
        )
    rng = np.random.default_rng(0)
    row_marker = blended_transform_factory(ax.transAxes, ax.transData)
    for i, (r, p, x) in enumerate(zip(rows, positions, data, strict=True)):
        if x.size:
            ax.scatter(x, p + rng.uniform(-0.2, 0.2, x.size), s=8, alpha=0.5, color=colors(i % 10))
            continue
        note = no_score_note(r) or ""
        ax.text(0.01, p, note, transform=row_marker, va="center", fontsize=8, style="italic")
    ax.axvline(WELL_EXPLAINED, color="grey", lw=0.8, ls="--", label=WELL_EXPLAINED_LABEL)
    if not nonempty:  # only the reference line: show the whole correlation range
        ax.set_xlim(-1.0, 1.0)
    ax.set_yticks(positions, labels)
    ax.set_ylim(0.4, len(rows) + 0.6)
    ax.set_xlabel("simulation score (top-and-random correlation) per neuron")
    ax.set_title("Score distribution per row" if nonempty else no_scores_message(rows))
    _legend_outside(ax)
    return fig


def _score_by_layer(lb: Leaderboard, per_row: list[Any], labels: list[str]) -> Figure:
    """Mean score per layer with bootstrap 95% CIs as error bars."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.set_title("Mean score by layer")
    if not any(len(d) for d in per_row):
        _say_no_scores(ax, no_scores_message(lb.rows))
        return fig
    left_out = []
    for i, (r, d, label) in enumerate(zip(lb.rows, per_row, labels, strict=True)):
        layers = sorted(int(v) for v in d["layer"].dropna().unique())
        if not layers:
            left_out.append(f"{label}: {no_score_note(r) or 'no layer in the logs'}")
            continue
        cis = [
            bootstrap_mean(d[d["layer"] == layer]["score"].to_numpy(), n_resamples=2000)
            for layer in layers
        ]
        means = np.array([c.estimate for c in cis])
        err = np.array([[c.estimate - c.low, c.high - c.estimate] for c in cis]).T
        err = np.nan_to_num(err)
        ax.errorbar(
            layers, means, yerr=err, marker="o", capsize=3, label=label, color=colors(i % 10)
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("mean score (95% CI)")
    _legend_outside(ax)
    _note_left_out(ax, left_out)
    return fig


def _firing_rate_axis(ax: Axes, rates: Any) -> bool:
    """Log x only when the firing rates span a decade or more, with plain tick labels.

    Over less than a decade (SmolLM2's gated units fire at 0.3-0.8) a log axis has no
    major tick and labels its minor ones "4×10⁻¹"; a linear axis reads better there.
    Returns whether the axis is logarithmic.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = rates[rates > 0]
    if positive.size == 0 or positive.max() / positive.min() < 10:
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        return False
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    return True


def _score_vs_firing_rate(lb: Leaderboard, per_row: list[Any], labels: list[str]) -> Figure:
    """Score against firing rate: rare neurons are where scores are least reliable."""
    import matplotlib.pyplot as plt
    import numpy as np

    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.set_title("Score vs firing rate (rare neurons: few nonzero activations, noisy scores)")
    finite = [d[np.isfinite(d["firing_rate"]) & np.isfinite(d["score"])] for d in per_row]
    if not any(len(d) for d in finite):
        _say_no_scores(ax, no_scores_message(lb.rows))
        return fig
    log = _firing_rate_axis(ax, np.concatenate([d["firing_rate"].to_numpy() for d in finite]))
    left_out = []
    for i, (r, d, label) in enumerate(zip(lb.rows, finite, labels, strict=True)):
        shown = d[d["firing_rate"] > 0] if log else d
        if log and len(shown) < len(d):
            left_out.append(f"{label}: {len(d) - len(shown)} neurons with firing rate 0 (log axis)")
        if shown.empty:
            if not len(d):
                left_out.append(f"{label}: {no_score_note(r) or 'no firing rate in the logs'}")
            continue
        ax.scatter(
            shown["firing_rate"], shown["score"], s=10, alpha=0.6, label=label, color=colors(i % 10)
        )
    ax.set_xlabel("firing rate (fraction of tokens with activation > 0)")
    ax.set_ylabel("score")
    _legend_outside(ax)
    _note_left_out(ax, left_out)
    return fig


def _cost_vs_score(lb: Leaderboard, labels: list[str]) -> Figure:
    """Mean score (95% CI) against cost per neuron: dollars when priced, else tokens."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = lb.rows
    colors = plt.get_cmap("tab10")
    priced = any(math.isfinite(r.cost_per_neuron) for r in rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.set_title("Cost vs score")
    if not any(r.n_scored for r in rows):
        _say_no_scores(ax, no_scores_message(rows))
        return fig
    left_out = []
    for i, (r, label) in enumerate(zip(rows, labels, strict=True)):
        x = r.cost_per_neuron if priced else r.tokens_per_neuron
        if not math.isfinite(x) or not math.isfinite(r.mean):
            why = no_score_note(r) or (
                "no neuron in common with its group" if math.isfinite(x) else "no cost in the logs"
            )
            left_out.append(f"{label}: {why}")
            continue
        yerr = None
        if math.isfinite(r.ci_low):
            yerr = [[r.mean - r.ci_low], [r.ci_high - r.mean]]
        ax.errorbar(
            [x], [r.mean], yerr=yerr, marker="o", capsize=3, color=colors(i % 10), label=label
        )
        ax.annotate(
            f"#{r.rank}", (x, r.mean), textcoords="offset points", xytext=(5, 5), fontsize=8
        )
    ax.set_xlabel("cost per neuron ($)" if priced else "tokens per neuron (no pricing in the logs)")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.set_ylabel("mean score (95% CI)")
    _legend_outside(ax)
    _note_left_out(ax, left_out)
    return fig


def figures(lb: Leaderboard, stems: tuple[str, ...] = PLOTS) -> dict[str, Figure]:
    """The plots ``stems`` of ``lb`` as open figures (stem → figure); the caller closes them.

    Separate from :func:`make_plots` so the figures themselves (labels, legends, texts,
    ticks) can be inspected, not just the PNGs.
    """
    import matplotlib

    matplotlib.use("Agg")

    unknown = sorted(set(stems) - set(PLOTS))
    if unknown:
        raise ValueError(f"unknown plots {unknown}; known: {', '.join(PLOTS)}")
    per_row = [_scored(lb, r) for r in lb.rows]
    recordings = {(r.site, r.dataset, r.split) for r in lb.rows}
    site_only = len(recordings) == len({r.site for r in lb.rows})
    labels = [row_label(r, where=len(recordings) > 1, site_only=site_only) for r in lb.rows]
    build: dict[str, Callable[[], Figure]] = {
        "score_distribution": lambda: _score_distribution(lb, per_row, labels),
        "score_by_layer": lambda: _score_by_layer(lb, per_row, labels),
        "score_vs_firing_rate": lambda: _score_vs_firing_rate(lb, per_row, labels),
        "cost_vs_score": lambda: _cost_vs_score(lb, labels),
    }
    return {stem: build[stem]() for stem in stems}


def make_plots(lb: Leaderboard, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the four PNG plots of ``lb`` into ``out_dir``; returns stem → path.

    Callers writing a results directory pass ``plots_dir(results_dir)``.
    """
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    paths = {stem: out / f"{stem}.png" for stem in PLOTS}
    figs = figures(lb)
    try:
        for stem, fig in figs.items():
            with atomic_path(paths[stem]) as tmp:
                fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        for fig in figs.values():
            plt.close(fig)
    return paths
