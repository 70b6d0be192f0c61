"""Subject loading: tiny subjects, save/load round trip, errors, the smollm2 cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neuronbench.subjects import SubjectError, load_subject, tiny_subject
from neuronbench.subjects import models as models_mod


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_tiny_subject_shape_and_determinism(arch):
    a = tiny_subject(arch, n_layers=2, d_mlp=40, seed=3)
    b = tiny_subject(arch, n_layers=2, d_mlp=40, seed=3)
    c = tiny_subject(arch, n_layers=2, d_mlp=40, seed=4)
    assert (a.name, a.arch, a.n_layers, a.d_mlp) == (f"tiny-{arch}", arch, 2, 40)
    assert not a.model.training
    sa, sb, sc = (s.model.state_dict() for s in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.revision == b.revision != c.revision


def test_tiny_subject_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_subject("llama", seed=9)
    torch.testing.assert_close(torch.rand(3), expected)


def test_tiny_tokenizer_is_offline_and_chat_ready(tiny_llama):
    tok = tiny_llama.tokenizer
    text = "It is a truth universally acknowledged, 1813. café"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text  # byte-level: lossless round trip
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert max(tok.encode(prompt)) < tiny_llama.model.config.vocab_size


def test_tiny_subjects_do_not_share_tokenizer_state():
    a = tiny_subject("gpt2")
    a.tokenizer.add_tokens(["<extra>"])
    assert len(tiny_subject("gpt2").tokenizer) == len(a.tokenizer) - 1


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_saved_tiny_subject_loads_back(tmp_path: Path, arch):
    tiny = tiny_subject(arch, seed=1)
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_subject(str(tmp_path))
    assert (loaded.name, loaded.arch, loaded.n_layers, loaded.d_mlp) == (
        tiny.name,
        tiny.arch,
        tiny.n_layers,
        tiny.d_mlp,
    )
    assert loaded.revision.startswith("sha256:")
    ids = torch.tensor([tiny.tokenizer.encode("Mr. Bennet made no answer.")])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, tiny.model(ids).logits)
    assert loaded.tokenizer.encode("Mr. Bennet") == tiny.tokenizer.encode("Mr. Bennet")


def test_load_subject_dtype(tmp_path: Path):
    tiny = tiny_subject("llama")
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_subject(str(tmp_path), dtype=torch.bfloat16)
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def test_unknown_model_is_a_clear_error(tmp_path: Path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(SubjectError, match="no-such-model"):
        load_subject(str(missing))


def test_unsupported_architecture_is_a_clear_error(tmp_path: Path):
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    config = GPTNeoXConfig(
        vocab_size=512, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tiny_subject("gpt2").tokenizer.save_pretrained(tmp_path)
    with pytest.raises(SubjectError, match="unsupported architecture 'gpt_neox'"):
        load_subject(str(tmp_path))


def test_tiny_subject_rejects_unknown_arch():
    with pytest.raises(SubjectError, match="mamba"):
        tiny_subject("mamba")  # type: ignore[arg-type]


def _fake_smollm2_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size_delta: int = 0):
    """A cache dir holding a tiny model, with metadata matching a fake GGUF file."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    monkeypatch.setattr(models_mod, "smollm2_gguf_path", lambda: gguf)
    monkeypatch.setenv("NEURONBENCH_CACHE", str(tmp_path / "cache"))
    cache = models_mod.cache_root() / models_mod.SMOLLM2_NAME
    tiny = tiny_subject("llama")
    tiny.model.save_pretrained(cache)
    tiny.tokenizer.save_pretrained(cache)
    meta = {
        "format": models_mod._CACHE_FORMAT,
        "gguf_size": gguf.stat().st_size + size_delta,
        "gguf_mtime_ns": gguf.stat().st_mtime_ns,
        "revision": "gguf-sha256:abc",
    }
    (cache / models_mod._CACHE_META).write_text(json.dumps(meta))
    return cache


def test_smollm2_loads_from_fresh_cache_without_converting(tmp_path, monkeypatch):
    cache = _fake_smollm2_cache(tmp_path, monkeypatch)
    monkeypatch.setattr(models_mod, "_convert_gguf", lambda *a: pytest.fail("reconverted"))
    subject = load_subject("smollm2-135m-instruct")
    assert cache.is_relative_to(tmp_path / "cache")
    assert (subject.name, subject.revision, subject.arch) == (
        "smollm2-135m-instruct",
        "gguf-sha256:abc",
        "llama",
    )


def test_smollm2_reconverts_stale_cache(tmp_path, monkeypatch):
    _fake_smollm2_cache(tmp_path, monkeypatch, size_delta=1)
    calls = []

    def convert(gguf, cache):
        calls.append(gguf)
        return {"revision": "gguf-sha256:new"}

    monkeypatch.setattr(models_mod, "_convert_gguf", convert)
    assert load_subject("smollm2").revision == "gguf-sha256:new"
    assert len(calls) == 1


@pytest.mark.weights
def test_real_smollm2_subject():
    from neuronbench.subjects import capture, corpus, iter_records, token_strings

    subject = load_subject("smollm2")
    assert (subject.name, subject.arch, subject.n_layers, subject.d_mlp) == (
        "smollm2-135m-instruct",
        "llama",
        30,
        1536,
    )
    assert subject.revision.startswith("gguf-sha256:")
    records = list(iter_records(subject.tokenizer, "austen", max_tokens=64 * 2000))
    record = records[0]
    # Chunked streaming tokenizes exactly like whole documents with the real tokenizer.
    first_doc = "".join(next(iter(corpus.documents("austen", 0)))())
    whole = subject.tokenizer.encode(first_doc, add_special_tokens=False)
    stream = [t for r in records for t in r.token_ids]
    assert len(whole) > 64 * 1000 and stream[: len(whole)] == whole[: len(stream)]
    assert len(token_strings(subject.tokenizer, record.token_ids)) == 64
    with capture(subject, [0, 29]) as cap, torch.no_grad():
        logits = subject.model(torch.tensor([record.token_ids])).logits
    assert cap.activations[29].shape == (1, 64, 1536)
    assert torch.isfinite(cap.activations[0]).all()
    # A real model predicts English text far better than uniform (ln 49152 ~ 10.8 nats).
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], torch.tensor(record.token_ids[1:]))
    assert loss < 6.0
