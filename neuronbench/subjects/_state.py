"""Recorder state: bounded, exactly mergeable summaries of a stream of activation records.

Everything a recording keeps is a fixed-size tensor per layer, vectorized over neurons,
whatever the corpus length. Each neuron keeps three disjoint record samples, filled as a
*cascade*: a record is offered to the neuron's top-k; a record that does not enter it, or
is later pushed out of it, is offered to the random sample; one that does not enter that,
or is pushed out of it, is offered to its quantile bin.

- **top-k** by record max activation, with per-token activations. Ties are broken by the
  lower record position, so the selection is a pure function of the *set* of records
  seen: merging shards gives exactly the single-run result.
- **random sample**: per neuron, the ``n_random`` records with the smallest hash key
  ``neuron_key(seed, RANDOM_SALT, layer, neuron, position)`` among the records that are
  *not* in the neuron's final top-k. Per neuron because OpenAI's random samples are,
  and because one shared sample leaks: a shared random record can also be one of a
  neuron's top records, shown to the explainer in ``train`` and then scored as a random
  record (224 of 1,536 neurons of a 20k-token recording). Excluding the neuron's top
  records means no scored random record is one the explainer saw.
- **quantile samples**: per neuron and per bin of record max activation, the
  ``per_quantile`` smallest keys of a second, independent per-neuron hash
  (``QUANTILE_SALT``) among the records in neither the top-k nor the random sample. The
  bin boundaries must be fixed before the stream starts; the recorder computes them from
  a hash sample of records (see ``_boundaries``) and every shard uses the same ones.
- **moments**: exact integer sums of each record's float64 power sums x..x**4 (see
  ``_moments``): integer addition does not depend on order, so batches and shards give
  the same integers, and the dataset's moments (derived from them once, at the end) are
  bit-equal between a merged and an unsharded recording.

Why the cascade is exact although the final top-k is known only at the end: a record
that fails to enter the running top-k, or is evicted from it, already has k better
records and can never be in the final top-k; a record in the final top-k is never
evicted. So the set offered to the random sample, *seen minus running top-k*, only
grows, and at the end it is *all minus final top-k*. Bottom-k by a fixed key of a
growing set, offered each element once in any order, is the bottom-k of the final set.
The same holds one stage down (a record evicted from the random sample never returns),
so the quantile samples are exact too.

Memory: the per-slot scalars (values, keys, positions, pool rows) are dense (slots, n)
tensors, ~1.5 kB per neuron at the default 95 slots; the per-token activations, L floats
per record, are not: they live in a per-layer *pool* of rows that slots point into. An
SAE latent fires on few records, so most of its random and quantile records, and every
empty slot, are all zero: those share row 0 and cost nothing. A dense (slots, n, L) tensor
would cost 400 MB per 16k latents whatever they fire on; the pool costs what the latents
hold, ~2x (garbage: rows of records since dropped, compacted once they outnumber the live
ones, between batches). A batch copies only the (record, neuron) pairs that may enter a
stage (``_stream``), a merge moves row indices, never activations (``_merge``), and the
pool's reserve is allocated untouched (``LayerState._grow``). Why a pool, not sparse
per-token storage: a kept record is read whole (finalize, merge bins), MLP neurons fill
every row anyway, and one code path for both sites keeps one set of exactness tests.

Why merge stays exact: the shards' top-k, random and quantile samples are each the same
selection over that shard's records; merging keeps the top-k of the union, offers the
top records it drops to the random selection, and the random records that selection
drops to the quantile bins (``_merge``), which is the cascade applied to the union.

This module holds the data and the keys; ``_stream`` folds batches in, ``_merge`` merges
and sorts, ``_checkpoint`` saves and loads. Pure tensor code: no model, corpus or files.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

EMPTY = 2**63 - 1
"""Position and key of an empty slot: sorts after every real record."""
_M64 = 2**64 - 1
BOUNDARY_SALT = 0
"""Salt of the record key (shared by all neurons) that picks the quantile-boundary sample."""
RANDOM_SALT = 0
"""Salt of the per-neuron key that picks each neuron's random sample."""
QUANTILE_SALT = 1
"""Salt of the per-neuron key that samples records within a quantile bin (independent of the
random one)."""


