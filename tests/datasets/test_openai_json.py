"""OpenAI neuron-explainer JSON: exact format, round trip, kurtosis mapping, bad input."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from neuronbench.datasets import DatasetCard, DatasetError, NeuronDataset, NeuronRecord
from neuronbench.datasets.openai_json import (
    SIDECAR,
    export_openai,
    import_openai,
    neuron_from_openai,
    neuron_to_openai,
)
from tests.conftest import make_neuron

FIXTURE = Path(__file__).parent / "fixtures" / "openai"


# A stand-in for OpenAI's fast_dataclasses loader: dispatch on dataclass_name and build with
# cls(**fields), which raises TypeError on unknown or missing fields, exactly as theirs does.
@dataclass
class OAActivationRecord:
    tokens: list[str]
    activations: list[float]


@dataclass
class OANeuronId:
    layer_index: int
    neuron_index: int


@dataclass
class OANeuronRecord:
    neuron_id: OANeuronId
    random_sample: list[Any] = field(default_factory=list)
    random_sample_by_quantile: list[list[Any]] | None = None
    quantile_boundaries: list[float] | None = None
    mean: float | None = math.nan
    variance: float | None = math.nan
    skewness: float | None = math.nan
    kurtosis: float | None = math.nan
    most_positive_activation_records: list[Any] = field(default_factory=list)


_OPENAI_CLASSES = {
    "ActivationRecord": OAActivationRecord,
    "NeuronId": OANeuronId,
    "NeuronRecord": OANeuronRecord,
}


def openai_loads(text: str) -> Any:
    def hook(d: dict[str, Any]) -> Any:
        cls = _OPENAI_CLASSES[d.pop("dataclass_name")]
        return cls(**d)

    return json.loads(text, object_hook=hook)


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def assert_same_neuron(a: NeuronRecord, b: NeuronRecord) -> None:
    assert a.id == b.id
    for x, y in ((a.top, b.top), (a.random, b.random), *zip(a.quantile, b.quantile, strict=True)):
        assert [r.tokens for r in x] == [r.tokens for r in y]
        assert [r.position for r in x] == [r.position for r in y]
        for r, s in zip(x, y, strict=True):
            assert all(close(u, v) for u, v in zip(r.activations, s.activations, strict=True))
    assert len(a.quantile) == len(b.quantile)
    assert a.quantile_boundaries == pytest.approx(b.quantile_boundaries)
    for k in ("mean", "variance", "skewness", "kurtosis", "firing_rate"):
        assert close(getattr(a, k), getattr(b, k)), k
    assert a.n_tokens == b.n_tokens


def small_dataset() -> NeuronDataset:
    neurons = [
        make_neuron(layer=0, index=3, n_top=8, n_random=6, n_tokens_per_record=16, seed=1),
        make_neuron(layer=0, index=7, n_top=8, n_random=6, n_tokens_per_record=16, seed=2),
        make_neuron(
            layer=2,
            index=1,
            n_top=4,
            n_random=3,
            n_tokens_per_record=16,
            seed=3,
            quantile=[],
            quantile_boundaries=[],
            firing_rate=math.nan,
        ),
    ]
    card = DatasetCard(
        subject="test-subject", corpus="tiny", n_tokens=1234, seed=7, extra={"top_k": 8}
    )
    return NeuronDataset(card=card, neurons={n.id: n for n in neurons})


def test_export_is_exactly_openai_format(tmp_path: Path) -> None:
    ds = small_dataset()
    out = export_openai(ds, tmp_path / "oa")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert files == ["0/3.json", "0/7.json", "2/1.json", SIDECAR]
    text = (out / "0" / "3.json").read_text()
    raw = json.loads(text)
    # orjson writes a dataclass's __dict__: fields in order, then dataclass_name (set in __post_init__)
    assert list(raw) == [
        "neuron_id",
        "random_sample",
        "random_sample_by_quantile",
        "quantile_boundaries",
        "mean",
        "variance",
        "skewness",
        "kurtosis",
        "most_positive_activation_records",
        "dataclass_name",
    ]
    assert list(raw["neuron_id"].items()) == [
        ("layer_index", 0),
        ("neuron_index", 3),
        ("dataclass_name", "NeuronId"),
    ]
    assert list(raw["most_positive_activation_records"][0]) == [
        "tokens",
        "activations",
        "dataclass_name",
    ]
    assert " " not in text.replace('" ', "")  # compact, as orjson writes it
    loaded = openai_loads(text)  # their loader rejects any field it does not know
    n = ds.neurons[next(k for k in ds.neurons if k.index == 3)]
    assert isinstance(loaded, OANeuronRecord)
    assert loaded.most_positive_activation_records[0].activations == n.top[0].activations
    assert len(loaded.random_sample) == 6 and len(loaded.random_sample_by_quantile) == 5
    # no quantile tracking -> null, as OpenAI writes it; NaN firing rate lives in the sidecar only
    raw2 = json.loads((out / "2" / "1.json").read_text())
    assert raw2["random_sample_by_quantile"] is None and raw2["quantile_boundaries"] is None


def test_round_trip_ours_openai_ours(tmp_path: Path) -> None:
    ds = small_dataset()
    ds.save(tmp_path / "orig")
    export_openai(NeuronDataset.load(tmp_path / "orig"), tmp_path / "oa")
    back = import_openai(tmp_path / "oa", out_dataset_dir=tmp_path / "back")
    again = NeuronDataset.load(tmp_path / "back")
    assert sorted(again.neurons) == sorted(ds.neurons)
    for nid, n in ds.neurons.items():
        assert_same_neuron(n, again.neurons[nid])
        assert_same_neuron(n, back.neurons[nid])
    for k in ("subject", "corpus", "n_tokens", "seed", "record_length", "site", "extra", "layers"):
        assert getattr(again.card, k) == getattr(ds.card, k), k


def test_round_trip_without_sidecar_loses_only_what_openai_lacks(tmp_path: Path) -> None:
    ds = small_dataset()
    out = export_openai(ds, tmp_path / "oa")
    (out / SIDECAR).unlink()
    with pytest.raises(DatasetError, match="pass subject"):
        import_openai(out)
    back = import_openai(out, subject="gpt2", site="mlp")
    for nid, n in ds.neurons.items():
        m = next(x for x in back if (x.id.layer, x.id.index) == (nid.layer, nid.index))
        assert m.id.subject == "gpt2"
        assert all(r.position == -1 for r in [*m.top, *m.random])
        assert math.isnan(m.firing_rate) and m.n_tokens == 0
        assert [r.activations for r in m.top] == [r.activations for r in n.top]
        assert close(m.kurtosis, n.kurtosis) and close(m.mean, n.mean)
    assert back.card.extra["openai_kurtosis"] == "plain"
    assert back.card.record_length == 16


def test_kurtosis_mapping_is_explicit() -> None:
    n = make_neuron(n_top=4, n_random=3, n_tokens_per_record=8, kurtosis=1.5)
    assert neuron_to_openai(n)["kurtosis"] == pytest.approx(4.5)  # plain = excess + 3
    assert neuron_to_openai(n, kurtosis="excess")["kurtosis"] == pytest.approx(1.5)
    obj = neuron_to_openai(n)
    assert neuron_from_openai(obj, subject="s").kurtosis == pytest.approx(1.5)
    obj["kurtosis"] = 3.0  # a normal distribution in plain kurtosis
    assert neuron_from_openai(obj, subject="s").kurtosis == pytest.approx(0.0)
    assert neuron_from_openai(obj, subject="s", kurtosis="excess").kurtosis == pytest.approx(3.0)
    with pytest.raises(ValueError):
        neuron_to_openai(n, kurtosis="fisher")  # type: ignore[arg-type]


def test_nan_moments_are_null_and_read_back_as_nan(tmp_path: Path) -> None:
    n = make_neuron(n_top=4, n_random=3, n_tokens_per_record=8, mean=math.nan, kurtosis=math.nan)
    obj = neuron_to_openai(n)
    assert obj["mean"] is None and obj["kurtosis"] is None
    back = neuron_from_openai(json.loads(json.dumps(obj, allow_nan=False)), subject="s")
    assert math.isnan(back.mean) and math.isnan(back.kurtosis)


def test_hand_written_openai_fixture(tmp_path: Path) -> None:
    ds = import_openai(FIXTURE, subject="gpt2-xl", out_dataset_dir=tmp_path / "ds")
    assert len(ds) == 1
    n = NeuronDataset.load(tmp_path / "ds")["gpt2-xl-L5-N131"]
    assert (n.id.layer, n.id.index, n.id.site) == (5, 131, "mlp")
    assert len(n.top) == 8 and len(n.random) == 6 and len(n.quantile) == 5
    assert n.top[0].tokens == [" the", " Eiffel", " Tower", " in"]
    assert n.top[0].activations == [-0.0412, 3.8125, 1.25, -0.0153]
    assert n.max_activation == 3.8125
    assert n.quantile_boundaries == [0.0938, 0.4531, 0.9844, 1.7031]
    assert n.quantile[4][0].tokens == [" Paris", " Hilton"]
    assert (n.mean, n.variance, n.skewness) == (-0.0215, 0.0533, 11.875)
    assert n.kurtosis == pytest.approx(203.5 - 3.0)
    assert math.isnan(n.firing_rate) and all(r.position == -1 for r in n.top)
    # and it exports back to the same JSON values (a foreign dir exported fresh)
    export_openai(ds, tmp_path / "oa")
    fixture = (FIXTURE / "5" / "131.json").read_text()
    assert (tmp_path / "oa" / "5" / "131.json").read_text() == fixture  # byte for byte


def test_openai_neurons_layout_and_untagged_objects(tmp_path: Path) -> None:
    """OpenAI's ``neuron_exists`` looks under ``neurons/``; their loader also takes untagged objects."""
    obj = json.loads((FIXTURE / "5" / "131.json").read_text())

    def untag(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: untag(v) for k, v in x.items() if k != "dataclass_name"}
        return [untag(v) for v in x] if isinstance(x, list) else x

    f = tmp_path / "in" / "neurons" / "5" / "131.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps(untag(obj)))
    ds = import_openai(tmp_path / "in", subject="gpt2-xl")
    assert [n.id.index for n in ds] == [131]
    assert len(next(iter(ds)).top) == 8


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda o: o.update(bogus=1), "unknown NeuronRecord field"),
        (
            lambda o: o["most_positive_activation_records"][2].update(extra=1),
            "most_positive_activation_records\\[2\\]: unknown ActivationRecord",
        ),
        (
            lambda o: o["random_sample"][1]["activations"].pop(),
            "random_sample\\[1\\]: 4 tokens but 3 activations",
        ),
        (
            lambda o: o["random_sample"][0]["activations"].__setitem__(2, None),
            "random_sample\\[0\\]: activation None at token 2",
        ),
        (
            lambda o: o["most_positive_activation_records"][3]["activations"].__setitem__(
                0, float("nan")
            ),
            "most_positive_activation_records\\[3\\]: activation nan at token 0 is not finite",
        ),
        (
            lambda o: o["most_positive_activation_records"].reverse(),
            "top\\[1\\]: top records are not sorted",
        ),
        (
            lambda o: o["random_sample_by_quantile"][1][0].update(tokens=[], activations=[]),
            "random_sample_by_quantile\\[1\\]\\[0\\]: empty record",
        ),
        (
            lambda o: o["neuron_id"].update(neuron_index=7),
            "named for neuron 5/131 but holds neuron 5/7",
        ),
        (
            lambda o: o.update(dataclass_name="NeuronSimulationResults"),
            "dataclass_name is 'NeuronSimulationResults'",
        ),
        (lambda o: o.pop("neuron_id"), "no neuron_id"),
    ],
)
def test_bad_openai_files_name_file_neuron_record(tmp_path: Path, edit: Any, message: str) -> None:
    obj = json.loads((FIXTURE / "5" / "131.json").read_text())
    edit(obj)
    f = tmp_path / "in" / "5" / "131.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps(obj))
    with pytest.raises(DatasetError, match=message) as e:
        import_openai(tmp_path / "in", subject="gpt2")
    assert str(f) in str(e.value)


