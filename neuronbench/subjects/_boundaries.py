"""Quantile boundaries, fixed before the stream starts so one pass (and every shard) can bin.

Quantile sampling needs bin edges over per-record max activation before it can put a
record in a bin. Exact edges would need a full first pass. Instead the recorder runs
the subject on a *boundary sample*: the ``boundary_records`` records with the smallest
random hash keys over the whole corpus (one key per record, shared by all neurons, so
it is a uniform sample and one forward pass serves every neuron). Which records those
are depends only on positions, not activations, so every shard finds the same sample on its own and
computes the same boundaries; no coordination and no second pass. The edges are the
``j / n_quantiles`` quantiles (linear interpolation) of the sample's record maxima, per
neuron; when the corpus has no more records than the sample they are exact.

Cost: one tokenize-only scan of the corpus plus ``boundary_records`` forward passes,
independent of the corpus length.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from neuronbench.subjects._state import BOUNDARY_SALT, RecorderConfig, record_key

if TYPE_CHECKING:
    import torch

    from neuronbench.subjects.models import Subject


def boundary_sample(tokenizer: Any, cfg: RecorderConfig) -> list[tuple[int, list[int]]]:
    """(position, token ids) of the boundary sample, ascending by position."""
    from neuronbench.subjects.corpus import iter_records

    heap: list[tuple[int, int, list[int]]] = []  # (-key, position, ids): a max-heap on key
    stream = iter_records(
        tokenizer,
        cfg.corpus,
        record_length=cfg.record_length,
        max_tokens=cfg.max_tokens,
        seed=cfg.seed,
    )
    for rec in stream:
        item = (-record_key(cfg.seed, BOUNDARY_SALT, rec.position), rec.position, rec.token_ids)
        if len(heap) < cfg.boundary_records:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:
            heapq.heapreplace(heap, item)
    return sorted((pos, ids) for _, pos, ids in heap)


def compute_boundaries(
    subject: Subject, cfg: RecorderConfig, batch_size: int, forward: Any
) -> dict[int, torch.Tensor]:
    """layer -> (n_quantiles - 1, n) interior bin edges of record max activation.

    ``forward(ids)`` runs the subject on a ``(batch, seq)`` id tensor and returns
    layer -> ``(batch, seq, n)`` activations.
    """
    import torch

    sample = boundary_sample(subject.tokenizer, cfg)
    maxima: dict[int, list[torch.Tensor]] = {layer: [] for layer in cfg.layers}
    for i in range(0, len(sample), batch_size):
        ids = torch.tensor([t for _, t in sample[i : i + batch_size]], dtype=torch.int64)
        acts = forward(ids)
        for layer in cfg.layers:
            maxima[layer].append(acts[layer].amax(dim=1))  # (B, n)
    qs = [j / cfg.n_quantiles for j in range(1, cfg.n_quantiles)]
    return {layer: quantiles(torch.cat(m), qs) for layer, m in maxima.items()}


def quantiles(x: torch.Tensor, qs: list[float]) -> torch.Tensor:
    """Column-wise quantiles of ``x`` (samples, n), linear interpolation -> (len(qs), n).

    Written out (not ``torch.quantile``) because that has an input size limit.
    """
    import torch

    # sorted along rows of the transposed copy: the same values, 4x faster than along dim 0
    s = x.to(torch.float64).T.contiguous().sort(dim=1).values.T  # (S, n)
    last = s.shape[0] - 1
    rows = []
    for q in qs:
        h = last * q
        lo = int(h)
        hi = min(lo + 1, last)
        rows.append(s[lo] + (h - lo) * (s[hi] - s[lo]))
    if not rows:
        return torch.zeros((0, x.shape[1]), dtype=torch.float32)
    return torch.stack(rows).to(torch.float32)
