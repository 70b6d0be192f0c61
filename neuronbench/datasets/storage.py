"""Neuron datasets on disk: one parquet file per layer, the corpus records, and a card.

Layout of a dataset directory (storage format 2, see ``_format2``)::

    DIR/card.json                 DatasetCard (provenance + content hash)
    DIR/README.md                 the same card for humans / the HF hub (YAML config header)
    DIR/corpus.parquet            each record any neuron shows, once: position and tokens
    DIR/data/layer-007.parquet    one row per neuron of layer 7: record ids + activation codes

One file per layer keeps loading a few layers cheap and lets the recorder write layer
by layer. HF ``datasets`` reads both tables directly
(``datasets.load_dataset("parquet", data_dir=f"{DIR}/data")``, ``data_files=f"{DIR}/corpus.parquet"``).
Format-1 datasets (every record's tokens and float64 activations inline, no corpus file)
still load; ``neuronbench migrate`` converts them. Every file is written atomically; the
card, which carries the content hash, is written last, so a directory without a card is an
interrupted write and refuses to load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuronbench._atomic import atomic_path, write_json, write_text
from neuronbench._version import __version__
from neuronbench.datasets import _format2
from neuronbench.datasets._format2 import CORPUS
from neuronbench.datasets.compact import GRID_BITS
from neuronbench.datasets.errors import DatasetError
from neuronbench.datasets.schema import DatasetCard, NeuronId, NeuronRecord

CARD = "card.json"
DATA = "data"


def _layer_file(root: Path, layer: int) -> Path:
    return root / DATA / f"layer-{layer:03d}.parquet"


def _schema() -> Any:
    """The format-1 parquet schema of one neuron row (what ``neuronbench migrate`` reads).

    Inferring it per file breaks readers that take the schema from the first file (HF
    ``datasets``, ``pq.read_table(dir)``): a layer whose neurons have no quantile samples
    gets ``list<null>``, and the next layer's records then fail to cast to it.
    """
    import pyarrow as pa

    record = pa.struct(
        [
            ("tokens", pa.list_(pa.string())),
            ("activations", pa.list_(pa.float64())),
            ("position", pa.int64()),
        ]
    )
    return pa.schema(
        [
            *_format2.identity_fields(),
            ("top", pa.list_(record)),
            ("random", pa.list_(record)),
            ("quantile", pa.list_(pa.list_(record))),
            *_format2.summary_fields(),
        ]
    )


def _row(n: NeuronRecord) -> dict[str, Any]:
    d = n.to_dict()
    ident = d.pop("id")
    return {**ident, **d}


def _neuron(row: dict[str, Any]) -> NeuronRecord:
    row = dict(row)  # the caller still needs the id fields for its error message
    ident = {k: row.pop(k) for k in ("subject", "site", "layer", "index")}
    return NeuronRecord.from_dict({"id": ident, **row})


def _data_files(root: Path) -> list[Path]:
    """Layer files in name order, then the corpus (format 2 only), as the hashes cover them."""
    files = sorted((root / DATA).glob("layer-*.parquet"))
    return files + [root / CORPUS] if (root / CORPUS).exists() else files


def _data_path(root: Path, name: str) -> Path:
    return root / name if name == CORPUS else root / DATA / name


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of each parquet file of the dataset, by file name."""
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in _data_files(root)}


def content_hash(root: Path) -> str:
    """sha256 over the dataset's parquet files (names and bytes), in a fixed order.

    A format-1 dataset has no corpus file, so its hash is what format 1 computed."""
    h = hashlib.sha256()
    for f in _data_files(root):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _hash_mismatch(root: Path, card: DatasetCard, actual: str) -> DatasetError:
    """Name the files that differ from the card, so the user knows which one to re-create."""
    now = file_hashes(root)
    then = card.file_hashes
    changed = [
        _data_path(root, n) for n in sorted(set(now) | set(then)) if now.get(n) != then.get(n)
    ]
    detail = ", ".join(
        f"{f} ({'missing' if f.name not in now else 'unexpected' if f.name not in then else 'changed'})"
        for f in changed
    )
    return DatasetError(
        f"{root / CARD}: content hash mismatch (card {card.content_hash[:12]}, "
        f"files {actual[:12]}): files changed or a write was interrupted"
        + (f": {detail}" if detail else f"; data files: {sorted(now)}")
    )