@dataclass
class RecorderConfig:
    """Everything that decides a recording's result; resume and merge refuse a mismatch."""

    subject: str
    """Subject as given to the recorder (``smollm2``, an HF id or path, ``tiny-gpt2``...)."""
    subject_name: str
    """The subject's short name (``Subject.name``), used in neuron ids."""
    revision: str
    """Subject weights revision, so a resumed or merged recording uses the same model."""
    corpus: str
    """Corpus source as given to ``corpus.iter_records``."""
    layers: list[int]
    """Recorded layers, ascending."""
    d_mlp: int
    """Neurons per layer."""
    max_tokens: int | None
    """Token budget over the whole corpus (all shards together); None = the whole corpus."""
    record_length: int
    """Tokens per record."""
    top_k: int
    """Top records kept per neuron."""
    n_random: int
    """Random records kept per neuron (its own sample, disjoint from its top records)."""
    n_quantiles: int
    """Quantile bins per neuron (0 = no quantile samples)."""
    per_quantile: int
    """Records kept per quantile bin and neuron."""
    boundary_records: int
    """Size of the hash sample of records whose maxima give the quantile boundaries."""
    seed: int
    """Seed of the corpus order and of the hash keys."""
    shard_index: int = 0
    """Which shard of the corpus this state covers (0-based)."""
    shard_count: int = 1
    """Number of shards the corpus is split into."""
    site: str = "mlp"
    """``NeuronId.site`` of the recorded units: ``mlp`` or ``sae:<name>`` (``d_mlp`` is then
    the SAE's latent count)."""
    site_spec: str = ""
    """The SAE as given to ``record`` (``sae:PATH`` / ``sparsify:PATH``); '' for ``mlp``."""
    site_revision: str = ""
    """sha256 prefix of the SAE's weights: shards or a resume with another SAE are refused."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecorderConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        known["layers"] = [int(x) for x in known.get("layers", [])]
        return cls(**known)

    def differences(self, other: RecorderConfig, ignore: tuple[str, ...] = ()) -> list[str]:
        """Human-readable ``field: a != b`` lines for every differing field."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if k not in ignore and a[k] != b[k]]


