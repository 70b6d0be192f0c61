"""Generation simulator: golden prompt, tolerant parsing, flagged failures, logprobs, cache."""

from __future__ import annotations

import asyncio
import math

import pytest
from inspect_ai.model import (
    Logprob,
    Logprobs,
    ModelOutput,
    ModelUsage,
    TopLogprob,
    get_model,
)

from neuronbench.scorers.simulators.generation import (
    GenerationSimulator,
    ParseError,
    build_prompt,
    expected_values,
    parse_values,
)
from tests.scorers.conftest import scripted_answer

TOKENS = ["The", " cat", "\n", " sat"]

GOLDEN = (
    "We're studying neurons in a neural network. Each neuron looks for some particular thing "
    "in a short document. Look at an explanation of what the neuron does, and try to predict "
    "its activations on each token.\n"
    "\n"
    "Neuron explanation: the word cat\n"
    "\n"
    'Below are the 4 tokens of a document, one per line, each followed by a tab and "unknown". '
    "Activations go from 0 to 10; most activations will be 0. Rewrite every line in the same "
    "order: copy the token exactly, then a tab, then your predicted activation for that token "
    '(an integer from 0 to 10) in place of "unknown". Write exactly 4 lines and nothing else.\n'
    "\n"
    "The\tunknown\n"
    " cat\tunknown\n"
    "\\n\tunknown\n"
    " sat\tunknown"
)


def test_prompt_is_golden():
    assert build_prompt("  the word cat ", TOKENS) == GOLDEN


def test_prompt_keeps_dollar_and_braces_in_explanation():
    assert "costs $5 {x}" in build_prompt("costs $5 {x}", TOKENS)


def test_parse_tolerates_fences_preamble_and_whitespace():
    text = "Sure! Here you go:\n```\nThe\t0\n cat\t 10\n\\n\t0\nsat \t3.5\n```\nHope this helps."
    values = parse_values(text, TOKENS)
    assert [v.value for v in values] == [0, 10, 0, 3.5]
    assert [text[v.start : v.end] for v in values] == ["0", "10", "0", "3.5"]


def test_parse_falls_back_to_spaces_when_no_tabs():
    text = "The 1\ncat 2\n\\n 0\nsat 4"
    assert [v.value for v in parse_values(text, TOKENS)] == [1, 2, 0, 4]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("The\t0\n cat\t1\n\\n\t0", "expected 4 token<TAB>value lines, found 3"),
        ("The\t0\n dog\t1\n\\n\t0\n sat\t0", "line 2: expected token ' cat', got ' dog'"),
        ("The\t0\n sat\t1\n\\n\t0\n cat\t0", "line 2: expected token ' cat'"),
        ("The\t0\n cat\thigh\n\\n\t0\n sat\t0", "value 'high' is not a number"),
        ("The\t0\n cat\t11\n\\n\t0\n sat\t0", "value 11 is above 10"),
        ("The\t0\n cat\tunknown\n\\n\t0\n sat\t0", "not a number"),
        ("I cannot do this.", "found 0"),
    ],
)
def test_malformed_output_raises_parse_error(text, message):
    with pytest.raises(ParseError, match=message.replace("(", r"\(")):
        parse_values(text, TOKENS)


def _logprobs(pieces, tops):
    return Logprobs(
        content=[
            Logprob(
                token=p,
                logprob=0.0,
                top_logprobs=[TopLogprob(token=t, logprob=math.log(q)) for t, q in tops.get(i, [])],
            )
            for i, p in enumerate(pieces)
        ]
    )


def test_expected_value_from_top_logprobs_at_value_tokens():
    text = "a\t7\nb\t0"
    parsed = parse_values(text, ["a", "b"])
    # value "7" is its own token: 0.5 * 7 + 0.25 * 8 + 0.25 * 6 (the "x" alternative is ignored)
    pieces = ["a", "\t", "7", "\n", "b", "\t0"]
    tops = {2: [("7", 0.5), ("8", 0.25), (" 6", 0.2), ("x", 0.05)]}
    evs = expected_values(_logprobs(pieces, tops), text, parsed)
    assert evs[0] == pytest.approx((0.5 * 7 + 0.25 * 8 + 0.2 * 6) / 0.95)
    assert evs[1] is None  # "\t0" covers the value but has no top logprobs
    # tokens that do not spell the output: no expected values at all
    assert expected_values(_logprobs(["zzz"], {}), text, parsed) == [None, None]
    assert expected_values(None, text, parsed) == [None, None]


def _mock(fn):
    return get_model("mockllm/model", custom_outputs=fn, memoize=False)