@dataclass
class NeuronDataset:
    """A set of neuron records with the card that says where they came from."""

    card: DatasetCard
    """Provenance: subject, corpus, token count, seed, code version, content hash."""
    neurons: dict[NeuronId, NeuronRecord] = field(default_factory=dict)
    """Neuron records keyed by id."""
    path: Path | None = None
    """Directory the dataset was loaded from or saved to, if any."""

    def __len__(self) -> int:
        return len(self.neurons)

    def __iter__(self) -> Iterator[NeuronRecord]:
        return iter(self.neurons[k] for k in sorted(self.neurons))

    def __getitem__(self, key: NeuronId | str) -> NeuronRecord:
        if isinstance(key, str):
            for nid, rec in self.neurons.items():
                if nid.key == key or str(nid) == key:
                    return rec
            raise KeyError(f"no neuron {key!r} in dataset {self.path or self.card.subject}")
        return self.neurons[key]

    @property
    def layers(self) -> list[int]:
        return sorted({n.layer for n in self.neurons})

    def add(self, records: Iterable[NeuronRecord]) -> None:
        for r in records:
            self.neurons[r.id] = r

    def save(self, root: str | Path) -> Path:
        """Write all layers, then the card (with content hash) last; returns the directory."""
        by_layer: dict[int, list[NeuronRecord]] = {}
        for n in self:
            by_layer.setdefault(n.id.layer, []).append(n)
        root = save_layers(root, self.card, sorted(by_layer.items()))
        self.path = root
        return root

    @classmethod
    def lazy(cls, root: str | Path) -> NeuronDataset:
        """The dataset at ``root`` with only its card read; records load on first use.

        The recorder writes a dataset layer by layer so that it never holds every record;
        returning it eagerly loaded would undo that for callers that only want the directory.
        """
        root = Path(root)
        return cls(card=read_card(root), neurons=_LazyNeurons(root), path=root)

    @classmethod
    def load(
        cls,
        root: str | Path,
        layers: Iterable[int] | None = None,
        verify: bool = True,
        ids: Iterable[NeuronId] | None = None,
    ) -> NeuronDataset:
        """Load a dataset directory, validating every record; errors name file, neuron and record.

        ``ids`` loads only those neurons (reading only the rows they need): an eval over a
        few neurons of a recording with thousands must not build every record in memory.
        """
        root = Path(root)
        card = read_card(root)
        if verify:
            actual = content_hash(root)
            if actual != card.content_hash:
                raise _hash_mismatch(root, card, actual)
        wanted_ids: dict[int, set[int]] | None = None
        if ids is not None:
            wanted_ids = {}
            for nid in ids:
                wanted_ids.setdefault(nid.layer, set()).add(nid.index)
        if wanted_ids is not None:
            wanted = sorted(wanted_ids)
        else:
            wanted = card.layers if layers is None else list(layers)
        ds = cls(card=card, path=root)
        corpus: dict[int, tuple[int, list[str]]] = {}
        for layer in wanted:
            f = _existing_layer_file(root, card, layer)
            only = None if wanted_ids is None else sorted(wanted_ids[layer])
            if _format2.file_format(f) == 2:
                table = _read_table(f, only)
                need = _format2.record_ids(table) - corpus.keys()
                if need:  # corpus rows are shared by layers: read each once
                    corpus.update(_format2.read_corpus(root, need))
                for rec in _format2.neurons(table, corpus, f):
                    ds.neurons[rec.id] = rec
                continue
            for row in _read_rows(f, only):
                try:
                    rec = _neuron(row)
                except DatasetError as e:
                    raise DatasetError(f"{f}: {e}") from None
                except (KeyError, TypeError, ValueError) as e:
                    who = f"layer {row.get('layer')} neuron {row.get('index')}"
                    raise DatasetError(f"{f}: malformed row for {who} ({e!r})") from None
                ds.neurons[rec.id] = rec
        return ds

    @staticmethod
    def ids(root: str | Path) -> list[NeuronId]:
        """Every neuron id in a dataset, reading only the id columns (cheap at any size)."""
        root = Path(root)
        card = read_card(root)
        out: list[NeuronId] = []
        for layer in card.layers:
            f = _existing_layer_file(root, card, layer)
            cols = _read_rows(f, columns=["subject", "site", "layer", "index"])
            out.extend(NeuronId.from_dict(c) for c in cols)
        return sorted(out)


