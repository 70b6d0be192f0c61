"""Skipped neurons: samples whose records cannot fill the scoring split.

The task marks such a sample with ``metadata["skip"]`` (a reason naming what is
missing, e.g. "valid split needs >=1 top and >=1 random record; neuron has 3 top and 0
random records") and its solver calls no model. Every scorer answers it with the
unscored sentinel (NaN values, ``scored`` 0) and status ``skipped``, before touching the
records: one small neuron must not stop an eval of hundreds, and it must be counted in
the leaderboard's coverage rather than vanish or count as anyone's failure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inspect_ai.scorer import Score

SKIP_KEY = "skip"
"""Sample metadata key holding why the neuron is skipped."""

SKIPPED = "skipped"
"""Score metadata ``status`` (and ``Score.reason``) of a skipped neuron."""


def skip_reason(metadata: Mapping[str, Any] | None) -> str | None:
    """The sample's skip reason, or None when it is a neuron to score.

    Any non-empty value marks a skip; a non-string one is turned into text so the reason
    always reaches the log.
    """
    value = (metadata or {}).get(SKIP_KEY)
    if value is None or value is False or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def skipped_score(
    value_keys: Sequence[str], reason: str, metadata: Mapping[str, Any] | None = None
) -> Score:
    """The score of a skipped neuron: ``value_keys`` NaN, ``scored`` 0, status ``skipped``."""
    from inspect_ai.scorer import Score

    value: dict[str, float] = {k: math.nan for k in value_keys}
    value["scored"] = 0.0
    meta = {**(metadata or {}), "status": SKIPPED, "reason": reason, "raw_output": None}
    return Score(value=value, explanation=f"skipped: {reason}", reason=SKIPPED, metadata=meta)


def sample_base(state: Any, scorer: str) -> dict[str, Any]:
    """Score metadata a skipped sample can give without reading its records."""
    meta = state.metadata or {}
    layer = meta.get("layer")
    return {
        "scorer": scorer,
        "neuron_id": str(state.sample_id),
        "layer": layer if isinstance(layer, int) and not isinstance(layer, bool) else None,
        "split": meta.get("split"),
    }