def test_truncated_openai_file(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "in")
    f = tmp_path / "in" / "5" / "131.json"
    f.write_text(f.read_text()[:700])
    with pytest.raises(DatasetError, match="not valid JSON") as e:
        import_openai(tmp_path / "in", subject="gpt2")
    assert str(f) in str(e.value)


def test_stale_sidecar_is_reported(tmp_path: Path) -> None:
    out = export_openai(small_dataset(), tmp_path / "oa")
    side = json.loads((out / SIDECAR).read_text())
    side["neurons"]["0/3"]["top_positions"].pop()
    (out / SIDECAR).write_text(json.dumps(side))
    with pytest.raises(
        DatasetError, match=r"neuronbench.json: neuron 0/3: 7 top positions for 8 records"
    ):
        import_openai(out)


def test_export_refuses_foreign_dir_and_replaces_own(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    shutil.copytree(FIXTURE, foreign)
    with pytest.raises(DatasetError, match="refusing"):
        export_openai(small_dataset(), foreign)
    out = export_openai(small_dataset(), tmp_path / "oa")
    one = NeuronDataset(card=DatasetCard(subject="x"), neurons={})
    one.add([make_neuron(layer=4, index=0, n_top=4, n_random=3, n_tokens_per_record=8)])
    export_openai(one, out)  # an earlier export is replaced, stale neurons removed
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == [
        "4/0.json",
        SIDECAR,
    ]


def test_export_collision_of_sites_is_an_error(tmp_path: Path) -> None:
    a = make_neuron(layer=1, index=2, n_top=4, n_random=3, n_tokens_per_record=8)
    b = make_neuron(layer=1, index=2, n_top=4, n_random=3, n_tokens_per_record=8)
    b.id = type(b.id)(subject=b.id.subject, layer=1, index=2, site="sae:x")
    ds = NeuronDataset(card=DatasetCard(subject="s"), neurons={a.id: a, b.id: b})
    with pytest.raises(DatasetError, match="both map to OpenAI file 1/2.json"):
        export_openai(ds, tmp_path / "oa")


def test_interrupted_export_has_no_sidecar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import neuronbench.datasets.openai_json as oj

    calls = {"n": 0}
    real = oj.write_text

    def flaky(path: Any, text: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(path, text)

    monkeypatch.setattr(oj, "write_text", flaky)
    with pytest.raises(OSError):
        export_openai(small_dataset(), tmp_path / "oa")
    assert not (tmp_path / "oa" / SIDECAR).exists()
    assert not list((tmp_path / "oa").rglob("*.tmp"))
