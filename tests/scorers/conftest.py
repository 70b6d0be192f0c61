"""Builders for scorer tests: neurons with a known trigger word, and scripted simulator models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neuronbench.datasets import ActivationRecord, NeuronId, NeuronRecord

VOCAB = [" the", " city", " of", " London", " is", " large", ",", " and", " a", " river", "\n"]
"""Token strings the planted records are drawn from (a newline included on purpose)."""


def planted_record(
    rng: np.random.Generator, trigger: str, position: int, n_tokens: int = 16, force: bool = False
) -> ActivationRecord:
    """A record whose activation is ~5 on ``trigger`` tokens and small noise elsewhere."""
    tokens = [str(t) for t in rng.choice(VOCAB, size=n_tokens)]
    if force:
        tokens[int(rng.integers(n_tokens))] = trigger
    acts = [
        (5.0 + float(rng.random())) if t == trigger else float(rng.random()) * 0.3 for t in tokens
    ]
    return ActivationRecord(tokens=tokens, activations=acts, position=position)


def planted_neuron(
    trigger: str = " London", *, layer: int = 0, index: int = 0, seed: int = 0, **overrides: Any
) -> NeuronRecord:
    """A neuron that fires on ``trigger``: 8 top records (all contain it), 6 random records."""
    rng = np.random.default_rng(seed)
    top = [planted_record(rng, trigger, i, force=True) for i in range(8)]
    top.sort(key=lambda r: -r.max_activation)
    rand = [planted_record(rng, trigger, 1000 + j) for j in range(6)]
    fields: dict[str, Any] = {
        "id": NeuronId("test-subject", layer, index),
        "top": top,
        "random": rand,
        "firing_rate": 0.1,
    }
    fields.update(overrides)
    return NeuronRecord(**fields)


def token_lines(prompt: str) -> list[str]:
    """The tokens (as displayed) of a generation-simulator prompt."""
    return [ln[: -len("\tunknown")] for ln in prompt.splitlines() if ln.endswith("\tunknown")]


def scripted_answer(value: Callable[[str], int]) -> Callable[..., Any]:
    """A mockllm ``custom_outputs`` callable answering every prompt line with ``value(token)``.

    Calls are counted on the returned function's ``calls`` attribute.
    """
    from inspect_ai.model import ModelOutput, ModelUsage

    def answer(input: list[Any], tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        answer.calls += 1  # type: ignore[attr-defined]
        prompt = input[-1].text
        body = "\n".join(f"{t}\t{value(t)}" for t in token_lines(prompt))
        out = ModelOutput.from_content(model="mockllm", content=body)
        out.usage = ModelUsage(input_tokens=10, output_tokens=10, total_tokens=20)
        return out

    answer.calls = 0  # type: ignore[attr-defined]
    return answer