@dataclass
class LayerState:
    """Running summaries of one layer's neurons. Shapes: k top, r random, Q bins, p per bin,
    n neurons, L record length.

    Per-token activations live in ``pool`` (see the module docstring, "Memory"): each slot
    holds the index of its record's row, 0 (the shared all-zero row) for an empty slot or a
    record whose every activation is +0.0. ``top_act``, ``rand_act`` and ``q_act`` build
    the dense view (for tests and small layers only: it is k * n * L floats)."""

    top_val: torch.Tensor
    """(k, n) float32: max activation of each kept top record (-inf = empty slot).

    Slots are unordered while streaming; ``_merge.canonical`` sorts them descending."""
    top_pos: torch.Tensor
    """(k, n) int64: corpus position of each kept top record (``EMPTY`` = empty)."""
    top_row: torch.Tensor
    """(k, n) int64: ``pool`` row of each kept top record's per-token activations."""
    rand_key: torch.Tensor
    """(r, n) int64: per-neuron hash keys of the random records (``EMPTY`` = empty slot)."""
    rand_pos: torch.Tensor
    """(r, n) int64: positions of each neuron's random records."""
    rand_row: torch.Tensor
    """(r, n) int64: ``pool`` rows of each neuron's random records."""
    q_bound: torch.Tensor
    """(Q-1, n) float32: interior bin edges of record max activation, ascending."""
    q_key: torch.Tensor
    """(Q, p, n) int64: per-neuron hash keys of the records kept per bin (``EMPTY`` = empty)."""
    q_pos: torch.Tensor
    """(Q, p, n) int64: positions of the records kept per bin."""
    q_row: torch.Tensor
    """(Q, p, n) int64: ``pool`` rows of the records kept per bin."""
    psum: torch.Tensor
    """(4, LIMBS, n) int64: exact sums of x, x**2, x**3, x**4 over all tokens, as 32-bit
    limbs of a fixed-point integer (``_moments``)."""
    fire: torch.Tensor
    """(n,) int64: number of tokens with activation > 0."""
    pool: torch.Tensor
    """(capacity, L) float32: per-token activations of kept records; row 0 is all zeros and
    shared, rows ``1..used-1`` are kept records or garbage (records since dropped)."""
    pool_max: torch.Tensor
    """(capacity,) float32: max activation of each ``pool`` row (a displaced random record
    needs its bin)."""
    used: int = 1
    """Rows of ``pool`` in use (live or garbage); row 0 always."""
    last_live: int = 0
    """Live rows at ``compact``'s last count (not saved)."""
    pending: int = 0
    """Records added to ``psum`` since its limbs were last normalized (not saved: a saved
    state is normalized)."""

    TENSORS = (
        "top_val",
        "top_pos",
        "top_act",
        "rand_key",
        "rand_pos",
        "rand_act",
        "q_bound",
        "q_key",
        "q_pos",
        "q_act",
        "psum",
        "fire",
    )
    """What a layer state holds, as dense tensors: equal recordings give equal tensors."""
    STORED = (
        "top_val",
        "top_pos",
        "top_row",
        "rand_key",
        "rand_pos",
        "rand_row",
        "q_bound",
        "q_key",
        "q_pos",
        "q_row",
        "psum",
        "fire",
    )
    """The tensors a checkpoint saves, besides the compacted ``pool``."""
    ROWS = ("top_row", "rand_row", "q_row")

    @property
    def top_act(self) -> torch.Tensor:
        """(k, n, L) float32: per-token activations of the kept top records."""
        return self.pool[self.top_row]

    @property
    def rand_act(self) -> torch.Tensor:
        """(r, n, L) float32: per-token activations of each neuron's random records."""
        return self.pool[self.rand_row]

    @property
    def q_act(self) -> torch.Tensor:
        """(Q, p, n, L) float32: per-token activations of the records kept per bin."""
        return self.pool[self.q_row]

    def rows_max(self, rows: torch.Tensor) -> torch.Tensor:
        """Max activation of the records in pool ``rows`` (any shape)."""
        return self.pool_max[rows]

    def add_rows(self, acts: torch.Tensor, maxima: torch.Tensor) -> torch.Tensor:
        """Store records ``acts`` (w, L) with their maxima (w,); returns their rows (w,). An
        all-zero record (every bit zero: -0.0 keeps a row of its own) gets the shared row 0
        and costs nothing."""
        import torch

        nz = (acts.view(torch.int32) != 0).any(dim=-1)
        w = int(nz.sum())
        if w == acts.shape[0]:  # every record non-zero (MLP neurons): no masking
            rows = torch.arange(self.used, self.used + w)
        else:
            rows = torch.zeros(acts.shape[0], dtype=torch.int64)
            if w == 0:
                return rows
            acts, maxima = acts[nz], maxima[nz]
            rows[nz] = torch.arange(self.used, self.used + w)
        if self.used + w > self.pool.shape[0]:
            self._grow(self.used + w)
        self.pool[self.used : self.used + w] = acts
        self.pool_max[self.used : self.used + w] = maxima
        self.used += w
        return rows

    def _grow(self, need: int) -> None:
        """Reallocate ``pool`` for at least ``need`` rows. The first growth reserves room for
        twice the slots (capped at ``RESERVE_ROWS``) with ``torch.empty``: untouched pages
        are not resident, so an SAE layer's mostly empty reserve costs no memory, and an
        MLP layer's pool, like its dense tensors before, never moves again."""
        import torch

        slots = sum(getattr(self, name).numel() for name in self.ROWS)
        reserve = min(2 * slots + COMPACT_SLACK, RESERVE_ROWS)
        cap = max(need, 2 * self.pool.shape[0], reserve)
        pool = torch.empty((cap, self.pool.shape[1]), dtype=torch.float32)
        pool_max = torch.empty(cap, dtype=torch.float32)
        pool[: self.used] = self.pool[: self.used]
        pool_max[: self.used] = self.pool_max[: self.used]
        self.pool, self.pool_max = pool, pool_max

    def live_rows(self) -> int:
        """Rows some slot holds (each kept record is in exactly one slot)."""
        import torch

        return sum(int(torch.count_nonzero(getattr(self, name))) for name in self.ROWS)

    def compact(self, force: bool = False) -> None:
        """Drop garbage rows once they outnumber the live ones (or always, with ``force``):
        live rows move to the front of the pool, in slot order, so its used part stays
        within ~2x of what the slots hold. Only between batches: rows in flight in a
        cascade are in no slot. Counting live rows scans every slot, so it runs only once
        the pool passed twice the last count."""
        import torch

        if not force and self.used - 1 <= 2 * self.last_live + COMPACT_SLACK:
            return
        live = self.live_rows()
        self.last_live = live
        if not force and self.used - 1 - live <= max(live, COMPACT_SLACK):
            return
        order = []
        nxt = 1
        for name in self.ROWS:
            rows = getattr(self, name)
            nz = rows != 0
            m = int(nz.sum())
            order.append(rows[nz])
            new = torch.zeros_like(rows)
            new[nz] = torch.arange(nxt, nxt + m)
            setattr(self, name, new)
            nxt += m
        old = torch.cat(order)
        if force:  # saving or merging: a pool of exactly the live rows, a new tensor (the
            # old one may be an inference tensor, read-only outside inference mode)
            self.pool = torch.cat([self.pool[:1], self.pool[old]])
            self.pool_max = torch.cat([self.pool_max[:1], self.pool_max[old]])
        else:  # streaming: in place, keeping the reserve
            self.pool[1 : 1 + live] = self.pool[old]  # gathered first: overlap is safe
            self.pool_max[1 : 1 + live] = self.pool_max[old]
        self.used = 1 + live


