"""Storage format 2: the corpus's records once per dataset, neurons as record ids plus codes.

Format 1 stored every record of every neuron as a struct of token strings and float64
activations: the same corpus record was written once per neuron showing it (~190 times per
layer on the default recording) and each activation took 8 bytes. Format 2 writes

- ``corpus.parquet``: one row per distinct record shown by any neuron: ``record`` (row id),
  ``position`` (corpus record index, -1 when unknown) and ``tokens`` (strings, exactly as
  records show them); imported records without positions are told apart by their tokens;
- ``data/layer-NNN.parquet``: one row per neuron: ``records`` (corpus row ids of its top,
  random and quantile records, in that order, with ``n_top``, ``n_random`` and
  ``quantile_sizes`` saying where each group ends), and the activations of all their tokens
  concatenated, as grid ``codes`` with a ``scale`` (``compact``), or as float64
  ``activations`` when ``scale`` is null (values not on the grid, e.g. OpenAI's data).

Codes are zigzag-coded (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) and byte-stream-split: the sign
then sits in the lowest bit instead of three bytes of 0xFF, which takes ~30% off a layer.
A value is ``c * scale * 2**-GRID_BITS`` with ``c = (z >> 1) ^ -(z & 1)`` (``compact.decode``);
a record's token count comes from the corpus. Layer files are written in row groups of ``ROW_GROUP`` neurons, so
reading one neuron decodes one row group (pyarrow skips the others by their ``index``
statistics), and its records are a filtered read of the corpus.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from neuronbench.datasets import compact
from neuronbench.datasets.errors import DatasetError
from neuronbench.datasets.schema import ActivationRecord, NeuronId, NeuronRecord

FORMAT = 2
FORMAT_KEY = b"neuronbench.format"
"""Parquet key-value metadata of every format-2 file; format-1 files have none."""
CORPUS = "corpus.parquet"
ROW_GROUP = 128
"""Neurons per row group: a one-neuron read decodes this many (~1 MB); compression is per page."""
CORPUS_ROW_GROUP = 1024


def identity_fields() -> list[tuple[str, Any]]:
    """Parquet columns naming a neuron: the same in storage formats 1 and 2."""
    import pyarrow as pa

    return [
        ("subject", pa.string()),
        ("site", pa.string()),
        ("layer", pa.int64()),
        ("index", pa.int64()),
    ]


def summary_fields() -> list[tuple[str, Any]]:
    """Parquet columns of a neuron's quantile boundaries, moments and firing rate: the same in
    storage formats 1 and 2 (only how records are stored differs)."""
    import pyarrow as pa

    return [
        ("quantile_boundaries", pa.list_(pa.float64())),
        ("mean", pa.float64()),
        ("variance", pa.float64()),
        ("skewness", pa.float64()),
        ("kurtosis", pa.float64()),
        ("firing_rate", pa.float64()),
        ("n_tokens", pa.int64()),
    ]


def layer_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            *identity_fields(),
            ("records", pa.list_(pa.int32())),
            ("n_top", pa.int32()),
            ("n_random", pa.int32()),
            ("quantile_sizes", pa.list_(pa.int32())),
            ("scale", pa.float64()),
            ("codes", pa.list_(pa.int32())),
            ("activations", pa.list_(pa.float64())),
            *summary_fields(),
        ],
        metadata={FORMAT_KEY: str(FORMAT).encode()},
    )


def corpus_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [("record", pa.int32()), ("position", pa.int64()), ("tokens", pa.list_(pa.string()))],
        metadata={FORMAT_KEY: str(FORMAT).encode()},
    )


def writer_options() -> dict[str, Any]:
    """zstd everywhere; byte-stream-split for the numbers, which zstd alone barely shrinks."""
    return {
        "compression": "zstd",
        "use_dictionary": ["subject", "site", "tokens.list.element"],
        "use_byte_stream_split": ["codes.list.element", "activations.list.element"],
    }


def file_format(f: Path) -> int:
    """1 or 2, from the file's metadata (format 1 predates the key)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(f).metadata or {}
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(f"{f}: corrupt or truncated parquet file ({e})") from None
    value = meta.get(FORMAT_KEY, b"1")
    if value not in (b"1", b"2"):
        raise DatasetError(
            f"{f}: storage format {value.decode(errors='replace')} is newer than this "
            "neuronbench reads (1-2); upgrade neuronbench"
        )
    return int(value)


