"""SAE and transcoder latents as a site: random-weight sae-lens and sparsify checkpoints built
here (no download) on the tiny subjects, checked against the libraries' own encode of
independently hooked activations, brute-force top-k, dead/flagged latents, an exact shard
merge, errors, and an explain + simulate eval on the latents."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from neuronbench.datasets import NeuronDataset
from neuronbench.subjects import Subject
from neuronbench.subjects.corpus import iter_records
from neuronbench.subjects.models import SubjectError
from neuronbench.subjects.recorder import merge, record
from neuronbench.subjects.sae import load_site

HAS_SPARSIFY = importlib.util.find_spec("sparsify") is not None
HAS_SAE_LENS = importlib.util.find_spec("sae_lens") is not None
needs_sparsify = pytest.mark.skipif(
    not HAS_SPARSIFY, reason="eai-sparsify not installed (pip install -e '.[sae]')"
)
needs_sae_lens = pytest.mark.skipif(
    not HAS_SAE_LENS, reason="sae-lens not installed (pip install -e '.[sae]')"
)

RL, N_TOKENS, BATCH = 16, 16 * 40, 8
SETTINGS: dict[str, Any] = dict(
    n_tokens=N_TOKENS,
    record_length=RL,
    top_k=4,
    n_random=3,
    n_quantiles=2,
    per_quantile=2,
    batch_size=BATCH,
    progress=False,
)
DEAD = 0
"""The latent every checkpoint here makes dead (it can never be positive)."""


def sparsify_coder(
    root: Path, hookpoint: str, *, transcode: bool = False, n: int = 96, seed: int = 1
) -> Path:
    """A random sparsify coder saved as sparsify saves one: ``root/<run>/<hookpoint>``."""
    from sparsify import SparseCoder, SparseCoderConfig

    torch.manual_seed(seed)
    coder = SparseCoder(32, SparseCoderConfig(num_latents=n, k=6, transcode=transcode))
    with torch.no_grad():
        coder.encoder.bias.normal_(0.0, 0.5)
        coder.b_dec.normal_(0.0, 0.1)
        coder.encoder.weight[DEAD] = 0.0
        coder.encoder.bias[DEAD] = -1.0
    path = root / "run" / hookpoint
    coder.save_to_disk(path)
    return path


RARE = 1
"""The latent ``sae_lens_sae`` makes fire on exactly two records of the corpus."""


def sae_lens_sae(root: Path, hook_name: str, x: torch.Tensor, n: int = 80) -> Path:
    """A random sae-lens standard (ReLU) SAE saved by sae-lens; on the hooked vectors ``x``
    (N, L, d) latent ``RARE`` is active in exactly two records."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(2)
    cfg = StandardSAEConfig(d_in=32, d_sae=n, metadata=SAEMetadata(hook_name=hook_name))
    sae = StandardSAE(cfg)
    with torch.no_grad():
        sae.b_enc.normal_(-1.0, 0.7)  # sparse: a few latents per token, some rarely
        sae.b_dec.normal_(0.0, 0.1)
        sae.b_enc[DEAD] = -1e4
        pre = ((x - sae.b_dec) @ sae.W_enc[:, RARE]).amax(dim=1).sort(descending=True).values
        sae.b_enc[RARE] = -(pre[1] + pre[2]) / 2
    path = root / "lens-sae"
    sae.save_model(path)
    return path


def corpus(subject: Subject) -> tuple[list[int], torch.Tensor]:
    recs = list(iter_records(subject.tokenizer, "tiny", record_length=RL, max_tokens=N_TOKENS))
    ids = torch.tensor([r.token_ids for r in recs], dtype=torch.int64)
    return [r.position for r in recs], ids


def hooked(subject: Subject, ids: torch.Tensor, where: str) -> torch.Tensor:
    """(N, L, d) vectors the SAE reads, found without ``subjects.sae``: hidden states for the
    residual stream, a forward hook of the test's own for MLP input/output."""
    model = subject.model
    out: list[torch.Tensor] = []
    with torch.inference_mode():
        for b in range(0, len(ids), BATCH):
            batch = ids[b : b + BATCH]
            if where == "resid_post_1":  # block 1 of 3: not the last, so no final norm
                hs = model(input_ids=batch, output_hidden_states=True).hidden_states
                out.append(hs[2])
                continue
            layer, side = {"mlp_in_1": (1, "norm"), "mlp_out_0": (0, "mlp")}[where]
            block = model.model.layers[layer]
            module = block.post_attention_layernorm if side == "norm" else block.mlp
            got: list[torch.Tensor] = []
            h = module.register_forward_hook(lambda _m, _a, o, got=got: got.append(o))
            try:
                model(input_ids=batch)
            finally:
                h.remove()
            out.append(got[0])
    return torch.cat(out).float()


