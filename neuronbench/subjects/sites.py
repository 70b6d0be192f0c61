"""Neuron sites: where in a subject model a layer's neurons are read.

A neuron is one unit of the MLP's post-activation (the paper's "MLP neurons"): the
vector the MLP's output projection consumes. Reading it as the *input* of that
projection (a forward pre-hook) works the same for every architecture and captures
exactly what the model computes, including fused kernels:

- GPT-2: input of ``transformer.h[L].mlp.c_proj`` = ``gelu(c_fc(ln_2(x)))``.
- Llama family: input of ``model.layers[L].mlp.down_proj`` =
  ``act_fn(gate_proj(x)) * up_proj(x)``, with ``x`` the post-attention RMSNorm output.

``site_for`` is the only place that builds these module paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from neuronbench.subjects.models import Subject, SubjectError

if TYPE_CHECKING:
    import torch

SiteKind = Literal["mlp"]


@dataclass(frozen=True)
class NeuronSite:
    """One layer's neuron site in a subject model."""

    layer: int
    """Transformer block index, 0-based."""
    module: str
    """Dotted path (``model.get_submodule``) of the module whose *input* is the neuron vector."""
    kind: SiteKind = "mlp"
    """What the neurons are: ``mlp`` = MLP post-activation (matches ``NeuronId.site``)."""


def site_for(subject: Subject, layer: int) -> NeuronSite:
    """The hook site of ``layer``'s MLP neurons in ``subject``."""
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < subject.n_layers:
        raise SubjectError(
            f"subject {subject.name!r} has layers 0..{subject.n_layers - 1}; got layer {layer!r}"
        )
    if subject.arch == "gpt2":
        return NeuronSite(layer, f"transformer.h.{layer}.mlp.c_proj")
    if subject.arch == "llama":
        return NeuronSite(layer, f"model.layers.{layer}.mlp.down_proj")
    raise SubjectError(f"subject {subject.name!r}: no neuron site for arch {subject.arch!r}")


@dataclass
class Capture:
    """Activations captured inside a ``capture(...)`` block."""

    layers: tuple[int, ...]
    """The layers being captured, in the order requested."""
    activations: dict[int, torch.Tensor] = field(default_factory=dict)
    """layer -> ``(batch, seq, d_mlp)`` float32 CPU tensor from the latest forward pass."""


@contextlib.contextmanager
def capture(subject: Subject, layers: Sequence[int]) -> Iterator[Capture]:
    """Record MLP neuron activations of ``layers`` on every forward pass inside the block.

    One forward pass fills all requested layers; each later pass overwrites them.
    Tensors are detached float32 on CPU. Hooks are removed on exit, even on error.
    """
    layers = tuple(dict.fromkeys(layers))  # dedupe, keep order
    if not layers:
        raise SubjectError(f"capture on subject {subject.name!r}: no layers requested")
    sites = [site_for(subject, layer) for layer in layers]
    result = Capture(layers)
    handles: list[Any] = []

    def make_hook(layer: int) -> Any:
        def hook(_module: Any, args: tuple[Any, ...]) -> None:
            # args[0]: (batch, seq, d_mlp), the projection's input.
            result.activations[layer] = args[0].detach().to("cpu", dtype=_float32())

        return hook

    try:
        for site in sites:
            module = subject.model.get_submodule(site.module)
            handles.append(module.register_forward_pre_hook(make_hook(site.layer)))
        yield result
    finally:
        for handle in handles:
            handle.remove()


def _float32() -> Any:
    import torch

    return torch.float32
