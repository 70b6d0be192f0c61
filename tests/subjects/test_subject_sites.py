"""Neuron sites: the layer -> module mapping, and capture equals a manual recomputation."""

from __future__ import annotations

import pytest
import torch

from neuronbench.subjects import Subject, SubjectError, capture, site_for


def _inputs(subject: Subject) -> torch.Tensor:
    text = ["It is a truth universally acknowledged", "that a single man in possession of"]
    ids = [subject.tokenizer.encode(t, add_special_tokens=False)[:8] for t in text]
    return torch.tensor(ids)  # (batch=2, seq=8)


def _hook_outputs(subject: Subject, module_paths: list[str], ids: torch.Tensor):
    """Outputs of the given modules in one forward pass (the MLP's input norm)."""
    seen: dict[str, torch.Tensor] = {}
    handles = [
        subject.model.get_submodule(p).register_forward_hook(
            lambda _m, _a, out, p=p: seen.__setitem__(p, out.detach())
        )
        for p in module_paths
    ]
    try:
        with torch.no_grad():
            subject.model(ids)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_site_for_maps_layers_to_projection_inputs(tiny_llama: Subject, tiny_gpt2: Subject):
    assert site_for(tiny_llama, 2).module == "model.layers.2.mlp.down_proj"
    assert site_for(tiny_gpt2, 0).module == "transformer.h.0.mlp.c_proj"
    site = site_for(tiny_gpt2, 1)
    assert (site.layer, site.kind) == (1, "mlp")
    # Every site names a real module.
    for subject in (tiny_llama, tiny_gpt2):
        for layer in range(subject.n_layers):
            subject.model.get_submodule(site_for(subject, layer).module)


@pytest.mark.parametrize("layer", [-1, 3, 99])
def test_site_for_rejects_bad_layer(tiny_llama: Subject, layer: int):
    with pytest.raises(SubjectError, match=r"tiny-llama.*0\.\.2"):
        site_for(tiny_llama, layer)


def test_capture_llama_equals_act_gate_times_up(tiny_llama: Subject):
    ids = _inputs(tiny_llama)
    layers = [0, 2]
    norms = _hook_outputs(
        tiny_llama, [f"model.layers.{i}.post_attention_layernorm" for i in layers], ids
    )
    with capture(tiny_llama, layers) as cap, torch.no_grad():
        tiny_llama.model(ids)
    assert sorted(cap.activations) == layers
    for layer in layers:
        mlp = tiny_llama.model.model.layers[layer].mlp
        x = norms[f"model.layers.{layer}.post_attention_layernorm"]
        with torch.no_grad():
            expected = mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)  # (batch, seq, d_mlp)
        got = cap.activations[layer]
        assert got.shape == (2, 8, tiny_llama.d_mlp)
        assert got.dtype == torch.float32 and got.device.type == "cpu"
        assert not got.requires_grad
        torch.testing.assert_close(got, expected)
        assert got.abs().max() > 0


def test_capture_gpt2_equals_gelu_of_c_fc(tiny_gpt2: Subject):
    ids = _inputs(tiny_gpt2)
    norms = _hook_outputs(tiny_gpt2, ["transformer.h.1.ln_2"], ids)
    with capture(tiny_gpt2, [1]) as cap:
        tiny_gpt2.model(ids)  # with grad enabled: capture must still detach
    mlp = tiny_gpt2.model.transformer.h[1].mlp
    with torch.no_grad():
        expected = mlp.act(mlp.c_fc(norms["transformer.h.1.ln_2"]))  # (batch, seq, d_mlp)
    got = cap.activations[1]
    assert got.shape == (2, 8, tiny_gpt2.d_mlp)
    assert not got.requires_grad
    torch.testing.assert_close(got, expected)


def test_capture_overwrites_per_forward_pass(tiny_llama: Subject):
    ids = _inputs(tiny_llama)
    with capture(tiny_llama, [1]) as cap, torch.no_grad():
        tiny_llama.model(ids[:1])
        first = cap.activations[1]
        tiny_llama.model(ids)
    assert first.shape[0] == 1 and cap.activations[1].shape[0] == 2
    torch.testing.assert_close(cap.activations[1][:1], first)


def test_capture_removes_hooks_even_on_error(tiny_llama: Subject):
    module = tiny_llama.model.get_submodule(site_for(tiny_llama, 0).module)
    before = len(module._forward_pre_hooks)
    with pytest.raises(RuntimeError, match="boom"), capture(tiny_llama, [0, 0, 1]) as cap:
        assert len(module._forward_pre_hooks) == before + 1  # duplicate layer hooked once
        assert cap.layers == (0, 1)
        raise RuntimeError("boom")
    assert len(module._forward_pre_hooks) == before


def test_capture_rejects_bad_layers_without_leaking_hooks(tiny_gpt2: Subject):
    module = tiny_gpt2.model.get_submodule(site_for(tiny_gpt2, 0).module)
    before = len(module._forward_pre_hooks)
    with pytest.raises(SubjectError, match="tiny-gpt2"), capture(tiny_gpt2, [0, 7]):
        pass
    with pytest.raises(SubjectError, match="no layers"), capture(tiny_gpt2, []):
        pass
    assert len(module._forward_pre_hooks) == before
