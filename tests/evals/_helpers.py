"""Builders for evals tests: neurons whose every record has its own tokens, scripted mock outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from inspect_ai import eval
from inspect_ai.log import EvalLog
from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model

from neuronbench.datasets import (
    ActivationRecord,
    DatasetCard,
    NeuronDataset,
    NeuronId,
    NeuronRecord,
)
from neuronbench.evals import explain_neurons
from tests.conftest import make_neuron


def mock_output(text: str) -> ModelOutput:
    """A mockllm output with explicit usage (else inspect would fetch a tiktoken encoding)."""
    out = ModelOutput.from_content("mockllm/model", text)
    out.usage = ModelUsage(input_tokens=10, output_tokens=5, total_tokens=15)
    return out


def _retoken(r: ActivationRecord, tag: str) -> ActivationRecord:
    return replace(r, tokens=[f" {tag}{r.position}x{i}" for i in range(len(r.tokens))])


def unique_neuron(layer: int = 0, index: int = 0, n_tokens: int = 12) -> NeuronRecord:
    """``make_neuron`` with tokens that name their record (`` r<position>x<i>``), so a prompt
    that contains any token of a record provably shows that record."""
    n = make_neuron(
        layer=layer, index=index, seed=100 * layer + index, n_tokens_per_record=n_tokens
    )
    n.top = [_retoken(r, "r") for r in n.top]
    n.random = [_retoken(r, "r") for r in n.random]
    n.quantile = [[_retoken(r, "q") for r in q] for q in n.quantile]
    return n


def write_dataset(root: Path, layers: Sequence[int] = (0, 1), per_layer: int = 3) -> Path:
    """A small saved dataset of unique-token neurons (``per_layer`` neurons in each layer)."""
    ds = NeuronDataset(card=DatasetCard(subject="test-subject", corpus="unit"))
    ds.add(unique_neuron(layer, i) for layer in layers for i in range(per_layer))
    return ds.save(root)


def golden_neuron() -> NeuronRecord:
    """A tiny hand-written neuron for golden prompts: fires on ' cat' / ' dog'."""

    def rec(tokens: list[str], acts: list[float], pos: int) -> ActivationRecord:
        return ActivationRecord(tokens=tokens, activations=acts, position=pos)

    words = [" cat", " dog", " cow", " hen", " fox", " owl", " elk", " ant"]
    top = [
        rec(
            ["The", w, " sat", " on", " a", " mat"],
            [0.0, 4.0 - 0.25 * i, 0.3 if i % 2 else -0.1, 0.0, 0.0, 0.0],
            i,
        )
        for i, w in enumerate(words)
    ]
    rand = [rec(["A", " rock", " fell", "."], [0.0, 0.05, 0.0, 0.0], 100 + j) for j in range(3)]
    quiet = rec(["Rain", " on", " the", " roof"], [0.0, 0.01, 0.0, 0.0], 200)
    return NeuronRecord(
        id=NeuronId("golden", 2, 7),
        top=top,
        random=rand,
        quantile=[[quiet]],
        quantile_boundaries=[],
    )


def render(messages: Sequence[ChatMessage]) -> str:
    """A prompt as text with role headers, for golden files."""
    return "".join(f"=== {m.role} ===\n{m.text}\n" for m in messages)


def run(dataset: Path, tmp_path: Path, outputs: list[str] | None = None, **args: Any) -> EvalLog:
    """Run explain_neurons with a scripted mockllm explainer (no scorer unless asked)."""
    outs = [mock_output(t) for t in (outputs or [" capitalised names of places."] * 40)]
    model = get_model("mockllm/model", custom_outputs=outs)
    args.setdefault("scorer", "")
    (log,) = eval(
        explain_neurons(dataset=str(dataset), **args),
        model=model,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    assert log.samples
    return log
