"""A server without prompt logprobs and the logprob simulator: a clear error, never a fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai import eval

from neuronbench.evals import explain_neurons
from neuronbench.scorers.simulators.logprob import LogprobSimulator
from tests.hosted._helpers import SMALL, hosted_model, tiny_dataset
from tests.hosted._proxy import FaultProxy


def test_chat_server_with_logprob_simulator_fails_before_any_call(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    task = explain_neurons(dataset=str(tiny_dataset(tmp_path / "ds")), simulator="logprob", **SMALL)
    model = hosted_model(proxy)
    (log,) = eval(
        task,
        model=model,
        model_roles={"simulator": model},
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "error"
    assert log.error is not None
    assert "simulator=logprob needs prompt logprobs" in log.error.message
    assert "-T simulator=generation" in log.error.message
    assert proxy.completions(None) == []  # not even the explainer was called
    with pytest.raises(ValueError, match="openai-api/ is a chat API"):
        LogprobSimulator(model)


def test_completions_route_without_prompt_logprobs_is_an_error_not_a_score(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    """``openai-api-completions/`` may carry prompt logprobs (vLLM does); transformers serve
    refuses the field (422), and the sample fails with the server's reason."""
    task = explain_neurons(
        dataset=str(tiny_dataset(tmp_path / "ds", n=1)), simulator="logprob", **SMALL
    )
    (log,) = eval(
        task,
        model=hosted_model(proxy),
        model_roles={"simulator": hosted_model(proxy, "openai-api-completions")},
        log_dir=str(tmp_path / "logs"),
        display="none",
        max_retries=0,
    )
    assert log.status == "error"
    assert log.error is not None and "422" in log.error.message
    refused = [e for e in proxy.exchanges if e.path.endswith("/v1/completions")]
    assert refused and all(e.status == 422 for e in refused)
    assert "prompt_logprobs" in str(refused[0].response)  # the server names the field
    assert not any(s.scores for s in log.samples or [])
