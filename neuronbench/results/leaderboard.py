"""The leaderboard: one row per explainer × strategy × simulator, from inspect logs.

Each row's headline is the mean simulation score (top-and-random correlation) over the
neurons it scored, with a bootstrap 95% CI over neurons. Failed and unscored neurons
are counted, never averaged in as zeros. Differences between rows use a *paired*
bootstrap over the neurons both rows scored (see ``bootstrap.paired_bootstrap_diff``).
With several epochs (explanations sampled N times per neuron) a neuron's score is the
mean over its scored epochs, and the row also reports test-retest agreement.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuronbench._atomic import write_json, write_text
from neuronbench.results.bootstrap import (
    DEFAULT_RESAMPLES,
    bootstrap_mean,
    paired_bootstrap_diff,
    retest_agreement,
)
from neuronbench.results.logs import load_samples

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Row:
    """One leaderboard row: an explainer, a prompt strategy and a simulator."""

    rank: int
    """1-based position, by mean score descending."""
    label: str
    """``explainer · strategy · simulator``; what ``--baseline`` matches."""
    explainer: str
    """The eval's model (the explainer)."""
    strategy: str
    """Explainer prompt strategy (task arg ``strategy``)."""
    simulator: str
    """Simulator kind and model, e.g. ``logprob (neuronbench/smollm2)``."""
    dataset: str
    """Neuron dataset name (task arg ``dataset``, last path component)."""
    split: str
    """Scoring split (valid or test)."""
    control: bool
    """True for control strategies (empty / shuffled explanations): a floor, not an entry."""
    n_neurons: int
    """Distinct neurons in the logs for this row."""
    n_scored: int
    """Neurons with a score in at least one epoch; the mean is over these."""
    failed: int
    """Samples (neuron × epoch) that failed: unparseable simulation, sample error, no score."""
    unscored: int
    """Samples with no score by design (e.g. constant activations): not the explainer's fault."""
    mean: float
    """Mean top-and-random score over scored neurons."""
    ci_low: float
    """Lower end of the bootstrap 95% CI of ``mean``."""
    ci_high: float
    """Upper end of the bootstrap 95% CI of ``mean``."""
    frac_ge_0_8: float
    """Fraction of scored neurons with score ≥ 0.8 (the paper's "well explained")."""
    frac_ge_0_5: float
    """Fraction of scored neurons with score ≥ 0.5."""
    random_only: float
    """Mean random-only score: how well the explanation predicts typical, not top, text."""
    top_only: float
    """Mean top-only score."""
    tokens_per_neuron: float
    """Mean tokens per sample (one explanation of one neuron), explainer and simulator."""
    explainer_tokens_per_neuron: float
    """Mean explainer tokens per sample (usage not under the simulator role)."""
    cost_per_neuron: float
    """Mean cost in dollars per sample from inspect's usage; NaN when no model is priced."""
    epochs: int
    """Epochs (independent explanations per neuron) in the logs."""
    retest_pearson: float
    """Correlation of scores across neurons between epochs (NaN with one epoch)."""
    retest_within_sd: float
    """Root mean within-neuron variance of scores across epochs (NaN with one epoch)."""
    extra: dict[str, float] = field(default_factory=dict)
    """Means of other scorers' values (detection, fuzzing, embedding), by ``scorer.key``."""
    neuron_scores: dict[str, float] = field(default_factory=dict, repr=False)
    """Neuron key → score (mean over scored epochs); the input of paired comparisons."""


@dataclass
class Comparison:
    """A paired difference ``row − baseline`` over the neurons both scored."""

    row: str
    """Label of the row compared."""
    baseline: str
    """Label of the baseline row."""
    diff: float
    """Mean over shared neurons of (row score − baseline score)."""
    ci_low: float
    """Lower end of the paired bootstrap 95% CI of ``diff``."""
    ci_high: float
    """Upper end of the paired bootstrap 95% CI of ``diff``."""
    n_shared: int
    """Neurons scored by both rows: the only ones the difference uses."""