class CorpusBuilder:
    """Assigns each distinct (position, tokens) record a row id, in order of first use."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, tuple[str, ...]], int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def record_id(self, r: ActivationRecord) -> int:
        key = (r.position, tuple(r.tokens))
        rid = self._ids.get(key)
        if rid is None:
            rid = self._ids[key] = len(self._ids)
        return rid

    def table(self) -> Any:
        import pyarrow as pa

        keys = list(self._ids)  # dicts keep insertion order: row i has id i
        return pa.table(
            {
                "record": pa.array(range(len(keys)), pa.int32()),
                "position": pa.array([p for p, _ in keys], pa.int64()),
                "tokens": pa.array([list(t) for _, t in keys], pa.list_(pa.string())),
            },
            schema=corpus_schema(),
        )


def _all_records(n: NeuronRecord) -> list[ActivationRecord]:
    return [*n.top, *n.random, *(r for q in n.quantile for r in q)]


def neuron_row(n: NeuronRecord, corpus: CorpusBuilder, quantize: bool) -> dict[str, Any]:
    """One neuron as a format-2 row; ``quantize`` rounds to the grid (else lossless)."""
    records = _all_records(n)
    acts = np.fromiter(
        (a for r in records for a in r.activations),
        dtype=np.float64,
        count=sum(len(r.activations) for r in records),
    )
    top_max = n.max_activation
    coded = (compact.quantize if quantize else compact.encode)(acts, top_max)
    return {
        **n.id.to_dict(),
        "records": [corpus.record_id(r) for r in records],
        "n_top": len(n.top),
        "n_random": len(n.random),
        "quantile_sizes": [len(q) for q in n.quantile],
        "scale": None if coded is None else coded[1],
        "codes": [] if coded is None else zigzag(coded[0]),
        "activations": acts if coded is None else [],
        "quantile_boundaries": [float(b) for b in n.quantile_boundaries],
        "mean": n.mean,
        "variance": n.variance,
        "skewness": n.skewness,
        "kurtosis": n.kurtosis,
        "firing_rate": n.firing_rate,
        "n_tokens": n.n_tokens,
    }


def rows_table(rows: list[dict[str, Any]]) -> Any:
    """A row group's table; numpy code arrays go in without a round trip through Python ints."""
    import pyarrow as pa

    schema = layer_schema()
    cols: dict[str, Any] = {}
    for fld in schema:
        values = [r[fld.name] for r in rows]
        if fld.name in ("codes", "activations"):
            flat = np.concatenate([np.asarray(v) for v in values]) if values else np.array([])
            offsets = np.zeros(len(values) + 1, dtype=np.int32)
            offsets[1:] = np.cumsum([len(v) for v in values])
            cols[fld.name] = pa.ListArray.from_arrays(
                pa.array(offsets),
                pa.array(flat.astype(np.int32 if fld.name == "codes" else np.float64)),
            )
        else:
            cols[fld.name] = pa.array(values, fld.type)
    return pa.table(cols, schema=schema)


