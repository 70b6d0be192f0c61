"""Merging shard states exactly, canonical slot order, and the moments a state reports.

Every summary is order-independent (see ``_state``), so merging is the same selection
applied to the union of two states, run as the same cascade: top-k by (max activation
desc, position asc); the top records that lose go with both states' random records into
the per-neuron bottom-k by (key, position); the random records that lose go with both
states' bin samples into each bin's bottom-p. Moments are exact integer sums (``_moments``)
and merge by integer addition, so a merge is bit-equal to one unsharded run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neuronbench.datasets.errors import DatasetError
from neuronbench.subjects._moments import central_moments, exact_sums, normalize
from neuronbench.subjects._state import (
    EMPTY,
    QUANTILE_SALT,
    RANDOM_SALT,
    LayerState,
    RecorderConfig,
    RecorderState,
    lexorder,
    neuron_keys,
    new_state,
)

if TYPE_CHECKING:
    import torch


def merge(states: list[RecorderState]) -> RecorderState:
    """Merge complete states of disjoint shards into one, exactly (samples and moments).

    The result has ``shard_index=0, shard_count=1``. Raises :class:`DatasetError` when the
    shards were recorded with different settings or boundaries, or do not cover 0..n-1.
    """
    import torch

    if not states:
        raise DatasetError("merge: no shard states given")
    first = states[0].config
    for s in states[1:]:
        diff = first.differences(s.config, ignore=("shard_index",))
        if diff:
            raise DatasetError(
                f"merge: shard {s.config.shard_index} was recorded with different settings "
                f"than shard {first.shard_index}: " + "; ".join(diff)
            )
    got = sorted(s.config.shard_index for s in states)
    if got != list(range(first.shard_count)):
        raise DatasetError(
            f"merge: need each of shards 0..{first.shard_count - 1} exactly once, got {got}"
        )
    for s in states:
        if not s.complete:
            raise DatasetError(
                f"merge: shard {s.config.shard_index}/{s.config.shard_count} is incomplete "
                f"({s.consumed} records consumed): finish it with the same `record` command"
            )
    out = new_state(RecorderConfig(**{**first.to_dict(), "shard_index": 0, "shard_count": 1}))
    out.has_boundaries = True
    for layer, ls in out.layers.items():
        ls.q_bound = states[0].layers[layer].q_bound.clone()
        for s in states[1:]:
            if not torch.equal(s.layers[layer].q_bound, ls.q_bound):
                raise DatasetError(
                    f"merge: shard {s.config.shard_index} has different quantile boundaries for "
                    f"layer {layer} (subject or corpus differ between machines?)"
                )
    for s in states:
        _merge_into(out, s)
    out.consumed = sum(s.consumed for s in states)
    out.complete = True
    for s in states:
        for k, v in s.timings.items():
            out.timings[k] = out.timings.get(k, 0.0) + v
    out.batch_sizes = sorted({b for s in states for b in s.batch_sizes})
    return out


def _merge_into(out: RecorderState, s: RecorderState) -> None:
    import torch

    cfg = out.config
    for layer, a in out.layers.items():
        b = s.layers[layer]
        b_top, b_rand, b_q = _adopt_pool(a, b)
        neurons = torch.arange(cfg.d_mlp)
        # top-k of the union; the rest (k, n) goes down to the random selection
        vals = torch.cat([a.top_val, b.top_val])  # (2k, n)
        tpos = torch.cat([a.top_pos, b.top_pos])
        trow = torch.cat([a.top_row, b_top])  # pool rows: records are never copied
        order = lexorder(vals, tpos, 0, descending=True)
        keep, drop = order[: cfg.top_k], order[cfg.top_k :]
        a.top_val, a.top_pos, a.top_row = (
            vals.gather(0, keep),
            tpos.gather(0, keep),
            trow.gather(0, keep),
        )
        down_pos, down_row = tpos.gather(0, drop), trow.gather(0, drop)
        if cfg.n_random:
            down_key = neuron_keys(cfg.seed, RANDOM_SALT, layer, down_pos, neurons)
            rkey = torch.cat([a.rand_key, b.rand_key, down_key])  # (2r + k, n)
            rpos = torch.cat([a.rand_pos, b.rand_pos, down_pos])
            rrow = torch.cat([a.rand_row, b_rand, down_row])
            order = lexorder(rkey, rpos, 0, descending=False)
            keep, drop = order[: cfg.n_random], order[cfg.n_random :]
            a.rand_key, a.rand_pos = rkey.gather(0, keep), rpos.gather(0, keep)
            a.rand_row = rrow.gather(0, keep)
            down_pos, down_row = rpos.gather(0, drop), rrow.gather(0, drop)
        if cfg.n_quantiles:
            _merge_bins(a, b, b_q, cfg.seed, layer, down_pos, down_row, cfg.per_quantile)
        a.compact(force=True)  # the records that fell out of every sample
        a.psum = a.psum + b.psum  # each limb < 2**62 (``_moments``): no overflow
        normalize(a.psum)
        a.fire = a.fire + b.fire
    out.n_tokens += s.n_tokens
    out.n_records += s.n_records


def _adopt_pool(a: LayerState, b: LayerState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Append ``b``'s live pool rows to ``a``'s; returns ``b``'s top, random and bin rows
    renumbered into ``a``'s pool (row 0, the shared zero row, stays 0)."""
    import torch

    b.compact(force=True)
    offset = a.used - 1
    a.pool = torch.cat([a.pool[: a.used], b.pool[1 : b.used]])
    a.pool_max = torch.cat([a.pool_max[: a.used], b.pool_max[1 : b.used]])
    a.used += b.used - 1
    return tuple(  # type: ignore[return-value]
        torch.where(rows != 0, rows + offset, 0) for rows in (b.top_row, b.rand_row, b.q_row)
    )


