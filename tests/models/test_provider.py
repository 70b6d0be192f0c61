"""The local provider: exact logprobs, greedy/seeded generation, own token counting, alignment."""

from __future__ import annotations

import asyncio

import pytest

torch = pytest.importorskip("torch")

from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, get_model  # noqa: E402

import neuronbench.models.provider  # noqa: E402,F401  (registers the neuronbench/ model API)
from neuronbench.models.local import (  # noqa: E402
    LocalModelError,
    get_local_model,
    token_positions_for_offsets,
)


@pytest.fixture(scope="module")
def model():
    return get_model("neuronbench/tiny-llama", memoize=False)


def run(coro):
    return asyncio.run(coro)


def direct_logprobs(local, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        logits = local.model(input_ids=torch.tensor([ids])).logits[0]  # (seq, vocab)
    return torch.log_softmax(logits.float(), dim=-1)


def test_generated_logprobs_equal_log_softmax_of_logits(model):
    out = run(
        model.generate(
            "Tell me a story.", config=GenerateConfig(max_tokens=6, logprobs=True, top_logprobs=3)
        )
    )
    local = model.api.local
    prompt_ids = local.tokenizer(
        model.api.render([ChatMessageUser(content="Tell me a story.")]), add_special_tokens=False
    )["input_ids"]
    content = out.choices[0].logprobs.content
    gen_ids = [
        local.tokenizer.convert_tokens_to_ids(local.tokenizer.tokenize(c.token))[0] for c in content
    ]
    rows = direct_logprobs(local, prompt_ids + gen_ids)
    assert len(content) == 6
    for i, entry in enumerate(content):
        row = rows[len(prompt_ids) - 1 + i]
        assert gen_ids[i] == int(row.argmax())  # greedy by default
        assert entry.logprob == pytest.approx(float(row[gen_ids[i]]), abs=1e-5)
        top = torch.topk(row, 3)
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(
            top.values.tolist(), abs=1e-5
        )
    assert out.usage.input_tokens == len(prompt_ids)
    assert out.usage.output_tokens == 6


def test_prompt_logprob_request_equals_direct_forward(model):
    local = model.api.local
    text = "the cat\tunknown\nsat\tunknown\n"
    offsets = [text.index("\t") + 1, text.rindex("\t") + 1, len(text)]
    token_ids = [5, 17, 40, 300]
    out = run(
        model.generate(
            text,
            config=GenerateConfig(
                extra_body={"prompt_logprobs": {"offsets": offsets, "token_ids": token_ids}}
            ),
        )
    )
    ids = local.tokenizer(text)["input_ids"]
    rows = direct_logprobs(local, ids)
    for c, got in zip(offsets, out.metadata["prompt_logprobs"], strict=True):
        pos = len(local.tokenizer(text[:c])["input_ids"]) - 1  # independent of offset mapping
        assert got == pytest.approx(rows[pos, token_ids].tolist(), abs=1e-5)
    assert out.metadata["revision"] == local.revision
    assert out.usage.input_tokens == len(ids) and out.completion == ""


def test_prompt_logprob_request_rejects_offset_inside_a_token(model):
    text = "unknown words"
    with pytest.raises(Exception, match="not a token boundary"):
        run(
            model.generate(
                text,
                config=GenerateConfig(
                    extra_body={"prompt_logprobs": {"offsets": [3], "token_ids": [1]}}
                ),
            )
        )


def test_vllm_style_prompt_logprobs(model):
    local = model.api.local
    text = "the cat sat"
    out = run(
        model.generate(
            text,
            config=GenerateConfig(max_tokens=1, prompt_logprobs=2, extra_body={"raw_prompt": True}),
        )
    )
    ids = local.tokenizer(text)["input_ids"]
    rows = direct_logprobs(local, ids)
    entries = out.choices[0].prompt_logprobs.content
    assert len(entries) == len(ids) - 1
    for i, entry in enumerate(entries):
        assert entry.logprob == pytest.approx(float(rows[i, ids[i + 1]]), abs=1e-5)
        assert len(entry.top_logprobs) == 2


def test_greedy_is_reproducible_and_sampling_follows_seed(model):
    greedy = [
        run(model.generate("Hi", config=GenerateConfig(max_tokens=5))).completion for _ in range(2)
    ]
    assert greedy[0] == greedy[1]
    cfg = GenerateConfig(max_tokens=12, temperature=1.5, seed=7)
    a, b = (run(model.generate("Hi", config=cfg)).completion for _ in range(2))
    c = run(model.generate("Hi", config=cfg.merge(GenerateConfig(seed=8)))).completion
    assert a == b
    assert a != c  # a 512-token random model: two seeds agreeing on 12 tokens is ~impossible


def test_counts_tokens_with_its_own_tokenizer(model):
    tok = model.api.local.tokenizer
    text = "Neurons fire on the word Austen."
    assert run(model.count_tokens(text)) == len(tok(text, add_special_tokens=False)["input_ids"])
    chat = [ChatMessageSystem(content="Be brief."), ChatMessageUser(content=text)]
    rendered = tok.apply_chat_template(
        [{"role": m.role, "content": m.text} for m in chat],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert run(model.count_tokens(chat)) == len(
        tok(rendered, add_special_tokens=False)["input_ids"]
    )


def test_stop_sequence_cuts_completion(model):
    full = run(model.generate("Hi", config=GenerateConfig(max_tokens=8))).completion
    assert full
    cut = run(model.generate("Hi", config=GenerateConfig(max_tokens=8, stop_seqs=[full[:1]])))
    assert cut.completion == "" and cut.choices[0].stop_reason == "stop"


def test_models_are_loaded_once_per_process(model):
    other = get_model("neuronbench/tiny-llama", memoize=False)
    assert other.api.local is model.api.local is get_local_model("tiny-llama")


def test_token_positions_split_and_merged_tokens():
    # "ab\tunknown": a subject token split in two pieces, the tab its own token.
    assert token_positions_for_offsets([(0, 1), (1, 2), (2, 3), (3, 10)], [3], 10) == [2]
    # tab merged with the preceding text ("b\t"): the merged token still predicts offset 3.
    assert token_positions_for_offsets([(0, 1), (1, 3), (3, 10)], [3], 10) == [1]
    # special BOS token (0, 0) before the text shifts positions by one.
    assert token_positions_for_offsets([(0, 0), (0, 3), (3, 10)], [3, 10], 10) == [1, 2]
    # tab merged with what follows ("\tunk"): no position predicts offset 3.
    with pytest.raises(LocalModelError, match="not a token boundary"):
        token_positions_for_offsets([(0, 2), (2, 6), (6, 10)], [3], 10)
