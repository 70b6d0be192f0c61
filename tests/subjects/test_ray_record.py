"""``neuronbench record --ray``: shards as Ray tasks on a local instance, merged exactly.

The oracle is a single-process recording with the same settings: the Ray recording must
be the same dataset bit for bit (content hash, records, activations, moments), skip a
shard that an earlier run completed, and say how to install Ray when it is missing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from neuronbench.cli import main
from neuronbench.datasets import DatasetError, NeuronDataset
from neuronbench.subjects._checkpoint import STATE_FILE, load_state
from neuronbench.subjects._ray import (
    SUMMARY_FILE,
    _complete,
    _raise_first,
    _record_shard,
    _store,
    record_on_ray,
    shard_dir,
)
from neuronbench.subjects._settings import make_config, resolve_subject
from neuronbench.subjects.recorder import record

HAS_RAY = importlib.util.find_spec("ray") is not None
FLAGS = ["--subject", "tiny-llama", "--corpus", "tiny", "--layers", "0-1", "--tokens", "800",
         "--record-length", "16", "--top-k", "4", "--random", "3", "--quantiles", "2",
         "--per-quantile", "2", "--boundary-records", "20"]  # fmt: skip
SETTINGS: dict[str, Any] = {
    "n_tokens": 800,
    "record_length": 16,
    "top_k": 4,
    "n_random": 3,
    "n_quantiles": 2,
    "per_quantile": 2,
    "boundary_records": 20,
    "progress": False,
}


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> NeuronDataset:
    """The oracle: the same recording in one process, unsharded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("single")
    record("tiny-llama", "tiny", "0-1", out=out, **SETTINGS)
    torch.set_num_threads(before)
    return NeuronDataset.load(out)


def assert_same_dataset(got: NeuronDataset, single: NeuronDataset) -> None:
    assert got.card.content_hash == single.card.content_hash
    assert card(got) == card(single)
    a = {n.id.key: n.to_dict() for n in got}
    b = {n.id.key: n.to_dict() for n in single}
    assert len(a) == 2 * 64 and a.keys() == b.keys()
    assert a == b  # top/random/quantile records, activations and moments, bit for bit


def card(ds: NeuronDataset) -> dict[str, Any]:
    d = ds.card.to_dict()
    for key in ("timings", "tokens_per_s"):  # measured, so they differ run to run
        d["extra"].pop(key, None)
    return d


@pytest.mark.skipif(not HAS_RAY, reason='Ray not installed (pip install -e ".[scale]")')
def test_ray_recording_equals_single_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], single: NeuronDataset
) -> None:
    out = tmp_path / "ray"
    # shard 0 finished by an earlier, interrupted `--ray` run: this one must not redo it
    record("tiny-llama", "tiny", "0-1", shard=(0, 2), out=shard_dir(out, 0, 2), **SETTINGS)
    # --shards 2 starts a local instance with 2 CPUs, one task per shard
    assert main(["record", *FLAGS, "--ray", "--shards", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "2 shards as Ray tasks on CPUs; 1 already complete" in err, err
    assert "shard 1/2 done" in err and "shard 0/2 done" not in err, err
    assert not (out / ".shards").exists()  # shard states go once the dataset is written

    assert_same_dataset(NeuronDataset.load(out), single)

    # a rerun finds the finished dataset and records nothing
    assert main(["record", *FLAGS, "--ray", "--shards", "2", "--out", str(out)]) == 0
    assert "already recorded" in capsys.readouterr().err


def test_missing_ray_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["record", *FLAGS, "--ray", "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "neuronbench record: error: --ray: Ray is not installed; install the scale extra: "
        'pip install -e ".[scale]"'
    ]
    assert not (tmp_path / "ds").exists()


def test_ray_flag_misuse_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "ds")]
    # a missing local corpus fails before Ray starts (a fake Ray: no instance is started)
    fake = _FakeRay({"CPU": 2.0})
    monkeypatch.setattr("neuronbench.subjects._ray.import_ray", lambda: fake)
    typo = [*FLAGS[:2], "--corpus", str(tmp_path / "nope.txt"), *FLAGS[4:]]
    assert main(["record", *typo, "--ray", *out]) == 2
    assert "nope.txt' not found" in capsys.readouterr().err and fake.inits == []
    assert main(["record", *FLAGS, "--shards", "2", *out]) == 2
    assert "--shards needs --ray" in capsys.readouterr().err
    assert main(["record", *FLAGS, "--ray", "--shard", "1/2", *out]) == 2
    assert "give --shards N, not --shard i/n" in capsys.readouterr().err