@dataclass
class Leaderboard:
    """Rows sorted by mean score, paired comparisons against a baseline row."""

    rows: list[Row]
    """Rows, best first."""
    comparisons: list[Comparison]
    """Each other row against ``baseline``."""
    baseline: str | None
    """Label of the first baseline row; each simulator group has its own (see ``comparisons``)."""
    samples: Any = field(repr=False, default=None)
    """The per-sample table (``logs.load_samples``) the rows came from; feeds the plots."""
    n_resamples: int = DEFAULT_RESAMPLES
    """Bootstrap resamples behind every CI."""
    seed: int = 0
    """Bootstrap seed."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN → null) without the per-sample table."""
        rows = []
        for r in self.rows:
            d = asdict(r)
            d.pop("neuron_scores")
            rows.append(d)
        out = {
            "baseline": self.baseline,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "rows": rows,
            "comparisons": [asdict(c) for c in self.comparisons],
        }
        return _nan_to_none(out)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _mean(values: Any) -> float:
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _build_row(group: pd.DataFrame, n_resamples: int, seed: int) -> Row:
    first = group.iloc[0]
    ok = group[group["status"] == "ok"]
    per_neuron = ok.groupby("neuron")["score"].mean()
    scores = {str(k): float(v) for k, v in per_neuron.items()}
    ci = bootstrap_mean(list(scores.values()), n_resamples=n_resamples, seed=seed)
    epochs = int(group["epoch"].nunique())
    agreement = None
    if epochs >= 2:
        by_epoch: dict[str, dict[int, float]] = {}
        for rec in ok[["neuron", "epoch", "score"]].itertuples(index=False):
            by_epoch.setdefault(str(rec.neuron), {})[int(rec.epoch)] = float(rec.score)
        agreement = retest_agreement(by_epoch)
    extra_keys = sorted({k for e in group["extra"] for k in e})
    n = len(scores)
    return Row(
        rank=0,
        label=str(first["row"]),
        explainer=str(first["explainer"]),
        strategy=str(first["strategy"]),
        simulator=str(first["simulator"]),
        dataset=str(first["dataset"]),
        split=str(first["split"]),
        control=bool(first["control"]),
        n_neurons=int(group["neuron"].nunique()),
        n_scored=n,
        failed=int(group["status"].isin(["failed", "error", "missing"]).sum()),
        unscored=int((group["status"] == "unscored").sum()),
        mean=ci.estimate,
        ci_low=ci.low,
        ci_high=ci.high,
        frac_ge_0_8=sum(s >= 0.8 for s in scores.values()) / n if n else float("nan"),
        frac_ge_0_5=sum(s >= 0.5 for s in scores.values()) / n if n else float("nan"),
        random_only=_mean(ok.groupby("neuron")["random_only"].mean()),
        top_only=_mean(ok.groupby("neuron")["top_only"].mean()),
        tokens_per_neuron=_mean(group["tokens"]),
        explainer_tokens_per_neuron=_mean(group["explainer_tokens"]),
        cost_per_neuron=_mean(group["cost"]) if group["cost"].notna().any() else float("nan"),
        epochs=epochs,
        retest_pearson=agreement.pearson if agreement else float("nan"),
        retest_within_sd=agreement.within_sd if agreement else float("nan"),
        extra={k: _mean(e.get(k, float("nan")) for e in group["extra"]) for k in extra_keys},
        neuron_scores=scores,
    )


def find_row(rows: list[Row], spec: str) -> Row:
    """The row named by ``spec``: a 1-based rank, an exact label, or a unique substring.

    Raises:
        ValueError: nothing or several rows match.
    """
    if spec.isdigit() and 1 <= int(spec) <= len(rows):
        return rows[int(spec) - 1]
    exact = [r for r in rows if r.label == spec]
    if exact:
        return exact[0]
    hits = [r for r in rows if spec in r.label]
    if len(hits) != 1:
        labels = "; ".join(r.label for r in rows)
        raise ValueError(f"--baseline {spec!r} matches {len(hits)} rows (rows: {labels})")
    return hits[0]


