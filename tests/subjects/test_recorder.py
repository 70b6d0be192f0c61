"""The recorder end to end on tiny random-init GPT-2 and Llama subjects.

Brute force = run the full model over every record of the corpus, keep every activation,
sort. The recorder must agree exactly on which records it keeps, and shard merge and
resume-after-kill must reproduce the single uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from neuronbench.datasets import DatasetError, NeuronDataset
from neuronbench.subjects import Subject, SubjectError, capture, iter_records, token_strings
from neuronbench.subjects._boundaries import quantiles
from neuronbench.subjects._checkpoint import checkpoint_path, load_state
from neuronbench.subjects._cli import register
from neuronbench.subjects._state import (
    BOUNDARY_SALT,
    QUANTILE_SALT,
    RANDOM_SALT,
    RecorderState,
    neuron_key,
    record_key,
)
from neuronbench.subjects.recorder import merge, parse_layers, record

LAYERS = [0, 2]
SETTINGS: dict[str, Any] = {
    "n_tokens": 1600,
    "record_length": 16,
    "top_k": 8,
    "n_random": 6,
    "n_quantiles": 3,
    "per_quantile": 2,
    "boundary_records": 40,
    "batch_size": 4,
    "seed": 3,
    "progress": False,
}
N_RECORDS = 1600 // 16


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Tiny models: intra-op threads only add sync cost (10x slower on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def brute_force(subject: Subject) -> tuple[list[list[int]], dict[int, np.ndarray]]:
    """Token ids of every record and layer -> (records, L, n) activations, from one full pass."""
    recs = list(iter_records(subject.tokenizer, "tiny", record_length=16, max_tokens=1600, seed=3))
    ids = torch.tensor([r.token_ids for r in recs])
    assert [r.position for r in recs] == list(range(N_RECORDS))
    with torch.inference_mode(), capture(subject, LAYERS) as cap:
        subject.model(input_ids=ids)  # all records in one batch, with the LM head
        acts = {layer: cap.activations[layer].double().numpy() for layer in LAYERS}
    return [r.token_ids for r in recs], acts


def dataset_dicts(ds: NeuronDataset) -> dict[str, dict[str, Any]]:
    return {n.id.key: n.to_dict() for n in ds}


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_records_equal_brute_force(arch: str, request: pytest.FixtureRequest) -> None:
    subject: Subject = request.getfixturevalue(f"tiny_{arch}")
    ds = record(subject, "tiny", LAYERS, **SETTINGS)
    assert isinstance(ds, NeuronDataset)
    ids, acts = brute_force(subject)
    assert len(ds) == len(LAYERS) * subject.d_mlp
    assert ds.card.n_tokens == N_RECORDS * 16 and ds.card.layers == LAYERS
    assert ds.card.extra["sampling"] == "per-neuron/disjoint"
    by_boundary_key = sorted(range(N_RECORDS), key=lambda p: record_key(3, BOUNDARY_SALT, p))
    boundary_sample = sorted(by_boundary_key[:40])
    for neuron in ds:
        layer, j = neuron.id.layer, neuron.id.index
        a = acts[layer][:, :, j]  # (records, L)
        rec_max = a.max(axis=1)
        top = sorted(range(N_RECORDS), key=lambda p: (-rec_max[p], p))[:8]
        assert [r.position for r in neuron.top] == top, neuron.id
        for r in [*neuron.top, *neuron.random, *(r for q in neuron.quantile for r in q)]:
            np.testing.assert_allclose(r.activations, a[r.position], rtol=1e-5, atol=1e-6)
            assert r.tokens == token_strings(subject.tokenizer, ids[r.position])
        # random: the neuron's own 6 smallest keys among the records that are not its top
        rest = [p for p in range(N_RECORDS) if p not in top]
        rand = sorted(rest, key=lambda p: neuron_key(3, RANDOM_SALT, layer, j, p))[:6]
        assert [r.position for r in neuron.random] == rand, neuron.id
        bounds = quantiles(torch.tensor(rec_max[boundary_sample]).unsqueeze(1), [1 / 3, 2 / 3])
        np.testing.assert_allclose(neuron.quantile_boundaries, bounds[:, 0], rtol=1e-5, atol=1e-7)
        bins = np.searchsorted(neuron.quantile_boundaries, rec_max, side="right")
        for q, sample in enumerate(neuron.quantile):
            members = [p for p in rest if p not in rand and bins[p] == q]
            expected = sorted(members, key=lambda p: neuron_key(3, QUANTILE_SALT, layer, j, p))[:2]
            assert [r.position for r in sample] == expected, (neuron.id, q)
        x = a.reshape(-1)
        assert neuron.mean == pytest.approx(x.mean(), rel=1e-5, abs=1e-7)
        assert neuron.variance == pytest.approx(x.var(), rel=1e-4)
        assert neuron.firing_rate == pytest.approx((x > 0).mean())
        assert neuron.n_tokens == x.size


def test_shard_merge_equals_single_run(tiny_llama: Subject, tmp_path: Path) -> None:
    single = record(tiny_llama, "tiny", LAYERS, out=tmp_path / "single", **SETTINGS)
    assert isinstance(single, NeuronDataset)
    for i in (2, 0, 1):
        state = record(tiny_llama, "tiny", LAYERS, shard=(i, 3), out=tmp_path / f"s{i}", **SETTINGS)
        assert isinstance(state, RecorderState) and state.complete
        assert not (tmp_path / f"s{i}" / ".checkpoint").exists()
    merged = merge([tmp_path / f"s{i}" for i in range(3)], tmp_path / "merged")
    loaded = NeuronDataset.load(tmp_path / "merged")
    assert loaded.card.n_tokens == single.card.n_tokens
    a, b = dataset_dicts(single), dataset_dicts(merged)
    assert a.keys() == b.keys() == dataset_dicts(loaded).keys()
    # each neuron has its own random sample (6 of ~92 records: no two coincide) ...
    samples = {tuple(r.position for r in n.random) for n in merged}
    assert len(samples) == len(merged)
    for n in merged:  # ... that never holds one of its top records
        assert not {r.position for r in n.top} & {r.position for r in n.random}, n.id
    assert a == b  # every field, moments included, bit for bit
    assert loaded.card.content_hash == NeuronDataset.load(tmp_path / "single").card.content_hash


class Kill(Exception):
    """Stands in for the process dying mid-run."""


def test_resume_after_kill_equals_uninterrupted_run(tiny_gpt2: Subject, tmp_path: Path) -> None:
    # both saved: storage rounds activations to each neuron's grid (datasets.compact)
    full = record(tiny_gpt2, "tiny", LAYERS, out=tmp_path / "full", **SETTINGS)
    assert isinstance(full, NeuronDataset)
    out = tmp_path / "run"
    seen: list[int] = []

    def die_after_seven(state: RecorderState) -> None:
        seen.append(state.consumed)
        if len(seen) == 7:
            raise Kill

    every_three_batches = 3 * 4 * 16
    with pytest.raises(Kill):
        record(tiny_gpt2, "tiny", LAYERS, out=out, checkpoint_tokens=every_three_batches,
               on_batch=die_after_seven, **SETTINGS)  # fmt: skip
    assert load_state(checkpoint_path(out)).consumed == 6 * 4  # batch 7 was lost
    with pytest.raises(DatasetError, match=r"other settings \(top_k: 8 != 9\)"):
        record(tiny_gpt2, "tiny", LAYERS, out=out, **{**SETTINGS, "top_k": 9})
    resumed_batches: list[int] = []
    resumed = record(tiny_gpt2, "tiny", LAYERS, out=out, checkpoint_tokens=every_three_batches,
                     on_batch=lambda s: resumed_batches.append(s.consumed), **SETTINGS)  # fmt: skip
    assert isinstance(resumed, NeuronDataset)
    assert resumed_batches[0] == 6 * 4 + 4 and resumed_batches[-1] == N_RECORDS
    assert len(resumed_batches) == N_RECORDS // 4 - 6
    assert dataset_dicts(resumed) == dataset_dicts(full)
    assert not (out / ".checkpoint").exists()
    assert dataset_dicts(NeuronDataset.load(out)) == dataset_dicts(full)
    again = record(tiny_gpt2, "tiny", LAYERS, out=out, on_batch=lambda s: pytest.fail(), **SETTINGS)
    assert isinstance(again, NeuronDataset) and again.card.content_hash == resumed.card.content_hash


def test_without_quantiles_skips_the_boundary_pass(tiny_gpt2: Subject) -> None:
    ds = record(tiny_gpt2, "tiny", [1], **{**SETTINGS, "n_quantiles": 0})
    assert isinstance(ds, NeuronDataset)
    assert "boundaries_s" not in ds.card.extra["timings"]
    assert all(n.quantile == [] and n.quantile_boundaries == [] for n in ds)
    assert all(len(n.top) == 8 and len(n.random) == 6 for n in ds)


def test_errors_are_one_clear_line(tiny_gpt2: Subject, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("just a few words", encoding="utf-8")
    with pytest.raises(DatasetError, match="is empty"):
        record(tiny_gpt2, str(empty), [0], **SETTINGS)
    with pytest.raises(SubjectError, match=r"layers 0\.\.2; no layer 7"):
        record(tiny_gpt2, "tiny", "0,7", **SETTINGS)
    with pytest.raises(DatasetError, match="needs `out`"):
        record(tiny_gpt2, "tiny", [0], shard=(0, 2), **SETTINGS)
    with pytest.raises(DatasetError, match="top_k must be >= 1"):
        record(tiny_gpt2, "tiny", [0], **{**SETTINGS, "top_k": 0})


def test_parse_layers() -> None:
    assert parse_layers("all", 4) == [0, 1, 2, 3]
    assert parse_layers("0-29:5", 30) == [0, 5, 10, 15, 20, 25]
    assert parse_layers("10, 0,5,5", 30) == [0, 5, 10]
    assert parse_layers([3, 1], 4) == [1, 3]
    with pytest.raises(SubjectError, match="expected 'all'"):
        parse_layers("first", 4)
    with pytest.raises(SubjectError, match="none requested"):
        parse_layers("", 4)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="neuronbench")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_record_shards_then_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--subject", "tiny-llama", "--corpus", "tiny", "--layers", "0-1", "--tokens", "800",
             "--record-length", "16", "--top-k", "4", "--random", "3", "--quantiles", "2",
             "--per-quantile", "2", "--boundary-records", "20", "--quiet"]  # fmt: skip
    for i in (0, 1):
        assert (
            run_cli(["record", *flags, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]) == 0
        )
    text = capsys.readouterr().out  # a readable summary, not a Python dict
    assert "{" not in text
    assert "recorded 128 neurons of tiny-llama (layers 0, 1) over 25 records, 400 tokens" in text
    assert f"shard 1/2 state written to {tmp_path / 's1'}" in text and "neuronbench merge" in text
    dirs = [str(tmp_path / "s0"), str(tmp_path / "s1")]
    assert run_cli(["merge", *dirs, "--out", str(tmp_path / "ds"), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["n_neurons"] == 2 * 64 and figures["n_tokens"] == 800
    single = run_cli(["record", *flags, "--out", str(tmp_path / "single")])
    assert single == 0
    text = capsys.readouterr().out
    assert "{" not in text and "over 50 records, 800 tokens" in text
    assert f"dataset written to {tmp_path / 'single'}" in text and "tokens/s" in text
    # 3 shards with another batch size: batch size does not enter the moment sums
    for i in range(3):
        shard = ["--shard", f"{i}/3", "--batch-size", "3", "--out", str(tmp_path / f"t{i}")]
        assert run_cli(["record", *flags, *shard]) == 0
    assert run_cli(["merge", *(str(tmp_path / f"t{i}") for i in range(3)),
                    "--out", str(tmp_path / "ds3")]) == 0  # fmt: skip
    merged, direct = NeuronDataset.load(tmp_path / "ds"), NeuronDataset.load(tmp_path / "single")
    merged3 = NeuronDataset.load(tmp_path / "ds3")
    assert merged.card.content_hash == direct.card.content_hash == merged3.card.content_hash
    assert [n.to_dict() for n in merged] == [n.to_dict() for n in direct]

    def card(ds: NeuronDataset) -> dict[str, Any]:
        d = ds.card.to_dict()
        for key in ("timings", "tokens_per_s"):  # measured, so they differ run to run
            d["extra"].pop(key, None)
        return d

    assert card(merged) == card(direct)
    assert merged.card.extra["batch_size"] == 8
    assert card(merged3) == {**card(direct), "extra": {**card(direct)["extra"], "batch_size": 3}}
    assert run_cli(["record", *flags, "--layers", "5", "--out", str(tmp_path / "bad")]) == 2
    assert "no layer 5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli(["record", *flags, "--shard", "2/2", "--out", str(tmp_path / "bad")])