COMPACT_SLACK = 1024
"""Garbage rows tolerated whatever the live count (a small pool is not worth compacting)."""
RESERVE_ROWS = 2**20
"""Most rows reserved ahead (256 MiB of address space at 64 tokens per record)."""


@dataclass
class RecorderState:
    """The whole recording so far: config and per-layer summaries."""

    config: RecorderConfig
    """What is being recorded."""
    layers: dict[int, LayerState]
    """Per-layer summaries."""
    n_tokens: int = 0
    """Tokens folded into the moments (all layers see the same tokens)."""
    n_records: int = 0
    """Records folded into the state."""
    consumed: int = 0
    """Records of this shard's stream consumed so far (where a resume restarts)."""
    has_boundaries: bool = False
    """Whether ``q_bound`` is set (quantile sampling needs it before any record)."""
    complete: bool = False
    """Whether the shard's stream was consumed to its end."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase (summed over resumes and shards)."""
    batch_sizes: list[int] = field(default_factory=list)
    """Records per forward pass used, ascending (more than one after a resume or merge with
    another batch size); the card reports them as ``batch_size``."""


def record_key(seed: int, salt: int, position: int) -> int:
    """A pseudo-random int64 key of a record, unique per position for a given seed and salt.

    splitmix64's finalizer is a bijection on 64-bit integers, and so is ``x ^ c``: distinct
    positions get distinct keys, so bottom-k by key has no ties to break.
    """
    c = _mix((seed * 2 + salt) & _M64)
    x = _mix((position ^ c) & _M64)
    return x - 2**64 if x >= 2**63 else x


def _mix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def neuron_key(seed: int, salt: int, layer: int, neuron: int, position: int) -> int:
    """A record's int64 key for one neuron: an independent hash stream per (layer, neuron).

    ``record_key`` with the neuron folded into the constant, so for each neuron distinct
    positions still get distinct keys. The scalar reference for :func:`neuron_keys`.
    """
    c = _mix(_mix((seed * 2 + salt) & _M64) ^ _mix(_neuron_tag(layer, neuron)))
    x = _mix((position ^ c) & _M64)
    return x - 2**64 if x >= 2**63 else x


def _neuron_tag(layer: int, neuron: int) -> int:
    return ((layer & 0xFFFFFFFF) << 32) | (neuron & 0xFFFFFFFF)


