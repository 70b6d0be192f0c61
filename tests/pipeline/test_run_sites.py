"""``neuronbench run --sites``: the built-in SAEs by name (offline, encoded as sparsify
encodes), one recording and one set of evals per site, and the leaderboard's site column
and site comparison on a real tiny run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from neuronbench.pipeline import RunConfig, run, site_paths
from neuronbench.subjects.builtin_sae import (
    RANDOM,
    TRAINED,
    RandomSpec,
    builtin_dir,
    site_spec,
    write_random_sae,
)
from neuronbench.subjects.models import SubjectError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sparsify") is None,
    reason="eai-sparsify not installed (pip install -e '.[sae]')",
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty neuronbench cache, so the random control is built by this test."""
    monkeypatch.setenv("NEURONBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "cache"


def _smollm2_shaped_subject() -> object:
    """A random Llama with SmolLM2's residual width (576) and 13 blocks: enough for an SAE
    on block 12's output, without the real weights (the SAE reads only the width)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from neuronbench.subjects.models import _make_subject, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        num_hidden_layers=13,
        hidden_size=576,
        num_attention_heads=9,
        num_key_value_heads=3,
        intermediate_size=16,
        max_position_embeddings=64,
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return _make_subject(model, tokenizer, "wide-llama", "random-init", "wide-llama")


def test_builtin_saes_resolve_offline_and_encode_as_sparsify_does(cache: Path) -> None:
    from safetensors.torch import load_file
    from sparsify import SaeConfig, SparseCoder

    from neuronbench.subjects.sae import load_site

    subject = _smollm2_shaped_subject()
    ids = torch.randint(0, 200, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():  # block 12's output, read without any hook
        hidden = subject.model(input_ids=ids, output_hidden_states=True).hidden_states[13]  # type: ignore[attr-defined]
    x = hidden.reshape(-1, 576)
    for name in (TRAINED, RANDOM):
        site = load_site(site_spec(name), subject)  # type: ignore[arg-type]
        assert (site.site, site.hook.layer, site.n_latents) == (f"sae:{name}", 12, 4608)
        coder = SparseCoder.load_from_disk(site.path)
        with torch.inference_mode():
            enc = coder.encode(x)
            theirs = torch.zeros(x.shape[0], 4608).scatter_(-1, enc.top_indices, enc.top_acts)
            ours = site.encode(hidden)
        assert torch.equal(ours.reshape(-1, 4608), theirs)
        assert int((ours > 0).sum(-1).max()) <= 32  # TopK, k = 32
    # the trained SAE is the shipped file; the control is the library's seeded init, built
    # into the cache (not shipped), once
    assert builtin_dir("s", f"builtin:{TRAINED}").is_relative_to(Path(__file__).parents[2])
    random_dir = builtin_dir("s", f"builtin:{RANDOM}")
    assert random_dir.is_relative_to(cache)
    weights = random_dir / "layers.12" / "sae.safetensors"
    mtime = weights.stat().st_mtime_ns
    torch.manual_seed(0)
    init = SparseCoder(576, SaeConfig(expansion_factor=8, k=32)).state_dict()
    saved = load_file(weights)
    assert saved.keys() == init.keys() and all(torch.equal(saved[k], init[k]) for k in init)
    assert builtin_dir("s", f"builtin:{RANDOM}") == random_dir
    assert weights.stat().st_mtime_ns == mtime  # reused, not rebuilt
    figures = json.loads((builtin_dir("s", f"builtin:{TRAINED}") / "train.json").read_text())
    assert (figures["n_latents"], figures["layer"], figures["k"]) == (4608, 12, 32)


def test_unknown_builtin_is_one_line_listing_the_builtins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cache: Path
) -> None:
    from neuronbench.cli import main

    with pytest.raises(SubjectError, match="did you mean 'smollm2-l12-topk'"):
        builtin_dir("sparsify:builtin:smollm2-l12-tpk", "builtin:smollm2-l12-tpk")
    for argv in (
        ["run", "--out", str(tmp_path / "o"), "--sites", "mlp,sparsify:builtin:nope"],
        ["run", "--out", str(tmp_path / "o"), "--sites", "sae-thing"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("neuronbench run: error: "), err
        assert f"sparsify:builtin:{RANDOM}" in err[0] and f"sparsify:builtin:{TRAINED}" in err[0]
    assert not (tmp_path / "o").exists()
    assert not cache.exists()  # checking names builds nothing


def _config(out: Path, sae: Path) -> RunConfig:
    return RunConfig(
        out=str(out),
        subject="tiny-llama",
        corpus="austen",
        layers="all",
        tokens=4096,
        batch_size=8,
        neurons=4,
        strategies=[],
        baselines=["baseline", "empty", "shuffled"],
        simulators=["lexical"],
        n_score_records=2,
        viewer=True,
        sites=["mlp", f"sparsify:{sae}"],
        sae_strategies=[],
        sae_baselines=["baseline", "shuffled"],
    )


def test_run_records_and_evaluates_each_site_and_compares_them(tmp_path: Path) -> None:
    sae = tmp_path / "tiny-sae"
    write_random_sae(RandomSpec(d_in=32, expansion=4, k=8, seed=0, hookpoint="layers.1"), sae)
    out = tmp_path / "out"
    cfg = _config(out, sae)
    assert RunConfig().sites == ["mlp", site_spec(TRAINED), site_spec(RANDOM)]
    summary = run(cfg)

    mlp_dir, mlp_logs = site_paths(out, "mlp")
    sae_dir, sae_logs = site_paths(out, f"sparsify:{sae}")
    assert (mlp_dir, sae_dir) == (out / "dataset", out / "dataset-tiny-sae")
    assert json.loads((mlp_dir / "card.json").read_text())["site"] == "mlp"
    assert json.loads((sae_dir / "card.json").read_text())["site"] == "sae:tiny-sae"
    # each site its own evals: MLP all three baselines, the SAE site its smaller set
    assert len(list((mlp_logs / "baselines").glob("*.eval"))) == 3
    assert len(list(sae_logs.rglob("*.eval"))) == 2

    lb = json.loads((out / "leaderboard.json").read_text())
    by_site: dict[str, list[str]] = {}
    for r in lb["rows"]:
        by_site.setdefault(r["site"], []).append(r["strategy"])
    assert sorted(by_site["mlp"]) == ["baseline", "empty", "shuffled"]
    assert sorted(by_site["sae:tiny-sae"]) == ["baseline", "shuffled"]
    md = (out / "leaderboard.md").read_text()
    assert md.startswith("| # | site | explainer |")
    assert "| sae:tiny-sae | none/none | baseline |" in md and "unpaired" in md
    labels = {c["label"] for c in lb["site_comparisons"]}
    assert labels == {"none/none · baseline · lexical", "none/none · shuffled · lexical"}
    base = next(c for c in lb["site_comparisons"] if "baseline" in c["label"])
    assert [s["site"] for s in base["sites"]] == ["mlp", "sae:tiny-sae"]
    assert all(s["control"] == "none/none · shuffled · lexical" for s in base["sites"])
    [diff] = base["diffs"]
    assert (diff["site"], diff["minus"]) == ("sae:tiny-sae", "mlp")
    means = {s["site"]: s["mean"] for s in base["sites"]}
    assert diff["diff"] == pytest.approx(means["sae:tiny-sae"] - means["mlp"])
    page = (out / "viewer" / "index.html").read_text()
    assert '"site": "sae:tiny-sae"' in page or '"site":"sae:tiny-sae"' in page
    assert set(summary["seconds"]["sites"]) == {"mlp", f"sparsify:{sae}"}

    cards = [(d / "card.json").read_text() for d in (mlp_dir, sae_dir)]
    logs = sorted(p.name for p in (out / "logs").rglob("*.eval"))
    run(cfg)  # resumes every site: same recordings, no new eval logs
    assert [(d / "card.json").read_text() for d in (mlp_dir, sae_dir)] == cards
    assert sorted(p.name for p in (out / "logs").rglob("*.eval")) == logs


def test_a_site_dir_holding_another_site_is_refused(tmp_path: Path) -> None:
    from neuronbench.datasets import DatasetError
    from neuronbench.pipeline import ensure_recording

    out = tmp_path / "out"
    cfg = _config(out, tmp_path / "unused")
    cfg.sites = ["mlp"]
    ensure_recording(cfg, out / "dataset")
    with pytest.raises(DatasetError, match="different recording"):
        ensure_recording(cfg, out / "dataset", "sparsify:builtin:smollm2-l12-topk")
