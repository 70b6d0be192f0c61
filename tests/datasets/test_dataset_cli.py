"""``neuronbench show | export-openai | import-openai``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from neuronbench.datasets import DatasetCard, DatasetError, NeuronDataset, NeuronId
from neuronbench.datasets._cli import register, shade
from tests.conftest import make_neuron, make_record


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="neuronbench")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    ds = NeuronDataset(card=DatasetCard(subject="test-subject"))
    ds.add(
        make_neuron(
            layer=layer,
            index=i,
            n_top=8,
            n_random=6,
            n_tokens_per_record=6,
            seed=i,
            firing_rate=0.25,
        )
        for layer in (0, 3)
        for i in (0, 1, 2)
    )
    return ds.save(tmp_path / "ds")


def test_show_json(dataset_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["show", str(dataset_dir), "3", "1", "--n", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    neuron = NeuronDataset.load(dataset_dir)[NeuronId("test-subject", 3, 1)]
    assert out["neuron_id"] == "test-subject-L3-N1"
    assert out["max_activation"] == neuron.max_activation == 8.0
    assert out["firing_rate"] == 0.25 and out["quantile_boundaries"] == [0.2, 0.4, 0.6, 0.8]
    assert [(r["group"], r["position"]) for r in out["records"]] == [("train", 0), ("train", 4)]
    assert out["records"][1]["activations"] == neuron.top[4].activations


def test_show_scoring_split_has_top_and_random(
    dataset_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["show", str(dataset_dir), "0", "2", "--split", "valid", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert [(r["group"], r["position"]) for r in out["records"]] == [
        ("valid top", 2),
        ("valid top", 6),
        ("valid random", 1001),
        ("valid random", 1004),
    ]


def test_show_renders_tokens_and_stats(
    dataset_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    run(["show", str(dataset_dir), "0", "0", "--n", "1"])
    out = capsys.readouterr().out
    assert "max activation" in out and "25.00%" in out and "0.2, 0.4, 0.6, 0.8" in out
    assert "train[0]" in out and " tok0" in out


def test_shade_intensity_tracks_activation() -> None:
    r = make_record(tokens=["a", "b", "c", "d\n"], activations=[0.0, 1.0, 4.0, -2.0])
    text = shade(r, max_activation=4.0)
    styles = {text.plain[s.start : s.end]: str(s.style) for s in text.spans}
    assert styles == {"b": "black on rgb(191,255,191)", "c": "black on rgb(0,255,0)"}
    assert text.plain == "abcd↵"  # zero and negative tokens are unshaded; newlines visible


def test_show_missing_neuron_lists_what_exists(dataset_dir: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"no layer 7; available layers: 0 \(3 neurons\), 3 \(3 neurons\)"
    ):
        run(["show", str(dataset_dir), "7", "0"])
    with pytest.raises(
        DatasetError, match=r"no neuron 9 in layer 3; layer 3 has 3 neurons \(indices 0..2\)"
    ):
        run(["show", str(dataset_dir), "3", "9"])
    with pytest.raises(DatasetError, match="no dataset card"):
        run(["show", str(dataset_dir / "data"), "0", "0"])


def test_export_import_commands_round_trip(
    dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["export-openai", str(dataset_dir), str(tmp_path / "oa")]) == 0
    assert (tmp_path / "oa" / "3" / "2.json").exists()
    assert run(["import-openai", str(tmp_path / "oa"), str(tmp_path / "back")]) == 0
    a, b = NeuronDataset.load(dataset_dir), NeuronDataset.load(tmp_path / "back")
    assert sorted(a.neurons) == sorted(b.neurons)
    n, m = a[NeuronId("test-subject", 0, 1)], b[NeuronId("test-subject", 0, 1)]
    assert [r.position for r in m.random] == [r.position for r in n.random]
    assert math.isclose(m.kurtosis, n.kurtosis, rel_tol=1e-12)
    # renaming the subject on import
    run(["import-openai", str(tmp_path / "oa"), str(tmp_path / "renamed"), "--subject", "gpt2"])
    assert {k.subject for k in NeuronDataset.load(tmp_path / "renamed").neurons} == {"gpt2"}


def test_import_fixture_needs_subject(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "fixtures" / "openai"
    with pytest.raises(DatasetError, match="pass subject"):
        run(["import-openai", str(fixture), str(tmp_path / "x")])
    assert run(["import-openai", str(fixture), str(tmp_path / "x"), "--subject", "gpt2-xl"]) == 0
    assert NeuronDataset.load(tmp_path / "x").layers == [5]