def test_task_on_another_filesystem_returns_its_state(tmp_path: Path) -> None:
    """A task whose directory the driver cannot see sends its files back; stored by the
    driver they make the shard complete, and merge like a shard recorded in place."""
    remote = tmp_path / "worker" / ".shards" / "1-of-2"
    remote.parent.mkdir(parents=True)
    (remote.parent / "driver-token").write_text("the worker's stale token")
    kwargs = {k: v for k, v in SETTINGS.items() if k != "progress"}
    result = _record_shard("tiny-llama", "tiny", "0-1", 1, 2, str(remote), "driver", kwargs)
    assert result["n_tokens"] == 25 * 16  # shard 1 of 2: 25 of the 50 records
    assert set(result["files"]) == {STATE_FILE, SUMMARY_FILE}
    assert result["files"][STATE_FILE] == (remote / STATE_FILE).read_bytes()

    local = shard_dir(tmp_path / "driver", 1, 2)
    cfg = make_config(resolve_subject("tiny-llama"), "tiny-llama", "tiny", "0-1", seed=0,
                      shard=(0, 1), **kwargs)  # fmt: skip
    assert not _complete(local, cfg, 1, 2)
    _store(local, result["files"])
    assert _complete(local, cfg, 1, 2) and not _complete(local, cfg, 0, 2)
    assert load_state(local / STATE_FILE).complete

    # the same shard with the driver's token sends nothing: the file is already there
    (remote.parent / "driver-token").write_text("driver")
    assert (
        _record_shard("tiny-llama", "tiny", "0-1", 1, 2, str(remote), "driver", kwargs)["files"]
        == {}
    )


class _TaskError(Exception):
    """Ray's RayTaskError keeps the task's exception as ``cause``."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"remote traceback ... {cause}")
        self.cause = cause


def test_first_user_error_of_a_task_is_one_line() -> None:
    failures: list[tuple[int, BaseException]] = [
        (3, _TaskError(DatasetError("corpus x.txt: no such file"))),
        (1, _TaskError(DatasetError("corpus x.txt: no such file"))),
    ]
    with pytest.raises(DatasetError) as info:
        _raise_first(failures, 4)
    assert str(info.value) == "shard 1/4: corpus x.txt: no such file (1 more shards failed)"
    bug = _TaskError(RuntimeError("index out of range"))
    with pytest.raises(_TaskError):  # a bug keeps Ray's remote traceback
        _raise_first([(0, bug)], 1)


class _FakeRay:
    """Ray's driver API run in this process: what the driver asks of Ray, without Ray."""

    def __init__(self, resources: dict[str, float]) -> None:
        self.resources = resources
        self.inits: list[dict[str, Any]] = []
        self.options: list[dict[str, Any]] = []
        self.shutdowns = self.calls = 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs: Any) -> None:
        self.inits.append(kwargs)

    def shutdown(self) -> None:
        self.shutdowns += 1

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def remote(self, fn: Any) -> Any:
        fake = self

        class Task:
            def options(self, **options: Any) -> Task:
                fake.options.append(options)
                return self

            def remote(self, *args: Any) -> Any:
                fake.calls += 1
                return lambda: fn(*args)

        return Task()

    def wait(self, refs: list[Any], num_returns: int) -> tuple[list[Any], list[Any]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: Any) -> Any:
        return self.tamper(ref())

    @staticmethod
    def tamper(result: dict[str, Any]) -> dict[str, Any]:
        return result


@pytest.mark.parametrize(
    ("address", "resources", "task_options"),
    [("auto", {"CPU": 32.0, "GPU": 3.0}, {"num_gpus": 1}), (None, {"CPU": 1.0}, {"num_cpus": 1})],
)
def test_default_shards_one_per_gpu_else_cpu(
    address: str | None,
    resources: dict[str, float],
    task_options: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    single: NeuronDataset,
) -> None:
    """3 GPUs: 3 shards, each task asking for a GPU; 1 CPU: one shard (still merged from a
    shard state). A cluster address is joined, no address starts a private instance."""
    fake = _FakeRay(resources)
    monkeypatch.setattr("neuronbench.subjects._ray.import_ray", lambda: fake)
    settings = {k: v for k, v in SETTINGS.items() if k != "progress"}
    ds = record_on_ray("tiny-llama", "tiny", "0-1", out=tmp_path / "ds", address=address,
                       progress=False, **settings)  # fmt: skip
    (init,) = fake.inits
    if address:
        assert init == {"address": "auto", "logging_level": 30, "log_to_driver": False}
    else:
        assert init["include_dashboard"] is False and "address" not in init
    assert fake.options == [task_options] and fake.shutdowns == 1
    shards = int(resources.get("GPU", 0) or resources["CPU"])
    assert fake.calls == shards
    assert_same_dataset(ds, single)


