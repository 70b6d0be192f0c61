"""Turn a complete recorder state into a ``NeuronDataset`` (records with token strings).

The state keeps positions and activations only; token text is fetched here by one
tokenize-only scan of the corpus that keeps the ids of the positions some neuron needs
(at most every record once), then each distinct token id is decoded once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from neuronbench._version import __version__
from neuronbench.datasets import (
    ActivationRecord,
    DatasetCard,
    DatasetError,
    NeuronDataset,
    NeuronId,
    NeuronRecord,
)
from neuronbench.subjects._merge import canonical, moments
from neuronbench.subjects._state import EMPTY, RecorderState

SAMPLING = "per-neuron/disjoint"
"""Card ``extra["sampling"]``: each neuron's random sample is its own (bottom-k of a per-neuron
hash) and excludes its top records; quantile samples exclude both. Datasets recorded before
this have no such field: one random sample shared by all neurons, possibly overlapping top."""


def needed_positions(state: RecorderState) -> set[int]:
    """Every position a finished neuron record will show."""
    import torch

    parts = []
    for ls in state.layers.values():
        parts += [ls.top_pos.flatten(), ls.rand_pos.flatten(), ls.q_pos.flatten()]
    allpos = torch.unique(torch.cat(parts))
    return {int(p) for p in allpos.tolist() if p != EMPTY}


def fetch_tokens(tokenizer: Any, state: RecorderState) -> dict[int, list[str]]:
    """position -> token strings, for every needed position."""
    from neuronbench.subjects.corpus import iter_records, token_strings

    cfg = state.config
    want = needed_positions(state)
    ids: dict[int, list[int]] = {}
    if want:
        stream = iter_records(
            tokenizer,
            cfg.corpus,
            record_length=cfg.record_length,
            max_tokens=cfg.max_tokens,
            seed=cfg.seed,
        )
        last = max(want)
        for rec in stream:
            if rec.position in want:
                ids[rec.position] = rec.token_ids
            if rec.position >= last:
                break
    missing = want - ids.keys()
    if missing:
        raise DatasetError(
            f"corpus {cfg.corpus!r} has no records at positions {sorted(missing)[:5]}... "
            "(it changed since recording?)"
        )
    vocab = sorted({t for v in ids.values() for t in v})
    text = dict(zip(vocab, token_strings(tokenizer, vocab), strict=True))
    return {p: [text[t] for t in v] for p, v in ids.items()}


def make_card(state: RecorderState, extra: dict[str, Any] | None = None) -> DatasetCard:
    """The card for a finished state: subject, corpus, settings and timings."""
    cfg = state.config
    return DatasetCard(
        subject=cfg.subject,
        revision=cfg.revision,
        corpus=cfg.corpus,
        n_tokens=state.n_tokens,
        record_length=cfg.record_length,
        seed=cfg.seed,
        layers=list(cfg.layers),
        site=cfg.site,
        code_version=__version__,
        extra={
            "subject_name": cfg.subject_name,
            "recorder": cfg.to_dict(),
            "top_k": cfg.top_k,
            "n_random": cfg.n_random,
            "n_quantiles": cfg.n_quantiles,
            "per_quantile": cfg.per_quantile,
            "boundary_records": cfg.boundary_records,
            "quantile_boundaries": "quantiles of record max activation over a uniform "
            "hash sample of boundary_records records",
            "sampling": SAMPLING,
            "max_tokens": cfg.max_tokens,
            "n_records": state.n_records,
            "batch_size": _batch_size(state),
            "timings": {k: round(v, 3) for k, v in state.timings.items()},
            **latent_report(state),
            **(extra or {}),
        },
    )


def kept_units(state: RecorderState, layer: int) -> list[int]:
    """The units of ``layer`` that become neuron records. An MLP neuron is kept whatever it
    did (a never-positive GELU is still a neuron to explain); an SAE latent that never fired
    has nothing to explain and is reported dead in the card (``latent_report``) instead."""
    cfg = state.config
    if cfg.site == "mlp":
        return list(range(cfg.d_mlp))
    return state.layers[layer].fire.nonzero().flatten().tolist()


def latent_report(state: RecorderState) -> dict[str, Any]:
    """Card fields of an SAE recording (nothing for MLP neurons): per layer, the dead latents
    (never active on the recorded tokens; not stored) and the latents with fewer activating
    records than ``top_k`` (stored, flagged: their top records end in inactive ones, so an
    explanation and its score rest on few examples)."""
    cfg = state.config
    if cfg.site == "mlp":
        return {}
    dead: dict[str, list[int]] = {}
    few: dict[str, dict[str, int]] = {}
    for layer, ls in state.layers.items():
        dead[str(layer)] = (ls.fire == 0).nonzero().flatten().tolist()
        # The top-k holds every activating record first, so its positive entries count
        # them exactly up to k.
        n_active = ((ls.top_val > 0) & (ls.top_pos != EMPTY)).sum(dim=0)  # (n,)
        thin = ((n_active < cfg.top_k) & (ls.fire > 0)).nonzero().flatten().tolist()
        few[str(layer)] = {str(j): int(n_active[j]) for j in thin}
    return {
        "latents": {
            "site_spec": cfg.site_spec,
            "revision": cfg.site_revision,
            "n_latents": cfg.d_mlp,
            "n_dead": sum(len(v) for v in dead.values()),
            "n_few_records": sum(len(v) for v in few.values()),
            "min_active_records": cfg.top_k,
            "dead": dead,
            "few_active_records": few,
        }
    }


def _batch_size(state: RecorderState) -> int | list[int] | None:
    """One number when every shard and resume used the same batch size (the usual case)."""
    sizes = state.batch_sizes
    return sizes[0] if len(sizes) == 1 else (sizes or None)


CHUNK = 128
"""Neurons whose records are built at once: a layer's records as Python floats would take
~32 bytes per activation (3 GB for 16k latents), a chunk's take a few MB."""


