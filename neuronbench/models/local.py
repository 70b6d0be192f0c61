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
    """Forward passes run so far (generation counts one per call): lets tests and
    benchmarks prove a cached call reached no model."""

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
    ``log_softmax(logits at the position predicting char_offsets[i])[token_ids[j]]``. Only the
    requested positions go through the LM head, so a long prompt costs one body forward.
    """
    import torch

    if not local.tokenizer.is_fast:
        raise LocalModelError(
            f"neuronbench/{local.name}: prompt logprobs need a fast tokenizer (offsets)"
        )
    enc = encode(local, text, add_special_tokens=True)
    positions = token_positions_for_offsets(enc["offset_mapping"], char_offsets, len(text))
    vocab = local.model.get_output_embeddings().weight.shape[0]
    bad = [t for t in token_ids if not 0 <= t < vocab]
    if bad:
        raise LocalModelError(f"neuronbench/{local.name}: token ids {bad} outside the vocabulary")
    ids = torch.tensor([enc["input_ids"]], device=local.device)  # (1, seq)
    keep = torch.tensor(positions, device=local.device)  # (n_positions,)
    with local.lock, torch.inference_mode():
        logits = local.model(input_ids=ids, logits_to_keep=keep).logits[0]  # (n_positions, vocab)
        local.forward_passes += 1
    logprobs = torch.log_softmax(logits.float(), dim=-1)[:, list(token_ids)]  # (n_positions, n_ids)
    return logprobs.tolist(), len(enc["input_ids"])


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
