"""Batched prompt logprobs: a padded batch over a cached shared prefix, with tree-attention
branch tokens, equals one plain forward per text (and per branch)."""

from __future__ import annotations

import asyncio

import pytest

torch = pytest.importorskip("torch")

from inspect_ai.model import GenerateConfig, get_model  # noqa: E402

import neuronbench.models.provider  # noqa: E402,F401
from neuronbench.models.local import batched_logprobs  # noqa: E402

PREFIX = "We study neurons.\nNeuron 2: the main thing"
SUFFIXES = [
    " dogs\n<start>\nthe\tunknown\n<end>\n",
    " cats and mats\n<start>\na\tunknown\nb\tunknown\n<end>\n",
    "",
]
TOKEN_IDS = [5, 17, 40, 300]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gpt2"])
def model(request):
    return get_model(f"neuronbench/{request.param}", memoize=False)


def offsets_of(text: str) -> list[int]:
    return [i + 1 for i, ch in enumerate(text) if ch == "\t"] + [len(text)]


def flat(nested) -> list[float]:
    return [x for rows in nested for row in rows for x in row]


def direct(local, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return torch.log_softmax(local.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)


def test_batched_reads_and_branches_equal_separate_forwards(model):
    local = model.api.local
    tok = local.tokenizer
    branch = TOKEN_IDS[1]
    offsets = [offsets_of(PREFIX + s) for s in SUFFIXES]
    before = local.forward_passes
    out = batched_logprobs(local, PREFIX, SUFFIXES, offsets, TOKEN_IDS, branch_token=branch)
    assert local.forward_passes - before == 1 + len(SUFFIXES)  # the prefix once, a row per text
    for i, suffix in enumerate(SUFFIXES):
        text = PREFIX + suffix
        rows = direct(local, tok(text)["input_ids"])
        assert out.n_tokens[i] == len(tok(text)["input_ids"])
        for k, c in enumerate(offsets[i]):
            ids = tok(text[:c])["input_ids"]
            assert out.logprobs[i][k] == pytest.approx(
                rows[len(ids) - 1, TOKEN_IDS].tolist(), abs=1e-5
            )
            after = direct(local, [*ids, branch])[-1, TOKEN_IDS].tolist()
            assert out.branch_logprobs[i][k] == pytest.approx(after, abs=1e-5)
    # the prefix is cached: the same request again runs only the rows
    before = local.forward_passes
    again = batched_logprobs(local, PREFIX, SUFFIXES, offsets, TOKEN_IDS, branch_token=branch)
    assert local.forward_passes - before == len(SUFFIXES) and flat(again.logprobs) == pytest.approx(
        flat(out.logprobs)
    )


def test_provider_serves_the_batched_request(model):
    local = model.api.local
    offsets = [offsets_of(PREFIX + s) for s in SUFFIXES]
    request = {"suffixes": SUFFIXES, "offsets": offsets, "token_ids": TOKEN_IDS, "branch_token": 3}
    out = asyncio.run(
        model.generate(PREFIX, config=GenerateConfig(extra_body={"prompt_logprobs": request}))
    )
    want = batched_logprobs(local, PREFIX, SUFFIXES, offsets, TOKEN_IDS, branch_token=3)
    assert flat(out.metadata["prompt_logprobs"]) == pytest.approx(flat(want.logprobs))
    assert flat(out.metadata["branch_logprobs"]) == pytest.approx(flat(want.branch_logprobs))
    assert out.metadata["prompt_tokens"] == want.n_tokens
    assert out.completion == "" and out.usage.input_tokens == sum(want.n_tokens)