def neuron_keys(
    seed: int, salt: int, layer: int, positions: torch.Tensor, neurons: torch.Tensor
) -> torch.Tensor:
    """:func:`neuron_key` elementwise over broadcast ``positions`` and ``neurons`` (int64).

    Empty positions (``EMPTY``) get the empty key, so empty slots stay last.
    """
    import torch

    pos, idx = torch.broadcast_tensors(positions, neurons)
    streams = neuron_streams(seed, salt, layer, int(idx.max()) + 1 if idx.numel() else 0)
    return keys_of(pos, streams[idx.numpy()])


@functools.lru_cache(maxsize=128)
def neuron_streams(seed: int, salt: int, layer: int, n: int) -> np.ndarray:
    """(n,) uint64: the per-neuron constant of :func:`neuron_key` for neurons ``0..n-1``
    (cached: the recorder needs it for every batch)."""
    with np.errstate(over="ignore"):
        stream = np.uint64(_mix((seed * 2 + salt) & _M64))
        tag = (np.uint64(layer & 0xFFFFFFFF) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
        out = _mix_np(stream ^ _mix_np(tag))
    out.flags.writeable = False
    return out


def keys_of(positions: torch.Tensor, streams: np.ndarray) -> torch.Tensor:
    """int64 keys of ``positions`` (any int64 tensor) under per-element ``streams`` (same
    shape, from :func:`neuron_streams`); ``EMPTY`` positions keep the empty key."""
    import torch

    pos_np = positions.numpy().astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        keys = _mix_np(pos_np ^ streams).view(np.int64)
    return torch.where(positions == EMPTY, EMPTY, torch.from_numpy(np.ascontiguousarray(keys)))


def _mix_np(x: np.ndarray) -> np.ndarray:
    """``_mix`` on uint64 arrays (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def new_state(config: RecorderConfig) -> RecorderState:
    """An empty state: every slot empty, moments zero."""
    import torch

    from neuronbench.subjects._moments import new_psum

    k, r, p, n, L = (
        config.top_k,
        config.n_random,
        config.per_quantile,
        config.d_mlp,
        config.record_length,
    )
    q = config.n_quantiles
    f32, i64 = torch.float32, torch.int64

    def layer() -> LayerState:
        return LayerState(
            top_val=torch.full((k, n), float("-inf"), dtype=f32),
            top_pos=torch.full((k, n), EMPTY, dtype=i64),
            top_row=torch.zeros((k, n), dtype=i64),
            rand_key=torch.full((r, n), EMPTY, dtype=i64),
            rand_pos=torch.full((r, n), EMPTY, dtype=i64),
            rand_row=torch.zeros((r, n), dtype=i64),
            q_bound=torch.zeros((max(q - 1, 0), n), dtype=f32),
            q_key=torch.full((q, p, n), EMPTY, dtype=i64),
            q_pos=torch.full((q, p, n), EMPTY, dtype=i64),
            q_row=torch.zeros((q, p, n), dtype=i64),
            psum=new_psum(n),
            fire=torch.zeros(n, dtype=i64),
            pool=torch.zeros((1, L), dtype=f32),
            pool_max=torch.zeros(1, dtype=f32),
        )

    return RecorderState(
        config=config,
        layers={layer_idx: layer() for layer_idx in config.layers},
        has_boundaries=q == 0,
    )


def lexorder(
    primary: torch.Tensor, secondary: torch.Tensor, dim: int, descending: bool
) -> torch.Tensor:
    """Indices sorting along ``dim`` by ``primary`` (asc/desc), ties by ``secondary`` ascending."""
    import torch

    by_secondary = torch.argsort(secondary, dim=dim, stable=True)
    p = primary.gather(dim, by_secondary)
    by_primary = torch.argsort(p, dim=dim, descending=descending, stable=True)
    return by_secondary.gather(dim, by_primary)


def take(acts: torch.Tensor, order: torch.Tensor, dim: int) -> torch.Tensor:
    """Gather records of ``acts`` (one more trailing token dim than ``order``) along ``dim``."""
    return acts.gather(dim, order.unsqueeze(-1).expand(*order.shape, acts.shape[-1]))
