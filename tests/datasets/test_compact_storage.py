"""Storage format 2: corpus once, activations on a per-neuron grid; old datasets; import memory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from neuronbench.cli import main
from neuronbench.datasets import (
    ActivationRecord,
    DatasetCard,
    DatasetError,
    NeuronDataset,
    NeuronId,
    NeuronRecord,
    _format2,
    compact,
)
from neuronbench.datasets.normalize import normalize
from neuronbench.datasets.openai_json import export_openai, import_openai
from neuronbench.datasets.storage import (
    content_hash,
    file_hashes,
    migrate,
    save_layers,
    storage_format,
)
from tests.conftest import make_neuron
from tests.datasets.legacy import save_v1

STEP = 2.0**-compact.GRID_BITS


def realistic(
    n_neurons: int, layers: tuple[int, ...] = (0,), n_records: int = 200, seed: int = 0
) -> NeuronDataset:
    """Records shaped like the default recording: a corpus of 64-token records; per neuron its
    40 top records by max, 30 random and 5x5 quantile records of the rest, float32 values of
    a gated MLP (silu(g) * u, heavy-tailed, mostly near zero)."""
    rng = np.random.default_rng(seed)
    words = [f" w{i}" for i in range(3000)]
    zipf = np.minimum(rng.zipf(1.3, size=(n_records, 64)), len(words)) - 1
    corpus = [[words[i] for i in row] for row in zipf]
    ds = NeuronDataset(card=DatasetCard(subject="gen", corpus="gen", n_tokens=n_records * 64))
    for layer in layers:
        for j in range(n_neurons):
            g = rng.normal(size=(n_records, 64)) - 1.0
            u = rng.normal(size=(n_records, 64))
            acts = (g / (1 + np.exp(-g)) * u * rng.uniform(0.2, 3.0)).astype(np.float32)
            order = sorted(range(n_records), key=lambda p: (-acts[p].max(), p))
            rest = [int(p) for p in rng.permutation(order[40:])]

            def rec(p: int, acts: np.ndarray = acts) -> ActivationRecord:
                return ActivationRecord(list(corpus[p]), acts[p].astype(np.float64).tolist(), p)

            ds.add(
                [
                    NeuronRecord(
                        id=NeuronId("gen", layer, j),
                        top=[rec(p) for p in order[:40]],
                        random=[rec(p) for p in rest[:30]],
                        quantile=[
                            [rec(p) for p in rest[30 + 5 * q : 35 + 5 * q]] for q in range(5)
                        ],
                        quantile_boundaries=[0.1, 0.2, 0.3, 0.4],
                        mean=float(acts.mean()),
                        variance=float(acts.var()),
                        skewness=0.5,
                        kurtosis=3.0,
                        firing_rate=float((acts > 0).mean()),
                        n_tokens=acts.size,
                    )
                ]
            )
    return ds


def records(n: NeuronRecord) -> list[ActivationRecord]:
    return [*n.top, *n.random, *(r for q in n.quantile for r in q)]


def parquet_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*.parquet"))


def by_layers(ds: NeuronDataset) -> list[tuple[int, list[NeuronRecord]]]:
    return [(layer, [n for n in ds if n.id.layer == layer]) for layer in ds.layers]


# ------------------------------------------------------------------ the grid


def boundary_values(top: float, rng: np.random.Generator) -> np.ndarray:
    """Values a hair either side of every 0-10 bin edge of ``top``, plus noise and negatives."""
    edges = np.array([k * top / 10 for k in range(11)])
    eps = top * np.array([-1e-9, -1e-6, -3e-4, 0.0, 1e-9, 1e-6, 3e-4])
    near = (edges[:, None] + eps[None, :]).ravel()
    return np.concatenate([near, rng.uniform(-top, top, 500), [top]]).clip(-2 * top, top)


@pytest.mark.parametrize("top", [1.0, 3.7, 0.013, 17.25, float(np.float32(0.1))])
def test_quantize_keeps_top_bins_and_order_exactly(top: float) -> None:
    rng = np.random.default_rng(0)
    a = boundary_values(top, rng)
    coded = compact.quantize(a, top)
    assert coded is not None
    codes, scale = coded
    b = compact.decode(codes, scale)
    assert b[-1] == top  # the top activation is exact
    # the 0-10 bin of every value against the top, computed by the project's normalize
    assert normalize(b.tolist(), top) == normalize(a.tolist(), top)
    # monotone: order never flips (ties may appear)
    i = np.argsort(a, kind="stable")
    assert np.all(np.diff(b[i]) >= 0)
    # error below one grid step; the nearest grid point except at a bin edge
    assert np.max(np.abs(b - a)) < scale * STEP
    moved = np.abs(b - a) > scale * STEP / 2
    assert np.mean(moved) < 0.1
    # lossless encode recognises the grid values and gives the same codes
    again = compact.encode(b, top)
    assert again is not None and np.array_equal(again[0], codes) and again[1] == scale


def test_encode_refuses_values_off_the_grid() -> None:
    a = np.array([0.3, 1.0, 0.1234567])
    assert compact.encode(a, 1.0) is None  # 0.1234567 is not a multiple of 1/512
    assert compact.encode(np.array([1.0, math.nan]), 1.0) is None
    assert compact.quantize(np.array([1.0, math.inf]), 1.0) is None


# ------------------------------------------------------------------ round trips


def test_quantized_round_trip(tmp_path: Path) -> None:
    ds = realistic(12, layers=(0, 3))
    root = save_layers(tmp_path / "ds", ds.card, by_layers(ds), quantize=True)
    back = NeuronDataset.load(root)
    assert storage_format(root) == 2 and sorted(back.neurons) == sorted(ds.neurons)
    for nid, n in ds.neurons.items():
        m = back.neurons[nid]
        top = n.max_activation
        assert m.max_activation == top  # exact
        assert [r.position for r in m.top] == [r.position for r in n.top]  # top-k order exact
        assert [r.max_activation for r in m.top] == sorted(
            (r.max_activation for r in m.top), reverse=True
        )
        assert len(m.quantile) == len(n.quantile) and m.quantile_boundaries == n.quantile_boundaries
        for r, s in zip(records(n), records(m), strict=True):
            assert (s.tokens, s.position) == (r.tokens, r.position)
            err = np.abs(np.array(s.activations) - np.array(r.activations))
            assert err.max() < top * STEP  # the stated tolerance
            assert normalize(s.activations, top) == normalize(r.activations, top)
        for k in ("mean", "variance", "skewness", "kurtosis", "firing_rate", "n_tokens"):
            assert getattr(m, k) == getattr(n, k)
    # values already on the grid are stored compactly by a lossless save, and equal
    again = back.save(tmp_path / "again")
    assert {n.id: n.to_dict() for n in NeuronDataset.load(again)} == {
        n.id: n.to_dict() for n in back
    }
    assert pq.read_table(again / "data" / "layer-000.parquet").column("scale").null_count == 0
    assert parquet_bytes(again) == parquet_bytes(root)
    # so does importing its OpenAI export (JSON floats round-trip exactly)
    imported = import_openai(export_openai(back, tmp_path / "oa"), out_dataset_dir=tmp_path / "im")
    assert {n.id: n.to_dict() for n in imported} == {n.id: n.to_dict() for n in back}
    assert parquet_bytes(tmp_path / "im") == parquet_bytes(root)


def test_lossless_save_keeps_arbitrary_values_and_the_corpus_once(tmp_path: Path) -> None:
    neurons = [make_neuron(layer=0, index=i, n_top=6, n_random=4, seed=i) for i in range(3)]
    ds = NeuronDataset(card=DatasetCard(subject="t"), neurons={n.id: n for n in neurons})
    root = ds.save(tmp_path / "ds")
    back = NeuronDataset.load(root)
    assert {n.id: n.to_dict() for n in back} == {n.id: n.to_dict() for n in ds}
    assert pq.read_table(root / "data" / "layer-000.parquet").column("scale").null_count == 3
    # make_neuron reuses positions across neurons with other tokens: told apart by content
    distinct = {(r.position, tuple(r.tokens)) for n in neurons for r in records(n)}
    assert pq.read_table(root / "corpus.parquet").num_rows == len(distinct)


def test_recorded_record_shared_by_neurons_is_stored_once(tmp_path: Path) -> None:
    ds = realistic(8, n_records=60)
    root = save_layers(tmp_path / "ds", ds.card, by_layers(ds), quantize=True)
    shown = {r.position for n in ds for r in records(n)}
    corpus = pq.read_table(root / "corpus.parquet")
    assert sorted(corpus.column("position").to_pylist()) == sorted(shown)


# ------------------------------------------------------------------ filtered reads


def corrupt_row_group(f: Path, group: int, column: str) -> None:
    """Overwrite one column chunk of one row group with garbage (the rest stays readable)."""
    meta = pq.ParquetFile(f).metadata.row_group(group)
    col = next(
        meta.column(c) for c in range(meta.num_columns) if meta.column(c).path_in_schema == column
    )
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(f.read_bytes())
    data[start : start + col.total_compressed_size] = b"\x07" * col.total_compressed_size
    f.write_bytes(bytes(data))


def test_one_neuron_is_a_filtered_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_format2, "ROW_GROUP", 4)
    ds = realistic(12, n_records=80)
    root = save_layers(tmp_path / "ds", ds.card, by_layers(ds), quantize=True)
    f = root / "data" / "layer-000.parquet"
    assert pq.ParquetFile(f).metadata.num_row_groups == 3
    asked: list[set[int]] = []
    real = _format2.read_corpus

    def spy(root: Path, ids: Any) -> Any:
        asked.append(set(ids))
        return real(root, ids)

    monkeypatch.setattr(_format2, "read_corpus", spy)
    want = NeuronId("gen", 0, 1)
    expect = NeuronDataset.load(root, ids=[want]).neurons[want]
    # only the neuron's own records are read from the corpus
    rids = pq.read_table(f, filters=[("index", "==", 1)]).column("records").to_pylist()[0]
    assert asked == [set(rids)]
    corrupt_row_group(f, 2, "codes.list.element")  # neurons 8-11
    one = NeuronDataset.load(root, ids=[want], verify=False)  # never touches row group 2
    assert one.neurons[want].to_dict() == expect.to_dict() and len(one) == 1
    with pytest.raises(DatasetError, match="layer-000.parquet"):
        NeuronDataset.load(root, verify=False)


# ------------------------------------------------------------------ format 1


def test_old_format_loads_and_migrates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = realistic(6, layers=(0, 2), n_records=70)
    old = save_v1(ds, tmp_path / "v1")
    assert storage_format(old) == 1 and not (old / "corpus.parquet").exists()
    loaded = NeuronDataset.load(old)  # verifies the format-1 content hash
    original = {n.id: n.to_dict() for n in ds}
    assert {n.id: n.to_dict() for n in loaded} == original
    one = NeuronId("gen", 2, 4)
    assert NeuronDataset.load(old, ids=[one]).neurons[one].to_dict() == original[one]

    exact = migrate(old, tmp_path / "exact", quantize=False)
    assert storage_format(exact) == 2
    assert {n.id: n.to_dict() for n in NeuronDataset.load(exact)} == original  # bit for bit

    assert main(["migrate", str(old), str(tmp_path / "v2")]) == 0
    out = capsys.readouterr().out
    assert "migrated 12 neurons" in out and "bytes per neuron" in out
    new = NeuronDataset.load(tmp_path / "v2")
    assert new.card.subject == ds.card.subject and new.card.layers == [0, 2]
    assert new.card.content_hash == content_hash(tmp_path / "v2")
    for n in ds:
        m = new.neurons[n.id]
        assert m.max_activation == n.max_activation
        for r, s in zip(records(n), records(m), strict=True):
            assert s.tokens == r.tokens and s.position == r.position
            assert np.allclose(s.activations, r.activations, rtol=0, atol=n.max_activation * STEP)

    # into a non-empty directory, or onto itself: one line, nothing written
    assert main(["migrate", str(old), str(tmp_path / "v2")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["migrate", str(old), str(old)]) == 2
    assert "another path" in capsys.readouterr().err
    f = old / "data" / "layer-002.parquet"
    f.write_bytes(f.read_bytes()[:-100])
    assert main(["migrate", str(old), str(tmp_path / "v3")]) == 2
    err = capsys.readouterr().err
    assert "content hash mismatch" in err and "layer-002.parquet (changed)" in err


def test_newer_format_is_refused_in_one_line(tmp_path: Path) -> None:
    ds = realistic(2, n_records=50)
    root = save_layers(tmp_path / "ds", ds.card, by_layers(ds), quantize=True)
    f = root / "data" / "layer-000.parquet"
    t = pq.read_table(f)
    pq.write_table(t.replace_schema_metadata({_format2.FORMAT_KEY: b"3"}), f)
    card = json.loads((root / "card.json").read_text())
    card["content_hash"], card["file_hashes"] = content_hash(root), file_hashes(root)
    (root / "card.json").write_text(json.dumps(card))
    with pytest.raises(DatasetError, match="storage format 3 is newer"):
        NeuronDataset.load(root)


# ------------------------------------------------------------------ format-2 bad input


def rewrite(root: Path, edit: Any) -> Path:
    """Apply ``edit(rows)`` to layer 0's rows (bypassing validation); re-sign the card."""
    f = root / "data" / "layer-000.parquet"
    t = pq.read_table(f)
    rows = t.to_pylist()
    edit(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), f)
    card = json.loads((root / "card.json").read_text())
    card["content_hash"], card["file_hashes"] = content_hash(root), file_hashes(root)
    (root / "card.json").write_text(json.dumps(card))
    return f