def save_layers(
    root: str | Path,
    card: DatasetCard,
    layers: Iterable[tuple[int, Iterable[NeuronRecord]]],
    *,
    quantize: bool = False,
) -> Path:
    """Write a dataset one layer at a time from ``layers`` (layer, its records in file order).

    Records are consumed and written ``ROW_GROUP`` neurons at a time, so a caller that
    yields them lazily (``import-openai``) holds one row group, and one holding a layer
    (the recorder) holds that layer: a recording of every layer of a model fits in memory.
    ``quantize`` rounds activations to each neuron's grid (``compact.quantize``: ~0.1% of
    its top activation, top activation and 0-10 bins exact), as the recorder does; without
    it storage is lossless. The old card is deleted first and the new one written last
    (after every layer file, the corpus and the content hash), so an interrupted write leaves
    no loadable dataset; files from an earlier dataset in ``root`` that this one does not
    have are removed. Fills in ``card.layers``, ``code_version`` and the hashes; returns the
    directory.
    """
    import pyarrow.parquet as pq

    root = Path(root)
    (root / DATA).mkdir(parents=True, exist_ok=True)
    old_card = root / CARD
    if old_card.exists():
        old_card.unlink()  # the dataset is invalid until the new card lands
    written: set[int] = set()
    n_neurons = 0
    corpus = _format2.CorpusBuilder()
    options = _format2.writer_options()
    for layer, recs in layers:
        if layer in written:
            raise DatasetError(f"{_layer_file(root, layer)}: layer {layer} given twice")
        # the writer closes (exit in reverse order) before atomic_path renames the file
        with (
            atomic_path(_layer_file(root, layer)) as tmp,
            pq.ParquetWriter(tmp, _format2.layer_schema(), **options) as writer,
        ):
            chunk: list[dict[str, Any]] = []
            in_layer = 0
            for r in recs:
                chunk.append(_format2.neuron_row(r, corpus, quantize))
                if len(chunk) == _format2.ROW_GROUP:
                    writer.write_table(_format2.rows_table(chunk))
                    in_layer += len(chunk)
                    chunk = []
            if chunk or not in_layer:
                writer.write_table(_format2.rows_table(chunk))
                in_layer += len(chunk)
        n_neurons += in_layer
        written.add(layer)
    for stale in (root / DATA).glob("layer-*.parquet"):
        if int(stale.stem.split("-")[1]) not in written:
            stale.unlink()
    with atomic_path(root / CORPUS) as tmp:
        pq.write_table(corpus.table(), tmp, row_group_size=_format2.CORPUS_ROW_GROUP, **options)
    card.layers = sorted(written)
    card.code_version = card.code_version or __version__
    if quantize:
        card.extra["activation_grid"] = (
            f"top activation / {2**GRID_BITS} (rounded to keep 0-10 bins; top exact)"
        )
    card.content_hash = content_hash(root)
    card.file_hashes = file_hashes(root)
    write_text(root / "README.md", render_card(card, n_neurons))
    write_json(root / CARD, card.to_dict())
    return root


def storage_format(root: str | Path) -> int:
    """1 or 2: the storage format of the dataset at ``root`` (from its first layer file)."""
    root = Path(root)
    card = read_card(root)
    if not card.layers:
        return 2 if (root / CORPUS).exists() else 1
    return _format2.file_format(_existing_layer_file(root, card, card.layers[0]))


def migrate(old: str | Path, new: str | Path, *, quantize: bool = True) -> Path:
    """Convert the dataset at ``old`` (either format) to format 2 at ``new``, layer by layer.

    ``quantize`` (default) rounds activations to the grid the recorder now stores, so a
    migrated recording is what recording it again would write (and as small); without it
    every value is kept bit for bit (float64 where off the grid). The old dataset's content
    hash is checked once, first; its card is kept (new hashes, format-2 files).
    """
    old, new = Path(old), Path(new)
    if new.resolve() == old.resolve():
        raise DatasetError(f"{new}: migrate writes a new directory; give another path than {old}")
    if (new / CARD).exists() or (new.exists() and any(new.iterdir())):
        raise DatasetError(f"{new}: not empty; migrate writes into a new or empty directory")
    card = read_card(old)
    actual = content_hash(old)
    if actual != card.content_hash:
        raise _hash_mismatch(old, card, actual)

    def layers() -> Iterator[tuple[int, list[NeuronRecord]]]:
        for layer in card.layers:
            ds = NeuronDataset.load(old, layers=[layer], verify=False)
            yield layer, list(ds)  # file order: NeuronDataset iterates by id

    out = DatasetCard.from_dict(card.to_dict())
    out.content_hash, out.file_hashes = "", {}
    return save_layers(new, out, layers(), quantize=quantize)


