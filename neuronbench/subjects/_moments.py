"""Exact, order-independent moment sums: why a merged recording equals an unsharded one bit for bit.

Floating-point sums depend on the order of their terms, so moments combined batch by batch
(or shard by shard) differ in the last bits between a sharded and an unsharded recording,
and with them the dataset's content hash. Here every quantity is a function of the *set*
of records seen:

1. Each record's power sums ``s_k = sum_t x_t**k`` (k = 1..4) over its tokens are computed
   in float64 by a fixed pairwise tree over the token axis (elementwise adds of halves),
   so they depend on that record's activations only, not on the batch around it.
2. Those per-record values are added *exactly* into an integer fixed-point accumulator per
   neuron and power (``psum``): float64 ``s_k`` is a multiple of ``2**BASE[k]`` (the
   smallest float32 power's unit), split into three 32-bit pieces added into 32-bit limbs
   of int64. Integer addition is associative, so batches, shards and their order give
   the same integer; after :func:`normalize` even the same limbs.
3. At the end the central moments come from the exact integer sums by exact integer
   arithmetic (``N*S2 - S1**2`` and so on), each rounded once to float64.

Precision: the roundings left are each token's float64 ``x**3`` and ``x**4`` and each
record's tree sum, about 1e-16 of ``sum |x|**k``. The central moments amplify them by about
``(|mean| / std)**k``: for neurons whose mean lies within ~100 standard deviations of 0
(activations of MLP neurons) skewness and kurtosis keep ~8 digits or more, and mean and
variance ~14; a neuron with a huge constant offset (|mean|/std ~1e4) loses its skewness
and kurtosis, where the old float32 batch sums kept ~5 digits.

Cost per batch: four float64 powers and a ``log2(L)``-step tree over the (B, L, n)
activations, then a few dozen ops on (4, B, n) per-record sums. Memory: ``psum`` is
(4, LIMBS, n) int64, 1.2 kB per neuron whatever the corpus length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

POWERS = 4
"""Power sums kept: x, x**2, x**3, x**4 (mean, variance, skewness, kurtosis)."""
W = 32
"""Bits per limb; an int64 limb has 31 bits of headroom for pieces below 2**32."""
BASE = tuple(-W * -(-149 * k // W) for k in range(1, POWERS + 1))
"""Exponent of limb 0 per power: float32's smallest unit is 2**-149, so every float64 power
sum of float32 activations is a multiple of 2**(-149k), and BASE[k] <= -149k."""
LIMBS = 39
"""Limbs per power: power 4 reaches 2**(512 + log2 L + 1) from 2**-608, plus headroom."""
_BLOCK_VALUES = 2**19
"""float64 values per block of :func:`record_sums` (4 MB)."""
_MAX_PENDING = 2**29
"""Records a normalized limb (< 2**32) may take in before it must be normalized again: each
adds under 2**32, so the limb stays below 2**62."""


def record_sums(acts: torch.Tensor) -> torch.Tensor:
    """(4, B, n) float64 power sums of each record of ``acts`` (B, L, n), each a function of
    its own record only: the token axis is reduced by a fixed pairwise tree, in place, a
    block of neurons at a time (a working set that stays in cache: 2x faster)."""
    import torch

    b, length, n = acts.shape
    width = 1 << max(length - 1, 0).bit_length()
    out = torch.empty((POWERS, b, n), dtype=torch.float64)
    block = max(1, min(n, _BLOCK_VALUES // max(1, POWERS * b * width)))
    buf = torch.zeros((POWERS, b, width, block), dtype=torch.float64)  # zero padding stays
    for j in range(0, n, block):
        m = min(block, n - j)
        p = buf[..., :m]
        x, x2 = p[0, :, :length], p[1, :, :length]
        x.copy_(acts[:, :, j : j + m])
        torch.mul(x, x, out=x2)
        torch.mul(x2, x, out=p[2, :, :length])
        torch.mul(x2, x2, out=p[3, :, :length])
        w = width
        while w > 1:
            w //= 2
            p[:, :, :w] += p[:, :, w : 2 * w]
        out[:, :, j : j + m] = p[:, :, 0]
    return out


def new_psum(n: int) -> torch.Tensor:
    import torch

    return torch.zeros((POWERS, LIMBS, n), dtype=torch.int64)


def accumulate(psum: torch.Tensor, sums: torch.Tensor, pending: int = 0) -> int:
    """Add per-record float64 power sums ``sums`` (4, B, n) exactly into ``psum`` (4, LIMBS, n).

    ``pending``: records added since ``psum`` was last normalized; returns the new count
    (the limbs are normalized, and the count reset, before they could overflow).
    """
    import torch

    _, b, n = sums.shape
    if b == 0:
        return pending
    if b > _MAX_PENDING:
        raise ValueError(f"accumulate: {b} records at once; at most {_MAX_PENDING}")
    if pending + b > _MAX_PENDING:
        normalize(psum)
        pending = 0
    base = torch.tensor(BASE, dtype=torch.int64)[:, None, None]  # (4, 1, 1)
    # |s| in [2**(e-1), 2**e) with e = biased exponent - 1022 (sums are never subnormal)
    biased = (sums.view(torch.int64) >> 52) & 0x7FF
    top = (biased - (1023 + base)) >> 5  # limb of the top bit (floor division by W = 32)
    lo = (top - 2).clamp_(min=0)  # |s| spans at most 53 bits: limbs lo..lo+2
    if int(lo.max()) >= LIMBS - 2:
        raise ValueError("accumulate: a power sum beyond float32 range")
    # s * 2**-(base + W*lo), the power of two built from its bits: an integer below 2**96
    u = sums * (((1023 - base) - (lo << 5)) << 52).view(torch.float64)
    # three signed 32-bit pieces, truncated toward zero: each a subset of u's bits, exact
    hi = torch.trunc(u * 2.0**-64)
    u.sub_(hi, alpha=2.0**64)
    mid = torch.trunc(u * 2.0**-32)
    u.sub_(mid, alpha=2.0**32)
    pieces = torch.cat([u, mid, hi], dim=1).to(torch.int64)  # (4, 3B, n)
    # piece i of record b goes to limb lo + i of its (power, neuron): a scatter along the
    # limb axis (faster than a flat index_add_, and integer addition is order-free)
    psum.scatter_add_(1, torch.cat([lo, lo + 1, lo + 2], dim=1), pieces)
    return pending + b


def normalize(psum: torch.Tensor) -> None:
    """Carry each limb's overflow into the next, in place: limbs 0..LIMBS-2 end in [0, 2**W)
    and the top limb holds the sign, a unique form for each integer (so equal sums give
    equal tensors) with full headroom for the next additions."""
    while True:
        carry = psum[:, :-1] >> W
        if not bool(carry.any()):
            return
        psum[:, :-1] -= carry << W
        psum[:, 1:] += carry


def exact_sums(psum: torch.Tensor) -> list[list[int]]:
    """[power][neuron] -> the integer ``I`` with power sum ``I * 2**BASE[power]``."""
    import numpy as np

    normalize(psum)
    limbs = psum.numpy()
    low = np.ascontiguousarray(limbs[:, :-1].transpose(0, 2, 1).astype("<u4"))  # (4, n, J-1)
    shift = W * (LIMBS - 1)
    return [
        [
            int.from_bytes(low[k, j].tobytes(), "little") + (int(limbs[k, -1, j]) << shift)
            for j in range(limbs.shape[2])
        ]
        for k in range(POWERS)
    ]


def central_moments(sums: list[int], n_tokens: int) -> tuple[float, float, float, float]:
    """Mean, variance, skewness and excess kurtosis of one neuron from its exact power sums
    (``sums[k] * 2**BASE[k]`` = sum of x**(k+1)), each rounded once at the end (skewness
    and kurtosis are nan where the variance is 0)."""
    n = n_tokens
    i1, i2, i3, i4 = sums
    b1, b2, b3, b4 = BASE
    mean = i1 / (n << -b1)
    # n**k times the k-th central sum, as (coefficient, integer, exponent of 2) terms
    var = _ratio([(n * i2, b2), (-(i1 * i1), 2 * b1)], n * n)
    if var <= 0:  # constant; below 0 only by the per-record roundings of a near-constant
        return mean, 0.0, float("nan"), float("nan")
    m3 = _ratio([(n * n * i3, b3), (-3 * n * i1 * i2, b1 + b2), (2 * i1**3, 3 * b1)], n**3)
    m4 = _ratio(
        [
            (n**3 * i4, b4),
            (-4 * n * n * i1 * i3, b1 + b3),
            (6 * n * i1 * i1 * i2, 2 * b1 + b2),
            (-3 * i1**4, 4 * b1),
        ],
        n**4,
    )
    return mean, var, m3 / var**1.5, m4 / var**2 - 3.0


def _ratio(terms: list[tuple[int, int]], denominator: int) -> float:
    """``sum(value * 2**exp) / denominator``, computed exactly and rounded once."""
    low = min(e for _, e in terms)
    num = sum(v << (e - low) for v, e in terms)
    return num / (denominator << -low)
