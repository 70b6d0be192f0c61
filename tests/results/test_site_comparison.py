"""The leaderboard across sites: the site column, and the site comparison's numbers
recomputed by brute force (plain numpy loops) from the scores the synthetic logs were
generated with."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import RowSpec, neuron_key, true_score, write_logs

from neuronbench.results.bootstrap import two_sample_bootstrap_diff
from neuronbench.results.leaderboard import build_leaderboard, to_markdown
from neuronbench.results.logs import load_samples, site_from_key

R, SEED = 400, 3
SITES = {"mlp": (20, 0.55), "sae:a": (15, 0.40), "sae:b": (12, 0.30)}
"""site -> (units, true mean of the explainer's row)."""
FAILED_B = [3]
"""Units of sae:b the explainer's row fails on: the site's comparison leaves them out."""


def _specs() -> list[RowSpec]:
    specs = []
    for j, (site, (n, mu)) in enumerate(SITES.items()):
        where = dict(site=site, dataset=f"/data/{site.replace(':', '-')}", neurons=n)
        failed = FAILED_B if site == "sae:b" else []
        specs.append(
            RowSpec("strong", "token_activation_pairs", mu, seed=10 + j, failed=failed, **where)
        )  # type: ignore[arg-type]
        specs.append(RowSpec("strong", "shuffled", 0.05, seed=20 + j, **where))  # type: ignore[arg-type]
    # a row on one site only: nothing to compare it with
    specs.append(
        RowSpec("weak", "highlighted", 0.2, seed=30, site="mlp", dataset="/data/mlp", neurons=20)
    )
    return specs


@pytest.fixture(scope="module")
def site_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("site_logs"), _specs())


def _boot_means(x: np.ndarray, seed: int) -> np.ndarray:
    """R bootstrap means of x, one resample at a time (the same draws as one matrix)."""
    idx = np.random.default_rng(seed).integers(0, len(x), size=(R, len(x)))
    return np.array([sum(x[j] for j in row) / len(x) for row in idx])


def _ci(values: np.ndarray) -> tuple[float, float]:
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def test_site_comparison_equals_brute_force(site_logs: Path) -> None:
    specs = {(s.site, s.strategy): s for s in _specs() if s.explainer == "strong"}
    row_x: dict[str, np.ndarray] = {}
    diff_x: dict[str, np.ndarray] = {}
    for site, (n, _) in SITES.items():
        units = [i for i in range(n) if not (site == "sae:b" and i in FAILED_B)]
        units.sort(key=lambda i: neuron_key(i, site))  # the leaderboard's order: by key
        row = specs[(site, "token_activation_pairs")]
        ctrl = specs[(site, "shuffled")]
        row_x[site] = np.array([true_score(row, i) for i in units])
        diff_x[site] = np.array([true_score(row, i) - true_score(ctrl, i) for i in units])

    lb = build_leaderboard(site_logs, n_resamples=R, seed=SEED)
    assert {r.site for r in lb.rows} == set(SITES)
    by_label = {c.label: c for c in lb.site_comparisons}
    assert set(by_label) == {
        "mockllm/strong · token_activation_pairs · generation (mockllm/sim)",
        "mockllm/strong · shuffled · generation (mockllm/sim)",
    }  # the one-site row is not compared
    sc = by_label["mockllm/strong · token_activation_pairs · generation (mockllm/sim)"]
    assert [s.site for s in sc.sites] == ["mlp", "sae:a", "sae:b"]
    for s in sc.sites:
        x, d = row_x[s.site], diff_x[s.site]
        assert s.n == len(x) and s.n_paired == len(d)
        assert s.mean == pytest.approx(x.mean(), abs=1e-12)
        assert (s.ci_low, s.ci_high) == pytest.approx(_ci(_boot_means(x, SEED)), abs=1e-12)
        assert s.control == "mockllm/strong · shuffled · generation (mockllm/sim)"
        assert s.vs_control == pytest.approx(d.mean(), abs=1e-12)
        got = (s.vs_control_low, s.vs_control_high)
        assert got == pytest.approx(_ci(_boot_means(d, SEED)), abs=1e-12)
    pairs = [(d.site, d.minus) for d in sc.diffs]
    assert pairs == [("sae:a", "mlp"), ("sae:b", "mlp"), ("sae:b", "sae:a")]
    for d in sc.diffs:
        a, b = row_x[d.site], row_x[d.minus]
        assert d.diff == pytest.approx(a.mean() - b.mean(), abs=1e-12)
        unpaired = _boot_means(a, SEED) - _boot_means(b, SEED + 1)
        assert (d.ci_low, d.ci_high) == pytest.approx(_ci(unpaired), abs=1e-12)
        da, db = diff_x[d.site], diff_x[d.minus]
        assert d.control_diff == pytest.approx(da.mean() - db.mean(), abs=1e-12)
        unpaired = _boot_means(da, SEED) - _boot_means(db, SEED + 1)
        assert (d.control_ci_low, d.control_ci_high) == pytest.approx(_ci(unpaired), abs=1e-12)
    # the control against itself has no control difference
    ctrl = by_label["mockllm/strong · shuffled · generation (mockllm/sim)"]
    assert all(s.control is None and math.isnan(s.vs_control) for s in ctrl.sites)


def test_markdown_and_json_mark_the_site(site_logs: Path) -> None:
    lb = build_leaderboard(site_logs, n_resamples=R, seed=SEED)
    md = to_markdown(lb)
    head = md.splitlines()[0]
    assert head.startswith("| # | site | explainer | strategy | simulator | score")
    assert "dataset" not in head  # each site one recording: the site says which
    for r in lb.rows:
        assert f"| {r.rank} | {r.site} | {r.explainer} |" in md
    assert "unpaired" in md and "| sae:b − sae:a |" in md
    assert (
        "Paired differences vs **mockllm/strong · token_activation_pairs · generation (mockllm/sim)** on site sae:a"
        in md
    )
    d = lb.to_dict()
    assert {r["site"] for r in d["rows"]} == set(SITES)
    assert len(d["site_comparisons"]) == 2
    assert all(c.site in SITES for c in lb.comparisons)


def test_site_column_from_the_card_or_the_neuron_key(site_logs: Path, main_logs: Path) -> None:
    samples = load_samples(site_logs)
    for site, group in samples.groupby("site"):
        assert all(str(k).startswith(neuron_key(0, str(site))[:-5]) for k in group["neuron"])
    # logs whose eval carries no card: read off the key (NeuronId.key's layout)
    assert set(load_samples(main_logs)["site"]) == {"mlp"}
    assert site_from_key("smollm2-135m-instruct-L0-N821", "smollm2-135m-instruct") == "mlp"
    key = "smollm2-135m-instruct-sae-smollm2-l12-topk-L12-N7"
    assert site_from_key(key, "smollm2-135m-instruct") == "sae-smollm2-l12-topk"


def test_two_sample_bootstrap_edges() -> None:
    assert math.isnan(two_sample_bootstrap_diff([], [1.0, 2.0]).estimate)
    one = two_sample_bootstrap_diff([1.0], [0.0, 1.0])
    assert one.estimate == 0.5 and math.isnan(one.low) and one.n == 3
    with pytest.raises(ValueError, match="NaN"):
        two_sample_bootstrap_diff([1.0, float("nan")], [0.0, 1.0])
    # unpaired: wider than the paired CI of the same numbers when units share difficulty
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 1, 50)
    a, b = difficulty + 0.1, difficulty + rng.normal(0, 0.05, 50)
    unpaired = two_sample_bootstrap_diff(a, b, n_resamples=2000)
    assert unpaired.low < 0 < unpaired.high
