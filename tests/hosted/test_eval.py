"""explain_neurons over real HTTP: ``inspect eval`` against ``transformers serve``.

What the server answered (seen at the proxy) is the oracle: explanations, simulator and
scorer outputs in the log must be exactly the server's answers, and the token usage the
log reports must be the sum of the server's own ``usage`` fields.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai import eval
from inspect_ai.log import list_eval_logs, read_eval_log

from neuronbench.evals import explain_neurons
from neuronbench.results.leaderboard import build_leaderboard
from neuronbench.scorers.correlation import GROUPS
from tests.hosted._helpers import (
    DETECTION_MARKER,
    FUZZING_MARKER,
    GENERATION_MARKER,
    SMALL,
    TASK_FILE,
    answered,
    explainer_tokens,
    hosted_model,
    log_usage,
    model_answers,
    no_silent_zero,
    server_usage,
    tiny_dataset,
)
from tests.hosted._proxy import FaultProxy
from tests.hosted._server import MODEL

LLM_STRATEGIES = ("highlighted", "top_tokens", "with_negatives", "chain_of_thought", "best_of_k")
"""The explainer strategies that call the model, besides the default token_activation_pairs."""


def test_inspect_eval_cli_explainer_generation_detection_fuzzing(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    ds = tiny_dataset(tmp_path / "ds")
    args = {
        **SMALL,
        "n_score_records": 2,  # fuzzing needs two activating records
        "dataset": ds,
        "simulator": "generation",
        "scorer": "simulation,detection,fuzzing",
    }
    cmd = [sys.executable, "-m", "inspect_ai", "eval", f"{TASK_FILE}@explain_neurons"]
    cmd += ["--model", MODEL, "--model-role", f"simulator={MODEL}", "--max-connections", "4"]
    cmd += ["--log-dir", str(tmp_path / "logs"), "--display", "none"]
    for k, v in args.items():
        cmd += ["-T", f"{k}={v}"]
    root = str(TASK_FILE.parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    (info,) = list_eval_logs(str(tmp_path / "logs"))
    log = read_eval_log(info)
    assert log.status == "success", log.error
    assert log.samples and len(log.samples) == 2
    assert proxy.max_in_flight >= 2, "calls were not concurrent"

    simulator_answers = answered(proxy, GENERATION_MARKER)
    detection_prompts = answered(proxy, DETECTION_MARKER)
    fuzzing_prompts = answered(proxy, FUZZING_MARKER)
    assert simulator_answers and detection_prompts and fuzzing_prompts
    served = set(answered(proxy))
    assert set(model_answers(log)) == served  # every answer in the log is the server's
    for sample in log.samples:
        assert sample.error is None
        assert sample.scores is not None
        sim = sample.scores["simulation"]
        assert isinstance(sim.value, dict)
        no_silent_zero(sim.value, sim.metadata, GROUPS)
        meta = sim.metadata or {}
        if meta["status"] == "ok":
            assert all(math.isfinite(sim.value[g]) for g in GROUPS if g not in meta["unscored"])
        raw = meta.get("raw_output") or ""
        for part in raw.split("=== record ")[1:]:  # records joined by newlines
            assert part.split("\n", 1)[1].rstrip("\n") in {
                a.rstrip("\n") for a in simulator_answers
            }
        for name in ("detection", "fuzzing"):
            assert name in sample.scores

    # Usage is the server's own count, not a local estimate ...
    assert log_usage(log) == server_usage(proxy)
    assert not proxy.served_twice()
    # ... and so are the leaderboard's tokens per neuron (no price known: no dollars).
    (row,) = build_leaderboard(tmp_path / "logs", n_resamples=10).rows
    prompt, completion = server_usage(proxy)
    assert row.tokens_per_neuron == pytest.approx((prompt + completion) / 2)
    assert row.explainer_tokens_per_neuron == pytest.approx(explainer_tokens(proxy) / 2)
    assert math.isnan(row.cost_per_neuron)


def test_every_llm_strategy_through_http(proxy: FaultProxy, tmp_path: Path) -> None:
    ds = tiny_dataset(tmp_path / "ds", n=1)
    tasks = [
        explain_neurons(
            dataset=str(ds),
            strategy=s,
            **{**SMALL, "max_tokens": 16 if s == "chain_of_thought" else 8},
            scorer="",
            simulator="lexical",  # best_of_k picks among its k candidates without more calls
            k=2,
        )
        for s in LLM_STRATEGIES
    ]
    logs = eval(
        tasks,
        model=hosted_model(proxy),
        max_tasks=len(tasks),
        max_connections=4,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    served = set(answered(proxy))
    for strategy, log in zip(LLM_STRATEGIES, logs, strict=True):
        assert log.status == "success", (strategy, log.error)
        (sample,) = log.samples or []
        assert sample.error is None
        assert model_answers(log) and set(model_answers(log)) <= served, strategy
    best = logs[LLM_STRATEGIES.index("best_of_k")].samples[0]  # type: ignore[index]
    assert len((best.metadata or {}).get("candidates") or []) == 2  # k candidates over HTTP
    assert len(proxy.completions(200)) == len(LLM_STRATEGIES) + 1
    assert proxy.max_in_flight >= 2
