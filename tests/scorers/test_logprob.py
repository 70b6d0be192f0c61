"""Logprob simulator: golden prompt, exact expected values (batched = one record at a time),
"10" on digit-splitting tokenizers, value mass, packed layout, cache, vLLM parsing."""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from inspect_ai.model import Logprob, Logprobs, ModelOutput, ModelUsage, TopLogprob, get_model  # noqa: E402

import neuronbench.models.provider  # noqa: E402,F401
import neuronbench.scorers.simulators.logprob as lp  # noqa: E402
from neuronbench.models.local import register_local_model  # noqa: E402
from neuronbench.scorers.simulators.logprob import (  # noqa: E402
    Example,
    ExampleRecord,
    FewShot,
    LogprobSimulator,
    build_prompt,
    distribution,
    load_few_shot,
)

GOLDEN = Path(__file__).parent / "golden" / "logprob_simulator_prompt.txt"
# The same examples as OpenAI's FewShotExampleSet.TEST, written out by hand.
TEST_FEW = FewShot(
    (
        Example(
            "vowels",
            (
                ExampleRecord(("a", "b", "c"), (1.0, 0.0, 0.0), 0),
                ExampleRecord(("d", "e", "f"), (0.0, 1.0, 0.0), 1),
            ),
        ),
    ),
    source="test",
)
RECORDS = [[" big", " dog"], ["wonderful", "\n", ""], ["cat\tx", "1"]]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest on one thread (and leave the other cores alone)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def simulate(sim, explanation="dogs", records=RECORDS):
    return asyncio.run(sim.simulate(explanation, records))


# --------------------------------------------------------------------------- prompt


def test_prompt_equals_the_hand_written_golden_file():
    prompt = build_prompt(TEST_FEW, " dogs ", [["The", " dog", "\n"]])
    assert prompt.text == GOLDEN.read_text("utf-8")
    (offsets,) = prompt.value_offsets
    assert len(offsets) == 3
    for c in offsets:
        assert prompt.text[c - 1] == "\t" and prompt.text[c:].startswith("unknown\n")
    assert prompt.text.startswith(prompt.prefix) and prompt.prefix.endswith("is find")
    assert [prompt.text[c : c + 2] for c in prompt.revealed_offsets[10]] == ["10", "10"]


def test_packed_prompt_lists_records_in_openai_sequence_format():
    prompt = build_prompt(TEST_FEW, "dogs", [["x"], ["y", "z"]])
    assert prompt.suffix == (
        " dogs\nActivations: \n<start>\nx\tunknown\n<end>\n<start>\ny\tunknown\nz\tunknown\n<end>\n"
    )
    assert [len(o) for o in prompt.value_offsets] == [1, 2]


def test_bundled_examples_start_unknown_and_reveal_the_scale():
    few = load_few_shot()
    assert len(few.examples) == 3 and few.source == "default"
    prompt = build_prompt(few, "x", [["a"]])
    assert {0, 10} <= prompt.revealed_offsets.keys()
    assert any(0 < r.first_revealed < len(r.tokens) for e in few.examples for r in e.records)
    assert "\nActivations: \n<start>\n" in prompt.prefix


def test_openai_examples_need_the_optional_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "neuron_explainer.explanations.few_shot_examples", None)
    with pytest.raises(ValueError, match=r"pip install -e \"\.\[openai-reference\]\""):
        load_few_shot("openai")
    with pytest.raises(ValueError, match="use default, openai or a JSON"):
        load_few_shot("no-such-set")


# --------------------------------------------------------------------------- models


