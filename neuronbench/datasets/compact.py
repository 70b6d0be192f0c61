"""Activations as small integers on a per-neuron grid: what makes a stored neuron ~5x smaller.

Activations are ~95% of a dataset's bytes (40 top + 30 random + 25 quantile records of 64
tokens per neuron). Storing them as float16 only reaches ~3x: float16 spends 10 mantissa
bits on every value, also on the many near-zero ones, whose precision no score uses. Scores
use activations on the neuron's own scale (the 0-10 normalisation, correlations), so the
stored values live on a grid of ``scale / 2**GRID_BITS`` with ``scale`` = the neuron's top
activation: a uniform absolute error of at most ``scale / 512`` (typically ``scale / 1024``,
about float16's error near the top), in integers that compress to ~7.5 bits.

Three properties are exact, not approximate (tests/datasets/test_compact_storage.py):

- the top activation itself (code ``2**GRID_BITS``), so every 0-10 scale it anchors is;
- every value's 0-10 bin against the neuron's top activation (``normalize``): a value the
  nearest grid point would move across a bin edge is rounded to the other neighbour;
- order: rounding is monotone, so sorted top records stay sorted and no record's max changes rank
  (values within one grid step may become equal).

``encode`` is lossless: it uses the grid only when the values are already on it (a recording,
or an OpenAI export of one, read back), else it keeps float64. ``quantize`` is the lossy step
the recorder and ``neuronbench migrate`` apply before storing.
"""

from __future__ import annotations

import numpy as np

GRID_BITS = 9
"""Grid step = scale / 2**GRID_BITS. 10 bits would halve the error but cost ~15% more bytes
(below the 5x target on SmolLM2); 9 keeps the error ~100x below a 0-10 bin (scale / 10)."""
_MAX_CODE = 2**29
"""|code| bound: code * scale stays exact in float64 for float32 scales (29 + 24 bits)."""


def grid_scale(activations: np.ndarray, top_max: float) -> float:
    """The neuron's grid scale: its top activation, else its largest magnitude, else 1."""
    if top_max > 0 and np.isfinite(top_max):
        return float(top_max)
    m = float(np.max(np.abs(activations))) if activations.size else 0.0
    return m if m > 0 and np.isfinite(m) else 1.0


def decode(codes: np.ndarray, scale: float) -> np.ndarray:
    """Activations (float64) of grid ``codes``; the one formula reader and writer share."""
    return (codes.astype(np.float64) * scale) * 2.0**-GRID_BITS


def _bins(values: np.ndarray, top_max: float) -> np.ndarray:
    # the same float operations as datasets.normalize.normalize, so bins match it exactly
    return np.minimum(10.0, np.floor(10 * np.maximum(0.0, values) / top_max))


def quantize(activations: np.ndarray, top_max: float) -> tuple[np.ndarray, float] | None:
    """Grid codes (int64) and scale for ``activations``: lossy, with the exact properties above.

    None when no grid holds them (non-finite values, or a magnitude beyond 2**20 times the top
    activation); the caller then stores them exactly.
    """
    a = np.asarray(activations, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        return None
    scale = grid_scale(a, top_max)
    x = (a * 2.0**GRID_BITS) / scale
    if a.size and np.max(np.abs(x)) >= _MAX_CODE - 1:
        return None
    lo = np.floor(x)
    hi = lo + 1.0
    nearest = np.where(x - lo <= hi - x, lo, hi)
    if top_max > 0 and np.isfinite(top_max):
        want = _bins(a, top_max)
        other = np.where(nearest == lo, hi, lo)
        codes = np.where(_bins(decode(nearest, scale), top_max) == want, nearest, other)
        if not np.array_equal(_bins(decode(codes, scale), top_max), want):
            return None  # cannot happen while a bin is wider than a grid step; never guess
    else:
        codes = nearest
    return codes.astype(np.int64), scale


def encode(activations: np.ndarray, top_max: float) -> tuple[np.ndarray, float] | None:
    """Grid codes and scale when ``activations`` lie on the neuron's grid exactly, else None."""
    a = np.asarray(activations, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        return None
    scale = grid_scale(a, top_max)
    x = np.rint((a * 2.0**GRID_BITS) / scale)
    if a.size and np.max(np.abs(x)) >= _MAX_CODE:
        return None
    codes = x.astype(np.int64)
    if not np.array_equal(decode(codes, scale), a):
        return None
    return codes, scale
