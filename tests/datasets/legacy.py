"""Format-1 datasets as neuronbench wrote them before storage format 2, for load/migrate tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from neuronbench._atomic import write_json
from neuronbench.datasets import NeuronDataset
from neuronbench.datasets.storage import (
    CARD,
    DATA,
    _row,
    _schema,
    content_hash,
    file_hashes,
)


def save_v1(ds: NeuronDataset, root: Path) -> Path:
    """Write ``ds`` exactly as format 1 did: one zstd parquet file per layer, then the card."""
    (root / DATA).mkdir(parents=True, exist_ok=True)
    by_layer: dict[int, list] = {}
    for n in ds:
        by_layer.setdefault(n.id.layer, []).append(n)
    for layer, recs in sorted(by_layer.items()):
        table = pa.Table.from_pylist([_row(r) for r in recs], schema=_schema())
        pq.write_table(table, root / DATA / f"layer-{layer:03d}.parquet", compression="zstd")
    ds.card.layers = sorted(by_layer)
    ds.card.content_hash, ds.card.file_hashes = content_hash(root), file_hashes(root)
    write_json(root / CARD, ds.card.to_dict())
    return root