def layer_records(
    state: RecorderState, tokens: dict[int, list[str]]
) -> Iterator[tuple[int, Iterator[NeuronRecord]]]:
    """(layer, its neuron records by index, built lazily), one layer at a time.

    Consume each layer's records before the next layer: ``save_layers`` writes them a row
    group at a time, so memory holds one chunk of records, never a layer's or a model's.
    """
    canonical(state)
    return _layers(state, tokens)


def _layers(
    state: RecorderState, tokens: dict[int, list[str]]
) -> Iterator[tuple[int, Iterator[NeuronRecord]]]:
    for layer in state.layers:
        yield layer, _neurons(state, layer, tokens)


def _neurons(
    state: RecorderState, layer: int, tokens: dict[int, list[str]]
) -> Iterator[NeuronRecord]:
    import torch

    cfg = state.config
    ls = state.layers[layer]

    def recs(positions: list[int], acts: list[list[float]]) -> list[ActivationRecord]:
        return [
            ActivationRecord(tokens=tokens[p], activations=a, position=p)
            for p, a in zip(positions, acts, strict=True)
            if p != EMPTY
        ]

    mo = moments(ls, state.n_tokens)
    units = kept_units(state, layer)
    for c in range(0, len(units), CHUNK):
        js = units[c : c + CHUNK]
        sel = torch.tensor(js, dtype=torch.int64)
        top_pos = ls.top_pos[:, sel].T.tolist()  # (c, k)
        top_act = ls.pool[ls.top_row[:, sel].T].tolist()  # (c, k, L)
        rand_pos = ls.rand_pos[:, sel].T.tolist()  # (c, r)
        rand_act = ls.pool[ls.rand_row[:, sel].T].tolist()  # (c, r, L)
        q_pos = ls.q_pos[:, :, sel].permute(2, 0, 1).tolist()  # (c, Q, p)
        q_act = ls.pool[ls.q_row[:, :, sel].permute(2, 0, 1)].tolist()  # (c, Q, p, L)
        bounds = ls.q_bound[:, sel].T.tolist()  # (c, Q-1)
        for i, j in enumerate(js):
            yield NeuronRecord(
                id=NeuronId(cfg.subject_name, layer, j, site=cfg.site),
                top=recs(top_pos[i], top_act[i]),
                random=recs(rand_pos[i], rand_act[i]),
                quantile=[recs(q_pos[i][q], q_act[i][q]) for q in range(cfg.n_quantiles)],
                quantile_boundaries=bounds[i] if cfg.n_quantiles else [],
                mean=mo.mean[j],
                variance=mo.variance[j],
                skewness=mo.skewness[j],
                kurtosis=mo.kurtosis[j],
                firing_rate=mo.firing_rate[j],
                n_tokens=state.n_tokens,
            )


def to_dataset(
    state: RecorderState,
    tokens: dict[int, list[str]],
    extra: dict[str, Any] | None = None,
    on_layer: Callable[[int], None] | None = None,
) -> NeuronDataset:
    """Build the whole dataset in memory (every layer's records at once)."""
    ds = NeuronDataset(card=make_card(state, extra))
    for layer, records in layer_records(state, tokens):
        ds.add(records)
        if on_layer is not None:
            on_layer(layer)
    return ds
