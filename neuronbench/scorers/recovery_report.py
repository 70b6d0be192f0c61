"""Explainer recovery on planted neurons, read from inspect logs: score *and* closeness to truth.

A simulation score says how well an explanation predicts activations; on planted neurons we
also know the right answer, so each explainer row gets both: its mean simulation score and
how close its explanations are to the true ones (MiniLM similarity, whether the explanation
is closer to the truth than to every decoy, and the judge-free word check for word-set
neurons). Only logs whose dataset is a planted one are read.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class RecoveryRow:
    """Recovery of one explainer x strategy x simulator on a planted dataset."""

    label: str
    """``explainer · strategy · simulator`` as on the leaderboard."""
    dataset: str
    """Planted dataset directory."""
    n_neurons: int
    """Neurons with an explanation in the logs."""
    mean_score: float
    """Mean top-and-random simulation score over scored neurons (NaN if none)."""
    truth_similarity: float
    """Mean MiniLM cosine similarity of explanation and true explanation."""
    closer_to_truth: float
    """Fraction of explanations more similar to the truth than to every decoy."""
    word_check: float
    """Fraction of word-set neurons whose explanation names enough member words (NaN if none)."""


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else math.nan


def recovery_report(log_dir: str | Path) -> list[RecoveryRow]:
    """One :class:`RecoveryRow` per explainer x strategy x simulator over planted-dataset logs."""
    from inspect_ai.log import list_eval_logs, read_eval_log

    from neuronbench.datasets import NeuronDataset, read_card
    from neuronbench.scorers.recovery import recovery_metrics

    groups: dict[tuple[str, str], list[tuple[str, str, float | None]]] = defaultdict(list)
    for info in list_eval_logs(str(log_dir)):
        log = read_eval_log(info.name)
        args = log.eval.task_args or {}
        dataset = args.get("dataset")
        if not dataset or not (Path(dataset) / "card.json").exists():
            continue
        if "planted" not in read_card(dataset).extra:
            continue
        label = f"{log.eval.model} · {args.get('strategy')} · {args.get('simulator')}"
        for s in log.samples or []:
            explanation = (s.metadata or {}).get("explanation")
            if not isinstance(explanation, str) or s.metadata.get("explanation_flags"):
                continue  # failed explanations are not recovered anything
            score = (s.scores or {}).get("simulation")
            value = (
                score.value.get("top_and_random")
                if score and isinstance(score.value, dict)
                else None
            )
            groups[(dataset, label)].append((str(s.id), explanation, value))
    rows = []
    for (dataset, label), items in sorted(groups.items()):
        ds = NeuronDataset.load(dataset, ids=[])  # card only: truths and decoys live there
        metrics = recovery_metrics(ds, [(key, text) for key, text, _ in items])
        words = [m["word_check"] for m in metrics if m["word_check"] is not None]
        rows.append(
            RecoveryRow(
                label=label,
                dataset=dataset,
                n_neurons=len(items),
                mean_score=_mean([v for _, _, v in items if isinstance(v, (int, float))]),
                truth_similarity=_mean([m["truth_similarity"] for m in metrics]),
                closer_to_truth=_mean([float(m["closer_to_truth"]) for m in metrics]),
                word_check=_mean([float(w) for w in words]),
            )
        )
    return rows


def to_markdown(rows: list[RecoveryRow]) -> str:
    head = "| row | neurons | simulation score | truth similarity | closer to truth than decoys | word check |"
    lines = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r.mean_score, r.truth_similarity, r.closer_to_truth, r.word_check]
        shown = ["–" if not math.isfinite(c) else f"{c:.3f}" for c in cells]
        lines.append(f"| {r.label} | {r.n_neurons} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def to_dicts(rows: list[RecoveryRow]) -> list[dict[str, Any]]:
    return [
        {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(r).items()
        }
        for r in rows
    ]
