"""Folding one batch of activation records into a ``RecorderState`` (see ``_state``).

The kept records live in unordered *slots*. A record enters a neuron's top-k only if it
beats the neuron's worst kept record, and then overwrites that one slot: the cost is
proportional to the records that actually enter, not to k, so late in a long run most
batches cost one comparison per neuron. Quantile bins and the random sample work the
same way with "worst" = largest hash key. Which records end up kept depends only on
the set of records seen (ties go to the lower position), never on the order; ``_merge``
sorts slots into the canonical order for output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuronbench.datasets.errors import DatasetError
from neuronbench.subjects._state import (
    QUANTILE_SALT,
    RANDOM_SALT,
    LayerState,
    RecorderState,
    record_keys,
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
    # Random sample: the same records for every layer (keys do not depend on activations).
    rand_moves = _update_random(state, pos, record_keys(cfg.seed, RANDOM_SALT, positions))
    qkey = record_keys(cfg.seed, QUANTILE_SALT, positions) if cfg.n_quantiles else None
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
        _update_top(ls, rec_max, per_token, pos)
        for b, slot in rand_moves:
            ls.rand_act[slot] = per_token[b]
        if qkey is not None:
            _update_quantiles(ls, rec_max, per_token, pos, qkey)
        _update_moments(ls, a.reshape(-1, a.shape[-1]), state.n_tokens)
    state.n_tokens += len(positions) * cfg.record_length
    state.n_records += len(positions)


def _update_random(
    state: RecorderState, pos: torch.Tensor, rkey: torch.Tensor
) -> list[tuple[int, int]]:
    """Offer the batch to the shared random sample; (batch row, slot) for each entry, in order."""
    moves: list[tuple[int, int]] = []
    if state.rand_key.numel() == 0:
        return moves
    for b in range(pos.shape[0]):
        slot = int(_worst_by_key(state.rand_key[:, None], state.rand_pos[:, None])[2])
        wkey, wpos = int(state.rand_key[slot]), int(state.rand_pos[slot])
        if (int(rkey[b]), int(pos[b])) < (wkey, wpos):
            state.rand_key[slot], state.rand_pos[slot] = rkey[b], pos[b]
            moves.append((b, slot))
    return moves


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


def _update_top(
    ls: LayerState, rec_max: torch.Tensor, per_token: torch.Tensor, pos: torch.Tensor
) -> None:
    """Each record replaces the worst kept record of the neurons where it beats it."""
    wval, wpos, wslot = _worst_top(ls.top_val, ls.top_pos)  # (n,) each
    beats = (rec_max > wval) | ((rec_max == wval) & (pos[:, None] < wpos))  # (B, n)
    if not bool(beats.any()):
        return
    for b in range(pos.shape[0]):
        v = rec_max[b]
        wins = (v > wval) | ((v == wval) & (pos[b] < wpos))
        idx = wins.nonzero().squeeze(1)  # (m,)
        if idx.numel() == 0:
            continue
        slot = wslot[idx]
        ls.top_val[slot, idx] = v[idx]
        ls.top_pos[slot, idx] = pos[b]
        ls.top_act[slot, idx] = per_token[b, idx]  # (m, L)
        wval[idx], wpos[idx], wslot[idx] = _worst_top(ls.top_val[:, idx], ls.top_pos[:, idx])


def _update_quantiles(
    ls: LayerState,
    rec_max: torch.Tensor,
    per_token: torch.Tensor,
    pos: torch.Tensor,
    qkey: torch.Tensor,
) -> None:
    """Offer each record to its bin (per neuron); a bin keeps its ``p`` smallest keys."""
    import torch

    bins = (rec_max[:, None, :] >= ls.q_bound[None]).sum(dim=1)  # (B, n) in [0, Q-1]
    wkey, wpos, wslot = _worst_by_key(ls.q_key, ls.q_pos, dim=1)  # (Q, n) each
    cols = torch.arange(bins.shape[1])
    for b in range(pos.shape[0]):
        q = bins[b]  # (n,)
        wk, wp = wkey[q, cols], wpos[q, cols]
        wins = (qkey[b] < wk) | ((qkey[b] == wk) & (pos[b] < wp))
        idx = wins.nonzero().squeeze(1)  # (m,)
        if idx.numel() == 0:
            continue
        qi = q[idx]
        slot = wslot[qi, idx]
        ls.q_key[qi, slot, idx] = qkey[b]
        ls.q_pos[qi, slot, idx] = pos[b]
        ls.q_act[qi, slot, idx] = per_token[b, idx]  # (m, L)
        # (m, p): the kept samples of each touched (bin, neuron)
        k2, p2, s2 = _worst_by_key(ls.q_key[qi, :, idx], ls.q_pos[qi, :, idx], dim=1)
        wkey[qi, idx], wpos[qi, idx], wslot[qi, idx] = k2, p2, s2


def _update_moments(ls: LayerState, x: torch.Tensor, n_seen: int) -> None:
    """Fold tokens ``x`` (tokens, n) into the running moments.

    The batch's own central sums are float32 (a batch is a few hundred tokens, so their
    relative error is ~1e-6); they are combined into the float64 totals.
    """
    import torch

    nb = x.shape[0]
    mean_b = x.mean(dim=0)
    d = x - mean_b
    d2 = d * d
    m2_b, m3_b, m4_b = d2.sum(0), (d2 * d).sum(0), (d2 * d2).sum(0)
    f64 = torch.float64
    combine_moments(ls, n_seen, mean_b.to(f64), m2_b.to(f64), m3_b.to(f64), m4_b.to(f64), nb)
    ls.fire += (x > 0).sum(dim=0)


def combine_moments(
    ls: LayerState,
    na: int,
    mean_b: torch.Tensor,
    m2_b: torch.Tensor,
    m3_b: torch.Tensor,
    m4_b: torch.Tensor,
    nb: int,
) -> None:
    """Pébay's pairwise update: moments of A (in ``ls``, ``na`` tokens) and B -> A ∪ B."""
    if nb == 0:
        return
    if na == 0:
        ls.mean, ls.m2, ls.m3, ls.m4 = mean_b.clone(), m2_b.clone(), m3_b.clone(), m4_b.clone()
        return
    n = na + nb
    delta = mean_b - ls.mean
    d_n = delta / n
    m2_a, m3_a = ls.m2, ls.m3
    ls.m4 = (
        ls.m4
        + m4_b
        + delta * d_n**3 * na * nb * (na * na - na * nb + nb * nb)
        + 6 * d_n**2 * (na * na * m2_b + nb * nb * m2_a)
        + 4 * d_n * (na * m3_b - nb * m3_a)
    )
    ls.m3 = m3_a + m3_b + delta * d_n**2 * na * nb * (na - nb) + 3 * d_n * (na * m2_b - nb * m2_a)
    ls.m2 = m2_a + m2_b + delta * d_n * na * nb
    ls.mean = ls.mean + d_n * nb