def char_tokenizer(texts: list[str], merges: list[tuple[str, str]]):
    """A BPE over single characters (no pre-tokenizer), with the given merges."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0}
    for ch in sorted(set("".join(texts) + "0123456789a\t\n")):
        vocab.setdefault(ch, len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


def register(name: str, arch: str, tok, context: int = 4096):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=context,
        )
        net = LlamaForCausalLM(config)
    else:
        net = GPT2LMHeadModel(
            GPT2Config(vocab_size=len(tok), n_layer=2, n_embd=32, n_head=4, n_positions=context)
        )
    register_local_model(name, net, tok, revision=f"{name}-r1", device="cpu")
    return get_model(f"neuronbench/{name}", memoize=False)


def tiny_byte_tokenizer(one_token_ten: bool):
    from neuronbench.subjects.models import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.model_max_length = 4096
    if one_token_ten:
        tok.add_tokens(["10"])  # GPT-2-like: "10" is one token
    return tok


def exact_reads(model, prompts):
    """Each prompt on its own, positions found by re-tokenizing prefixes; P("0" | ... "1") by a
    separate forward per position. Returns (predictions per record, masses)."""
    local = model.api.local
    tok, net = local.tokenizer, local.model
    digit = [tok(f"{d}", add_special_tokens=False)["input_ids"] for d in range(10)]
    assert all(len(d) == 1 for d in digit)
    digit = [d[0] for d in digit]
    ten = tok("10", add_special_tokens=False)["input_ids"]
    preds, masses = [], []
    for prompt in prompts:
        ids = tok(prompt.text)["input_ids"]
        with torch.inference_mode():
            rows = torch.log_softmax(net(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        for offsets in prompt.value_offsets:
            row_preds = []
            for c in offsets:
                before = tok(prompt.text[:c])["input_ids"]
                row = rows[len(before) - 1]
                p = [math.exp(float(row[d])) for d in digit]
                if len(ten) == 1:
                    p.append(math.exp(float(row[ten[0]])))
                else:
                    with torch.inference_mode():
                        nxt = net(input_ids=torch.tensor([[*before, digit[1]]])).logits[0, -1]
                    zero = math.exp(float(torch.log_softmax(nxt.float(), -1)[digit[0]]))
                    p.append(p[1] * zero)
                    p[1] *= 1 - zero
                masses.append(sum(p))
                row_preds.append(sum(v * q for v, q in enumerate(p)) / sum(p))
            preds.append(row_preds)
    return preds, masses


def one_at_a_time(model, few, explanation, records):
    return exact_reads(model, [build_prompt(few, explanation, [r]) for r in records])


@pytest.mark.parametrize(
    ("arch", "one_token_ten", "examples"),
    [("llama", False, "default"), ("gpt2", True, "test"), ("gpt2", False, "test")],
)
def test_batched_prefix_cached_reads_equal_one_record_at_a_time(arch, one_token_ten, examples):
    model = register(f"lp-{arch}-{one_token_ten}", arch, tiny_byte_tokenizer(one_token_ten))
    few = load_few_shot() if examples == "default" else TEST_FEW
    sim = LogprobSimulator(model, few_shot=few, cache=False)
    local = model.api.local
    first = simulate(sim)
    assert first.error is None, first.error
    want, masses = one_at_a_time(model, few, "dogs", RECORDS)
    for got, exp in zip(first.predictions, want, strict=True):
        assert got == pytest.approx(exp, abs=1e-5)
    assert first.details["value_mass"]["median"] == pytest.approx(
        statistics.median(masses), abs=1e-6
    )
    assert first.details["value_mass"]["min"] == pytest.approx(min(masses), abs=1e-6)
    assert first.details["ten"] == ("one_token" if one_token_ten else "exact_two_tokens")
    # the shared prefix is cached: another neuron costs exactly one pass per record
    before = local.forward_passes
    other = simulate(sim, "cats and other pets", RECORDS[:2])
    assert local.forward_passes - before == 2 and other.details["prompts"] == 2
    want, _ = one_at_a_time(model, few, "cats and other pets", RECORDS[:2])
    for got, exp in zip(other.predictions, want, strict=True):
        assert got == pytest.approx(exp, abs=1e-5)


@pytest.mark.parametrize(
    ("name", "merges"),
    [
        ("lp-chars", []),  # every subject token split into characters
        ("lp-merge-tab", [("g", "\t"), ("\n", "\t"), ("x", "\t")]),  # tab merged with text before
        ("lp-merge-prefix", [("d", " "), ("d ", "d")]),  # prefix end merges with the suffix
    ],
)
def test_alignment_with_split_and_merged_tokens(name, merges):
    texts = [build_prompt(TEST_FEW, "dogs", [r]).text for r in RECORDS]
    model = register(name, "llama", char_tokenizer(texts, merges))
    result = simulate(LogprobSimulator(model, few_shot=TEST_FEW, cache=False))
    assert result.error is None, result.error
    want, _ = one_at_a_time(model, TEST_FEW, "dogs", RECORDS)
    for got, exp in zip(result.predictions, want, strict=True):
        assert got == pytest.approx(exp, abs=1e-5)


def test_tab_merged_with_the_value_is_a_flagged_failure():
    texts = [build_prompt(TEST_FEW, "dogs", [r]).text for r in RECORDS]
    model = register("lp-tab-forward", "llama", char_tokenizer(texts, [("\t", "u")]))
    result = simulate(LogprobSimulator(model, few_shot=TEST_FEW, cache=False))
    assert result.predictions is None
    assert "merges a tab with the text after it" in result.error and "record 0" in result.error


def test_ten_splits_the_mass_of_one_by_p_zero_after_one():
    probs = [0.1, 0.4] + [0.0] * 7 + [0.1]  # P("0")..P("9"); "1" also starts "10"
    dist, mass = distribution(probs, zero_after_one=0.25)
    assert mass == pytest.approx(0.6)
    assert dist[1] == pytest.approx(0.3 / 0.6) and dist[10] == pytest.approx(0.1 / 0.6)
    assert lp.expected_value(dist) == pytest.approx((0.3 + 0.9 + 1.0) / 0.6)
    assert distribution([0.0] * 11) == (None, 0.0)
    with pytest.raises(ValueError):
        distribution(probs)


def test_low_value_mass_is_flagged_not_dropped(monkeypatch):
    model = register("lp-mass", "llama", tiny_byte_tokenizer(False))
    sim = LogprobSimulator(model, few_shot=TEST_FEW, cache=False)
    result = simulate(sim)
    median = result.details["value_mass"]["median"]
    assert 0 < result.details["value_mass"]["min"] <= median < 1
    assert "low_value_mass" not in result.details["flags"]
    monkeypatch.setattr(lp, "LOW_VALUE_MASS", median * 1.01)
    flagged = simulate(sim)
    assert flagged.details["flags"] == ["low_value_mass"]
    assert flagged.predictions == result.predictions  # still scored


def test_packed_layout_is_an_explicit_option():
    model = register("lp-packed", "llama", tiny_byte_tokenizer(False))
    records = [[" big", " dog", "!"], ["a", "1"], ["x"]] * 2
    result = simulate(
        LogprobSimulator(model, few_shot=TEST_FEW, cache=False, layout="packed"), records=records
    )
    assert result.details["layout"] == "packed" and result.details["prompts"] == 1
    want, _ = exact_reads(model, [build_prompt(TEST_FEW, "dogs", records)])
    for got, exp in zip(result.predictions, want, strict=True):
        assert got == pytest.approx(exp, abs=1e-5)
    tok = model.api.local.tokenizer
    limit = len(tok(build_prompt(TEST_FEW, "dogs", records[:2]).text)["input_ids"])
    sim = LogprobSimulator(
        model, few_shot=TEST_FEW, cache=False, layout="packed", max_prompt_tokens=limit
    )
    chunks = sim.chunks("dogs", records)
    assert chunks[0] == (0, 2) and len(chunks) == 3
    chunked = simulate(sim, records=records)
    want, _ = exact_reads(model, [build_prompt(TEST_FEW, "dogs", records[s:e]) for s, e in chunks])
    assert chunked.details["prompts"] == 3
    for got, exp in zip(chunked.predictions, want, strict=True):
        assert got == pytest.approx(exp, abs=1e-5)
    with pytest.raises(ValueError, match="layout"):
        LogprobSimulator(model, layout="sideways")


def test_cached_rerun_makes_no_model_call(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path))
    model = register("lp-cache", "llama", tiny_byte_tokenizer(False))
    local = model.api.local
    sim = LogprobSimulator(model, few_shot=TEST_FEW)
    first = simulate(sim)
    after_first = local.forward_passes
    second = simulate(sim)
    assert local.forward_passes == after_first >= len(RECORDS)
    assert second.predictions == first.predictions
    # a different checkpoint under the same name is a cache miss
    register_local_model(
        "lp-cache", local.model, local.tokenizer, revision="lp-cache-r2", device="cpu"
    )
    simulate(LogprobSimulator(model, few_shot=TEST_FEW))
    assert model.api.local.forward_passes == 1 + len(RECORDS)


# --------------------------------------------------------------------------- vLLM


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
            for j, (t, lp_) in enumerate(dist.items()):
                entry[f"alt{j}"] = {"logprob": lp_, "rank": j + 2, "decoded_token": t}
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


def test_vllm_prompt_logprobs_one_request_per_record():
    records = [[" big", " dog"], ["cat"]]
    dists = {
        "big": {"0": math.log(0.5), "1": math.log(0.3), "7": math.log(0.1), "hi": math.log(0.1)},
        "cat": {"0": math.log(0.2), "9": math.log(0.2)},
    }
    prompts = []

    def answer(input, tools, tool_choice, config):
        text = input[0].text
        prompts.append(text)
        (prompt,) = [
            build_prompt(TEST_FEW, "dogs", [r])
            for r in records
            if build_prompt(TEST_FEW, "dogs", [r]).text == text
        ]
        dist = dists["big" if " big" in prompt.suffix else "cat"]
        raw = vllm_fixture(text, {c for r in prompt.value_offsets for c in r}, dist)
        output = ModelOutput.from_content("mockllm/model", "")
        output.choices[0].prompt_logprobs = parse_vllm_prompt_logprobs_raw(raw)
        output.usage = ModelUsage(input_tokens=len(raw), output_tokens=1, total_tokens=len(raw) + 1)
        return output

    mock = get_model("mockllm/model", custom_outputs=answer)
    result = simulate(LogprobSimulator(mock, few_shot=TEST_FEW, cache=False), records=records)
    assert result.error is None and len(prompts) == 2
    # as OpenAI's parser: only "0".."10" are values; the fixture splits "10", so "1" is 1
    big = (0.3 * 1 + 0.1 * 7) / 0.9
    assert result.predictions == [pytest.approx([big, big]), pytest.approx([9 * 0.2 / 0.4])]
    assert result.details["ten"] == "not_read"
    assert result.details["value_mass"]["min"] == pytest.approx(0.4)


def test_no_prompt_logprobs_is_a_flagged_failure():
    output = ModelOutput.from_content("mockllm/model", "0")
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    mock = get_model("mockllm/model", custom_outputs=[output])
    result = simulate(LogprobSimulator(mock, few_shot=TEST_FEW, cache=False), records=[["a"]])
    assert result.predictions is None and "prompt logprobs" in result.error


# --------------------------------------------------------------------------- options


def test_simulator_options_reach_the_logprob_simulator(monkeypatch):
    from neuronbench.scorers.registry import make_simulator

    model = register("lp-options", "llama", tiny_byte_tokenizer(False))
    sim = make_simulator("logprob", model, examples="openai", layout="packed")
    assert sim.few_shot.source == "openai" and sim.layout == "packed"
    assert len(sim.few_shot.examples) == 3
    assert make_simulator("lexical", None, examples="openai").name == "lexical"
    with pytest.raises(ValueError, match="unknown simulator option"):
        make_simulator("logprob", model, example="openai")


def test_task_passes_simulator_examples_to_the_scorer(tmp_path):
    import json

    from tests.evals._helpers import run, write_dataset

    examples = tmp_path / "examples.json"
    examples.write_text(
        json.dumps(
            {
                "examples": [
                    {
                        "explanation": "the letter r",
                        "records": [
                            {
                                "tokens": ["a", " r", "b"],
                                "activations": [0, 3, 0],
                                "first_revealed": 1,
                            }
                        ],
                    }
                ]
            }
        )
    )
    register("lp-task", "llama", tiny_byte_tokenizer(False))
    dataset = write_dataset(tmp_path / "ds", layers=(0,), per_layer=1)
    log = run(
        dataset,
        tmp_path,
        scorer="simulation",
        simulator_model="neuronbench/lp-task",
        simulator_examples=str(examples),
        n_score_records=2,
    )
    assert log.eval.metadata["args"]["simulator_examples"] == str(examples)
    (sample,) = log.samples
    details = sample.scores["simulation"].metadata["simulation_details"]
    assert details["examples"] == str(examples) and details["layout"] == "all_at_once"
    assert details["prompts"] == 4  # one prompt per scored record (2 top + 2 random)
    assert 0 < details["value_mass"]["min"] <= details["value_mass"]["median"] <= 1
    with pytest.raises(ValueError, match="use default, openai or a JSON"):
        run(dataset, tmp_path, scorer="simulation", simulator_examples="nope.json")


@pytest.mark.weights
def test_smollm2_batched_reads_equal_one_record_at_a_time():
    model = get_model("neuronbench/smollm2")
    records = [
        [" It", " is", " a", " truth", " universally", " acknowledged", "."],
        ["10", "%", "\n"],
    ]
    sim = LogprobSimulator(model, cache=False)
    result = simulate(sim, "words about truth and knowledge", records)
    assert result.error is None and result.details["ten"] == "exact_two_tokens"
    want, masses = one_at_a_time(model, sim.few_shot, "words about truth and knowledge", records)
    for got, exp in zip(result.predictions, want, strict=True):
        assert got == pytest.approx(exp, abs=1e-4)
    assert result.details["value_mass"]["median"] == pytest.approx(
        statistics.median(masses), abs=1e-5
    )