def read_corpus(root: Path, ids: Iterable[int] | None) -> dict[int, tuple[int, list[str]]]:
    """record id -> (position, tokens) for ``ids`` (all records when None): a filtered read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = root / CORPUS
    if not f.exists():
        raise DatasetError(f"{f}: missing corpus file (every format-2 dataset has one)")
    filters = None if ids is None else [("record", "in", sorted(set(ids)))]
    try:
        t = pq.read_table(f, filters=filters)
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(f"{f}: corrupt or truncated parquet file ({e})") from None
    return dict(
        zip(
            t.column("record").to_pylist(),
            zip(t.column("position").to_pylist(), t.column("tokens").to_pylist(), strict=True),
            strict=True,
        )
    )


def record_ids(table: Any) -> set[int]:
    import pyarrow.compute as pc

    return set(pc.unique(pc.list_flatten(table.column("records"))).to_pylist())


def _groups(n_top: int, n_random: int, sizes: list[int]) -> Iterator[str]:
    yield from (f"top[{i}]" for i in range(n_top))
    yield from (f"random[{i}]" for i in range(n_random))
    for q, size in enumerate(sizes):
        yield from (f"quantile[{q}][{i}]" for i in range(size))


def neurons(
    table: Any, corpus: dict[int, tuple[int, list[str]]], where: Path
) -> Iterator[NeuronRecord]:
    """Decode a layer table's rows; errors name the file, neuron and record."""
    import pyarrow as pa

    def flat(name: str, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        col = table.column(name).combine_chunks()
        if col.null_count:
            raise DatasetError(f"{where}: null {name} list")
        if isinstance(col, pa.ChunkedArray):  # an empty table
            return np.array([], dtype), np.zeros(1, np.int64)
        return (
            col.values.to_numpy(zero_copy_only=False).astype(dtype),
            col.offsets.to_numpy().astype(np.int64),
        )

    codes, code_off = flat("codes", np.int64)
    exact, exact_off = flat("activations", np.float64)
    meta = table.drop_columns(["codes", "activations"]).to_pylist()
    for i, row in enumerate(meta):
        nid = f"neuron {row.get('subject')}/{row.get('layer')}/{row.get('index')}"
        try:
            sizes = list(row["quantile_sizes"])
            rids = list(row["records"])
            names = list(_groups(row["n_top"], row["n_random"], sizes))
            if len(names) != len(rids):
                raise DatasetError(
                    f"{where}: {nid}: {len(rids)} records but groups of "
                    f"{row['n_top']} top, {row['n_random']} random, quantile {sizes}"
                )
            if row["scale"] is None:
                values = exact[exact_off[i] : exact_off[i + 1]]
            else:
                z = codes[code_off[i] : code_off[i + 1]]
                values = compact.decode(unzigzag(z), row["scale"])
            recs: list[ActivationRecord] = []
            start = 0
            for name, rid in zip(names, rids, strict=True):
                if rid not in corpus:
                    raise DatasetError(f"{where}: {nid} {name}: no corpus record {rid}")
                position, tokens = corpus[rid]
                acts = values[start : start + len(tokens)].tolist()
                start += len(tokens)
                recs.append(
                    ActivationRecord(tokens=list(tokens), activations=acts, position=position)
                )
            if start != len(values):
                last = names[-1] if names else "(no records)"
                raise DatasetError(
                    f"{where}: {nid}: {len(values)} activations for {start} record tokens "
                    f"(records end at {last})"
                )
            top, rest = recs[: row["n_top"]], recs[row["n_top"] :]
            rand, rest = rest[: row["n_random"]], rest[row["n_random"] :]
            quantile = []
            for size in sizes:
                quantile.append(rest[:size])
                rest = rest[size:]
            yield NeuronRecord(
                id=NeuronId.from_dict(row),
                top=top,
                random=rand,
                quantile=quantile,
                quantile_boundaries=[float(b) for b in row["quantile_boundaries"] or []],
                mean=_num(row["mean"]),
                variance=_num(row["variance"]),
                skewness=_num(row["skewness"]),
                kurtosis=_num(row["kurtosis"]),
                firing_rate=_num(row["firing_rate"]),
                n_tokens=int(row["n_tokens"] or 0),
            )
        except DatasetError as e:
            msg = str(e)
            raise DatasetError(msg if msg.startswith(str(where)) else f"{where}: {msg}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(
                f"{where}: malformed row for layer {row.get('layer')} neuron {row.get('index')} ({e!r})"
            ) from None


def zigzag(codes: np.ndarray) -> np.ndarray:
    return (codes << 1) ^ (codes >> 63)


def unzigzag(z: np.ndarray) -> np.ndarray:
    return (z >> 1) ^ -(z & 1)


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)
