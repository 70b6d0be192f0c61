"""In-process transformers models for the local provider: load once, share, run exactly.

One process keeps one copy of each model (keyed by name and device), so the explainer
and simulator roles of an eval share it. Every model call takes the model's lock: the
provider runs them in worker threads, and a transformers model is not safe to drive
from two threads at once.

The numerical functions here are plain synchronous code (tokenize, forward, generate);
the inspect ``ModelAPI`` in ``provider.py`` wraps them. Torch is imported inside them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TINY_MODELS = {"tiny-llama": "llama", "tiny-gpt2": "gpt2"}
"""Test model names served by ``neuronbench.subjects.models.tiny_subject``."""


class LocalModelError(ValueError):
    """A local model request that cannot be served; the message names the model."""


@dataclass
class LocalModel:
    """A loaded causal LM with what the provider needs to run and identify it."""

    name: str
    """The name the provider was asked for (``smollm2``, ``tiny-llama``, a path...)."""
    model: Any
    """The transformers causal LM, in eval mode, on ``device``."""
    tokenizer: Any
    """Its tokenizer; must be a fast tokenizer for offset-based prompt logprobs."""
    revision: str
    """Exactly which weights were loaded (hub commit or weights hash): part of cache keys."""
    device: str
    """Torch device the model runs on."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Serializes model calls from provider worker threads."""
    forward_passes: int = 0
    """Sequences run through the model so far: a padded batch of n texts counts n, a
    shared-prefix computation 1, a generation call 1. Lets tests and benchmarks prove a
    cached call reached no model and count passes per record."""
    prefix_cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    """Per-layer keys and values of recently used shared prompt prefixes (by token ids and
    revision): the few-shot part of the simulator prompt runs once, not once per record."""

    @property
    def context_length(self) -> int:
        """Longest token sequence the model accepts."""
        config = self.model.config
        for attr in ("max_position_embeddings", "n_positions"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return int(getattr(self.tokenizer, "model_max_length", 2048))


_MODELS: dict[tuple[str, str], LocalModel] = {}
_LOAD_LOCK = threading.Lock()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def register_local_model(
    name: str, model: Any, tokenizer: Any, revision: str, device: str | None = None
) -> LocalModel:
    """Serve an already-built model as ``neuronbench/<name>`` (tests, notebooks).

    Replaces any model cached under the same name and device.
    """
    device = device or str(getattr(model, "device", "cpu"))
    local = LocalModel(
        name=name, model=model.eval(), tokenizer=tokenizer, revision=revision, device=device
    )
    _MODELS[(name, device)] = local
    return local


def get_local_model(name: str, device: str | None = None) -> LocalModel:
    """The process-wide instance of model ``name``, loading it on first use.

    ``smollm2`` is the offline default (``load_subject``); ``tiny-llama`` / ``tiny-gpt2``
    are random-init test models; any other name is a Hugging Face id or local path.
    """
    if device is None:
        # Any device already serving this name (e.g. a registered test model) will do.
        loaded = next((m for (n, _), m in _MODELS.items() if n == name), None)
        if loaded is not None:
            return loaded
        device = default_device()
    with _LOAD_LOCK:
        key = (name, device)
        if key not in _MODELS:
            _MODELS[key] = _load(name, device)
        return _MODELS[key]


def _load(name: str, device: str) -> LocalModel:
    from neuronbench.subjects.models import load_subject, tiny_subject

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if name in TINY_MODELS:
        subject = tiny_subject(TINY_MODELS[name])  # type: ignore[arg-type]
    else:
        try:
            subject = load_subject(name)
        except Exception as ex:  # noqa: BLE001 - re-raised with the provider's model name
            raise LocalModelError(f"neuronbench/{name}: cannot load model: {ex}") from ex
    model = subject.model.to(device).eval()
    return LocalModel(
        name=name,
        model=model,
        tokenizer=subject.tokenizer,
        revision=subject.revision,
        device=device,
    )


def token_positions_for_offsets(
    offset_mapping: Sequence[tuple[int, int]], char_offsets: Sequence[int], text_length: int
) -> list[int]:
    """For each character offset, the token position whose logits predict the text there.

    The distribution over what follows ``text[:c]`` is the model's output at the last
    token that ends at or before ``c``: a token must *start* exactly at ``c`` (or ``c`` is
    the end of the text). A token straddling ``c`` means the tokenizer merged the text
    before ``c`` with the text after it, so no single position predicts ``text[c:]``:
    that is an error, not an approximation.

    Args:
        offset_mapping: ``(start, end)`` character span per token; special tokens ``(0, 0)``.
        char_offsets: offsets into the text, each > 0.
        text_length: length of the text (an offset equal to it predicts the next token).
    """
    starts: dict[int, int] = {}
    last_text_token = -1
    for i, (start, end) in enumerate(offset_mapping):
        if end > start:
            starts.setdefault(start, i)
            last_text_token = i
    positions = []
    for c in char_offsets:
        if c == text_length:
            k = last_text_token + 1
        elif c in starts:
            k = starts[c]
        else:
            span = next(((s, e) for s, e in offset_mapping if s < c < e), None)
            raise LocalModelError(
                f"character offset {c} is not a token boundary (a token spans {span})"
            )
        if k < 1:
            raise LocalModelError(f"character offset {c} has no preceding token to predict it")
        positions.append(k - 1)
    return positions


def encode(local: LocalModel, text: str, *, add_special_tokens: bool) -> dict[str, Any]:
    """Token ids (and offsets, for fast tokenizers) of ``text``, checked against the context."""
    tok = local.tokenizer
    enc = tok(text, add_special_tokens=add_special_tokens, return_offsets_mapping=bool(tok.is_fast))
    n = len(enc["input_ids"])
    if n > local.context_length:
        raise LocalModelError(
            f"neuronbench/{local.name}: prompt of {n} tokens exceeds the context of {local.context_length}"
        )
    return dict(enc)


def selected_logprobs(
    local: LocalModel, text: str, char_offsets: Sequence[int], token_ids: Sequence[int]
) -> tuple[list[list[float]], int]:
    """Exact next-token logprobs of ``token_ids`` after each ``text[:c]``, in one forward pass.

    Returns ``(logprobs, n_prompt_tokens)`` with ``logprobs[i][j]`` =
    ``log_softmax(logits at the position predicting char_offsets[i])[token_ids[j]]``.
    """
    out = batched_logprobs(local, text, [""], [char_offsets], token_ids, cache_prefix=False)
    return out.logprobs[0], out.n_tokens[0]


MAX_BATCH_TOKENS = 8192
"""Query tokens per padded forward pass: a neuron's records are split into passes of this size."""
PREFIX_CACHE_SIZE = 2
"""Shared-prefix KV caches kept per model (one per few-shot set in use)."""


@dataclass
class BatchedLogprobs:
    """What :func:`batched_logprobs` read: per text, per offset, per requested token id."""

    logprobs: list[list[list[float]]]
    """``logprobs[i][k][j]``: log P(token_ids[j] | (prefix + suffixes[i])[:offsets[i][k]])."""
    branch_logprobs: list[list[list[float]]] | None
    """Same, with ``branch_token`` appended after each offset's prefix; None without a branch."""
    n_tokens: list[int]
    """Prompt tokens of each full text (prefix + suffix)."""


def batched_logprobs(
    local: LocalModel,
    prefix: str,
    suffixes: Sequence[str],
    offsets: Sequence[Sequence[int]],
    token_ids: Sequence[int],
    *,
    branch_token: int | None = None,
    cache_prefix: bool = True,
) -> BatchedLogprobs:
    """Exact next-token logprobs at character offsets of several texts sharing a prefix.

    Each text is ``prefix + suffixes[i]`` (offsets index into it). The texts run as one
    padded batch: one row (one forward pass) per text, never one per offset. With
    ``cache_prefix`` the keys and values of the shared prefix are computed once per
    model and prefix and reused: causal attention makes this exact, and the rows then
    only run their own suffix. ``branch_token`` (e.g. the id of "1") adds, per offset,
    one more token at the position that follows ``text[:c]``, seeing only ``text[:c]``
    and itself (tree attention): its logits give ``P(next | text[:c] + branch_token)``
    in the same pass, exactly as a separate forward over ``text[:c]`` plus the token would.
    """
    import torch

    if not local.tokenizer.is_fast:
        raise LocalModelError(
            f"neuronbench/{local.name}: prompt logprobs need a fast tokenizer (offsets)"
        )
    if len(suffixes) != len(offsets):
        raise LocalModelError(f"{len(suffixes)} suffixes but {len(offsets)} offset lists")
    vocab = local.model.get_output_embeddings().weight.shape[0]
    bad = [
        t
        for t in [*token_ids, *([branch_token] if branch_token is not None else [])]
        if not 0 <= t < vocab
    ]
    if bad:
        raise LocalModelError(f"neuronbench/{local.name}: token ids {bad} outside the vocabulary")
    rows: list[tuple[list[int], list[int]]] = []  # per text: (token ids, read positions)
    for i, (suffix, offs) in enumerate(zip(suffixes, offsets, strict=True)):
        text = prefix + suffix
        enc = encode(local, text, add_special_tokens=True)
        try:
            positions = token_positions_for_offsets(enc["offset_mapping"], offs, len(text))
        except LocalModelError as ex:
            raise LocalModelError(f"text {i}: {ex}") from ex
        rows.append((list(enc["input_ids"]), positions))
        if branch_token is not None and len(enc["input_ids"]) + len(offs) > local.context_length:
            raise LocalModelError(
                f"neuronbench/{local.name}: text {i} with its branch tokens exceeds the context "
                f"of {local.context_length}"
            )
    with local.lock, torch.inference_mode():
        kv, n_cached = _prefix_kv(local, prefix, rows) if cache_prefix and rows else (None, 0)
        reads: list[list[list[float]]] = []
        branches: list[list[list[float]]] = []
        start = 0
        while start < len(rows):
            end = start + 1
            width = _row_width(rows[start], n_cached, branch_token)
            while end < len(rows):
                wider = max(width, _row_width(rows[end], n_cached, branch_token))
                if wider * (end + 1 - start) > MAX_BATCH_TOKENS:
                    break
                width, end = wider, end + 1
            got, got_branch = _run_rows(
                local, rows[start:end], kv, n_cached, token_ids, branch_token
            )
            reads += got
            branches += got_branch
            start = end
    return BatchedLogprobs(
        reads, branches if branch_token is not None else None, [len(ids) for ids, _ in rows]
    )


def _row_width(row: tuple[list[int], list[int]], n_cached: int, branch: int | None) -> int:
    ids, positions = row
    return len(ids) - n_cached + (len(positions) if branch is not None else 0)


def _prefix_kv(
    local: LocalModel, prefix: str, rows: Sequence[tuple[list[int], list[int]]]
) -> tuple[Any, int]:
    """The cached per-layer (keys, values) of the prefix and how many tokens of it all rows share.

    A tokenizer may merge the prefix's last characters with the suffix, so only the
    tokens every row starts with are reused (causal attention makes any leading slice of
    the prefix's cache exact); read positions must lie after them.
    """
    import torch

    prefix_ids = tuple(encode(local, prefix, add_special_tokens=True)["input_ids"])
    n = len(prefix_ids)
    for ids, positions in rows:
        same = 0
        while same < min(n, len(ids)) and ids[same] == prefix_ids[same]:
            same += 1
        n = min(n, same, min(positions, default=same))
    if n == 0:
        return None, 0
    key = (prefix_ids, str(local.revision))
    kv = local.prefix_cache.get(key)
    if kv is None:
        out = local.model.base_model(
            input_ids=torch.tensor([list(prefix_ids)], device=local.device), use_cache=True
        )
        local.forward_passes += 1
        cache = getattr(out, "cache", None) or out.past_key_values
        kv = [(layer[0], layer[1]) for layer in cache]
        while len(local.prefix_cache) >= PREFIX_CACHE_SIZE:
            local.prefix_cache.pop(next(iter(local.prefix_cache)))
        local.prefix_cache[key] = kv
    return kv, n


def _run_rows(
    local: LocalModel,
    rows: Sequence[tuple[list[int], list[int]]],
    kv: Any,
    n_cached: int,
    token_ids: Sequence[int],
    branch: int | None,
) -> tuple[list[list[list[float]]], list[list[list[float]]]]:
    """One padded forward over ``rows`` after ``n_cached`` cached prefix tokens.

    Row layout: the text's own tokens after the cached prefix, then (with ``branch``) one
    branch token per read position, then padding. The 4D mask gives every query the
    cached prefix; text tokens see earlier text tokens; a branch token sees the text up
    to its read position and itself; padding sees only the prefix and itself.
    """
    import torch

    model = local.model
    dtype = next(model.parameters()).dtype
    width = max(1, *(_row_width(r, n_cached, branch) for r in rows))
    n_rows = len(rows)
    ids = torch.zeros((n_rows, width), dtype=torch.long)  # (batch, width)
    pos = torch.zeros((n_rows, width), dtype=torch.long)  # (batch, width)
    allow = torch.zeros((n_rows, width, n_cached + width), dtype=torch.bool)
    allow[:, :, :n_cached] = True
    read_rows: list[tuple[int, int]] = []  # (batch row, query index) of each read
    branch_rows: list[tuple[int, int]] = []
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    for b, (tokens, positions) in enumerate(rows):
        own = len(tokens) - n_cached
        ids[b, :own] = torch.tensor(tokens[n_cached:])
        pos[b, :own] = torch.arange(n_cached, len(tokens))
        allow[b, :own, n_cached : n_cached + own] = causal[:own, :own]
        read_rows += [(b, p - n_cached) for p in positions]
        extra = own
        if branch is not None:
            for k, p in enumerate(positions):
                q = own + k
                ids[b, q] = branch
                pos[b, q] = p + 1
                allow[b, q, n_cached : p + 1] = True  # text tokens at positions <= p
                allow[b, q, n_cached + q] = True
                branch_rows.append((b, q))
            extra = own + len(positions)
        for q in range(extra, width):
            pos[b, q] = n_cached + q
            allow[b, q, n_cached + q] = True
    mask = torch.zeros(allow.shape, dtype=dtype)
    mask.masked_fill_(~allow, torch.finfo(dtype).min)
    mask = mask[:, None].to(local.device)  # (batch, 1, width, n_cached + width)
    kwargs: dict[str, Any] = {}
    if kv is not None:
        from transformers import DynamicCache

        # expand() makes no copy; each layer concatenates its new keys into a fresh tensor.
        layers = tuple(
            (
                k[:, :, :n_cached].expand(n_rows, -1, -1, -1),
                v[:, :, :n_cached].expand(n_rows, -1, -1, -1),
            )
            for k, v in kv
        )
        kwargs[_cache_kwarg(model.base_model)] = DynamicCache(layers)
    hidden = model.base_model(
        input_ids=ids.to(local.device),
        position_ids=pos.to(local.device),
        attention_mask=mask,
        use_cache=kv is not None,
        **kwargs,
    ).last_hidden_state  # (batch, width, d_model)
    local.forward_passes += n_rows
    chosen = _selected(model, hidden, read_rows + branch_rows, list(token_ids))
    reads = chosen[: len(read_rows)]
    branched = chosen[len(read_rows) :]
    out_reads: list[list[list[float]]] = []
    out_branch: list[list[list[float]]] = []
    i = 0
    for _, positions in rows:
        out_reads.append(reads[i : i + len(positions)])
        if branch is not None:
            out_branch.append(branched[i : i + len(positions)])
        i += len(positions)
    return out_reads, out_branch


def _cache_kwarg(base: Any) -> str:
    """transformers 5 names the KV cache argument ``cache``; 4.x ``past_key_values``."""
    import inspect

    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


LOGIT_ROWS = 512
"""Hidden states sent through the LM head at once (bounds the (rows, vocab) logits)."""


def _selected(
    model: Any, hidden: Any, where: Sequence[tuple[int, int]], token_ids: list[int]
) -> list[list[float]]:
    """log_softmax over the vocabulary at each ``(row, query)`` of ``hidden``, at ``token_ids``."""
    import torch

    if not where:
        return []
    head = model.get_output_embeddings()
    cap = getattr(model.config, "final_logit_softcapping", None)
    index = torch.tensor(where, device=hidden.device)  # (n, 2)
    picked = hidden[index[:, 0], index[:, 1]]  # (n, d_model)
    out: list[list[float]] = []
    for start in range(0, len(where), LOGIT_ROWS):
        logits = head(picked[start : start + LOGIT_ROWS]).float()  # (rows, vocab)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        out += torch.log_softmax(logits, dim=-1)[:, token_ids].tolist()
    return out


def all_prompt_logprobs(
    local: LocalModel, text: str, top: int, *, add_special_tokens: bool
) -> list[dict[str, Any]]:
    """vLLM-style prompt logprobs: for every token after the first, its logprob and the top ``top``.

    Each entry is ``{"token": str, "logprob": float, "top": [(token, logprob), ...]}``.
    """
    import torch

    ids = encode(local, text, add_special_tokens=add_special_tokens)["input_ids"]
    with local.lock, torch.inference_mode():
        logits = local.model(input_ids=torch.tensor([ids], device=local.device)).logits[
            0
        ]  # (seq, vocab)
        local.forward_passes += 1
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    out = []
    for pos in range(len(ids) - 1):
        nxt = ids[pos + 1]
        values, idx = torch.topk(logprobs[pos], k=min(top, logprobs.shape[-1]))
        out.append(
            {
                "token": local.tokenizer.decode([nxt]),
                "logprob": float(logprobs[pos, nxt]),
                "top": [
                    (local.tokenizer.decode([int(i)]), float(v))
                    for v, i in zip(values, idx, strict=True)
                ],
            }
        )
    return out


@dataclass
class Generated:
    """What one generation call produced."""

    text: str
    """Decoded completion, special tokens removed, cut at the first stop sequence."""
    token_ids: list[int]
    """Generated token ids (before stop-sequence trimming)."""
    top: list[list[tuple[int, float]]] | None
    """Per generated token, the top alternatives ``(token id, logprob)``; None unless asked."""
    chosen_logprobs: list[float] | None
    """Per generated token, its exact log-probability; None unless asked."""
    input_tokens: int
    """Prompt length in tokens."""
    stop_reason: str
    """``stop`` (end-of-sequence or a stop sequence) or ``max_tokens``."""


def generate(
    local: LocalModel,
    prompt: str,
    *,
    max_new_tokens: int,
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
    seed: int | None,
    stop_seqs: Sequence[str] | None,
    logprobs: bool,
    top_logprobs: int,
) -> Generated:
    """Greedy (temperature None/0: reproducible) or sampled generation from a templated prompt.

    Logprobs are the exact ``log_softmax`` of the model's raw logits at each step (before
    temperature or top-p reshape them), i.e. the model's own next-token distribution.
    """
    import torch
    from transformers import GenerationConfig

    tok = local.tokenizer
    ids = encode(local, prompt, add_special_tokens=False)["input_ids"]
    budget = local.context_length - len(ids)
    if budget < 1:
        raise LocalModelError(
            f"neuronbench/{local.name}: prompt of {len(ids)} tokens fills the context"
        )
    sample = temperature is not None and temperature > 0
    eos = tok.eos_token_id
    gen = GenerationConfig(
        max_new_tokens=min(max_new_tokens, budget),
        do_sample=sample,
        temperature=temperature if sample else None,
        top_p=top_p if sample else None,
        top_k=top_k if sample else None,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos,
        output_logits=logprobs,
        return_dict_in_generate=True,
    )
    kwargs: dict[str, Any] = {}
    if stop_seqs:
        from transformers.generation import StopStringCriteria

        kwargs["stopping_criteria"] = [StopStringCriteria(tok, list(stop_seqs))]
    input_ids = torch.tensor([ids], device=local.device)  # (1, seq)
    with local.lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
        if sample and seed is not None:
            torch.manual_seed(seed)
        out = local.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=gen,
            **kwargs,
        )
        local.forward_passes += 1
    new_ids = out.sequences[0, len(ids) :].tolist()
    text = tok.decode(new_ids, skip_special_tokens=True)
    stop_reason = "stop" if (new_ids and new_ids[-1] == eos) else "max_tokens"
    for s in stop_seqs or []:
        if s in text:
            text, stop_reason = text[: text.index(s)], "stop"
    chosen = top = None
    if logprobs:
        rows = torch.log_softmax(torch.stack(out.logits)[:, 0].float(), dim=-1)  # (n_new, vocab)
        chosen = [float(rows[i, t]) for i, t in enumerate(new_ids)]
        if top_logprobs > 0:
            values, idx = torch.topk(rows, k=min(top_logprobs, rows.shape[-1]), dim=-1)
            top = [
                list(zip(i.tolist(), v.tolist(), strict=True))
                for v, i in zip(values, idx, strict=True)
            ]
    return Generated(
        text=text,
        token_ids=new_ids,
        top=top,
        chosen_logprobs=chosen,
        input_tokens=len(ids),
        stop_reason=stop_reason,
    )
