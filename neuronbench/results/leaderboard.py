"""The leaderboard: one row per explainer × strategy × simulator, from inspect logs.

Rows are compared only with rows scored the same way (same dataset, split and simulator:
scores of different simulators are not on one scale), and within such a group only on
the **common neurons**: those every row of the group scored. A row's headline (mean
top-and-random correlation, its bootstrap 95% CI, ≥0.8, random-only, top-only), its
rank and its paired difference against the baseline are all taken over those neurons.
Averaging each row over its own scored neurons instead rewards failing on hard neurons:
a row 0.05 worse on every neuron that drops its hardest third outranks the better row.
That own-neuron mean is still reported, as the secondary column ``mean_own``.

Coverage is its own set of columns, from each sample's score status: scored (neurons),
failed (the explainer or simulation failed), unscored (data side: constant real
activations), skipped (the neuron's records cannot fill the split), and
constant_simulation (scored 0: the simulation was constant on a varying neuron). A row
that scored no neuron is left out of its group's common set (it would empty it) and has
no mean. With several epochs a neuron's score is the mean over its scored epochs, and
the row also reports test-retest agreement.
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
    two_sample_bootstrap_diff,
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
    site: str
    """What the units are: ``mlp`` (MLP neurons) or ``sae:<name>`` (an SAE's latents), from
    the dataset card (``NeuronId.site``)."""
    split: str
    """Scoring split (valid or test)."""
    control: bool
    """True for control strategies (empty / shuffled explanations): a floor, not an entry."""
    n_neurons: int
    """Distinct neurons in the logs for this row."""
    n_scored: int
    """Neurons with a score in at least one epoch (``mean_own`` is over these)."""
    n_common: int
    """Neurons every row of this row's group scored: ``mean``, its CI, the fractions and
    the paired differences are over these (0 when the row scored nothing)."""
    failed: int
    """Samples (neuron × epoch) that failed: flagged explanation, unparseable or misshapen
    simulation, sample error, no score."""
    unscored: int
    """Samples with no score for data-side reasons (constant real activations): no one's fault."""
    skipped: int
    """Samples whose neuron's records cannot fill the split: nothing was run for them."""
    constant_simulation: int
    """Scored samples whose simulation was constant on a varying neuron (scored 0)."""
    mean: float
    """Mean top-and-random score over the common neurons: the ranking key."""
    ci_low: float
    """Lower end of the bootstrap 95% CI of ``mean``."""
    ci_high: float
    """Upper end of the bootstrap 95% CI of ``mean``."""
    frac_ge_0_8: float
    """Fraction of common neurons with score ≥ 0.8 (the paper's "well explained")."""
    frac_ge_0_5: float
    """Fraction of common neurons with score ≥ 0.5."""
    random_only: float
    """Mean random-only score over the common neurons: how well the explanation predicts
    typical, not top, text (neurons whose random records are constant left out)."""
    top_only: float
    """Mean top-only score over the common neurons."""
    mean_own: float
    """Mean top-and-random score over the row's own scored neurons (``n_scored``). Not
    comparable across rows: a row that fails on hard neurons looks better here."""
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
    """Neuron key → score (mean over scored epochs) for every neuron the row scored."""
    common: list[str] = field(default_factory=list, repr=False)
    """The group's common neuron keys (sorted): what ``mean`` and the comparisons use."""
    part_scores: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    """``random_only`` / ``top_only`` → neuron key → score, like ``neuron_scores``."""


@dataclass
class Comparison:
    """A paired difference ``row − baseline`` over their group's common neurons."""

    row: str
    """Label of the row compared."""
    baseline: str
    """Label of the baseline row."""
    diff: float
    """Mean over the common neurons of (row score − baseline score); equals
    ``row.mean − baseline.mean``, since both are over the same neurons."""
    ci_low: float
    """Lower end of the paired bootstrap 95% CI of ``diff``."""
    ci_high: float
    """Upper end of the paired bootstrap 95% CI of ``diff``."""
    n_shared: int
    """Neurons the difference uses: the group's common neurons."""
    dataset: str = ""
    """Dataset of both rows (comparisons never cross datasets)."""
    site: str = ""
    """Site of both rows."""


@dataclass
class SiteScore:
    """One explainer · strategy · simulator on one site."""

    site: str
    """``mlp`` or ``sae:<name>``."""
    dataset: str
    """The site's dataset."""
    mean: float
    """The row's mean over its compared units (the leaderboard row's ``mean``)."""
    ci_low: float
    ci_high: float
    n: int
    """Compared units (neurons or latents) behind ``mean``."""
    control: str | None
    """Label of the same site's shuffled-control row under the same simulator, if any."""
    vs_control: float
    """Mean over the units both scored of (row − control): the paired difference."""
    vs_control_low: float
    vs_control_high: float
    n_paired: int
    """Units behind ``vs_control``."""


@dataclass
class SiteDiff:
    """``site − minus`` for one explainer · strategy · simulator, by an unpaired two-sample
    bootstrap: the two sites' units are different units, so there is nothing to pair."""

    site: str
    minus: str
    diff: float
    """Difference of the two sites' mean scores."""
    ci_low: float
    ci_high: float
    control_diff: float
    """Difference of the two sites' mean (row − shuffled control) paired differences: does
    the explanation beat the control by more on one site than on the other?"""
    control_ci_low: float
    control_ci_high: float


@dataclass
class SiteComparison:
    """An explainer · strategy · simulator scored on several sites."""

    label: str
    """``explainer · strategy · simulator``."""
    split: str
    sites: list[SiteScore]
    """Per site, MLP first, then SAE sites by name."""
    diffs: list[SiteDiff]
    """Every pair of sites, later − earlier in ``sites``."""


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
    site_comparisons: list[SiteComparison] = field(default_factory=list)
    """Each explainer · strategy · simulator scored on several sites, compared across them."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN → null) without the per-sample table."""
        rows = []
        for r in self.rows:
            d = asdict(r)
            d.pop("neuron_scores")
            d.pop("common")
            d.pop("part_scores")
            rows.append(d)
        out = {
            "baseline": self.baseline,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
            "rows": rows,
            "comparisons": [asdict(c) for c in self.comparisons],
            "site_comparisons": [asdict(c) for c in self.site_comparisons],
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


def _per_neuron(ok: pd.DataFrame, column: str) -> dict[str, float]:
    """Neuron key → mean of ``column`` over the neuron's scored epochs (finite values only)."""
    means = ok.groupby("neuron")[column].mean()
    return {str(k): float(v) for k, v in means.items() if math.isfinite(v)}


def _build_row(group: pd.DataFrame) -> Row:
    """A row with its own figures; the common-neuron figures are filled by :func:`_compare_on`."""
    first = group.iloc[0]
    ok = group[group["status"] == "ok"]
    scores = _per_neuron(ok, "score")
    epochs = int(group["epoch"].nunique())
    agreement = None
    if epochs >= 2:
        by_epoch: dict[str, dict[int, float]] = {}
        for rec in ok[["neuron", "epoch", "score"]].itertuples(index=False):
            by_epoch.setdefault(str(rec.neuron), {})[int(rec.epoch)] = float(rec.score)
        agreement = retest_agreement(by_epoch)
    extra_keys = sorted({k for e in group["extra"] for k in e})
    status = group["status"]
    nan = float("nan")
    return Row(
        rank=0,
        label=str(first["row"]),
        explainer=str(first["explainer"]),
        strategy=str(first["strategy"]),
        simulator=str(first["simulator"]),
        dataset=str(first["dataset"]),
        site=str(first["site"]),
        split=str(first["split"]),
        control=bool(first["control"]),
        n_neurons=int(group["neuron"].nunique()),
        n_scored=len(scores),
        n_common=0,
        failed=int(status.isin(["failed", "error", "missing"]).sum()),
        unscored=int((status == "unscored").sum()),
        skipped=int((status == "skipped").sum()),
        constant_simulation=int(group["constant_simulation"].fillna(False).astype(bool).sum())
        if "constant_simulation" in group
        else 0,
        mean=nan,
        ci_low=nan,
        ci_high=nan,
        frac_ge_0_8=nan,
        frac_ge_0_5=nan,
        random_only=nan,
        top_only=nan,
        mean_own=_mean(scores.values()),
        tokens_per_neuron=_mean(group["tokens"]),
        explainer_tokens_per_neuron=_mean(group["explainer_tokens"]),
        cost_per_neuron=_mean(group["cost"]) if group["cost"].notna().any() else nan,
        epochs=epochs,
        retest_pearson=agreement.pearson if agreement else nan,
        retest_within_sd=agreement.within_sd if agreement else nan,
        extra={k: _mean(e.get(k, nan) for e in group["extra"]) for k in extra_keys},
        neuron_scores=scores,
        part_scores={c: _per_neuron(ok, c) for c in ("random_only", "top_only")},
    )


def common_neurons(rows: list[Row]) -> list[str]:
    """Neurons every row that scored anything scored (sorted); rows that scored none are
    left out, since one row with no scores would otherwise empty the comparison."""
    sets = [set(r.neuron_scores) for r in rows if r.neuron_scores]
    return sorted(set.intersection(*sets)) if sets else []


def _compare_on(row: Row, common: list[str], n_resamples: int, seed: int) -> None:
    """Fill ``row``'s headline figures over the ``common`` neurons."""
    if not row.neuron_scores:
        return
    row.common = common
    row.n_common = len(common)
    x = [row.neuron_scores[k] for k in common]
    ci = bootstrap_mean(x, n_resamples=n_resamples, seed=seed)
    row.mean, row.ci_low, row.ci_high = ci.estimate, ci.low, ci.high
    n = len(x)
    row.frac_ge_0_8 = sum(s >= 0.8 for s in x) / n if n else float("nan")
    row.frac_ge_0_5 = sum(s >= 0.5 for s in x) / n if n else float("nan")
    parts = row.part_scores
    row.random_only = _mean(parts["random_only"].get(k, float("nan")) for k in common)
    row.top_only = _mean(parts["top_only"].get(k, float("nan")) for k in common)


def _on(row: Row, common: list[str]) -> dict[str, float]:
    return {k: row.neuron_scores[k] for k in common if k in row.neuron_scores}


GroupKey = tuple[str, str, str, str]
"""(site, dataset, split, simulator): rows scored the same way on the same units, hence
comparable."""


def group_key(row: Row) -> GroupKey:
    """The comparison group of ``row``: its site, dataset, split and simulator."""
    return (row.site, row.dataset, row.split, row.simulator)


def named_baselines(rows: list[Row], spec: str) -> dict[GroupKey, Row]:
    """The baseline ``spec`` names in each comparison group.

    A rank or an exact label names one row, so only that row's group gets a baseline. A
    substring is matched per group, because every simulator has its own rows: on a run
    with two simulators ``shuffled`` names the shuffled row of each, and each group is
    compared with its own. Groups with no matching row get no comparisons.

    Raises:
        ValueError: no row matches, or several rows of one group match.
    """
    if spec.isdigit() and 1 <= int(spec) <= len(rows):
        named = rows[int(spec) - 1]
        return {group_key(named): named}
    exact = [r for r in rows if r.label == spec]
    if exact:
        return {group_key(exact[0]): exact[0]}
    hits: dict[GroupKey, list[Row]] = {}
    for r in rows:
        if spec in r.label:
            hits.setdefault(group_key(r), []).append(r)
    if not hits:
        labels = "; ".join(r.label for r in rows)
        raise ValueError(f"--baseline {spec!r} matches no row (rows: {labels})")
    for members in hits.values():
        if len(members) > 1:
            labels = "; ".join(r.label for r in members)
            raise ValueError(
                f"--baseline {spec!r} matches {len(members)} rows of one simulator ({labels}): "
                "give a longer substring, the full label or a rank"
            )
    return {key: members[0] for key, members in hits.items()}


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
        baseline: The row each other row of its group (dataset, split, simulator) is
            compared with: a rank or label (that row's group only), or a substring
            matched in every group, at most one row per group (see
            :func:`named_baselines`); default per group the best non-control row (or
            the best row if all are controls). Differences are ``row − baseline``.
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
    keys = ["site", "dataset", "split", "row"]
    rows = [_build_row(g) for _, g in samples.groupby(keys, sort=False)]
    if epochs is not None:
        short = [r.label for r in rows if r.epochs < epochs]
        if short:
            raise ValueError(f"--epochs {epochs}: fewer epochs in the logs of {short}")

    # Scores from different simulators (or datasets, splits) are not on one scale, so rows
    # are compared only within a group scored the same way, and on the neurons every row
    # of the group scored; each group has its own baseline (the row --baseline names in
    # that group, or the group's best non-control row).
    groups: dict[GroupKey, list[Row]] = {}
    for r in rows:
        groups.setdefault(group_key(r), []).append(r)
    for members in groups.values():
        common = common_neurons(members)
        for r in members:
            _compare_on(r, common, n_resamples, seed)
    rows.sort(key=lambda r: (-(r.mean if math.isfinite(r.mean) else -math.inf), r.label))
    for i, r in enumerate(rows, start=1):
        r.rank = i

    bases: dict[GroupKey, Row] = {}
    if baseline is not None:
        bases = named_baselines(rows, baseline)
    else:
        for r in rows:
            g = group_key(r)
            if g not in bases or (bases[g].control and not r.control):
                bases[g] = r
    comparisons = []
    for r in rows:
        base = bases.get(group_key(r))
        if base is None or r is base:
            continue
        d = paired_bootstrap_diff(
            _on(r, base.common), _on(base, r.common), n_resamples=n_resamples, seed=seed
        )
        comparisons.append(
            Comparison(r.label, base.label, d.estimate, d.low, d.high, d.n, r.dataset, r.site)
        )
    base = next(iter(bases.values()), None)
    return Leaderboard(
        rows=rows,
        comparisons=comparisons,
        baseline=base.label if base else None,
        samples=samples,
        n_resamples=n_resamples,
        seed=seed,
        site_comparisons=compare_sites(rows, n_resamples=n_resamples, seed=seed),
    )


CONTROL_STRATEGY = "shuffled"
"""The control each site's rows are paired with: another unit's explanation, so a row that
beats it says something about *this* unit."""


def _site_order(site: str) -> tuple[int, str]:
    return (0 if site == "mlp" else 1, site)


def compare_sites(rows: list[Row], *, n_resamples: int, seed: int) -> list[SiteComparison]:
    """For each explainer · strategy · simulator (and split) scored on at least two sites:
    each site's mean and CI, its paired difference against the site's own shuffled control
    (same simulator, same units), and unpaired two-sample differences between sites."""
    controls = {group_key(r): r for r in rows if r.strategy == CONTROL_STRATEGY}
    triples: dict[tuple[str, str], dict[str, Row]] = {}
    for r in rows:
        if not r.neuron_scores:
            continue  # a row that scored nothing has nothing to compare
        per_site = triples.setdefault((r.label, r.split), {})
        name = r.site if r.site not in per_site else f"{r.site} ({r.dataset})"
        per_site[name] = r
    out = []
    for (label, split), per_site in sorted(triples.items()):
        if len(per_site) < 2:
            continue
        names = sorted(per_site, key=_site_order)
        scores: list[SiteScore] = []
        values: dict[str, list[float]] = {}
        paired: dict[str, list[float]] = {}
        for name in names:
            r = per_site[name]
            values[name] = [r.neuron_scores[k] for k in r.common]
            ctrl = controls.get(group_key(r))
            d = None
            if ctrl is not None and ctrl is not r:
                a, b = _on(r, r.common), _on(ctrl, r.common)
                paired[name] = [a[k] - b[k] for k in sorted(set(a) & set(b))]
                d = paired_bootstrap_diff(a, b, n_resamples=n_resamples, seed=seed)
            nan = float("nan")
            scores.append(
                SiteScore(
                    site=name,
                    dataset=r.dataset,
                    mean=r.mean,
                    ci_low=r.ci_low,
                    ci_high=r.ci_high,
                    n=r.n_common,
                    control=ctrl.label if d is not None and ctrl is not None else None,
                    vs_control=d.estimate if d else nan,
                    vs_control_low=d.low if d else nan,
                    vs_control_high=d.high if d else nan,
                    n_paired=d.n if d else 0,
                )
            )
        diffs = []
        for i, minus in enumerate(names):
            for site in names[i + 1 :]:
                d = two_sample_bootstrap_diff(
                    values[site], values[minus], n_resamples=n_resamples, seed=seed
                )
                c = two_sample_bootstrap_diff(
                    paired.get(site, []), paired.get(minus, []), n_resamples=n_resamples, seed=seed
                )
                diffs.append(
                    SiteDiff(site, minus, d.estimate, d.low, d.high, c.estimate, c.low, c.high)
                )
        out.append(SiteComparison(label, split, scores, diffs))
    return out


def _f(x: float, digits: int = 3) -> str:
    return "–" if not math.isfinite(x) else f"{x:.{digits}f}"


def _ci(est: float, low: float, high: float) -> str:
    if not math.isfinite(low):
        return _f(est)
    return f"{_f(est)} [{_f(low)}, {_f(high)}]"


def coverage(r: Row) -> str:
    """``scored/neurons`` plus the non-zero failed / unscored / skipped sample counts."""
    parts = [f"{r.n_scored}/{r.n_neurons}"]
    parts += [
        f"{n} {what}"
        for n, what in ((r.failed, "failed"), (r.unscored, "unscored"), (r.skipped, "skipped"))
        if n
    ]
    return " · ".join(parts)


def to_markdown(lb: Leaderboard) -> str:
    """Compact Markdown tables for the README: rows, paired differences, site comparisons,
    test-retest."""
    sites = {r.site for r in lb.rows}
    # dataset and split only where the site does not already say which recording it is
    multi = len({(r.site, r.dataset, r.split) for r in lb.rows}) > len(sites)
    head = ["#", "site", "explainer", "strategy", "simulator"]
    head += ["dataset", "split"] if multi else []
    head += ["score [95% CI]", "≥0.8", "random-only", "compared", "coverage", "const. sim"]
    head += ["own mean", "tokens/n", "$/n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in lb.rows:
        strategy = f"{r.strategy} (control)" if r.control else r.strategy
        cells = [str(r.rank), r.site, r.explainer, strategy, r.simulator]
        cells += [r.dataset, r.split] if multi else []
        cost = "–" if not math.isfinite(r.cost_per_neuron) else f"{r.cost_per_neuron:.2g}"
        cells += [
            _ci(r.mean, r.ci_low, r.ci_high),
            _f(r.frac_ge_0_8, 2),
            _f(r.random_only),
            str(r.n_common),
            coverage(r),
            str(r.constant_simulation),
            _f(r.mean_own),
            "–" if not math.isfinite(r.tokens_per_neuron) else f"{r.tokens_per_neuron:.0f}",
            cost,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Site: the units explained, mlp (MLP neurons) or sae:<name> (an SAE's latents). "
        "Score, CI, ≥0.8 and random-only are over the *compared* neurons: those every row "
        "with the same site and simulator (and dataset, split) scored. Coverage: neurons scored / in "
        "the logs, then failed, unscored (constant real activations) and skipped (too few "
        "records) samples. Const. sim: samples scored 0 for a constant simulation. Own mean: "
        "over the row's own scored neurons (not comparable across rows).",
    ]
    out = ["\n".join(lines)]
    for site, dataset, base_label in dict.fromkeys(
        (c.site, c.dataset, c.baseline) for c in lb.comparisons
    ):
        where = f" on site {site}" if len(sites) > 1 else ""
        cmp = [
            f"Paired differences vs **{base_label}**{where} (row − baseline, same site and "
            "simulator, paired bootstrap over the compared neurons):",
            "",
            "| row | Δ score [95% CI] | compared neurons |",
            "|---|---|---|",
        ]
        cmp += [
            f"| {c.row} | {_ci(c.diff, c.ci_low, c.ci_high)} | {c.n_shared} |"
            for c in lb.comparisons
            if (c.site, c.dataset, c.baseline) == (site, dataset, base_label)
        ]
        out.append("\n".join(cmp))
    if lb.site_comparisons:
        out.append(site_comparison_markdown(lb.site_comparisons))
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


def site_comparison_markdown(comparisons: list[SiteComparison]) -> str:
    """The site comparison: per site a mean and the paired difference against its own
    shuffled control, then every pair of sites by an unpaired bootstrap."""
    parts = [
        "**Sites compared.** Per site: the row's score over that site's compared units "
        "(bootstrap 95% CI) and its paired difference against the same site's shuffled "
        "control (another unit's explanation, same simulator, same units). Between sites: "
        "differences of those means by an *unpaired* two-sample bootstrap, since the sites' "
        "units (MLP neurons, SAE latents) are different units and cannot be paired."
    ]
    for sc in comparisons:
        lines = [
            f"{sc.label} ({sc.split}):",
            "",
            "| site | score [95% CI] | − shuffled, paired [95% CI] | units |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {s.site} | {_ci(s.mean, s.ci_low, s.ci_high)} | "
            f"{_ci(s.vs_control, s.vs_control_low, s.vs_control_high)} | {s.n} |"
            for s in sc.sites
        ]
        lines += [
            "",
            "| between sites (unpaired) | Δ score [95% CI] | Δ (− shuffled) [95% CI] |",
            "|---|---|---|",
        ]
        lines += [
            f"| {d.site} − {d.minus} | {_ci(d.diff, d.ci_low, d.ci_high)} | "
            f"{_ci(d.control_diff, d.control_ci_low, d.control_ci_high)} |"
            for d in sc.diffs
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


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
