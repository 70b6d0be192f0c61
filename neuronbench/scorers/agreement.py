"""Agreement between scorers: Spearman rank correlation over the same explanations.

Simulation with an LLM is the expensive, trusted score; detection, fuzzing and the
embedding scorer are cheap. If a cheap scorer ranks the same explanations in the same
order, it can stand in for simulation when budgets are tight. Ranks, not raw values:
scorers live on different scales (correlation, balanced accuracy, AUC).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIN_PAIRS = 3
"""Fewest explanations scored by both scorers for a correlation to be reported."""


def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def spearman(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[float | None, int]:
    """Spearman correlation over the keys both score (finite values only), and that count.

    None when fewer than :data:`MIN_PAIRS` shared keys or either side is constant there.
    """
    from scipy.stats import spearmanr

    keys = [k for k in a if k in b and _finite(a[k]) is not None and _finite(b[k]) is not None]
    if len(keys) < MIN_PAIRS:
        return None, len(keys)
    x = [_finite(a[k]) for k in keys]
    y = [_finite(b[k]) for k in keys]
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None, len(keys)
    rho = float(spearmanr(x, y).statistic)
    return (rho if math.isfinite(rho) else None), len(keys)


@dataclass
class Agreement:
    """Pairwise rank correlation between scorers."""

    scorers: list[str]
    """Scorer names, in matrix order."""
    rho: list[list[float | None]]
    """Spearman correlation of scorer i vs j (1 on the diagonal); None if undefined."""
    n: list[list[int]]
    """Explanations both scorers scored."""

    def to_dict(self) -> dict[str, Any]:
        return {"scorers": self.scorers, "spearman": self.rho, "n": self.n}

    def render(self) -> str:
        """A plain-text matrix for the terminal."""
        width = max(12, *(len(s) for s in self.scorers))
        lines = [" " * width + " ".join(f"{s[:width]:>{width}s}" for s in self.scorers)]
        for name, row in zip(self.scorers, self.rho, strict=True):
            cells = " ".join(f"{'-' if v is None else f'{v:.2f}':>{width}s}" for v in row)
            lines.append(f"{name:>{width}s}{cells}")
        return "\n".join(lines)


def rank_agreement(scores: Mapping[str, Mapping[str, Any]]) -> Agreement:
    """Pairwise Spearman matrix from ``scores[scorer][explanation_key] = value``.

    The explanation key must identify the same (neuron, explanation) across scorers,
    e.g. the inspect sample id of one eval run scored by several scorers.
    """
    names = list(scores)
    rho: list[list[float | None]] = []
    n: list[list[int]] = []
    for a in names:
        row_r: list[float | None] = []
        row_n: list[int] = []
        for b in names:
            r, count = spearman(scores[a], scores[b])
            row_r.append(1.0 if a == b and r is not None else r)
            row_n.append(count)
        rho.append(row_r)
        n.append(row_n)
    return Agreement(names, rho, n)


def scores_from_samples(
    df: Any, fields: Mapping[str, tuple[str, str | None]]
) -> dict[str, dict[str, Any]]:
    """Per-scorer scores from an ``inspect_ai.analysis.samples_df`` frame.

    Args:
        df: the samples frame (one row per sample, of one or more eval logs).
        fields: label → (score column, key inside a dict score or None), e.g.
            ``{"simulation": ("score_simulation", "top_and_random"),
            "detection": ("score_detection", "balanced_accuracy")}``. Dict scores arrive
            as JSON strings in ``samples_df``; they are decoded here.

    Rows are keyed by ``eval_id`` and sample ``id``, so two runs that scored the same
    explanations with different scorers line up only if they are the same eval.
    """
    out: dict[str, dict[str, Any]] = {}
    for label, (column, key) in fields.items():
        if column not in df.columns:
            raise KeyError(f"samples frame has no column {column!r} (have {sorted(df.columns)})")
        values: dict[str, Any] = {}
        for _, row in df.iterrows():
            v = row[column]
            if isinstance(v, str):
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    v = None
            if key is not None:
                v = v.get(key) if isinstance(v, dict) else None
            values[f"{row.get('eval_id', '')}/{row['id']}"] = v
        out[label] = values
    return out