def _merge_bins(
    a: LayerState,
    b: LayerState,
    b_q: torch.Tensor,
    seed: int,
    layer: int,
    down_pos: torch.Tensor,
    down_row: torch.Tensor,
    per_quantile: int,
) -> None:
    """Each bin of ``a`` <- bottom-p of both bin samples (``b``'s pool rows ``b_q``, already
    in ``a``'s pool) and the passed-down records (``down_pos`` (m, n), pool rows
    ``down_row`` (m, n)) that fall in the bin."""
    import torch

    neurons = torch.arange(down_pos.shape[1])
    down_key = neuron_keys(seed, QUANTILE_SALT, layer, down_pos, neurons)  # (m, n)
    down_bin = (a.rows_max(down_row)[:, None] >= a.q_bound[None]).sum(dim=1)  # (m, n)
    keys, poss, rows = [], [], []
    for q in range(a.q_key.shape[0]):
        inside = down_bin == q
        qk = torch.cat([a.q_key[q], b.q_key[q], torch.where(inside, down_key, EMPTY)])
        qp = torch.cat([a.q_pos[q], b.q_pos[q], torch.where(inside, down_pos, EMPTY)])
        keep = lexorder(qk, qp, 0, descending=False)[:per_quantile]  # (p, n)
        keys.append(qk.gather(0, keep))
        poss.append(qp.gather(0, keep))
        inside_row = torch.where(inside, down_row, 0)  # empty slots hold the zero row
        rows.append(torch.cat([a.q_row[q], b_q[q], inside_row]).gather(0, keep))
    a.q_key, a.q_pos, a.q_row = torch.stack(keys), torch.stack(poss), torch.stack(rows)


def canonical(state: RecorderState) -> RecorderState:
    """Sort the slots into output order, in place: top by (max activation desc, position
    asc), random and bin samples by (key, position) asc, moment limbs normalized. Streaming
    leaves slots in arrival order; after this, equal record sets give equal tensors (a merge
    is already canonical). Only the slots' pool rows move, never the activations.
    """
    for ls in state.layers.values():
        normalize(ls.psum)
        ls.pending = 0
        rand = lexorder(ls.rand_key, ls.rand_pos, 0, descending=False)
        ls.rand_row = ls.rand_row.gather(0, rand)
        ls.rand_key, ls.rand_pos = ls.rand_key.gather(0, rand), ls.rand_pos.gather(0, rand)
        top = lexorder(ls.top_val, ls.top_pos, 0, descending=True)
        ls.top_row = ls.top_row.gather(0, top)
        ls.top_val, ls.top_pos = ls.top_val.gather(0, top), ls.top_pos.gather(0, top)
        bins = lexorder(ls.q_key, ls.q_pos, 1, descending=False)
        ls.q_row = ls.q_row.gather(1, bins)
        ls.q_key, ls.q_pos = ls.q_key.gather(1, bins), ls.q_pos.gather(1, bins)
    return state


@dataclass
class Moments:
    """Per-neuron summary statistics derived from a layer state."""

    mean: list[float]
    """Mean activation."""
    variance: list[float]
    """Population variance."""
    skewness: list[float]
    """Skewness (nan when the variance is 0)."""
    kurtosis: list[float]
    """Excess kurtosis (nan when the variance is 0)."""
    firing_rate: list[float]
    """Fraction of tokens with activation > 0."""


def moments(ls: LayerState, n_tokens: int) -> Moments:
    """Mean, variance, skewness, excess kurtosis and firing rate of each neuron, from the
    exact power sums (each value rounded once, so equal sums give bit-equal moments)."""
    import torch

    n = ls.fire.shape[0]
    if n_tokens == 0:
        nan = [float("nan")] * n
        return Moments(nan, nan, nan, nan, nan)
    sums = exact_sums(ls.psum)
    mo = [central_moments([sums[k][j] for k in range(4)], n_tokens) for j in range(n)]
    return Moments(
        mean=[m[0] for m in mo],
        variance=[m[1] for m in mo],
        skewness=[m[2] for m in mo],
        kurtosis=[m[3] for m in mo],
        firing_rate=(ls.fire.to(torch.float64) / n_tokens).tolist(),
    )
