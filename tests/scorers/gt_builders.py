"""Builders for the ground-truth scorer tests: a neuron firing on one word, scripted judges."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from neuronbench.datasets import ActivationRecord, NeuronId, NeuronRecord

WORDS = [" the", " garden", " was", " green", " and", " quiet", ",", " she", " said", "."]


def word_neuron(
    trigger: str = " Bath", n_top: int = 20, n_random: int = 15, seed: int = 0
) -> NeuronRecord:
    """Top records each contain ``trigger`` (activation 5 on it); random ones never fire."""
    rng = np.random.default_rng(seed)
    top = []
    for i in range(n_top):
        tokens = [str(t) for t in rng.choice(WORDS, size=12)]
        tokens[int(rng.integers(12))] = trigger
        top.append(
            ActivationRecord(
                tokens, [5.0 + 0.01 * (n_top - i) if t == trigger else 0.0 for t in tokens], i
            )
        )
    rand = [
        ActivationRecord([str(t) for t in rng.choice(WORDS, size=12)], [0.0] * 12, 1000 + j)
        for j in range(n_random)
    ]
    return NeuronRecord(id=NeuronId("test", 0, 0), top=top, random=rand, firing_rate=0.05)


def examples_in(prompt: str) -> list[str]:
    """The example texts of a classification prompt, in order."""
    return re.findall(r"^Example \d+: (.*)$", prompt, flags=re.M)


def judge(answer: Callable[[str], int] | str) -> Callable[..., Any]:
    """A mockllm ``custom_outputs`` callable: answers ``[answer(example) ...]`` or a fixed text.

    The prompts it saw are kept on its ``prompts`` attribute.
    """
    from inspect_ai.model import ModelOutput, ModelUsage

    def respond(input: list[Any], tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        prompt = input[-1].text
        respond.prompts.append(prompt)  # type: ignore[attr-defined]
        if isinstance(answer, str):
            text = answer
        else:
            text = "[" + ", ".join(str(answer(ex)) for ex in examples_in(prompt)) + "]"
        out = ModelOutput.from_content(model="mockllm", content=text)
        out.usage = ModelUsage(input_tokens=10, output_tokens=10, total_tokens=20)
        return out

    respond.prompts = []  # type: ignore[attr-defined]
    return respond
