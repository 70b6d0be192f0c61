"""``--site sae-lens:RELEASE:SAE_ID``: sae-lens's own ``SAE.from_pretrained`` resolves a real
release id through its registry to a Hugging Face repo and folder; a random checkpoint built
here sits in a temporary hub cache at exactly that place, so with ``HF_HUB_OFFLINE=1`` the
id loads with no download. Its latents must equal sae-lens's encode (``load_from_disk`` of
the cached folder) of independently hooked activations; an uncached id offline fails in one
line, writing nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from neuronbench.datasets import NeuronDataset
from neuronbench.subjects import Subject
from neuronbench.subjects.models import SubjectError
from neuronbench.subjects.recorder import record
from neuronbench.subjects.sae import load_site
from tests.subjects.test_sae_sites import (
    BATCH,
    RARE,
    SETTINGS,
    check_against_brute_force,
    corpus,
    direct_latents,
    sae_lens_sae,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sae_lens") is None,
    reason="sae-lens not installed (pip install -e '.[sae]')",
)

RELEASE, SAE_ID = "gpt2-small-res-jb", "blocks.1.hook_resid_pre"
"""A real sae-lens release (GPT-2 small residual SAEs); block 1 exists in the tiny GPT-2."""
SPEC = f"sae-lens:{RELEASE}:{SAE_ID}"
SITE = f"sae:{RELEASE}.{SAE_ID}"
REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face hub cache under ``tmp_path``, offline. huggingface_hub reads
    its environment once at import, so its constants are set as the variables would."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def cache_release(hub: Path, checkpoint: Path, release: str, sae_id: str) -> Path:
    """Put a sae-lens checkpoint where the hub cache keeps ``release``/``sae_id``
    (``models--ORG--NAME/snapshots/<rev>/<folder>`` + ``refs/main``), as a download would."""
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    target = repo / "snapshots" / REV / folder
    target.mkdir(parents=True)
    for f in checkpoint.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REV)
    return target


def resid_pre_1(subject: Subject, ids: torch.Tensor) -> torch.Tensor:
    """(N, L, d) input of block 1: hidden state 1, block 0's output (no hook of ours)."""
    with torch.inference_mode():
        return torch.cat(
            [
                subject.model(input_ids=ids[b : b + BATCH], output_hidden_states=True)
                .hidden_states[1]
                .float()
                for b in range(0, len(ids), BATCH)
            ]
        )


def test_release_id_records_from_the_hub_cache(
    tiny_gpt2: Subject, tmp_path: Path, hub: Path
) -> None:
    positions, ids = corpus(tiny_gpt2)
    x = resid_pre_1(tiny_gpt2, ids)
    cached = cache_release(hub, sae_lens_sae(tmp_path, SAE_ID, x), RELEASE, SAE_ID)

    site = load_site(SPEC, tiny_gpt2)
    assert (site.name, site.release, site.path) == (f"{RELEASE}.{SAE_ID}", (RELEASE, SAE_ID), None)
    assert (site.hook.layer, site.hook.module, site.hook.read) == (1, "transformer.h.1", "input")
    assert site.describe()["release"] == RELEASE and site.describe()["sae_id"] == SAE_ID

    ds = record(tiny_gpt2, "tiny", site=SPEC, **SETTINGS)
    assert isinstance(ds, NeuronDataset)
    latents = direct_latents(cached, "sae-lens", x)
    check_against_brute_force(ds, positions, latents, SITE, layer=1)
    assert ds.card.extra["latents"]["few_active_records"]["1"][str(RARE)] == 2
    assert all(n.id.key.startswith("tiny-gpt2-sae-gpt2-small-res-jb") for n in ds)
    recorder = ds.card.extra["recorder"]
    assert recorder["site_spec"] == SPEC and recorder["site_revision"] == site.revision

    # the revision is the weights': the same on every load (shards merge), another for
    # other weights under the same id (resume and merge refuse to mix them)
    assert load_site(SPEC, tiny_gpt2).revision == site.revision
    other = sae_lens_sae(tmp_path / "other", SAE_ID, x * 2.0) / "sae_weights.safetensors"
    (cached / "sae_weights.safetensors").write_bytes(other.read_bytes())
    assert load_site(SPEC, tiny_gpt2).revision != site.revision


def test_release_errors_are_one_line(tiny_gpt2: Subject, hub: Path, tmp_path: Path) -> None:
    cases = [
        (f"sae-lens:{RELEASE}", "expected sae-lens:RELEASE:SAE_ID"),
        (f"sae-lens:{RELEASE}:blocks.99.nope", "ID blocks.99.nope not found in release"),
        ("sae-lens:no-such-release:x", "Release no-such-release not found"),
        (SPEC, f"sae-lens release {RELEASE!r}, SAE id {SAE_ID!r}"),  # nothing cached
    ]
    for spec, message in cases:
        with pytest.raises(SubjectError) as err:
            record(tiny_gpt2, "tiny", site=spec, out=tmp_path / "ds", **SETTINGS)
        assert message in str(err.value) and "\n" not in str(err.value), spec
        assert str(err.value).startswith(f"site {spec!r}: ")
    assert not (tmp_path / "ds").exists()
    # a path is never a release id: sae: and sparsify: stay local directories
    with pytest.raises(SubjectError, match="no directory"):
        load_site(f"sae:{RELEASE}/{SAE_ID}", tiny_gpt2)


def test_cli_offline_uncached_release_is_one_line_rc2(
    hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from neuronbench.cli import main

    out = tmp_path / "ds"
    argv = ["record", "--subject", "tiny-gpt2", "--corpus", "tiny", "--tokens", "64",
            "--record-length", "16", "--site", SPEC, "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    line = lines[0]
    assert line.startswith(f"neuronbench record: error: site {SPEC!r}: "), line
    for part in (repr(RELEASE), repr(SAE_ID), "HF_HUB_OFFLINE is set", "network access",
                 "hf download jbloom/GPT2-Small-SAEs-Reformatted --include"):  # fmt: skip
        assert part in line, (part, line)
    assert not out.exists() and captured.out == ""
    assert not any(hub.iterdir())  # nothing fetched or written into the cache either