class _LazyNeurons(dict[NeuronId, NeuronRecord]):
    """A ``NeuronDataset.neurons`` dict that reads the dataset at ``root`` on first use.

    Every read or write first fills the dict from disk (verifying the content hash), so it
    behaves exactly like the eagerly loaded dict; until then it costs nothing.
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self._root = root
        self._filled = False

    def _fill(self) -> None:
        if not self._filled:
            self._filled = True
            super().update(NeuronDataset.load(self._root).neurons)

    def __getitem__(self, key: NeuronId) -> NeuronRecord:
        self._fill()
        return super().__getitem__(key)

    def __setitem__(self, key: NeuronId, value: NeuronRecord) -> None:
        self._fill()
        super().__setitem__(key, value)

    def __delitem__(self, key: NeuronId) -> None:
        self._fill()
        super().__delitem__(key)

    def __iter__(self) -> Iterator[NeuronId]:
        self._fill()
        return super().__iter__()

    def __len__(self) -> int:
        self._fill()
        return super().__len__()

    def __contains__(self, key: object) -> bool:
        self._fill()
        return super().__contains__(key)

    def __eq__(self, other: object) -> bool:
        self._fill()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<neurons of {self._root}, not loaded>" if not self._filled else super().__repr__()

    def keys(self) -> Any:
        self._fill()
        return super().keys()

    def values(self) -> Any:
        self._fill()
        return super().values()

    def items(self) -> Any:
        self._fill()
        return super().items()

    def get(self, key: NeuronId, default: Any = None) -> Any:
        self._fill()
        return super().get(key, default)

    def pop(self, key: NeuronId, *default: Any) -> Any:
        self._fill()
        return super().pop(key, *default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._fill()
        super().update(*args, **kwargs)

    def copy(self) -> dict[NeuronId, NeuronRecord]:
        self._fill()
        return dict(super().items())


def _existing_layer_file(root: Path, card: DatasetCard, layer: int) -> Path:
    f = _layer_file(root, layer)
    if not f.exists():
        raise DatasetError(f"{f}: missing file for layer {layer} (card lists {card.layers})")
    return f


def _read_table(f: Path, indices: list[int] | None = None, columns: list[str] | None = None) -> Any:
    """One layer file as a table (only neurons ``indices``, only ``columns``, when given).

    With ``indices`` pyarrow skips the row groups whose ``index`` statistics exclude them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    filters = None if indices is None else [("index", "in", indices)]
    try:
        return pq.read_table(f, columns=columns, filters=filters)
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(f"{f}: corrupt or truncated parquet file ({e})") from None


def _read_rows(
    f: Path, indices: list[int] | None = None, columns: list[str] | None = None
) -> list[dict[str, Any]]:
    """Rows of one layer file as Python dicts (format 1, or id columns of either format)."""
    return _read_table(f, indices, columns).to_pylist()  # type: ignore[no-any-return]


def read_card(root: str | Path) -> DatasetCard:
    """Read ``card.json``; a missing card means no dataset or an interrupted write."""
    f = Path(root) / CARD
    if not f.exists():
        raise DatasetError(
            f"{f}: no dataset card (not a neuronbench dataset, or its write was interrupted)"
        )
    try:
        return DatasetCard.from_dict(json.loads(f.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as e:
        raise DatasetError(f"{f}: corrupt dataset card ({e})") from None


def render_card(card: DatasetCard, n_neurons: int) -> str:
    """A Hugging Face dataset card (YAML header + prose) for the dataset directory."""
    return f"""---
configs:
- config_name: default
  data_files: "data/layer-*.parquet"
- config_name: corpus
  data_files: "corpus.parquet"
tags: [interpretability, neurons, neuronbench]
---
# Neuron activation records: {card.subject}

Recorded with neuronbench {card.code_version}: {n_neurons} neurons ({card.site} site),
layers {card.layers}, over {card.n_tokens:,} tokens of `{card.corpus}` in records of
{card.record_length} tokens, seed {card.seed}.

| field | value |
|---|---|
| subject | `{card.subject}` |
| revision | `{card.revision}` |
| corpus | `{card.corpus}` |
| tokens | {card.n_tokens} |
| seed | {card.seed} |
| content sha256 | `{card.content_hash}` |

Storage format 2. `corpus.parquet`: each record shown by some neuron, once (`record` id,
corpus `position`, `tokens`). `data/layer-*.parquet`: one row per neuron: `records` (corpus
ids of its `n_top` top records sorted by max activation, `n_random` random records, then
the quantile samples of `quantile_sizes`), the activations of all their tokens in that order
as zigzag `codes` z (value = c * scale / {2**GRID_BITS} with c = (z >> 1) ^ -(z & 1)), or as
float64 `activations` when `scale` is null, `quantile_boundaries` and activation moments.
"""
