"""Logprob simulator: golden prompt, exact expected values, alignment, 1-vs-10, cache, vLLM parsing."""

from __future__ import annotations

import asyncio
import math

import pytest

torch = pytest.importorskip("torch")

from inspect_ai.model import Logprob, Logprobs, ModelOutput, ModelUsage, TopLogprob, get_model  # noqa: E402

import neuronbench.models.provider  # noqa: E402,F401
from neuronbench.models.local import register_local_model  # noqa: E402
from neuronbench.scorers.simulators.logprob import (  # noqa: E402
    FewShot,
    LogprobSimulator,
    build_prompt,
    expected_value,
    load_few_shot,
    value_probabilities,
)

FEW = FewShot(
    header="Guess.\n",
    explanation_prefix="it finds",
    examples=(("dogs", ((("a", 0), (" dog", 10), ("!", 1)),)),),
)
RECORDS = [[" big", " dog"], ["wonderful", "\n", ""], ["cat\tx"]]


def make_tokenizer(merges: list[tuple[str, str]]):
    """A BPE over single characters (no pre-tokenizer), with the given merges."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    text = build_prompt(FEW, "dogs", RECORDS).text + "0123456789a"
    vocab = {"<unk>": 0}
    for ch in sorted(set(text)):
        vocab.setdefault(ch, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


def make_model(name: str, merges: list[tuple[str, str]]):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer(merges)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    register_local_model(name, LlamaForCausalLM(config), tok, revision=f"{name}-r1", device="cpu")
    return get_model(f"neuronbench/{name}", memoize=False)


def manual_predictions(model, explanation: str, records, prior) -> list[list[float]]:
    """Expected values computed straight from the logits, positions found by re-tokenizing prefixes."""
    local = model.api.local
    tok = local.tokenizer
    prompt = build_prompt(FEW, explanation, records)
    ids = tok(prompt.text)["input_ids"]
    with torch.inference_mode():
        rows = torch.log_softmax(local.model(input_ids=torch.tensor([ids])).logits[0], dim=-1)
    digit = {str(d): tok.convert_tokens_to_ids(str(d)) for d in range(10)}
    ten = tok.convert_tokens_to_ids("10") if "10" in tok.get_vocab() else None
    out = []
    for rec in prompt.value_offsets:
        preds = []
        for c in rec:
            row = rows[len(tok(prompt.text[:c])["input_ids"]) - 1]
            p = [math.exp(float(row[digit[str(v)]])) for v in range(10)]
            if ten is not None:
                p.append(math.exp(float(row[ten])))
            else:  # "1" stands for 1 or 10: split by the prior
                one = p[1]
                p[1] = one * prior[1] / (prior[1] + prior[10])
                p.append(one * prior[10] / (prior[1] + prior[10]))
            preds.append(sum(v * q for v, q in enumerate(p)) / sum(p))
        out.append(preds)
    return out


def simulate(sim, explanation="dogs", records=RECORDS):
    return asyncio.run(sim.simulate(explanation, records))


def test_golden_prompt_and_value_offsets():
    prompt = build_prompt(FEW, "dogs ", [[" big", "\n"]])
    assert prompt.text == (
        "Guess.\n"
        "\nNeuron 1\nExplanation of neuron 1 behavior: it finds dogs\nActivations:\n"
        "<start>\na\t0\n dog\t10\n!\t1\n<end>\n"
        "\nNeuron 2\nExplanation of neuron 2 behavior: it finds dogs\nActivations:\n"
        "<start>\n big\tunknown\n\\n\tunknown\n<end>\n"
    )
    for c in prompt.value_offsets[0]:
        assert prompt.text[c - 1] == "\t" and prompt.text[c:].startswith("unknown\n")
    assert prompt.text[prompt.revealed_offsets[10][0] :].startswith("10\n")


def test_bundled_few_shot_loads_and_reveals_ten():
    few = load_few_shot()
    assert len(few.examples) >= 2
    assert few.value_prior()[10] > 1.0  # 10 is revealed, so its spelling is visible


def test_value_probabilities_split_shared_first_token_and_renormalize():
    first = [f"d{v}" for v in range(10)] + ["d1"]  # 10 spelled "1","0": shares "1"
    prior = [1.0] * 10 + [3.0]
    probs = value_probabilities(
        {"d0": math.log(0.2), "d1": math.log(0.4), "x": math.log(0.4)}, first, prior
    )
    assert probs is not None
    assert probs[0] == pytest.approx(0.2 / 0.6)
    assert probs[1] == pytest.approx(0.4 * 0.25 / 0.6) and probs[10] == pytest.approx(
        0.4 * 0.75 / 0.6
    )
    assert expected_value(probs) == pytest.approx((0.1 * 1 + 0.3 * 10) / 0.6)
    assert value_probabilities({"x": 0.0}, first, prior) is None


@pytest.mark.parametrize(
    ("name", "merges"),
    [
        ("lp-chars", []),  # every subject token split into characters
        (
            "lp-merge-tab",
            [("g", "\t"), ("\n", "\t"), ("x", "\t")],
        ),  # tab merged with preceding text
        ("lp-ten", [("1", "0")]),  # "10" is one token: read exactly
    ],
)
def test_expected_values_equal_manual_computation(name, merges):
    model = make_model(name, merges)
    sim = LogprobSimulator(model, few_shot=FEW, cache=False)
    result = simulate(sim)
    assert result.error is None
    expected = manual_predictions(model, "dogs", RECORDS, FEW.value_prior())
    assert [len(r) for r in result.predictions] == [2, 3, 1]
    for got, want in zip(result.predictions, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert result.details["prompts"] == 1
    assert bool(result.details["shared_first_tokens"]) == (name != "lp-ten")


def test_tab_merged_with_the_value_is_a_flagged_failure():
    model = make_model("lp-tab-forward", [("\t", "u")])
    result = simulate(LogprobSimulator(model, few_shot=FEW, cache=False))
    assert result.predictions is None
    assert "tab" in result.error or "align" in result.error


def test_records_are_chunked_to_fit_and_cost_at_most_one_pass_each():
    model = make_model("lp-chunks", [])
    local = model.api.local
    sim = LogprobSimulator(model, few_shot=FEW, cache=False, max_prompt_tokens=400)
    records = [[" big", " dog", "!"]] * 12
    before = local.forward_passes
    result = simulate(sim, records=records)
    passes = local.forward_passes - before
    assert result.error is None and len(result.predictions) == 12
    assert 1 < passes == result.details["prompts"] < len(records)
    before = local.forward_passes
    one_prompt = simulate(LogprobSimulator(model, few_shot=FEW, cache=False), records=records[:6])
    assert local.forward_passes - before == one_prompt.details["prompts"] == 1


def test_cached_rerun_makes_no_model_call(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path))
    model = make_model("lp-cache", [])
    local = model.api.local
    sim = LogprobSimulator(model, few_shot=FEW)
    first = simulate(sim)
    after_first = local.forward_passes
    second = simulate(sim)
    assert local.forward_passes == after_first >= 1
    assert second.predictions == first.predictions
    # a different checkpoint under the same name is a cache miss
    register_local_model(
        "lp-cache", local.model, local.tokenizer, revision="lp-cache-r2", device="cpu"
    )
    simulate(LogprobSimulator(model, few_shot=FEW))
    assert model.api.local.forward_passes == 1


def vllm_fixture(prompt_text: str, value_offsets: set[int], dist: dict[str, float]):
    """vLLM's raw prompt_logprobs: None for the first token, then {id: {...}} per token.

    Tokens: maximal runs without tab/newline, single tabs and newlines, digits one by one.
    At value offsets the actual token is "unknown" and the alternatives are ``dist``.
    """
    import re

    pieces = re.findall(r"\d|[^\t\n\d]+|\t|\n", prompt_text)
    raw: list = [None]
    pos = len(pieces[0])
    for i, piece in enumerate(pieces[1:], start=1):
        entry = {str(i): {"logprob": -0.5, "rank": 1, "decoded_token": piece}}
        if pos in value_offsets:
            for j, (t, lp) in enumerate(dist.items()):
                entry[f"alt{j}"] = {"logprob": lp, "rank": j + 2, "decoded_token": t}
        raw.append(entry)
        pos += len(piece)
    return raw


def parse_vllm_prompt_logprobs_raw(raw: list) -> Logprobs:
    """What inspect's ``_openai.parse_vllm_prompt_logprobs_raw`` does (that module needs the
    ``openai`` package, absent offline): skip None, first dict item is the prompt token,
    the rest its alternatives."""
    content = []
    for entry in raw:
        if entry is None:
            continue
        (_, first), *alts = entry.items()
        top = [TopLogprob(token=a["decoded_token"], logprob=a["logprob"]) for _, a in alts] or None
        content.append(
            Logprob(token=first["decoded_token"], logprob=first["logprob"], top_logprobs=top)
        )
    return Logprobs(content=content)


def test_vllm_prompt_logprobs_are_parsed_and_aligned():
    records = [[" big", " dog"]]
    prompt = build_prompt(FEW, "dogs", records)
    dist = {"0": math.log(0.5), "1": math.log(0.3), "7": math.log(0.1), "hello": math.log(0.1)}
    raw = vllm_fixture(prompt.text, {c for r in prompt.value_offsets for c in r}, dist)
    output = ModelOutput.from_content("mockllm/model", "")
    output.choices[0].prompt_logprobs = parse_vllm_prompt_logprobs_raw(raw)
    output.usage = ModelUsage(input_tokens=len(raw), output_tokens=1, total_tokens=len(raw) + 1)
    mock = get_model("mockllm/model", custom_outputs=[output])
    result = simulate(LogprobSimulator(mock, few_shot=FEW, cache=False), records=records)
    assert result.error is None
    prior = FEW.value_prior()
    ten_share = prior[10] / (prior[1] + prior[10])  # the fixture spells 10 as "1","0"
    want = (0.3 * (1 - ten_share) * 1 + 0.3 * ten_share * 10 + 0.1 * 7) / 0.9
    assert result.predictions == [pytest.approx([want, want])]


def test_no_prompt_logprobs_is_a_flagged_failure():
    output = ModelOutput.from_content("mockllm/model", "0")
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    mock = get_model("mockllm/model", custom_outputs=[output])
    result = simulate(LogprobSimulator(mock, few_shot=FEW, cache=False), records=[["a"]])
    assert result.predictions is None and "prompt logprobs" in result.error