def direct_latents(path: Path, fmt: str, x: torch.Tensor) -> torch.Tensor:
    """(N, L, n) latents by the library's own loader and encode."""
    flat = x.reshape(-1, x.shape[-1])
    with torch.inference_mode():
        if fmt == "sparsify":
            from sparsify import SparseCoder

            coder = SparseCoder.load_from_disk(path)
            enc = coder.encode(flat)
            dense = torch.zeros(flat.shape[0], coder.num_latents)
            dense.scatter_(-1, enc.top_indices, enc.top_acts)
        else:
            from sae_lens import SAE

            dense = SAE.load_from_disk(str(path)).encode(flat)
    return dense.reshape(*x.shape[:-1], -1)


def check_against_brute_force(
    ds: NeuronDataset, positions: list[int], latents: torch.Tensor, site: str, layer: int
) -> None:
    """Every latent: stored iff it ever fired, its top-k exact, every kept record's
    activations equal to the direct encode, dead and few-record latents reported exactly."""
    top_k = ds.card.extra["top_k"]
    rec_max = latents.amax(dim=1)  # (N, n)
    fired = (latents > 0).any(dim=1).any(dim=0)  # (n,)
    row = {p: i for i, p in enumerate(positions)}
    by_index = {n.id.index: n for n in ds}
    assert ds.card.site == site
    assert sorted(by_index) == fired.nonzero().flatten().tolist()
    report = ds.card.extra["latents"]
    assert report["dead"][str(layer)] == (~fired).nonzero().flatten().tolist()
    assert DEAD in report["dead"][str(layer)]
    n_active = (rec_max > 0).sum(dim=0)
    expected_few = {str(j): int(n_active[j]) for j in by_index if int(n_active[j]) < top_k}
    assert report["few_active_records"][str(layer)] == expected_few
    for j, neuron in by_index.items():
        assert neuron.id.site == site and neuron.id.layer == layer
        order = sorted(range(len(positions)), key=lambda i: (-float(rec_max[i, j]), positions[i]))
        assert [r.position for r in neuron.top] == [positions[i] for i in order[:top_k]], j
        for r in [*neuron.top, *neuron.random, *(x for q in neuron.quantile for x in q)]:
            want = latents[row[r.position], :, j]
            assert torch.allclose(torch.tensor(r.activations), want, atol=1e-6), (j, r.position)
        x = latents[:, :, j].reshape(-1)
        assert neuron.firing_rate == pytest.approx(float((x > 0).float().mean()))
        assert neuron.mean == pytest.approx(float(x.double().mean()), rel=1e-5, abs=1e-7)


@needs_sparsify
@pytest.mark.parametrize(
    ("hookpoint", "transcode", "where"),
    [("layers.1", False, "resid_post_1"), ("layers.1.mlp", True, "mlp_in_1")],
    ids=["sae-resid", "transcoder-mlp"],
)
def test_sparsify_latents_equal_library_encode(
    tiny_llama: Subject, tmp_path: Path, hookpoint: str, transcode: bool, where: str
) -> None:
    path = sparsify_coder(tmp_path, hookpoint, transcode=transcode)
    ds = record(tiny_llama, "tiny", site=f"sparsify:{path}", **SETTINGS)
    assert isinstance(ds, NeuronDataset)
    # recording ran the model cut after block 1 and restored it
    assert len(tiny_llama.model.model.layers) == tiny_llama.model.config.num_hidden_layers == 3
    assert isinstance(tiny_llama.model.lm_head, torch.nn.Linear)
    positions, ids = corpus(tiny_llama)
    latents = direct_latents(path, "sparsify", hooked(tiny_llama, ids, where))
    check_against_brute_force(ds, positions, latents, "sae:run", layer=1)
    assert ds.card.layers == [1]
    assert ds.card.extra["recorder"]["site_spec"] == f"sparsify:{path}"


@needs_sae_lens
@pytest.mark.parametrize(
    ("arch", "hook_name", "where", "layer"),
    [
        ("gpt2", "blocks.1.hook_resid_post", "resid_post_1", 1),
        ("llama", "blocks.0.hook_mlp_out", "mlp_out_0", 0),
    ],
)
def test_sae_lens_latents_equal_library_encode(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    arch: str,
    hook_name: str,
    where: str,
    layer: int,
) -> None:
    subject = request.getfixturevalue(f"tiny_{arch}")
    positions, ids = corpus(subject)
    x = hooked(subject, ids, where)
    path = sae_lens_sae(tmp_path, hook_name, x)
    ds = record(subject, "tiny", site=f"sae:{path}", **SETTINGS)
    assert isinstance(ds, NeuronDataset)
    latents = direct_latents(path, "sae-lens", x)
    check_against_brute_force(ds, positions, latents, "sae:lens-sae", layer=layer)
    # stored and flagged, its top records ending in inactive ones
    assert ds.card.extra["latents"]["few_active_records"][str(layer)][str(RARE)] == 2
    rare = next(n for n in ds if n.id.index == RARE)
    assert [max(r.activations) > 0 for r in rare.top] == [True, True, False, False]