def build_leaderboard(
    log_dir: str | os.PathLike[str],
    *,
    baseline: str | None = None,
    epochs: int | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Leaderboard:
    """Build the leaderboard from every ``explain_neurons`` log under ``log_dir``.

    Args:
        log_dir: Directory of inspect logs (searched recursively by inspect).
        baseline: Row every other row is compared with (rank, label or unique
            substring); default the best non-control row (or the best row if all are
            controls). Differences are reported as ``row − baseline``.
        epochs: Expect explanations sampled this many times per neuron: only epochs
            1..N are used, and a row with fewer epochs is an error.
        n_resamples: Bootstrap resamples per CI.
        seed: Bootstrap seed.
    """
    samples = load_samples(log_dir)
    if epochs is not None:
        if epochs < 1:
            raise ValueError(f"--epochs must be ≥ 1, got {epochs}")
        samples = samples[samples["epoch"] <= epochs]
    keys = ["dataset", "split", "row"]
    rows = [_build_row(g, n_resamples, seed) for _, g in samples.groupby(keys, sort=False)]
    if epochs is not None:
        short = [r.label for r in rows if r.epochs < epochs]
        if short:
            raise ValueError(f"--epochs {epochs}: fewer epochs in the logs of {short}")
    rows.sort(key=lambda r: (-(r.mean if math.isfinite(r.mean) else -math.inf), r.label))
    for i, r in enumerate(rows, start=1):
        r.rank = i

    # Scores from different simulators (or datasets, splits) are not on one scale, so each
    # row is compared only with a baseline scored the same way: the named row's group, or
    # per group the best non-control row.
    def group(r: Row) -> tuple[str, str, str]:
        return (r.dataset, r.split, r.simulator)

    bases: dict[tuple[str, str, str], Row] = {}
    if baseline is not None:
        named = find_row(rows, baseline)
        bases[group(named)] = named
    else:
        for r in rows:
            g = group(r)
            if g not in bases or (bases[g].control and not r.control):
                bases[g] = r
    comparisons = []
    for r in rows:
        base = bases.get(group(r))
        if base is None or r is base:
            continue
        d = paired_bootstrap_diff(
            r.neuron_scores, base.neuron_scores, n_resamples=n_resamples, seed=seed
        )
        comparisons.append(Comparison(r.label, base.label, d.estimate, d.low, d.high, d.n))
    base = next(iter(bases.values()), None)
    return Leaderboard(
        rows=rows,
        comparisons=comparisons,
        baseline=base.label if base else None,
        samples=samples,
        n_resamples=n_resamples,
        seed=seed,
    )


def _f(x: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(x) else f"{x:.{digits}f}"


def _ci(est: float, low: float, high: float) -> str:
    if not math.isfinite(low):
        return _f(est)
    return f"{_f(est)} [{_f(low)}, {_f(high)}]"


def to_markdown(lb: Leaderboard) -> str:
    """Compact Markdown tables for the README: rows, paired differences, test-retest."""
    multi = len({(r.dataset, r.split) for r in lb.rows}) > 1
    head = ["#", "explainer", "strategy", "simulator"] + (["dataset", "split"] if multi else [])
    head += ["score [95% CI]", "≥0.8", "random-only", "failed", "tokens/n", "$/n", "neurons"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in lb.rows:
        strategy = f"{r.strategy} (control)" if r.control else r.strategy
        cells = [str(r.rank), r.explainer, strategy, r.simulator]
        cells += [r.dataset, r.split] if multi else []
        cost = "–" if not math.isfinite(r.cost_per_neuron) else f"{r.cost_per_neuron:.2g}"
        cells += [
            _ci(r.mean, r.ci_low, r.ci_high),
            _f(r.frac_ge_0_8, 2),
            _f(r.random_only),
            str(r.failed) if not r.unscored else f"{r.failed} (+{r.unscored} unscored)",
            "–" if not math.isfinite(r.tokens_per_neuron) else f"{r.tokens_per_neuron:.0f}",
            cost,
            f"{r.n_scored}/{r.n_neurons}",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out = ["\n".join(lines)]
    for base_label in dict.fromkeys(c.baseline for c in lb.comparisons):
        cmp = [
            f"Paired differences vs **{base_label}** (row − baseline, same simulator, "
            "paired bootstrap over shared neurons):",
            "",
            "| row | Δ score [95% CI] | shared neurons |",
            "|---|---|---|",
        ]
        cmp += [
            f"| {c.row} | {_ci(c.diff, c.ci_low, c.ci_high)} | {c.n_shared} |"
            for c in lb.comparisons
            if c.baseline == base_label
        ]
        out.append("\n".join(cmp))
    retest = [r for r in lb.rows if r.epochs >= 2]
    if retest:
        rt = [
            "Test-retest across epochs:",
            "",
            "| row | epochs | r | within-neuron SD | neurons |",
            "|---|---|---|---|---|",
        ]
        rt += [
            f"| {r.label} | {r.epochs} | {_f(r.retest_pearson)} | {_f(r.retest_within_sd)} | {r.n_scored} |"
            for r in retest
        ]
        out.append("\n".join(rt))
    return "\n\n".join(out) + "\n"


def to_csv(lb: Leaderboard) -> str:
    """One CSV line per row (extra scorer means as ``extra.<scorer.key>`` columns)."""
    extra_keys = sorted({k for r in lb.rows for k in r.extra})
    rows = lb.to_dict()["rows"]
    fields = [k for k in rows[0] if k != "extra"] if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=fields + [f"extra.{k}" for k in extra_keys], lineterminator="\n"
    )
    writer.writeheader()
    for d in rows:
        extra = d.pop("extra")
        writer.writerow(d | {f"extra.{k}": extra.get(k) for k in extra_keys})
    return buf.getvalue()


def write_leaderboard(lb: Leaderboard, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``leaderboard.md``, ``.csv`` and ``.json`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    paths = {ext: out / f"leaderboard.{ext}" for ext in ("md", "csv", "json")}
    write_text(paths["md"], to_markdown(lb))
    write_text(paths["csv"], to_csv(lb))
    write_json(paths["json"], lb.to_dict())
    return paths
