"""Folding one batch of activation records into a ``RecorderState`` (see ``_state``).

The kept records live in unordered *slots*. A record enters a neuron's top-k only if it
beats the neuron's worst kept record, and then overwrites that one slot: the cost is
proportional to the records that actually enter, not to k, so late in a long run most
batches cost one comparison per neuron. The random sample and the quantile bins work the
same way with "worst" = largest hash key. Each record goes down the cascade of
``_state`` one neuron column at a time: whatever a stage does not keep (the record
itself, or the record it evicted) is offered to the next stage, so each neuron's three
samples stay disjoint. Which records end up kept depends only on the set of records seen
(ties go to the lower position), never on the order; ``_merge`` sorts slots into the
canonical order for output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from neuronbench.datasets.errors import DatasetError
from neuronbench.subjects._moments import accumulate, normalize, record_sums
from neuronbench.subjects._state import (
    EMPTY,
    QUANTILE_SALT,
    RANDOM_SALT,
    LayerState,
    RecorderState,
    keys_of,
    neuron_streams,
)

if TYPE_CHECKING:
    import torch


def update(state: RecorderState, positions: list[int], acts: dict[int, torch.Tensor]) -> None:
    """Fold one batch of records into the state.

    Args:
        state: updated in place.
        positions: corpus positions of the batch's records (distinct, not yet seen).
        acts: layer -> ``(batch, seq, n)`` activations of those records.
    """
    import torch

    cfg = state.config
    pos = torch.tensor(positions, dtype=torch.int64)  # (B,)
    for layer, ls in state.layers.items():
        a = acts[layer]  # (B, L, n)
        if a.shape[1] != cfg.record_length or a.shape[2] != cfg.d_mlp:
            raise DatasetError(
                f"layer {layer}: activations of shape {tuple(a.shape)}, expected "
                f"(batch, {cfg.record_length}, {cfg.d_mlp}) (records at positions {positions})"
            )
        rec_max = a.amax(dim=1)  # (B, n)
        if not bool(torch.isfinite(rec_max).all()):
            raise DatasetError(
                f"layer {layer}: non-finite activation in the records at positions {positions}"
            )
        per_token = a.transpose(1, 2)  # (B, n, L), a view
        _Cascade(ls, cfg.seed, layer, per_token).run(rec_max, pos)
        ls.compact()
        _moments(ls, a)
    state.n_tokens += len(positions) * cfg.record_length
    state.n_records += len(positions)


def _moments(ls: LayerState, a: torch.Tensor) -> None:
    """Power sums and firing counts of the batch ``a`` (B, L, n). A neuron all zero in the
    batch adds exactly 0 to every sum, so only the others are summed: an SAE batch touches
    a few thousand of its latents. Per neuron the arithmetic is the same either way, so
    the integers are too."""
    import torch

    n = a.shape[2]
    cols = (a != 0).flatten(0, 1).any(dim=0).nonzero().squeeze(1)  # (c,)
    if cols.numel() == 0:
        return
    if cols.numel() > n // 2:  # MLP neurons: all of them, no gather
        ls.pending = accumulate(ls.psum, record_sums(a), ls.pending)
        ls.fire += (a > 0).reshape(-1, n).sum(dim=0, dtype=torch.int32)  # 1.5x int64
        return
    sub = a[:, :, cols]  # (B, L, c)
    part = ls.psum[:, :, cols]
    pending = accumulate(part, record_sums(sub), ls.pending)
    ls.psum[:, :, cols] = part
    if pending != ls.pending + a.shape[0]:
        normalize(ls.psum)  # ``part`` was normalized before it could overflow: all must be
    ls.pending = pending
    ls.fire[cols] += (sub > 0).flatten(0, 1).sum(dim=0, dtype=torch.int32)


class _Cascade:
    """One layer's top -> random -> quantile offers for a batch, with each stage's worst
    kept record per neuron cached and refreshed only where a record entered."""

    def __init__(self, ls: LayerState, seed: int, layer: int, per_token: torch.Tensor) -> None:
        self.ls, self.seed, self.layer = ls, seed, layer
        self.per_token = per_token
        """(B, n, L) the batch's activations: only records that enter a stage are copied."""
        self.top = _worst_top(ls.top_val, ls.top_pos)  # (n,) value, position, slot
        self.has_rand = ls.rand_key.shape[0] > 0
        self.has_q = ls.q_key.shape[0] > 0
        if self.has_rand:
            self.rand = _worst_by_key(ls.rand_key, ls.rand_pos)  # (n,) key, position, slot
        if self.has_q:
            self.q = _worst_by_key(ls.q_key, ls.q_pos, dim=1)  # (Q, n) key, position, slot
        n = ls.top_val.shape[1]
        salts = [RANDOM_SALT] * self.has_rand + [QUANTILE_SALT] * self.has_q
        self.streams = {salt: neuron_streams(seed, salt, layer, n) for salt in salts}
        """salt -> (n,) per-neuron hash constants (see ``neuron_key``)."""

    def run(self, rec_max: torch.Tensor, pos: torch.Tensor) -> None:
        n = rec_max.shape[1]
        batch_keys = {
            salt: keys_of(pos[:, None].expand(-1, n), np.broadcast_to(st, (pos.shape[0], n)))
            for salt, st in self.streams.items()
        }  # (B, n) each
        active = self._may_enter(
            rec_max, pos, batch_keys.get(RANDOM_SALT), batch_keys.get(QUANTILE_SALT)
        )  # (B, n)
        # Neurons are independent, so only each neuron's own records must go in batch
        # order: wave w takes every neuron's w-th active record, all neurons at once. Late
        # in a run that is one or two waves per batch instead of one step per record.
        rank = active.cumsum(dim=0) - 1  # (B, n)
        n_waves = int(active.sum(dim=0).max()) if active.numel() else 0
        for w in range(n_waves):
            rows, cols = (active & (rank == w)).nonzero(as_tuple=True)  # (m,) each
            keys = {salt: k[rows, cols] for salt, k in batch_keys.items()}
            # The record each neuron passes down: its batch record, or the one it displaced.
            val = rec_max[rows, cols]
            # Only these (record, neuron) pairs are copied, into the pool (all-zero ones
            # not at all); a record that ends up in no stage leaves a garbage row.
            row = self.ls.add_rows(self.per_token[rows, cols], val)  # (m,)
            cand = _Candidate(cols, pos[rows], val, row, keys)
            self._offer_top(cand)
            if self.has_rand and cand.cols.numel():
                self._offer_random(cand, self._down_keys(RANDOM_SALT, cand))
            if self.has_q and cand.cols.numel():
                self._offer_quantile(cand, self._down_keys(QUANTILE_SALT, cand))

    def _may_enter(
        self,
        rec_max: torch.Tensor,
        pos: torch.Tensor,
        rkeys: torch.Tensor | None,
        qkeys: torch.Tensor | None,
    ) -> torch.Tensor:
        """(B, n): where record b may enter some stage of neuron j, judged against the
        worst kept records at the start of the batch. Those only get harder to beat during
        the batch, so this is a superset: elsewhere nothing can move, and the waves skip it."""
        p = pos[:, None]  # (B, 1)
        wval, wpos, _ = self.top
        active = (rec_max > wval) | ((rec_max == wval) & (p < wpos))
        if rkeys is not None:
            wkey, wpos, _ = self.rand
            active |= (rkeys < wkey) | ((rkeys == wkey) & (p < wpos))
        if qkeys is not None:
            bins = (rec_max[:, None, :] >= self.ls.q_bound[None]).sum(dim=1)  # (B, n)
            wk, wp = self.q[0].gather(0, bins), self.q[1].gather(0, bins)
            active |= (qkeys < wk) | ((qkeys == wk) & (p < wp))
        return active

    def _down_keys(self, salt: int, cand: _Candidate) -> torch.Tensor:
        """Keys of the candidates: their batch record's, rehashed where a displaced record
        moved."""
        keys = cand.keys[salt]
        if not bool(cand.moved.any()):
            return keys
        keys = keys.clone()
        m = cand.moved
        keys[m] = keys_of(cand.pos[m], self.streams[salt][cand.cols[m].numpy()])
        return keys

    def _offer_top(self, cand: _Candidate) -> None:
        """Each candidate (still its batch record) replaces its neuron's worst top record
        where it beats it; those neurons pass the displaced record down instead."""
        ls = self.ls
        wval, wpos, wslot = self.top
        cols, v, p = cand.cols, cand.val, cand.pos
        wins = (v > wval[cols]) | ((v == wval[cols]) & (p < wpos[cols]))
        sel = wins.nonzero().squeeze(1)  # (w,) into the candidates
        if sel.numel() == 0:
            return
        idx = cols[sel]
        slot = wslot[idx]
        new_val, new_pos, new_row = v[sel], p[sel], cand.row[sel]  # copies
        out = ls.top_pos[slot, idx] != EMPTY  # (w,) displaced a record (not an empty slot)
        if bool(out.any()):
            s, i = slot[out], idx[out]
            cand.replace(sel[out], ls.top_pos[s, i], ls.top_val[s, i], ls.top_row[s, i])
        ls.top_val[slot, idx] = new_val
        ls.top_pos[slot, idx] = new_pos
        ls.top_row[slot, idx] = new_row
        rest = _next_empty(self.top, ls.top_pos, slot, idx, ~out, float("-inf"))
        if rest is not None:
            wval[rest], wpos[rest], wslot[rest] = _worst_top(
                ls.top_val[:, rest], ls.top_pos[:, rest]
            )
        if not bool(out.all()):
            cand.drop(sel[~out])  # it took an empty slot: nothing to pass down

    def _offer_random(self, cand: _Candidate, key: torch.Tensor) -> None:
        """A candidate enters its neuron's random sample if its key is among the r
        smallest; the record it evicts is passed down instead."""
        ls = self.ls
        wkey, wpos, wslot = self.rand
        cols = cand.cols
        wins = (key < wkey[cols]) | ((key == wkey[cols]) & (cand.pos < wpos[cols]))
        sel = wins.nonzero().squeeze(1)  # (w,)
        if sel.numel() == 0:
            return
        idx = cols[sel]
        slot = wslot[idx]
        new_key, new_pos, new_row = key[sel], cand.pos[sel], cand.row[sel]  # copies
        out = ls.rand_pos[slot, idx] != EMPTY  # (w,)
        if bool(out.any()):
            s, i = slot[out], idx[out]
            out_row = ls.rand_row[s, i]  # (o,)
            cand.replace(sel[out], ls.rand_pos[s, i], ls.rows_max(out_row), out_row)
        ls.rand_key[slot, idx] = new_key
        ls.rand_pos[slot, idx] = new_pos
        ls.rand_row[slot, idx] = new_row
        rest = _next_empty(self.rand, ls.rand_pos, slot, idx, ~out, EMPTY)
        if rest is not None:
            wkey[rest], wpos[rest], wslot[rest] = _worst_by_key(
                ls.rand_key[:, rest], ls.rand_pos[:, rest]
            )
        if not bool(out.all()):
            cand.drop(sel[~out])

    def _offer_quantile(self, cand: _Candidate, key: torch.Tensor) -> None:
        """A candidate goes to its neuron's bin, which keeps its ``p`` smallest keys."""
        ls = self.ls
        wkey, wpos, wslot = self.q
        cols = cand.cols
        q = (cand.val[None] >= ls.q_bound[:, cols]).sum(dim=0)  # (m,) bin in [0, Q-1]
        wk, wp = wkey[q, cols], wpos[q, cols]
        wins = (key < wk) | ((key == wk) & (cand.pos < wp))
        sel = wins.nonzero().squeeze(1)  # (w,)
        if sel.numel() == 0:
            return
        idx, qi = cols[sel], q[sel]
        slot = wslot[qi, idx]
        was_empty = ls.q_pos[qi, slot, idx] == EMPTY
        ls.q_key[qi, slot, idx] = key[sel]
        ls.q_pos[qi, slot, idx] = cand.pos[sel]
        ls.q_row[qi, slot, idx] = cand.row[sel]  # (w,)
        # Filling: the next empty slot is the new worst (see _next_empty).
        per = ls.q_pos.shape[1]
        nxt = (slot + 1).clamp_(max=per - 1)
        fast = was_empty & (slot + 1 < per) & (ls.q_pos[qi, nxt, idx] == EMPTY)
        if bool(fast.any()):
            fq, fi = qi[fast], idx[fast]
            wkey[fq, fi], wpos[fq, fi], wslot[fq, fi] = EMPTY, EMPTY, nxt[fast]
            qi, idx = qi[~fast], idx[~fast]
        if idx.numel():
            # (w, p): the kept samples of each touched (bin, neuron)
            k2, p2, s2 = _worst_by_key(ls.q_key[qi, :, idx], ls.q_pos[qi, :, idx], dim=1)
            wkey[qi, idx], wpos[qi, idx], wslot[qi, idx] = k2, p2, s2