@needs_sparsify
def test_shard_merge_of_latents_is_exact(tiny_llama: Subject, tmp_path: Path) -> None:
    path = sparsify_coder(tmp_path, "layers.1")
    site = f"sparsify:{path}"
    single = record(tiny_llama, "tiny", site=site, out=tmp_path / "single", **SETTINGS)
    assert isinstance(single, NeuronDataset)
    for i in (1, 0):
        record(tiny_llama, "tiny", site=site, shard=(i, 2), out=tmp_path / f"s{i}", **SETTINGS)
    tok = tiny_llama.tokenizer
    merged = merge([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged", tokenizer=tok)
    a = {n.id.key: n.to_dict() for n in single}
    b = {n.id.key: n.to_dict() for n in merged}
    assert a == b and all("-sae-run-L1-" in k for k in a)
    assert merged.card.extra["latents"] == single.card.extra["latents"]
    assert merged.card.content_hash == single.card.content_hash
    # a shard of another SAE (same shape, other weights) is refused, naming the revision
    other = sparsify_coder(tmp_path / "other", "layers.1", seed=5)
    record(
        tiny_llama, "tiny", site=f"sparsify:{other}", shard=(1, 2), out=tmp_path / "o1", **SETTINGS
    )
    with pytest.raises(Exception, match="site_revision"):
        merge([tmp_path / "s0", tmp_path / "o1"], tmp_path / "m", tokenizer=tok)


@needs_sparsify
def test_bad_sites_fail_in_one_line(tiny_llama: Subject, tmp_path: Path) -> None:
    good = sparsify_coder(tmp_path, "layers.1")
    cases: list[tuple[str, str]] = [
        (f"sparsify:{tmp_path / 'nope'}", "no directory"),
        (f"sae:{good}", "has no sae_weights.safetensors"),
        ("mlp2", "expected mlp, sae:PATH or sparsify:PATH"),
    ]
    # a run directory with one hook point stands for it; with several, one must be named
    assert load_site(f"sparsify:{good.parent}", tiny_llama).path == good
    (tmp_path / "run" / "layers.2").mkdir()
    (tmp_path / "run" / "layers.2" / "cfg.json").write_text("{}")
    cases.append((f"sparsify:{tmp_path / 'run'}", "one coder per hook point (layers.1, layers.2)"))
    renamed = tmp_path / "x" / "not-a-module"
    sparsify_coder(tmp_path / "y", "layers.1").rename(renamed.parent.mkdir() or renamed)
    cases.append((f"sparsify:{renamed}", "'not-a-module' (the directory name"))
    for site, message in cases:
        with pytest.raises(SubjectError) as err:
            record(tiny_llama, "tiny", site=site, **SETTINGS)
        assert message in str(err.value) and "\n" not in str(err.value), site
    with pytest.raises(SubjectError, match="reads layer 1"):
        record(tiny_llama, "tiny", "0", site=f"sparsify:{good}", **SETTINGS)


@needs_sparsify
def test_width_mismatch_and_missing_extra(
    tiny_llama: Subject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sparsify import SparseCoder, SparseCoderConfig

    narrow = tmp_path / "narrow" / "layers.0"
    SparseCoder(16, SparseCoderConfig(num_latents=32, k=4)).save_to_disk(narrow)
    with pytest.raises(SubjectError, match="reads 16-wide vectors but model.layers.0"):
        record(tiny_llama, "tiny", site=f"sparsify:{narrow}", **SETTINGS)
    monkeypatch.setitem(__import__("sys").modules, "sparsify", None)
    with pytest.raises(SubjectError, match=r"needs eai-sparsify: pip install -e '\.\[sae\]'"):
        record(tiny_llama, "tiny", site=f"sparsify:{narrow}", **SETTINGS)


@needs_sparsify
def test_cli_records_a_site_and_reports_dead_latents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from neuronbench.cli import main

    path = sparsify_coder(tmp_path, "layers.1")
    common = ["record", "--subject", "tiny-llama", "--corpus", "tiny", "--tokens", str(N_TOKENS)]
    common += ["--record-length", str(RL), "--top-k", "4", "--quiet"]
    out = tmp_path / "ds"
    assert main([*common, "--site", f"sparsify:{path}", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "site sae:run: 96 latents, " in text and "dead (never active: not stored)" in text
    assert main([*common, "--site", f"sparsify:{path}", "--out", str(out), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["n_dead"] >= 1 and figures["n_neurons"] == 96 - figures["n_dead"]
    assert main([*common, "--site", f"sae:{tmp_path / 'nope'}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neuronbench record: error: site 'sae:") and "\n" not in err
    assert main([*common, "--out", str(out)]) == 2  # mlp needs --layers
    assert "--layers is required" in capsys.readouterr().err


@needs_sparsify
def test_explainer_and_simulation_scorer_run_on_latents(
    tiny_llama: Subject, tmp_path: Path
) -> None:
    """Unchanged explain + logprob-simulate path (a tiny random Llama as simulator) on a
    latent dataset: every sample is a latent and gets a simulation score."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from neuronbench.models.local import register_local_model
    from tests.evals._helpers import run

    path = sparsify_coder(tmp_path, "layers.1")
    settings = {**SETTINGS, "top_k": 12, "n_random": 6}
    ds = record(tiny_llama, "tiny", site=f"sparsify:{path}", out=tmp_path / "ds", **settings)
    assert isinstance(ds, NeuronDataset)
    tok = tiny_llama.tokenizer
    tok.model_max_length = 4096
    torch.manual_seed(0)
    net = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
        )
    )
    register_local_model("sae-sim", net, tok, revision="sae-sim-r1", device="cpu")
    log = run(
        tmp_path / "ds",
        tmp_path,
        scorer="simulation",
        simulator_model="neuronbench/sae-sim",
        n_score_records=1,
        neurons=2,
    )
    assert log.samples and len(log.samples) == 2
    for sample in log.samples:
        assert "-sae-run-L1-" in str(sample.id)
        value = sample.scores["simulation"].value
        assert isinstance(value, dict) and value["scored"] == 1.0, value
        assert -1.0 <= value["top_and_random"] <= 1.0


@pytest.mark.parametrize(
    "fmt",
    [
        pytest.param("sparsify", marks=needs_sparsify),
        pytest.param("sae-lens", marks=needs_sae_lens),
    ],
)
def test_hook_on_a_layer_the_subject_lacks_is_one_line(
    tiny_llama: Subject, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """An SAE of a deeper model (block 7 of a 3-block subject): one line naming the hook,
    its layer and the subject's layers, from record() and from the CLI (rc 2)."""
    if fmt == "sparsify":
        spec, hook = f"sparsify:{sparsify_coder(tmp_path, 'layers.7')}", "layers.7"
    else:
        hook = "blocks.7.hook_resid_post"
        spec = f"sae:{sae_lens_sae(tmp_path, hook, torch.zeros(4, RL, 32))}"
    message = f"hook {hook!r} reads layer 7, but subject 'tiny-llama' has layers 0..2"
    with pytest.raises(SubjectError) as err:
        record(tiny_llama, "tiny", site=spec, **SETTINGS)
    assert str(err.value) == f"site {spec!r}: {message} (an SAE for another model?)"

    from neuronbench.cli import main

    out = tmp_path / "ds"
    argv = ["record", "--subject", "tiny-llama", "--corpus", "tiny", "--site", spec]
    assert main([*argv, "--quiet", "--out", str(out)]) == 2  # the CLI's tiny-llama: 2 layers
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err_lines) == 1
        and "reads layer 7, but subject 'tiny-llama' has layers 0..1" in (err_lines[0])
    )
    assert not out.exists()


def test_every_site_spelling_in_help_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from neuronbench.cli import main
    from neuronbench.subjects.builtin_sae import builtin_names

    spellings = ["mlp", "sae:PATH", "sae-lens:RELEASE:SAE_ID", "sparsify:PATH"]
    spellings += ["sparsify:builtin:NAME", *builtin_names()]
    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping (argparse breaks at hyphens)
    with pytest.raises(SystemExit):
        main(["record", "--help"])
    text = capsys.readouterr().out
    site_help = text[text.index("\n  --site SITE") : text.index("\n  --tokens")]
    assert all(s in site_help for s in spellings), site_help
    out = tmp_path / "ds"
    for bad in ("mlp2", "sae-lens", "saelens:a:b"):
        assert main(["record", "--subject", "tiny-llama", "--site", bad, "--out", str(out)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == (
            f"neuronbench record: error: --site {bad!r}: expected mlp, sae:PATH, "
            "sae-lens:RELEASE:SAE_ID, sparsify:PATH or sparsify:builtin:NAME"
        )
    assert not out.exists()
