"""Merging shard states exactly, canonical slot order, and the moments a state reports.

Every summary is order-independent (see ``_state``), so merging is the same selection
applied to the union of two states: top-k by (max activation desc, position asc),
bottom-k by (key, position), moments by Pébay's pairwise formula.
"""

from __future__ import annotations

from dataclasses import dataclass

from neuronbench.datasets.errors import DatasetError
from neuronbench.subjects._state import (
    LayerState,
    RecorderConfig,
    RecorderState,
    lexorder,
    new_state,
    take,
)
from neuronbench.subjects._stream import combine_moments


def merge(states: list[RecorderState]) -> RecorderState:
    """Merge complete states of disjoint shards into one (exact for samples, float-close moments).

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
    return out


def _merge_into(out: RecorderState, s: RecorderState) -> None:
    import torch

    cfg = out.config
    keys = torch.cat([out.rand_key, s.rand_key])
    poss = torch.cat([out.rand_pos, s.rand_pos])
    rand_order = lexorder(keys, poss, 0, descending=False)[: cfg.n_random]
    out.rand_key, out.rand_pos = keys[rand_order], poss[rand_order]
    for layer, a in out.layers.items():
        b = s.layers[layer]
        vals = torch.cat([a.top_val, b.top_val])  # (2k, n)
        tpos = torch.cat([a.top_pos, b.top_pos])
        order = lexorder(vals, tpos, 0, descending=True)[: cfg.top_k]
        a.top_act = take(torch.cat([a.top_act, b.top_act]), order, 0)
        a.top_val, a.top_pos = vals.gather(0, order), tpos.gather(0, order)
        a.rand_act = torch.cat([a.rand_act, b.rand_act])[rand_order]
        qk = torch.cat([a.q_key, b.q_key], dim=1)  # (Q, 2p, n)
        qp = torch.cat([a.q_pos, b.q_pos], dim=1)
        qorder = lexorder(qk, qp, 1, descending=False)[:, : cfg.per_quantile]
        a.q_act = take(torch.cat([a.q_act, b.q_act], dim=1), qorder, 1)
        a.q_key, a.q_pos = qk.gather(1, qorder), qp.gather(1, qorder)
        combine_moments(a, out.n_tokens, b.mean, b.m2, b.m3, b.m4, s.n_tokens)
        a.fire = a.fire + b.fire
    out.n_tokens += s.n_tokens
    out.n_records += s.n_records


def canonical(state: RecorderState) -> RecorderState:
    """Sort the slots into output order, in place: top by (max activation desc, position
    asc), random and bin samples by (key, position) asc. Streaming leaves slots in arrival
    order; after this, equal record sets give equal tensors (a merge is already canonical).
    """
    order = lexorder(state.rand_key, state.rand_pos, 0, descending=False)
    state.rand_key, state.rand_pos = state.rand_key[order], state.rand_pos[order]
    for ls in state.layers.values():
        ls.rand_act = ls.rand_act[order]
        top = lexorder(ls.top_val, ls.top_pos, 0, descending=True)
        ls.top_act = take(ls.top_act, top, 0)
        ls.top_val, ls.top_pos = ls.top_val.gather(0, top), ls.top_pos.gather(0, top)
        bins = lexorder(ls.q_key, ls.q_pos, 1, descending=False)
        ls.q_act = take(ls.q_act, bins, 1)
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
    """Mean, variance, skewness, excess kurtosis and firing rate of each neuron."""
    import torch

    if n_tokens == 0:
        nan = [float("nan")] * ls.mean.shape[0]
        return Moments(nan, nan, nan, nan, nan)
    var = ls.m2 / n_tokens
    ok = var > 0
    safe = torch.where(ok, var, torch.ones_like(var))
    skew = torch.where(ok, (ls.m3 / n_tokens) / safe**1.5, torch.full_like(var, float("nan")))
    kurt = torch.where(ok, (ls.m4 / n_tokens) / safe**2 - 3.0, torch.full_like(var, float("nan")))
    return Moments(
        mean=ls.mean.tolist(),
        variance=var.tolist(),
        skewness=skew.tolist(),
        kurtosis=kurt.tolist(),
        firing_rate=(ls.fire.to(torch.float64) / n_tokens).tolist(),
    )
