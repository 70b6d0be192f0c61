"""Faults on the wire: 500s, stalls, a server killed mid-eval and restarted.

The proxy's record is the oracle: a call is "sent" when the server answered it. Retried
calls must end in exactly one answer each; a resumed eval must not send again a call
its cache already holds; nothing fails silently as a score of 0.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from inspect_ai import eval, eval_retry
from inspect_ai.model import ModelCost, ModelInfo, set_model_info
from inspect_ai.model._model_info import clear_model_info_cache

from neuronbench.evals import explain_neurons
from neuronbench.results.leaderboard import build_leaderboard
from neuronbench.scorers.correlation import GROUPS
from tests.hosted._helpers import (
    GENERATION_MARKER,
    SMALL,
    explainer_tokens,
    hosted_model,
    log_usage,
    no_silent_zero,
    prompt_text,
    server_usage,
    tiny_dataset,
)
from tests.hosted._proxy import Exchange, Fault, FaultProxy
from tests.hosted._server import MODEL, ServedModel


def _task(ds: Path):  # type: ignore[no-untyped-def]
    return explain_neurons(dataset=str(ds), simulator="generation", scorer="simulation", **SMALL)


def test_500s_and_stalls_are_retried_and_answered_once(
    proxy: FaultProxy, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A price for the served model, $ per million tokens. inspect prices only models it
    # knows (--model-cost-config refuses other names), so a server's model is registered.
    price = ModelCost(input=3.0, output=15.0, input_cache_write=0.0, input_cache_read=0.0)
    set_model_info(MODEL, ModelInfo(cost=price))
    request.addfinalizer(clear_model_info_cache)
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def first_attempt_fails(ex: Exchange) -> Fault:
        with lock:
            seen[ex.key] += 1
            first = seen[ex.key] == 1
        if not first:
            return None
        return "stall" if GENERATION_MARKER in prompt_text(ex.body) else "500"

    proxy.fault = first_attempt_fails
    proxy.stall_s = 2.0  # then a 504, as a gateway gives up on a stuck server
    model = hosted_model(proxy)
    (log,) = eval(
        _task(tiny_dataset(tmp_path / "ds", n=1)),
        model=model,
        model_roles={"simulator": model},
        max_retries=3,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    (sample,) = log.samples or []
    assert sample.error is None and sample.scores
    faults = Counter(e.fault for e in proxy.completions(None))
    assert faults["500"] >= 1 and faults["stall"] >= 1
    answered = Counter(e.key for e in proxy.completions(200))
    assert set(answered) == {e.key for e in proxy.completions(None)}  # every call got through
    assert max(answered.values()) == 1  # once each
    assert log_usage(log) == server_usage(proxy)  # failed attempts cost no tokens
    # the leaderboard's tokens and dollars per neuron are the server's usage, once
    (row,) = build_leaderboard(tmp_path / "logs", n_resamples=10).rows
    prompt, completion = server_usage(proxy)
    assert row.tokens_per_neuron == prompt + completion
    assert row.explainer_tokens_per_neuron == explainer_tokens(proxy)
    assert row.cost_per_neuron == pytest.approx((prompt * 3.0 + completion * 15.0) / 1e6)


def test_persistent_500s_are_flagged_failures_not_zeros(proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.fault = lambda ex: "500" if GENERATION_MARKER in prompt_text(ex.body) else None
    model = hosted_model(proxy)
    (log,) = eval(
        _task(tiny_dataset(tmp_path / "ds", n=1)),
        model=model,
        model_roles={"simulator": model},
        max_retries=1,
        fail_on_error=False,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    (sample,) = log.samples or []
    assert sample.error is not None and "InternalServerError" in sample.error.message
    assert "injected server error" in sample.error.traceback  # the server's own reason
    score = (sample.scores or {}).get("simulation")
    if score is not None:
        no_silent_zero(score.value, score.metadata, GROUPS)
    assert proxy.completions(500)


def test_server_killed_mid_eval_resumes_with_eval_retry(
    served: ServedModel, proxy: FaultProxy, tmp_path: Path
) -> None:
    killed = threading.Event()

    def kill_at_first_simulation(ex: Exchange) -> Fault:
        if GENERATION_MARKER in prompt_text(ex.body) and not killed.is_set():
            killed.set()
            served.kill()  # this request and every one after it find no server
        return None

    proxy.fault = kill_at_first_simulation
    logs = str(tmp_path / "logs")
    model = hosted_model(proxy)
    (first,) = eval(
        _task(tiny_dataset(tmp_path / "ds", n=2)),
        model=model,
        model_roles={"simulator": model},
        max_retries=0,
        log_dir=logs,
        display="none",
    )
    assert killed.is_set() and first.status == "error"
    before = {e.key for e in proxy.completions(200)}
    assert before, "no call was answered before the kill"
    n_before = len(proxy.exchanges)

    served.start()
    (resumed,) = eval_retry(first, log_dir=logs, max_retries=2, display="none")
    assert resumed.status == "success", resumed.error
    ids = [s.id for s in resumed.samples or []]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 2  # every sample, once
    for sample in resumed.samples or []:
        assert sample.error is None and sample.scores
    after = {e.key for e in proxy.exchanges[n_before:] if e.status == 200}
    assert not before & after  # answers already cached were not asked for again
    assert not proxy.served_twice()
