"""``neuronbench plan`` against a real run: the tokens it predicts are the tokens the run uses.

The real run is ``explain_neurons`` through inspect with a random-init tiny Llama served
in-process (a long context, so the full few-shot prompts fit) as explainer and as logprob
simulator, under two names so inspect books each role's usage apart. The plan measures
the same neurons with the same tokenizer and must land within 10% of inspect's usage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from neuronbench import planning
from neuronbench.cli import main
from neuronbench.datasets import NeuronDataset
from tests.evals._helpers import write_dataset

EXPLAINER = "plan-explainer"
SIMULATOR = "plan-simulator"


@pytest.fixture(scope="module")
def served() -> None:
    """A tiny random Llama with a 16k context, registered under both role names."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from neuronbench.models.local import register_local_model
    from neuronbench.subjects.models import tiny_tokenizer

    tok = tiny_tokenizer()
    config = LlamaConfig(
        num_hidden_layers=1,
        hidden_size=32,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=16384,
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    for name in (EXPLAINER, SIMULATOR):
        register_local_model(name, model, tok, revision="plan-test", device="cpu")


def _usage(log: Any, model: str) -> tuple[int, int]:
    u = log.stats.model_usage[f"neuronbench/{model}"]
    return u.input_tokens, u.output_tokens


def test_plan_matches_a_real_run_within_10_percent(
    served: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tasks in one eval: the paper's strategy (explainer tokens; a random model's
    explanations are flagged, so nothing is simulated) and the baseline explanation scored
    by the logprob simulator (simulator tokens)."""
    from inspect_ai import eval as inspect_eval

    from neuronbench.evals import explain_neurons

    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path / "cache"))
    ds_dir = write_dataset(tmp_path / "ds", layers=(0, 1), per_layer=1)
    explain = explain_neurons(dataset=str(ds_dir), max_tokens=8, scorer="none")
    simulate = explain_neurons(
        dataset=str(ds_dir),
        strategy="baseline",
        n_score_records=2,
        simulator="logprob",
        simulator_model=f"neuronbench/{SIMULATOR}",
    )
    logs = inspect_eval(
        [explain, simulate],
        model=f"neuronbench/{EXPLAINER}",
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert all(log.status == "success" for log in logs), [log.error for log in logs]
    explain_log, simulate_log = logs
    assert simulate_log.samples and all(
        s.scores and s.scores["simulation"].metadata["status"] == "ok" for s in simulate_log.samples
    )
    sim_sent = sum(
        s.scores["simulation"].metadata["simulation_details"]["prompt_tokens"]
        for s in simulate_log.samples
        if s.scores
    )

    neurons = list(NeuronDataset.load(ds_dir).neurons.values())
    cfg = planning.PlanConfig(
        explainer=f"neuronbench/{EXPLAINER}",
        simulator="logprob",
        simulator_model=f"neuronbench/{SIMULATOR}",
        n_score_records=2,
        max_tokens=8,
    )
    plan = planning.make_plan(cfg, neurons, len(neurons), concurrency=1)
    explainer, simulator = plan.roles
    assert explainer.counter == f"hf:neuronbench/{EXPLAINER}"
    assert simulator.counter == f"hf:neuronbench/{SIMULATOR}"
    real_in, real_out = _usage(explain_log, EXPLAINER)
    assert explainer.total.calls == len(neurons)
    assert explainer.total.input_tokens == pytest.approx(real_in, rel=0.10)
    assert explainer.total.output_tokens == pytest.approx(real_out, rel=0.10)
    # the logprob simulator: one prompt per scored record (2 top + 2 random), no output
    sim_in, sim_out = _usage(simulate_log, SIMULATOR)
    assert simulator.total.calls == 4 * len(neurons)
    assert simulator.total.input_tokens == pytest.approx(sim_in, rel=0.10)
    assert simulator.total.input_tokens == pytest.approx(sim_sent, rel=0.10)
    assert simulator.total.output_tokens == sim_out == 0
    assert plan.dollars == 0.0  # in-process models are free


def test_explainer_output_is_the_mean_example_answer_capped() -> None:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageUser

    counter = planning.TokenCounter(name="words", encode=lambda t: len(t.split()))
    msgs = [
        ChatMessageUser(content="x"),
        ChatMessageAssistant(content="one two three four"),
        ChatMessageUser(content="y"),
        ChatMessageAssistant(content="one two"),
        ChatMessageUser(content="z"),
    ]
    assert planning.explainer_output_tokens(msgs, counter, cap=80) == 3 + 1
    assert planning.explainer_output_tokens(msgs, counter, cap=2) == 2
    assert planning.explainer_output_tokens(msgs[:1], counter, cap=400) == 400  # zero-shot


def test_best_of_k_and_calibrate_multiply_the_calls(tmp_path: Path) -> None:
    neurons = list(NeuronDataset.load(write_dataset(tmp_path / "ds", per_layer=1)).neurons.values())
    chars = planning.chars_counter()
    base = planning.PlanConfig(
        explainer="openai/gpt-4o", simulator="generation", simulator_model="openai/gpt-4o-mini"
    )
    one = planning.measure(neurons, base, chars, chars)
    best = planning.measure(
        neurons,
        planning.PlanConfig(**{**base.__dict__, "strategy": "best_of_k", "k": 3}),
        chars,
        chars,
    )
    cal = planning.measure(
        neurons, planning.PlanConfig(**{**base.__dict__, "calibrate": True}), chars, chars
    )
    assert best.explainer.calls == 3 * one.explainer.calls
    assert best.explainer.input_tokens == pytest.approx(3 * one.explainer.input_tokens, abs=3)
    # k candidates simulated on calibration besides the scoring split, each record once
    assert best.simulator.calls > one.simulator.calls
    assert cal.simulator.calls > one.simulator.calls
    lexical = planning.measure(
        neurons, planning.PlanConfig(**{**base.__dict__, "simulator": "lexical"}), chars, chars
    )
    assert lexical.simulator.calls == lexical.simulator.input_tokens == 0


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_prices_file_overrides_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = write_dataset(tmp_path / "ds", per_layer=1)
    common = [
        "plan",
        "--dataset",
        str(ds),
        "--neurons",
        "1000",
        "--explainer",
        "openai/gpt-4o",
        "--simulator",
        "generation",
        "--simulator-model",
        "openai/gpt-4o-mini",
        "--tokenizer",
        "chars",
        "--json",
    ]
    rc, out, _ = _cli(common, capsys)
    assert rc == 0
    shipped = json.loads(out.strip().splitlines()[-1])
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "as_of": "2030-01-01",
                "models": {"openai/gpt-4o": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            }
        )
    )
    rc, out, _ = _cli([*common, "--prices", str(prices)], capsys)
    assert rc == 0
    mine = json.loads(out.strip().splitlines()[-1])
    assert mine["prices_as_of"] == "2030-01-01" and "as of 2030-01-01" in out
    e = mine["roles"]["explainer"]
    assert e["total"] == shipped["roles"]["explainer"]["total"]  # same tokens
    expected = (e["total"]["input_tokens"] * 1.0 + e["total"]["output_tokens"] * 2.0) / 1e6
    assert e["dollars"] == pytest.approx(expected)
    s = shipped["roles"]["simulator"]  # untouched entry: the shipped gpt-4o-mini price
    assert mine["roles"]["simulator"]["dollars"] == pytest.approx(s["dollars"])
    assert s["dollars"] == pytest.approx(
        (s["total"]["input_tokens"] * 0.15 + s["total"]["output_tokens"] * 0.6) / 1e6
    )
    assert mine["dollars"] == pytest.approx(e["dollars"] + s["dollars"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give --dataset DIR or --neurons N"),
        (["--neurons", "0"], "--neurons 0: must be >= 1"),
        (["--dataset", "DS", "--strategy", "nope"], "unknown strategy 'nope'"),
        (["--dataset", "DS", "--simulator", "nope"], "unknown simulator 'nope'"),
        (["--dataset", "DS", "--concurrency", "0"], "--concurrency 0: must be >= 1"),
        (["--dataset", "DS", "--prices", "missing.json"], "--prices missing.json: no such file"),
        (["--dataset", "BAD.json"], "--prices BAD.json: not a JSON price table"),
        (["--dataset", "nowhere"], "nowhere"),
    ],
)
def test_bad_input_is_one_line_rc_2(
    extra: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    ds = write_dataset(tmp_path / "DS", per_layer=1)
    (tmp_path / "BAD.json").write_text("{not json")
    if extra[:2] == ["--dataset", "BAD.json"]:
        extra = ["--dataset", str(ds), "--prices", "BAD.json"]
    argv = ["plan", "--explainer", "openai/gpt-4o", "--tokenizer", "chars", *extra]
    rc, out, err = _cli(argv, capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("neuronbench plan: error: ")
    assert message in err


def test_neurons_alone_plans_planted_neurons_of_the_given_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    neurons = planning.synthetic_neurons(3, top_k=8, n_random=6, record_length=16)
    assert len(neurons) == 3 and len({n.id for n in neurons}) == 3
    assert all(len(n.top) == 8 and len(n.random) == 6 for n in neurons)
    assert all(len(r.tokens) == 16 for n in neurons for r in [*n.top, *n.random])
    argv = ["plan", "--neurons", "131072", "--sample", "2", "--top-k", "8", "--random", "6",
            "--record-length", "16", "--explainer", "openai/gpt-4o", "--simulator", "logprob",
            "--simulator-model", "vllm-completions/meta-llama/Llama-3.1-70B-Instruct",
            "--tokenizer", "chars", "--json"]  # fmt: skip
    rc, out, _ = _cli(argv, capsys)
    assert rc == 0
    plan = json.loads(out.strip().splitlines()[-1])
    assert plan["neurons"] == 131072 and plan["sampled"] == 2
    sim = plan["roles"]["simulator"]
    # valid split of 8 top + 6 random: 2 top and 2 random records, one prompt each, 1 token out
    assert sim["per_neuron"]["calls"] == 4 and sim["per_neuron"]["output_tokens"] == 4
    assert sim["total"]["input_tokens"] == sim["per_neuron"]["input_tokens"] * 131072
    # self-hosted: no token price, the server's hours at its GPU rate
    assert sim["dollars"] == pytest.approx(sim["hours"] * 10.0)


def test_tiktoken_is_used_only_from_its_cache_never_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An uncached encoding falls back to another counter without a network connection."""
    import socket

    pytest.importorskip("tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: nothing cached
    tried: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        tried.append(address)
        raise OSError("network used")

    def no_lookup(host: object, *args: object, **kwargs: object) -> list[Any]:
        tried.append(host)
        raise OSError("network used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    assert planning._tiktoken_counter("gpt-4o") is None
    assert tried == []