class _Candidate:
    """For distinct neurons ``cols`` (m,), the record each passes to the next stage:
    position (m,), max activation (m,) and pool row of its per-token activations (m,)."""

    def __init__(
        self,
        cols: torch.Tensor,
        pos: torch.Tensor,
        val: torch.Tensor,
        row: torch.Tensor,
        keys: dict[int, torch.Tensor],
    ) -> None:
        import torch

        self.cols, self.pos, self.val, self.row = cols, pos, val, row
        self.keys = keys
        """salt -> (m,) the batch record's keys (stale where ``moved``)."""
        self.moved = torch.zeros(pos.shape, dtype=torch.bool)
        """(m,) whether the neuron passes down a displaced record rather than the batch's."""

    def replace(
        self, sel: torch.Tensor, pos: torch.Tensor, val: torch.Tensor, row: torch.Tensor
    ) -> None:
        self.pos[sel], self.val[sel], self.row[sel] = pos, val, row
        self.moved[sel] = True

    def drop(self, sel: torch.Tensor) -> None:
        """Forget the candidates ``sel`` (their neurons have nothing to pass down)."""
        import torch

        keep = torch.ones(self.cols.shape, dtype=torch.bool)
        keep[sel] = False
        self.cols, self.pos, self.val = self.cols[keep], self.pos[keep], self.val[keep]
        self.row, self.moved = self.row[keep], self.moved[keep]
        self.keys = {salt: k[keep] for salt, k in self.keys.items()}


