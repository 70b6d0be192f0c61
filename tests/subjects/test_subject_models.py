"""Subject loading: tiny subjects, save/load round trip, errors, the smollm2 cache."""

from __future__ import annotations

import hashlib
import json
import os
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


def _fake_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake GGUF file served as smollm2's, with the cache under ``tmp_path/cache``."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    monkeypatch.setattr(models_mod, "smollm2_gguf_path", lambda: gguf)
    monkeypatch.setenv("NEURONBENCH_CACHE", str(tmp_path / "cache"))
    return gguf


def _gguf_revision(gguf: Path) -> str:
    return "gguf-sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()[:16]


def _fake_convert(calls: list[Path]):  # type: ignore[no-untyped-def]
    """A converter writing a tiny model: counts calls, writes what the real one writes."""

    def convert(gguf: Path, out: Path, revision: str) -> None:
        calls.append(gguf)
        tiny = tiny_subject("llama")
        tiny.model.save_pretrained(out)
        tiny.tokenizer.save_pretrained(out)
        meta = {"format": models_mod._CACHE_FORMAT, "revision": revision}
        (out / models_mod._CACHE_META).write_text(json.dumps(meta))

    return convert


def test_smollm2_converts_once_and_keys_the_cache_by_content(tmp_path, monkeypatch):
    gguf = _fake_gguf(tmp_path, monkeypatch)
    calls: list[Path] = []
    monkeypatch.setattr(models_mod, "_convert_gguf", _fake_convert(calls))
    subject = load_subject("smollm2")
    assert (subject.name, subject.revision, subject.arch) == (
        "smollm2-135m-instruct",
        _gguf_revision(gguf),
        "llama",
    )
    assert load_subject("smollm2-135m-instruct").revision == subject.revision
    # a reinstall or touch changes the mtime, not the bytes: the cache stays
    os.utime(gguf, ns=(gguf.stat().st_atime_ns, gguf.stat().st_mtime_ns + 10**9))
    assert load_subject("smollm2").revision == subject.revision
    # so does the same file at another path (another environment)
    moved = tmp_path / "elsewhere.gguf"
    moved.write_bytes(gguf.read_bytes())
    monkeypatch.setattr(models_mod, "smollm2_gguf_path", lambda: moved)
    assert load_subject("smollm2").revision == subject.revision
    assert len(calls) == 1
    cache = models_mod.cache_root() / models_mod.SMOLLM2_NAME
    assert cache.is_relative_to(tmp_path / "cache")
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]


def test_smollm2_reconverts_when_content_or_format_changes(tmp_path, monkeypatch):
    gguf = _fake_gguf(tmp_path, monkeypatch)
    calls: list[Path] = []
    monkeypatch.setattr(models_mod, "_convert_gguf", _fake_convert(calls))
    first = load_subject("smollm2").revision
    gguf.write_bytes(b"GGUF" + b"\1" * 60)  # same size, new bytes
    second = load_subject("smollm2").revision
    assert second == _gguf_revision(gguf) != first
    assert len(calls) == 2
    monkeypatch.setattr(models_mod, "_CACHE_FORMAT", models_mod._CACHE_FORMAT + 1)
    assert load_subject("smollm2").revision == second
    assert len(calls) == 3


def test_smollm2_cache_from_before_content_keys_is_reused(tmp_path, monkeypatch):
    """A cache written by the mtime-keyed version (same format, revision = content hash
    prefix) is still fresh: upgrading does not re-convert 538 MB."""
    gguf = _fake_gguf(tmp_path, monkeypatch)
    cache = models_mod.cache_root() / models_mod.SMOLLM2_NAME
    tiny = tiny_subject("llama")
    tiny.model.save_pretrained(cache)
    tiny.tokenizer.save_pretrained(cache)
    old_meta = {
        "format": models_mod._CACHE_FORMAT,
        "source": "/some/other/env/SmolLM2-135M-Instruct.Q4_1.gguf",
        "gguf_size": 64,
        "gguf_mtime_ns": 1,
        "revision": _gguf_revision(gguf),
    }
    (cache / models_mod._CACHE_META).write_text(json.dumps(old_meta))
    monkeypatch.setattr(models_mod, "_convert_gguf", lambda *a: pytest.fail("reconverted"))
    assert load_subject("smollm2").revision == _gguf_revision(gguf)


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