def swap_top_first_and_last(row: dict[str, Any]) -> None:
    c = row["codes"]
    c[:64], c[39 * 64 : 40 * 64] = c[39 * 64 : 40 * 64], c[:64]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["codes"].pop(), "6079 activations for 6080 record tokens"),
        (lambda r: r["records"].pop(), "94 records but groups of 40 top, 30 random"),
        (lambda r: r["records"].__setitem__(41, 10**6), "random[1]: no corpus record 1000000"),
        (
            lambda r: r.update(scale=None, activations=[math.nan] * 6080, codes=[]),
            "top[0]: activation nan at token 0 is not finite",
        ),
        (swap_top_first_and_last, "top[1]: top records are not sorted by max activation"),
    ],
)
def test_bad_rows_name_file_neuron_and_record(tmp_path: Path, edit: Any, message: str) -> None:
    ds = realistic(3, n_records=100)
    root = save_layers(tmp_path / "ds", ds.card, by_layers(ds), quantize=True)
    f = rewrite(root, lambda rows: edit(rows[1]))
    with pytest.raises(DatasetError) as e:
        NeuronDataset.load(root)
    msg = str(e.value)
    assert str(f) in msg and "gen/0/1" in msg and message in msg, msg


def test_missing_corpus_names_it(tmp_path: Path) -> None:
    ds = realistic(2, n_records=50)
    root = save_layers(tmp_path / "ds", ds.card, by_layers(ds), quantize=True)
    (root / "corpus.parquet").unlink()
    with pytest.raises(DatasetError, match=r"corpus.parquet \(missing\)"):
        NeuronDataset.load(root)
    with pytest.raises(DatasetError, match="corpus.parquet: missing corpus file"):
        NeuronDataset.load(root, verify=False)