def test_simulator_uses_logprobs_where_given_else_the_integer():
    def fn(input, tools, tool_choice, config):
        assert config.logprobs is True and config.top_logprobs == 15
        assert config.temperature == 0.0
        text = "a\t7\nb\t2"
        out = ModelOutput.from_content(model="mockllm", content=text)
        out.choices[0].logprobs = _logprobs(
            ["a", "\t", "7", "\n", "b", "\t", "2"], {2: [("7", 0.5), ("9", 0.5)]}
        )
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    sim = asyncio.run(GenerationSimulator(_mock(fn), cache=False).simulate("x", [["a", "b"]]))
    assert sim.predictions == [[8.0, 2.0]]
    assert sim.details["values_from_logprobs"] == 1


def test_malformed_record_flags_the_whole_simulation_with_raw_output():
    def value(tok):
        return 3

    good = scripted_answer(value)

    def fn(input, tools, tool_choice, config):
        if "secret" not in input[-1].text:
            return good(input, tools, tool_choice, config)
        out = ModelOutput.from_content(model="mockllm", content="I'd rather not.")
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    records = [["The", " cat"], [" secret", " sat"]]
    sim = asyncio.run(GenerationSimulator(_mock(fn), cache=False).simulate("x", records))
    assert sim.failed and sim.predictions is None
    assert sim.error.startswith("record 1: expected 2 token<TAB>value lines, found 0")
    assert "I'd rather not." in sim.raw_output and "The\t3" in sim.raw_output


def test_cached_rerun_makes_no_model_call(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path / "cache"))
    fn = scripted_answer(lambda tok: 10 if "cat" in tok else 0)
    simulator = GenerationSimulator(_mock(fn))
    records = [["The", " cat"], [" a", " cat", " sat"]]
    first = asyncio.run(simulator.simulate("cats", records))
    assert fn.calls == 2
    second = asyncio.run(simulator.simulate("cats", records))
    assert fn.calls == 2
    assert second.predictions == first.predictions == [[0, 10], [0, 10, 0]]
    asyncio.run(simulator.simulate("dogs", records))  # a new explanation is a new prompt
    assert fn.calls == 4


def test_tokens_with_line_breaks_stay_on_one_line():
    tokens = ["a\u2028b", "\r\n", "x\ty"]
    prompt = build_prompt("x", tokens)
    assert "a\\u2028b\tunknown\n\\r\\n\tunknown\nx\\ty\tunknown" in prompt
    reply = "a\\u2028b\t1\n\\r\\n\t2\nx\\ty\t3"
    assert [v.value for v in parse_values(reply, tokens)] == [1, 2, 3]


def test_unparseable_simulation_is_a_counted_failure_through_the_task(tmp_path):
    """``-T simulator=generation``: a neuron whose simulator reply does not parse is a flagged
    failure with the reply kept, never a row of zeros; the run's mean is the other neuron's."""
    import json

    from inspect_ai import eval

    from neuronbench.evals import explain_neurons
    from tests.evals._helpers import write_dataset

    dataset = write_dataset(tmp_path / "ds", layers=(0,), per_layer=2)
    explanations = tmp_path / "explanations.json"
    explanations.write_text(json.dumps({"0/0": "tokens ending in 1", "0/1": "garbled"}))
    answer = scripted_answer(lambda tok: int(tok.strip()[-1]) % 10)  # " r4x7" -> 7

    def fn(input, tools, tool_choice, config):
        if "Neuron explanation: garbled" in input[-1].text:
            out = ModelOutput.from_content(model="mockllm", content="These all look like 0 to me.")
            out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
            return out
        return answer(input, tools, tool_choice, config)

    [log] = eval(
        explain_neurons(
            dataset=str(dataset),
            strategy="from_file",
            explanation_file=str(explanations),
            simulator="generation",
            simulator_model="none",
            n_score_records=2,
        ),
        model="mockllm/model",
        model_roles={"simulator": _mock(fn)},
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    scores = {s.id: s.scores["simulation"] for s in log.samples}
    ok, bad = scores["test-subject-L0-N0"], scores["test-subject-L0-N1"]
    assert ok.metadata["status"] == "ok" and not math.isnan(ok.value["top_and_random"])
    assert bad.metadata["status"] == "failed" and bad.value["scored"] == 0.0
    assert "These all look like 0 to me." in bad.metadata["raw_output"]
    assert all(math.isnan(bad.value[k]) for k in ("top_and_random", "random_only", "top_only"))
    assert all(r["predictions"] is None for r in bad.metadata["records"])
    metrics = {
        s.name: {k.split("/")[-1]: m.value for k, m in s.metrics.items()}
        for s in log.results.scores
    }
    assert metrics["top_and_random"]["mean"] == pytest.approx(ok.value["top_and_random"])
    assert metrics["scored"]["n_failed"] == 1 and metrics["scored"]["mean"] == 0.5