def _next_empty(
    worst: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    poss: torch.Tensor,
    slot: torch.Tensor,
    idx: torch.Tensor,
    was_empty: torch.Tensor,
    empty_value: float | int,
) -> torch.Tensor | None:
    """While a stage fills, skip rescanning its k slots: empty slots are the worst and tie,
    so the worst is the lowest-index empty slot, and once record ``slot`` of neuron ``idx``
    filled it (every lower slot is full), the next one is ``slot + 1`` if that is empty:
    exactly what the full scan (``_worst_top`` / ``_worst_by_key``) would return. Sets the
    worst of those neurons; returns the neurons that still need the scan (None if none)."""
    k = poss.shape[0]
    nxt = (slot + 1).clamp_(max=k - 1)
    fast = was_empty & (slot + 1 < k) & (poss[nxt, idx] == EMPTY)
    if not bool(fast.any()):
        return idx
    wval, wpos, wslot = worst
    f = idx[fast]
    wval[f], wpos[f], wslot[f] = empty_value, EMPTY, nxt[fast]
    rest = idx[~fast]
    return rest if rest.numel() else None


def _worst_top(
    vals: torch.Tensor, poss: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per column of (k, m): the worst kept record = lowest value, ties -> highest position.

    Returns its value, position and slot, each (m,). Empty slots (-inf, EMPTY) are worst.
    """
    import torch

    low = vals.min(dim=0).values
    cand = torch.where(vals == low, poss, -1)
    slot = cand.argmax(dim=0)
    return low, cand.gather(0, slot[None])[0], slot


def _worst_by_key(
    keys: torch.Tensor, poss: torch.Tensor, dim: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Along ``dim``: the worst kept sample = largest key, ties -> highest position."""
    import torch

    high = keys.max(dim=dim, keepdim=True).values
    cand = torch.where(keys == high, poss, -1)
    slot = cand.argmax(dim=dim, keepdim=True)
    return high.squeeze(dim), cand.gather(dim, slot).squeeze(dim), slot.squeeze(dim)