# ------------------------------------------------------------------ size


def test_bytes_per_neuron_fall_at_least_5x(tmp_path: Path) -> None:
    ds = realistic(64, layers=(0, 1), n_records=400)
    before = parquet_bytes(save_v1(ds, tmp_path / "v1"))
    after = parquet_bytes(save_layers(tmp_path / "v2", ds.card, by_layers(ds), quantize=True))
    ratio = before / after
    assert ratio >= 5.0, (
        f"{before / len(ds):.0f} -> {after / len(ds):.0f} bytes/neuron ({ratio:.2f}x)"
    )


# ------------------------------------------------------------------ import memory

_IMPORT = """
import sys
import numpy, pyarrow.parquet, pyarrow.compute
from neuronbench.datasets.openai_json import import_openai

def kib(field):
    with open("/proc/self/status") as f:
        return int(next(x for x in f if x.startswith(field)).split()[1])

before = kib("VmRSS:")
import_openai(sys.argv[1], out_dataset_dir=sys.argv[2])
print(kib("VmHWM:") - before)
"""


def import_peak_kib(export: Path, out: Path) -> int:
    """Peak RSS growth (KiB) of a fresh process importing ``export``: its peak RSS (VmHWM)
    minus its RSS just before. Not getrusage's ru_maxrss: Linux carries that across exec, so
    it would include the RSS of this (forked) test process."""
    run = subprocess.run(
        [sys.executable, "-c", _IMPORT, str(export), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(run.stdout.split()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_import_openai_memory_does_not_grow_with_neurons(tmp_path: Path) -> None:
    last = {}
    for n in (60, 180):
        ds = realistic(n, n_records=150, seed=n)
        export_openai(ds, tmp_path / f"oa{n}")
        last[n] = ds.neurons[NeuronId("gen", 0, n - 1)].to_dict()
        del ds
    peaks = {n: import_peak_kib(tmp_path / f"oa{n}", tmp_path / f"ds{n}") for n in (60, 180)}
    for n in (60, 180):
        nid = NeuronId("gen", 0, n - 1)
        assert NeuronDataset.ids(tmp_path / f"ds{n}")[-1] == nid
        assert NeuronDataset.load(tmp_path / f"ds{n}", ids=[nid]).neurons[nid].to_dict() == last[n]
    # holding every record (as import did) grows ~0.6 MB per neuron: +70 MB from 60 to 180
    assert peaks[180] < 1.25 * peaks[60] + 10_000, peaks
