"""Explainer recovery: how close is an explainer's explanation of a planted neuron to the truth?

Two judge-free measures, for explanations written by any explainer on a planted dataset:

- embedding similarity (all-MiniLM-L6-v2, offline) to the true explanation, and whether
  it is closer to the truth than to every decoy;
- for neurons that fire on a word set (also inside a polysemantic union): which member
  words the explanation names, as a plain string check.

The simulation score of the same explanation comes from the eval log; the results
leaderboard joins them by neuron key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from neuronbench.datasets import NeuronDataset
from neuronbench.groundtruth.planted import PlantedNeuron, load_planted

MIN_WORDS_NAMED = 2
"""Member words an explanation must name for the word check to pass."""


def _word_sets(spec: PlantedNeuron, planted: dict[str, PlantedNeuron] | None) -> list[list[str]]:
    """Word lists of the rule, one per word-set part (a union may reference several)."""
    rule = spec.rule
    if rule.get("kind") == "words":
        return [list(rule["words"])]
    if rule.get("kind") == "union" and planted:
        by_name = {s.name: s for s in planted.values()}
        return [
            list(by_name[r["ref"]].rule["words"])
            for r in rule.get("rules", [])
            if "ref" in r
            and by_name.get(r["ref"])
            and by_name[r["ref"]].rule.get("kind") == "words"
        ]
    return []


def words_named(explanation: str, words: Iterable[str]) -> list[str]:
    """Members of ``words`` the explanation names as whole words (case-insensitive)."""
    named = {w.lower() for w in re.findall(r"[A-Za-z0-9]+", explanation)}
    return sorted({w for w in words if w.lower() in named})


def recovery(
    explanation: str, planted_neuron: PlantedNeuron, planted: dict[str, PlantedNeuron] | None = None
) -> dict[str, Any]:
    """Recovery metrics of one explanation of one planted neuron.

    Returns ``truth_similarity`` (cosine to the truth), ``decoy_similarity`` (per decoy
    kind), ``closer_to_truth`` (truth more similar than every decoy), and for word-set
    rules ``words_named`` (per part), ``word_check`` (every part has at least
    :data:`MIN_WORDS_NAMED` members named; None for rules without word sets).
    ``planted`` (all specs of the dataset) resolves the parts of a polysemantic union.
    """
    from neuronbench.scorers._embed import embed

    kinds = list(planted_neuron.decoys)
    vectors = embed([explanation, planted_neuron.truth, *planted_neuron.decoys.values()])
    sims = vectors[1:] @ vectors[0]  # (1 + n_decoys,)
    decoy = {k: float(s) for k, s in zip(kinds, sims[1:], strict=True)}
    parts = [words_named(explanation, ws) for ws in _word_sets(planted_neuron, planted)]
    return {
        "neuron": planted_neuron.name,
        "family": planted_neuron.family,
        "truth_similarity": float(sims[0]),
        "decoy_similarity": decoy,
        "closer_to_truth": bool(all(float(sims[0]) > v for v in decoy.values())),
        "words_named": parts,
        "word_check": None if not parts else all(len(p) >= MIN_WORDS_NAMED for p in parts),
    }


def recovery_metrics(ds: NeuronDataset, pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Recovery metrics for ``(neuron key, explanation)`` pairs of a planted dataset.

    Keys are neuron keys (``NeuronId.key``, the inspect sample id). Unknown keys raise
    ``KeyError`` naming the key, so a log from another dataset is not silently skipped.
    """
    planted = load_planted(ds)
    out = []
    for key, explanation in pairs:
        if key not in planted:
            raise KeyError(f"neuron {key!r} is not a planted neuron of {ds.path or 'this dataset'}")
        out.append({"neuron_id": key, **recovery(explanation or "", planted[key], planted)})
    return out
