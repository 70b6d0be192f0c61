"""Embedding scorer (EleutherAI delphi): retrieve activating records by similarity to the explanation.

Embeds the explanation and each held-out record (all-MiniLM-L6-v2, bundled offline; see
``neuronbench.scorers._embed``) and asks how well cosine similarity to the explanation
separates activating records (top records of the scoring split that fire) from
non-activating ones (random records of the split that stay low). Value: the AUC of that
retrieval (0.5 = chance). Needs no LLM, so it is the cheapest scorer; ``neuronbench
validate --scorer embedding`` and the agreement report show how well it tracks simulation.
"""

from __future__ import annotations

import math

from inspect_ai.scorer import Score, Scorer, Target, mean, scorer, stderr
from inspect_ai.solver import TaskState

from neuronbench.datasets import NeuronRecord
from neuronbench.scorers._classify import (
    Labelled,
    auc,
    labelled_records,
    need_both_reason,
    record_text,
    sample_context,
)
from neuronbench.scorers._skip import sample_base, skip_reason, skipped_score
from neuronbench.scorers.metrics import n_skipped


def similarities(explanation: str, texts: list[str]) -> list[float]:
    """Cosine similarity of ``explanation`` to each text (blocking: embeds on the CPU)."""
    from neuronbench.scorers._embed import embed

    vectors = embed([explanation, *texts])  # (1 + len(texts), 384), L2-normalized
    return [float(v) for v in vectors[1:] @ vectors[0]]


def embedding_auc(explanation: str, labelled: Labelled) -> tuple[float, list[float]]:
    """Retrieval AUC of activating vs non-activating records, and each record's similarity.

    Records are ordered activating first. The AUC is NaN when either group is empty.
    """
    records = [*labelled.activating, *labelled.non_activating]
    sims = similarities(explanation, [record_text(r.tokens) for r in records])
    labels = [1] * len(labelled.activating) + [0] * len(labelled.non_activating)
    return auc(labels, sims), sims


async def embedding_score(
    explanation: str,
    neuron: NeuronRecord,
    *,
    split: str = "valid",
    n_records: int | None = None,
    threshold: float = 0.1,
) -> tuple[float, Labelled, list[float]]:
    """:func:`embedding_auc` on a neuron's scoring split, off the event loop."""
    import anyio

    labelled = labelled_records(neuron, split, n_records, threshold)
    value, sims = await anyio.to_thread.run_sync(embedding_auc, explanation, labelled)
    return value, labelled, sims


@scorer(metrics={"auc": [mean(), stderr()], "scored": [mean(), n_skipped()]})
def embedding(
    split: str | None = None,
    n_records: int | None = None,
    threshold: float = 0.1,
) -> Scorer:
    """Score an explanation by how well embedding similarity to it retrieves activating records.

    Args:
        split: Scoring split; None = the sample's ``split`` metadata, else ``valid``.
        n_records: Top and random records each to draw from the split (None = all).
        threshold: Fraction of the neuron's max activation separating activating top
            records from non-activating random ones.
    """

    async def score(state: TaskState, target: Target) -> Score:
        reason = skip_reason(state.metadata)
        if reason is not None:
            return skipped_score(["auc"], reason, sample_base(state, "embedding"))
        neuron, use_split, explanation, base = sample_context(state, "embedding", split)
        meta = {**base, "raw_output": None}
        nan = {"auc": math.nan, "scored": 0.0}
        if not explanation.strip():
            meta.update(status="unscored", reason="empty explanation")
            return Score(
                value=nan, explanation="empty explanation", reason="no_response", metadata=meta
            )
        value, labelled, sims = await embedding_score(
            explanation, neuron, split=use_split, n_records=n_records, threshold=threshold
        )
        records = [*labelled.activating, *labelled.non_activating]
        meta["records"] = [
            {
                "group": "activating" if i < len(labelled.activating) else "non_activating",
                "position": r.position,
                "similarity": s,
            }
            for i, (r, s) in enumerate(zip(records, sims, strict=True))
        ]
        meta["dropped"] = labelled.dropped
        if math.isnan(value):
            reason = need_both_reason(use_split, labelled)
            meta.update(status="unscored", reason=reason)
            return Score(value=nan, explanation=reason, reason="unscorable", metadata=meta)
        meta.update(status="ok", reason=None)
        return Score(
            value={"auc": value, "scored": 1.0}, explanation=f"auc={value:.3f}", metadata=meta
        )

    return score
