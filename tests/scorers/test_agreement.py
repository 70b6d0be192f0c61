"""Rank agreement between scorers: Spearman over shared explanations, matches scipy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from neuronbench.scorers.agreement import rank_agreement, scores_from_samples, spearman


def test_spearman_uses_shared_finite_keys_only() -> None:
    a = {"x": 0.1, "y": 0.5, "z": 0.9, "w": 0.3, "v": None}
    b = {"x": 10, "y": 30, "z": 20, "w": float("nan"), "u": 5}
    rho, n = spearman(a, b)
    assert n == 3
    assert rho == pytest.approx(spearmanr([0.1, 0.5, 0.9], [10, 30, 20]).statistic)
    assert spearman({"a": 1, "b": 2}, {"a": 1, "b": 2}) == (None, 2)  # too few pairs
    assert spearman({"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 3})[0] is None  # constant


def test_matrix_is_symmetric_with_unit_diagonal() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(20)
    scores = {
        "sim": {str(i): float(v) for i, v in enumerate(base)},
        "cheap": {str(i): float(v + 0.1 * rng.random()) for i, v in enumerate(base)},
        "noise": {str(i): float(rng.random()) for i in range(20)},
    }
    m = rank_agreement(scores)
    assert m.rho[0][0] == 1.0 and m.n[0][1] == 20
    assert m.rho[0][1] == pytest.approx(m.rho[1][0])
    assert m.rho[0][1] > 0.8 > abs(m.rho[0][2])
    assert "cheap" in m.render()


def test_scores_from_samples_decodes_dict_scores() -> None:
    df = pd.DataFrame(
        {
            "eval_id": ["e", "e", "e"],
            "id": ["n1", "n2", "n3"],
            "score_simulation": [json.dumps({"top_and_random": v}) for v in (0.1, 0.5, 0.9)],
            "score_embedding": [json.dumps({"auc": v}) for v in (0.6, 0.7, 0.5)],
        }
    )
    got = scores_from_samples(
        df, {"sim": ("score_simulation", "top_and_random"), "emb": ("score_embedding", "auc")}
    )
    assert got["sim"] == {"e/n1": 0.1, "e/n2": 0.5, "e/n3": 0.9}
    with pytest.raises(KeyError, match="score_detection"):
        scores_from_samples(df, {"d": ("score_detection", None)})
