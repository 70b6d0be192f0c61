"""The streaming recorder: run a subject over a corpus and keep, per neuron, what explaining
and scoring need (top, random and quantile records; moments; firing rate).

Each neuron's random and quantile samples are its own (hash keys seeded by seed, layer and
neuron) and disjoint from its top records, so a scored random record is never one the
explainer saw as a train record; the selection is exact and merges exactly (``_state``).

Memory is bounded by the settings, never by the corpus length: the state (``_state``) is
a fixed set of tensors per layer. One model pass over the corpus suffices, because the
quantile boundaries come from a fixed-size hash sample of records first (``_boundaries``).

Long runs checkpoint to ``OUT/.checkpoint/state.safetensors`` (every ``checkpoint_every``
seconds and/or ``checkpoint_tokens`` tokens); calling ``record`` again with the same
arguments resumes there and gives exactly the uninterrupted result. Shards of a corpus
(``shard=(i, n)``) write their state to ``OUT/state.safetensors``; ``merge`` combines them
exactly and finalizes one dataset, so a recording can be split over machines::

    neuronbench record --subject smollm2 --corpus austen --layers 0-29:5 --shard 0/2 --out s0
    neuronbench record --subject smollm2 --corpus austen --layers 0-29:5 --shard 1/2 --out s1
    neuronbench merge s0 s1 --out dataset

Python::

    ds = record("smollm2", "austen", "0,5,10", n_tokens=200_000, out=Path("runs/ds"))
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuronbench._atomic import write_json
from neuronbench._progress import Progress, say
from neuronbench.datasets import DatasetCard, DatasetError, NeuronDataset, NeuronRecord
from neuronbench.subjects._checkpoint import (
    CHECKPOINT_DIR,
    STATE_FILE,
    checkpoint_path,
    load_state,
    save_state,
)
from neuronbench.subjects._merge import merge as merge_states
from neuronbench.subjects._settings import (
    DEFAULT_BOUNDARY_RECORDS,
    TINY_SUBJECTS,
    make_config,
    parse_layers,
    resolve_subject,
)
from neuronbench.subjects._state import RecorderConfig, RecorderState, new_state
from neuronbench.subjects._stream import update
from neuronbench.subjects.models import Subject

if TYPE_CHECKING:
    import torch

    from neuronbench.subjects.sae import SaeSite

__all__ = [
    "DEFAULT_BOUNDARY_RECORDS",
    "finalize",
    "make_config",
    "merge",
    "parse_layers",
    "record",
    "record_state",
    "resolve_subject",
]


@contextlib.contextmanager
def _forward(
    subject: Subject, layers: Sequence[int], sae: SaeSite | None = None
) -> Iterator[Callable[..., Any]]:
    """``forward(ids) -> {layer: (batch, seq, n)}``; runs the base model only (no LM head:
    the recorder needs no logits). With ``sae``, ``n`` is its latents, encoded by its library."""
    from neuronbench.subjects.sae import capture_latents, truncated
    from neuronbench.subjects.sites import capture

    base = subject.model.base_model
    device = getattr(subject.model, "device", None)
    with contextlib.ExitStack() as stack:
        if sae is not None:
            stack.enter_context(truncated(subject, sae.hook.layer))  # no later block needed
            acts = stack.enter_context(capture_latents(subject, sae))
        else:
            acts = stack.enter_context(capture(subject, layers)).activations

        def forward(ids: torch.Tensor) -> dict[int, torch.Tensor]:
            acts.clear()
            base(input_ids=ids.to(device) if device is not None else ids, use_cache=False)
            return acts

        yield forward


def record_state(
    subject: Subject,
    cfg: RecorderConfig,
    *,
    batch_size: int = 8,
    out: Path | None = None,
    checkpoint_every: float | None = 300.0,
    checkpoint_tokens: int | None = None,
    progress: bool = True,
    on_batch: Callable[[RecorderState], None] | None = None,
    sae: SaeSite | None = None,
) -> RecorderState:
    """Stream this shard's records through the subject into a complete state.

    Resumes from ``out/.checkpoint`` when present (refusing one written with other
    settings). ``on_batch(state)`` runs after each batch (tests use it to interrupt).
    ``sae`` (loaded from ``cfg.site_spec``) records its latents instead of MLP neurons.
    """
    import torch

    from neuronbench.subjects._boundaries import compute_boundaries
    from neuronbench.subjects.corpus import iter_records

    if batch_size < 1:
        raise DatasetError(f"record: batch_size must be >= 1, got {batch_size}")
    ckpt = checkpoint_path(out) if out is not None else None
    state = _resume(ckpt, cfg) if ckpt is not None else None
    state = state or new_state(cfg)
    if state.complete:
        return state
    if batch_size not in state.batch_sizes:
        state.batch_sizes = sorted([*state.batch_sizes, batch_size])
    tick = time.perf_counter()

    def save() -> None:
        nonlocal tick
        now = time.perf_counter()
        state.timings["record_s"] = state.timings.get("record_s", 0.0) + now - tick
        tick = now
        if ckpt is not None:
            save_state(state, ckpt)

    desc = _desc(cfg)
    with torch.inference_mode(), _forward(subject, cfg.layers, sae) as forward:
        if not state.has_boundaries:
            if progress:
                say(desc, f"pre-pass: quantile boundaries from {cfg.boundary_records} records")
            t0 = time.perf_counter()
            bounds = compute_boundaries(subject, cfg, batch_size, forward)
            for layer, b in bounds.items():
                state.layers[layer].q_bound = b
            state.has_boundaries = True
            state.timings["boundaries_s"] = time.perf_counter() - t0
            tick = time.perf_counter()
            save()
        stream = iter_records(
            subject.tokenizer,
            cfg.corpus,
            record_length=cfg.record_length,
            max_tokens=cfg.max_tokens,
            seed=cfg.seed,
            shard=(cfg.shard_index, cfg.shard_count),
        )
        bar = Progress(
            desc,
            _shard_tokens(cfg),
            unit="tok",
            unit_scale=True,
            initial=state.consumed * cfg.record_length,
            enabled=progress,
        )
        last_save, last_tokens = time.monotonic(), state.consumed * cfg.record_length
        try:
            for batch in _batched(itertools.islice(stream, state.consumed, None), batch_size):
                ids = torch.tensor([r.token_ids for r in batch], dtype=torch.int64)  # (B, L)
                t_fwd = time.perf_counter()
                acts = forward(ids)
                # the model's share of record_s, measured batch by batch beside the rest
                state.timings["forward_s"] = (
                    state.timings.get("forward_s", 0.0) + time.perf_counter() - t_fwd
                )
                update(state, [r.position for r in batch], acts)
                state.consumed += len(batch)
                bar.update(len(batch) * cfg.record_length)
                tokens = state.consumed * cfg.record_length
                due_time = checkpoint_every is not None and (
                    time.monotonic() - last_save >= checkpoint_every
                )
                due_tokens = checkpoint_tokens is not None and (
                    tokens - last_tokens >= checkpoint_tokens
                )
                if due_time or due_tokens:
                    save()
                    last_save, last_tokens = time.monotonic(), tokens
                if on_batch is not None:
                    on_batch(state)
            bar.close(finished=True)  # the corpus may end before the token budget
        finally:
            bar.close()
    state.complete = True
    save()
    return state


def _resume(ckpt: Path, cfg: RecorderConfig) -> RecorderState | None:
    if not ckpt.exists():
        return None
    state = load_state(ckpt)
    diff = state.config.differences(cfg)
    if diff:
        raise DatasetError(
            f"{ckpt}: checkpoint of a recording with other settings ({'; '.join(diff)}): "
            f"rerun with the same arguments to resume, or delete {ckpt.parent} to start over"
        )
    return state


def _batched(it: Iterator[Any], n: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(it, n)):
        yield batch


def _desc(cfg: RecorderConfig) -> str:
    shard = f" shard {cfg.shard_index}/{cfg.shard_count}" if cfg.shard_count > 1 else ""
    return f"record {cfg.subject_name}{shard}"


def _shard_tokens(cfg: RecorderConfig) -> int | None:
    """Tokens this shard will record; None for a whole corpus of unknown length."""
    if cfg.max_tokens is None:
        return None
    n_records = cfg.max_tokens // cfg.record_length
    return len(range(cfg.shard_index, n_records, cfg.shard_count)) * cfg.record_length


def finalize(
    state: RecorderState,
    tokenizer: Any,
    out: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> NeuronDataset:
    """A complete (merged or single-shard) state -> ``NeuronDataset``, saved to ``out`` if given.

    With ``out``, records are built and written one layer at a time (holding every layer's
    records at once takes many GB for a whole model) and the returned dataset reads its
    records from ``out`` only when first used (``NeuronDataset.lazy``); its card's
    ``finalize_s`` then includes writing the layer files. Without ``out`` the records are
    built in memory. Saved activations are rounded to each neuron's grid (error at most its
    top activation / 512, top activation and 0-10 bins exact: ``datasets.compact``), which
    makes a dataset ~5x smaller; in-memory records keep the recorded float32 values.
    """
    from neuronbench.datasets.storage import save_layers
    from neuronbench.subjects._finalize import fetch_tokens, layer_records, make_card, to_dataset

    if state.config.shard_count != 1:
        raise DatasetError(
            f"finalize: state covers shard {state.config.shard_index}/{state.config.shard_count}; "
            "merge all shards first (`neuronbench merge`)"
        )
    t0 = time.perf_counter()
    tokens = fetch_tokens(tokenizer, state)

    def stamp(card: DatasetCard) -> None:
        record_s = state.timings.get("record_s", 0.0)
        card.extra["timings"]["finalize_s"] = round(time.perf_counter() - t0, 3)
        if record_s > 0:
            card.extra["tokens_per_s"] = round(state.n_tokens / record_s, 1)

    if out is None:
        ds = to_dataset(state, tokens, extra)
        stamp(ds.card)
        return ds
    card = make_card(state, extra)

    def layers() -> Iterator[tuple[int, Iterator[NeuronRecord]]]:
        yield from layer_records(state, tokens)
        stamp(card)  # before save_layers writes the card, which it does last

    # stored on each neuron's grid (datasets.compact): ~5x smaller, error <= top / 512
    save_layers(out, card, layers(), quantize=True)
    return NeuronDataset.lazy(out)


def record(
    subject: Subject | str,
    corpus: str = "austen",
    layers: str | Sequence[int] = "all",
    *,
    n_tokens: int | None = None,
    record_length: int = 64,
    top_k: int = 40,
    n_random: int = 30,
    n_quantiles: int = 5,
    per_quantile: int = 5,
    boundary_records: int = DEFAULT_BOUNDARY_RECORDS,
    batch_size: int = 8,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
    out: str | Path | None = None,
    checkpoint_every: float | None = 300.0,
    checkpoint_tokens: int | None = None,
    progress: bool = True,
    on_batch: Callable[[RecorderState], None] | None = None,
    site: str = "mlp",
) -> NeuronDataset | RecorderState:
    """Record ``layers`` of ``subject`` over ``corpus``.

    Unsharded (``shard=(0, 1)``): returns the finished ``NeuronDataset`` (saved to ``out``
    when given). Sharded: returns the shard's ``RecorderState``, saved to
    ``out/state.safetensors`` (``out`` required) for :func:`merge`. With ``out``, the run
    checkpoints and a repeated call resumes; once finished, a repeated call with the same
    settings returns the stored result without recording again.

    Args:
        subject: a loaded ``Subject`` or a name for ``load_subject`` / ``tiny-llama``.
        corpus: source for ``corpus.iter_records`` (``austen``, ``tiny``, a path, ``hf:...``).
        layers: ``"all"``, ``"0,5,10"``, ``"0-29:5"`` or a list of layer indices.
        n_tokens: token budget over the whole corpus (all shards); None = whole corpus.
        top_k / n_random: top records per neuron / random records per neuron (each
            neuron's own sample, never one of its top records).
        n_quantiles / per_quantile: bins of record max activation and records kept per
            bin and neuron; ``n_quantiles=0`` skips quantile sampling (and its pre-pass).
        boundary_records: hash-sampled records whose maxima set the bin boundaries.
        checkpoint_every / checkpoint_tokens: checkpoint period in seconds / tokens.
        progress: show a progress bar (tokens/s) when stderr is a terminal.
        on_batch: called with the state after each batch.
        site: ``mlp`` (MLP neurons), or an SAE's latents: ``sae:PATH`` (sae-lens) or
            ``sparsify:PATH`` (see ``subjects.sae``); its own config names the layer, so
            ``layers`` must be ``"all"`` or that layer.
    """
    subj = resolve_subject(subject)
    spec = subject if isinstance(subject, str) else subj.name
    sae = _load_sae(site, subj, layers)
    if sae is not None:
        layers = [sae.hook.layer]
    cfg = make_config(
        subj,
        spec,
        corpus,
        layers,
        n_tokens=n_tokens,
        record_length=record_length,
        top_k=top_k,
        n_random=n_random,
        n_quantiles=n_quantiles,
        per_quantile=per_quantile,
        boundary_records=boundary_records,
        seed=seed,
        shard=shard,
    )
    cfg = with_site(cfg, sae, site)
    out_path = Path(out) if out is not None else None
    if cfg.shard_count > 1 and out_path is None:
        raise DatasetError("record: a sharded recording needs `out` for its state")
    final = out_path / STATE_FILE if out_path is not None and cfg.shard_count > 1 else None
    done = _already_recorded(out_path, final, cfg)
    if done is not None:
        return done
    state = record_state(
        subj,
        cfg,
        batch_size=batch_size,
        out=out_path,
        checkpoint_every=checkpoint_every,
        checkpoint_tokens=checkpoint_tokens,
        progress=progress,
        on_batch=on_batch,
        sae=sae,
    )
    if final is not None:
        save_state(state, final)
        write_json(final.parent / "recording.json", _summary(state, batch_size))
        _drop_checkpoint(final.parent)
        return state
    if progress:
        n = len(cfg.layers) * cfg.d_mlp
        say(_desc(cfg), f"finalizing {n:,} neurons" + (f" into {out_path}" if out_path else ""))
    ds = finalize(state, subj.tokenizer, out_path)
    if out_path is not None:
        _drop_checkpoint(out_path)
    return ds


def _already_recorded(
    out: Path | None, final: Path | None, cfg: RecorderConfig
) -> NeuronDataset | RecorderState | None:
    """The finished result in ``out`` when it was recorded with exactly these settings,
    so rerunning a pipeline does not record twice."""
    from neuronbench.datasets.storage import CARD, read_card

    if final is not None and final.exists():
        state = load_state(final)
        return None if state.config.differences(cfg) else state
    if out is not None and final is None and (out / CARD).exists():
        try:
            recorded = read_card(out).extra.get("recorder")
        except DatasetError:
            return None
        # Compared as configs: fields added since (defaulted) do not force a re-recording.
        if isinstance(recorded, dict) and not RecorderConfig.from_dict(recorded).differences(cfg):
            return NeuronDataset.load(out)
    return None


def merge(
    dirs: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    tokenizer: Any = None,
) -> NeuronDataset:
    """Merge the shard states in ``dirs`` exactly and finalize one dataset (saved to ``out``).

    ``tokenizer`` defaults to the recorded subject's (loaded by the name in the state).
    """
    states = [load_state(Path(d) / STATE_FILE) for d in dirs]
    merged = merge_states(states)
    if tokenizer is None:
        tokenizer = _tokenizer_for(merged.config)
    return finalize(merged, tokenizer, Path(out) if out is not None else None)


def _load_sae(site: str, subject: Subject, layers: str | Sequence[int]) -> SaeSite | None:
    """The SAE of an ``sae:``/``sparsify:`` site (None for ``mlp``), checked against
    ``layers``."""
    from neuronbench.subjects.models import SubjectError
    from neuronbench.subjects.sae import is_sae_site, load_site

    if site == "mlp":
        return None
    if not is_sae_site(site):
        raise SubjectError(f"site {site!r}: expected mlp, sae:PATH or sparsify:PATH")
    sae = load_site(site, subject)
    if layers != "all" and parse_layers(layers, subject.n_layers) != [sae.hook.layer]:
        raise SubjectError(
            f"site {site!r} reads layer {sae.hook.layer} ({sae.hook_name}); "
            f"got layers {layers!r} (omit them)"
        )
    return sae


def with_site(cfg: RecorderConfig, sae: SaeSite | None, site: str) -> RecorderConfig:
    """``cfg`` for the units of ``site``: an SAE's latent count, site name, spec and weights
    hash (so resume, merge and Ray shards refuse another SAE); unchanged for ``mlp``."""
    if sae is None:
        return cfg
    return replace(
        cfg, d_mlp=sae.n_latents, site=sae.site, site_spec=site, site_revision=sae.revision
    )


def _tokenizer_for(cfg: RecorderConfig) -> Any:
    from neuronbench.subjects.models import tiny_tokenizer

    if cfg.subject in TINY_SUBJECTS or cfg.subject_name in TINY_SUBJECTS:
        return tiny_tokenizer()
    subject = resolve_subject(cfg.subject)
    if subject.revision != cfg.revision:
        raise DatasetError(
            f"merge: subject {cfg.subject!r} now loads revision {subject.revision}, but the "
            f"shards were recorded with {cfg.revision}"
        )
    return subject.tokenizer


def _summary(state: RecorderState, batch_size: int) -> dict[str, Any]:
    """What a shard directory's ``recording.json`` shows a human."""
    return {
        "config": state.config.to_dict(),
        "n_tokens": state.n_tokens,
        "n_records": state.n_records,
        "batch_size": batch_size,
        "timings": state.timings,
        "state_file": STATE_FILE,
    }


def _drop_checkpoint(out: Path) -> None:
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