def test_shard_from_other_weights_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that loads other weights under the subject's name would merge silently into
    a mixed dataset; the driver refuses its shard in one line instead."""
    fake = _FakeRay({"CPU": 2.0})

    def other_weights(result: dict[str, Any]) -> dict[str, Any]:
        result["config"] = {**result["config"], "revision": "other-weights"}
        return result

    fake.tamper = other_weights  # type: ignore[method-assign]
    monkeypatch.setattr("neuronbench.subjects._ray.import_ray", lambda: fake)
    settings = {k: v for k, v in SETTINGS.items() if k != "progress"}
    with pytest.raises(DatasetError, match=r"shard 0/2 ran on .* revision: .* != 'other-weights'"):
        record_on_ray("tiny-llama", "tiny", "0-1", out=tmp_path / "ds", progress=False, **settings)
    assert not (tmp_path / "ds" / "card.json").exists()


HAS_SPARSIFY = importlib.util.find_spec("sparsify") is not None
needs_sparsify = pytest.mark.skipif(
    not HAS_SPARSIFY, reason="eai-sparsify not installed (pip install -e '.[sae]')"
)
SAE_FLAGS = [f for f in FLAGS if f not in ("--layers", "0-1")]  # an SAE names its own layer


@pytest.fixture(scope="module")
def coder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random sparsify SAE on block 1's output of tiny-llama (the subject tasks load)."""
    from tests.subjects.test_sae_sites import sparsify_coder

    return sparsify_coder(tmp_path_factory.mktemp("coder"), "layers.1")


@pytest.fixture(scope="module")
def single_sae(coder: Path, tmp_path_factory: pytest.TempPathFactory) -> NeuronDataset:
    """The oracle for an SAE site: one process, unsharded, same settings."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("single-sae")
    record("tiny-llama", "tiny", site=f"sparsify:{coder}", out=out, **SETTINGS)
    torch.set_num_threads(before)
    return NeuronDataset.load(out)


def assert_same_latents(got: NeuronDataset, single: NeuronDataset) -> None:
    assert got.card.content_hash == single.card.content_hash
    assert card(got) == card(single)
    assert got.card.site == "sae:run" and got.card.layers == [1]
    assert got.card.extra["latents"]["n_dead"] >= 1  # the coder's dead latent: not stored
    a = {n.id.key: n.to_dict() for n in got}
    b = {n.id.key: n.to_dict() for n in single}
    assert a and all("-sae-run-L1-" in k for k in a)
    assert a == b  # every latent's records, activations and moments, bit for bit


@needs_sparsify
def test_sae_site_shards_merge_exactly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    coder: Path,
    single_sae: NeuronDataset,
) -> None:
    """Each task loads the SAE and records its latents; merged = the unsharded dataset. A
    node whose file under the same path holds other weights is refused by its hash."""
    fake = _FakeRay({"CPU": 2.0})
    monkeypatch.setattr("neuronbench.subjects._ray.import_ray", lambda: fake)
    site = f"sparsify:{coder}"
    settings = {k: v for k, v in SETTINGS.items() if k != "progress"}
    ds = record_on_ray("tiny-llama", "tiny", "all", out=tmp_path / "ds", site=site,
                       progress=False, **settings)  # fmt: skip
    assert fake.calls == 2
    assert_same_latents(ds, single_sae)

    def other_sae(result: dict[str, Any]) -> dict[str, Any]:
        result["config"] = {**result["config"], "site_revision": "other-sae"}
        return result

    fake.tamper = other_sae  # type: ignore[method-assign]
    with pytest.raises(DatasetError, match=r"shard 0/2 ran on .* site_revision: .*'other-sae'"):
        record_on_ray("tiny-llama", "tiny", "all", out=tmp_path / "o", site=site,
                      progress=False, **settings)  # fmt: skip
    assert not (tmp_path / "o" / "card.json").exists()

    # the CLI: an SAE site needs no --layers; a wrong one is one line before Ray starts
    fake.inits.clear()
    args = ["record", *SAE_FLAGS, "--site", site, "--ray", "--out", str(tmp_path / "c")]
    assert main([*args, "--layers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neuronbench record: error: site 'sparsify:") and "reads layer 1" in err
    assert "\n" not in err and fake.inits == []


@pytest.mark.skipif(not HAS_RAY, reason='Ray not installed (pip install -e ".[scale]")')
@needs_sparsify
def test_ray_records_an_sae_site_bit_equal_to_one_process(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    coder: Path,
    single_sae: NeuronDataset,
) -> None:
    out = tmp_path / "ray"
    argv = ["record", *SAE_FLAGS, "--site", f"sparsify:{coder}", "--ray", "--shards", "2"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    assert "shard 0/2 done" in capsys.readouterr().err
    assert_same_latents(NeuronDataset.load(out), single_sae)
