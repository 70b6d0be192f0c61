"""Small runs for the hosted tests: a tiny dataset and task arguments a busy CPU can afford."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from inspect_ai.log import EvalLog
from inspect_ai.model import Model, get_model

from neuronbench.datasets import DatasetCard, NeuronDataset
from tests.evals._helpers import unique_neuron
from tests.hosted._proxy import FaultProxy
from tests.hosted._server import SERVED_NAME, SERVICE

TASK_FILE = Path(__file__).resolve().parents[2] / "neuronbench" / "evals" / "task.py"
"""The task by file (``task.py@explain_neurons``): works without the package's entry point."""

SMALL = {
    "few_shot": "test",
    "n_examples": 1,
    "n_score_records": 1,
    "max_tokens": 8,
}
"""Task arguments that keep each prompt short and each answer a few tokens."""

GENERATION_MARKER = "try to predict its activations on each token"
DETECTION_MARKER = "whether the neuron activates anywhere in it"
FUZZING_MARKER = "whether the highlighted tokens are the ones the explanation describes"


def tiny_dataset(root: Path, n: int = 2, n_tokens: int = 6) -> Path:
    """``n`` neurons of short records whose tokens name neuron, record and position: no two
    neurons share a prompt, so two concurrent identical calls (both cache misses) cannot
    pass for a call sent twice."""
    ds = NeuronDataset(card=DatasetCard(subject="test-subject", corpus="unit"))
    neurons = []
    for i in range(n):
        neuron = unique_neuron(0, i, n_tokens=n_tokens)
        for records in (neuron.top, neuron.random, *neuron.quantile):
            records[:] = [
                replace(r, tokens=[f" n{i}{t.strip()}" for t in r.tokens]) for r in records
            ]
        neurons.append(neuron)
    ds.add(neurons)
    return ds.save(root)


def hosted_model(proxy: FaultProxy, provider: str = "openai-api") -> Model:
    """The served model through ``proxy`` (a fresh instance: never one bound to an old proxy)."""
    return get_model(
        f"{provider}/{SERVICE}/{SERVED_NAME}",
        base_url=proxy.url,
        api_key="unused-by-a-local-server",
        memoize=False,
    )


def model_answers(log: EvalLog) -> list[str]:
    """Every completion the log's model events hold (explainer and scorer calls)."""
    return [
        e.output.completion
        for s in log.samples or []
        for e in s.events
        if e.event == "model" and e.error is None
    ]


def prompt_text(body: dict[str, Any]) -> str:
    """All message text of a chat completion request."""
    parts = []
    for m in body.get("messages", []):
        c = m.get("content")
        parts.append(c if isinstance(c, str) else json.dumps(c))
    return "\n".join(parts)


def answered(proxy: FaultProxy, marker: str | None = None) -> list[str]:
    """Completions the server returned (status 200), for prompts containing ``marker``."""
    out = []
    for ex in proxy.completions(200):
        if marker is None or marker in prompt_text(ex.body):
            assert ex.response is not None
            out.append(str(ex.response["choices"][0]["message"]["content"] or ""))
    return out


def server_usage(proxy: FaultProxy) -> tuple[int, int]:
    """(prompt, completion) tokens summed over the server's own ``usage`` fields."""
    prompt = completion = 0
    for ex in proxy.completions(200):
        assert ex.response is not None
        prompt += int(ex.response["usage"]["prompt_tokens"])
        completion += int(ex.response["usage"]["completion_tokens"])
    return prompt, completion


def explainer_tokens(proxy: FaultProxy) -> int:
    """Total tokens the server reported for explainer calls (prompts of no scorer)."""
    markers = (GENERATION_MARKER, DETECTION_MARKER, FUZZING_MARKER)
    return sum(
        int(e.response["usage"]["total_tokens"])
        for e in proxy.completions(200)
        if e.response is not None and not any(m in prompt_text(e.body) for m in markers)
    )


def log_usage(log: EvalLog) -> tuple[int, int]:
    """(input, output) tokens inspect recorded for the run, over all models."""
    usage = log.stats.model_usage.values()
    return sum(u.input_tokens for u in usage), sum(u.output_tokens for u in usage)


def no_silent_zero(value: Any, metadata: dict[str, Any] | None, keys: tuple[str, ...]) -> None:
    """A failed score carries no number: its ``keys`` are NaN, never 0."""
    if (metadata or {}).get("status") != "failed":
        return
    for k in keys:
        assert math.isnan(value[k]), f"failed score has {k}={value[k]}"
