"""Parquet storage: round trip, bad input named by file/neuron/record, atomic saves, HF datasets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from neuronbench.datasets import DatasetCard, DatasetError, NeuronDataset, NeuronId, read_card
from neuronbench.datasets.storage import content_hash, file_hashes
from tests.conftest import make_neuron
from tests.datasets.legacy import save_v1


def build(n_layers: int = 2, per_layer: int = 2, **kw: Any) -> NeuronDataset:
    ds = NeuronDataset(card=DatasetCard(subject="test-subject", corpus="tiny", n_tokens=999))
    ds.add(
        make_neuron(
            layer=layer,
            index=i,
            n_top=8,
            n_random=6,
            n_tokens_per_record=12,
            seed=10 * layer + i,
            **kw,
        )
        for layer in range(n_layers)
        for i in range(per_layer)
    )
    return ds


def layer_file(root: Path, layer: int) -> Path:
    return root / "data" / f"layer-{layer:03d}.parquet"


def tamper(root: Path, layer: int, edit: Any, rehash: bool = True) -> Path:
    """Rewrite one layer file with ``edit(rows)`` applied, bypassing validation; re-sign the card.

    Record-level edits need format 1 (records inline): tests/datasets/test_compact_storage.py
    has the format-2 counterparts."""
    f = layer_file(root, layer)
    table = pq.read_table(f)
    rows = table.to_pylist()
    edit(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), f)
    if rehash:
        card = json.loads((root / "card.json").read_text())
        card["content_hash"], card["file_hashes"] = content_hash(root), file_hashes(root)
        (root / "card.json").write_text(json.dumps(card))
    return f


def test_save_load_round_trip(tmp_path: Path) -> None:
    ds = build()
    ds.save(tmp_path / "ds")
    back = NeuronDataset.load(tmp_path / "ds")
    assert sorted(back.neurons) == sorted(ds.neurons)
    for nid, n in ds.neurons.items():
        assert back.neurons[nid].to_dict() == n.to_dict()
    assert back.card.layers == [0, 1] and back.card.content_hash == content_hash(tmp_path / "ds")
    assert [n.id.layer for n in NeuronDataset.load(tmp_path / "ds", layers=[1])] == [1, 1]
    assert back["test-subject-L1-N0"].id == NeuronId("test-subject", 1, 0)


@pytest.mark.parametrize(
    ("edit", "record", "problem"),
    [
        (lambda r: r["top"][2]["activations"].pop(), "top[2]", "12 tokens but 11 activations"),
        (
            lambda r: r["random"][1]["activations"].__setitem__(3, math.nan),
            "random[1]",
            "activation nan at token 3 is not finite",
        ),
        (
            lambda r: r["top"][4]["activations"].__setitem__(0, math.inf),
            "top[4]",
            "activation inf at token 0 is not finite",
        ),
        (
            lambda r: r["quantile"][2][1].update(tokens=[], activations=[]),
            "quantile[2][1]",
            "empty record",
        ),
        (lambda r: r["top"].reverse(), "top[1]", "not sorted by max activation"),
    ],
)
def test_bad_records_name_file_neuron_record(
    tmp_path: Path, edit: Any, record: str, problem: str
) -> None:
    root = save_v1(build(), tmp_path / "ds")

    def edit_second(rows: list[dict[str, Any]]) -> None:
        edit(rows[1])  # layer 1, neuron 1

    f = tamper(root, 1, edit_second)
    with pytest.raises(DatasetError) as e:
        NeuronDataset.load(root)
    msg = str(e.value)
    assert (
        str(f) in msg and "neuron test-subject/1/1" in msg and record in msg and problem in msg
    ), msg


def test_malformed_row_names_file_and_neuron(tmp_path: Path) -> None:
    root = save_v1(build(), tmp_path / "ds")

    def drop_tokens(rows: list[dict[str, Any]]) -> None:
        rows[0]["top"][0]["tokens"] = None

    f = tamper(root, 0, drop_tokens)
    with pytest.raises(DatasetError, match="malformed row for layer 0 neuron 0") as e:
        NeuronDataset.load(root)
    assert str(f) in str(e.value)


def test_missing_split_names_neuron_and_split() -> None:
    from neuronbench.datasets import scoring_records, train_records

    n = make_neuron(n_top=8, n_random=0, n_tokens_per_record=8, layer=3, index=5)
    with pytest.raises(
        DatasetError, match=r"neuron test-subject/3/5: split 'valid' is missing \(2 top, 0 random"
    ):
        scoring_records(n, "valid")
    with pytest.raises(DatasetError, match="neuron test-subject/3/5: no train records"):
        train_records(make_neuron(n_top=0, n_random=3, n_tokens_per_record=8, layer=3, index=5))


def test_truncated_parquet(tmp_path: Path) -> None:
    root = build().save(tmp_path / "ds")
    f = layer_file(root, 1)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DatasetError, match="content hash mismatch") as e:
        NeuronDataset.load(root)
    assert f"{f} (changed)" in str(e.value)
    with pytest.raises(DatasetError, match="corrupt or truncated parquet file") as e:
        NeuronDataset.load(root, verify=False)
    assert str(f) in str(e.value)


def test_missing_card_is_an_interrupted_write(tmp_path: Path) -> None:
    root = build().save(tmp_path / "ds")
    (root / "card.json").unlink()
    with pytest.raises(DatasetError, match="no dataset card .*interrupted") as e:
        NeuronDataset.load(root)
    assert str(root / "card.json") in str(e.value)


@pytest.mark.parametrize("content", [b'{"subject": ', b"\xff\xfe garbage", b"[1, 2]", b"{}"])
def test_corrupt_card(tmp_path: Path, content: bytes) -> None:
    root = build().save(tmp_path / "ds")
    (root / "card.json").write_bytes(content)
    with pytest.raises(DatasetError, match="corrupt dataset card") as e:
        read_card(root)
    assert str(root / "card.json") in str(e.value)


def test_content_hash_mismatch_names_the_changed_file(tmp_path: Path) -> None:
    root = build().save(tmp_path / "ds")

    def bump(rows: list[dict[str, Any]]) -> None:
        rows[0]["mean"] = 123.0  # still a valid neuron: only the hash can catch it

    f = tamper(root, 0, bump, rehash=False)
    with pytest.raises(DatasetError, match="content hash mismatch") as e:
        NeuronDataset.load(root)
    assert f"{f} (changed)" in str(e.value) and str(layer_file(root, 1)) not in str(e.value)
    assert (
        NeuronDataset.load(root, verify=False).neurons[NeuronId("test-subject", 0, 0)].mean == 123.0
    )


def test_missing_layer_file(tmp_path: Path) -> None:
    root = build().save(tmp_path / "ds")
    f = layer_file(root, 1)
    f.unlink()
    with pytest.raises(DatasetError) as e:
        NeuronDataset.load(root)
    assert f"{f} (missing)" in str(e.value)
    with pytest.raises(DatasetError, match="missing file for layer 1") as e:
        NeuronDataset.load(root, verify=False)
    assert str(f) in str(e.value)


@pytest.mark.parametrize("fail_on", [1, 2, 4])
def test_crash_during_save_never_leaves_a_loadable_half_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: int
) -> None:
    root = tmp_path / "ds"
    old = build(n_layers=2)
    old.save(root)
    new = build(n_layers=3, mean=42.0)
    real, real_chunk = pq.write_table, pq.ParquetWriter.write_table
    calls = {"n": 0}

    def crash_midway(table: pa.Table, where: Any, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == fail_on:
            half = table.slice(0, 1)  # write part of the file, then die
            real(half, where, **kw)
            raise OSError("simulated crash while writing parquet")
        real(table, where, **kw)

    def crash_in_chunk(writer: pq.ParquetWriter, table: pa.Table, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == fail_on:
            real_chunk(writer, table.slice(0, 1), **kw)
            raise OSError("simulated crash while writing parquet")
        real_chunk(writer, table, **kw)

    # layer files are written in row-group chunks, the corpus in one call, in that order
    monkeypatch.setattr(pq, "write_table", crash_midway)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", crash_in_chunk)
    with pytest.raises(OSError, match="simulated crash"):
        new.save(root)
    monkeypatch.undo()
    assert not list((root / "data").glob(".*.tmp")), "temp file left behind"
    try:
        loaded = NeuronDataset.load(root)
    except DatasetError:
        return  # nothing loads: acceptable
    # if anything loads it must be exactly the old dataset, never a mix
    assert {n.id: n.to_dict() for n in loaded} == {n.id: n.to_dict() for n in old}


def test_resave_replaces_layers_and_removes_stale(tmp_path: Path) -> None:
    root = build(n_layers=3).save(tmp_path / "ds")
    build(n_layers=1).save(root)
    assert sorted(p.name for p in (root / "data").iterdir()) == ["layer-000.parquet"]
    assert NeuronDataset.load(root).layers == [0]


def test_hf_datasets_reads_saved_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    ds = build(n_layers=2)
    # the first layer without quantile samples: with per-file schema inference it would be
    # list<null> and readers that take the schema from the first file fail on layer 1
    for n in ds:
        if n.id.layer == 0:
            n.quantile, n.quantile_boundaries = [], []
    root = ds.save(tmp_path / "ds")
    hf = datasets.load_dataset(
        "parquet", data_dir=str(root / "data"), cache_dir=str(tmp_path / "cache"), split="train"
    )
    corpus = datasets.load_dataset(
        "parquet",
        data_files=str(root / "corpus.parquet"),
        cache_dir=str(tmp_path / "cache"),
        split="train",
    )
    assert hf.num_rows == 4
    rows = sorted(hf, key=lambda r: (r["layer"], r["index"]))
    by_id = {r["record"]: r for r in corpus}
    first = ds.neurons[NeuronId("test-subject", 0, 0)]
    top0 = by_id[rows[0]["records"][0]]
    assert top0["tokens"] == first.top[0].tokens and top0["position"] == first.top[0].position
    codes = [(z >> 1) ^ -(z & 1) for z in rows[0]["codes"]]  # zigzag
    values = rows[0]["activations"] or [c * rows[0]["scale"] / 512 for c in codes]
    assert values[: len(top0["tokens"])] == pytest.approx(first.top[0].activations)
    assert rows[0]["quantile_sizes"] == [] and len(rows[3]["quantile_sizes"]) == 5
    assert pq.read_table(root / "data").num_rows == 4  # pyarrow's dataset reader too
