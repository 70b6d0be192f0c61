"""What every explainer strategy shares: the records it may show, the paper's record format,
fitting a prompt into the explainer's context, and writing the result into the sample.

The one rule that matters here: a strategy only ever shows ``train`` records (and the
``negatives`` the task drew from quantile samples), never a record of a scoring split.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
    Model,
    get_model,
)
from inspect_ai.model._model import ModelAPI
from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.datasets import ActivationRecord, NeuronRecord, train_records
from neuronbench.datasets.normalize import normalize, relu_max
from neuronbench.evals.extraction import Extraction, extract_explanation

CHARS_PER_TOKEN = 3.0
"""Fallback token estimate when the model has no tokenizer of its own. Token<TAB>value lines
tokenize denser than prose (about 4 tokens per 8 characters), so 3 rather than the usual 4."""


@dataclass
class StrategyOptions:
    """Everything the task knows that a strategy may need; each strategy reads its own knobs."""

    name: str
    """Strategy name as given to ``-T strategy=``."""
    split: str = "valid"
    """Split the eval scores on (a strategy must never show its records)."""
    n_examples: int = 5
    """Train records shown to the explainer (before context trimming)."""
    max_prompt_tokens: int = 4000
    """Context budget of the prompt; records are dropped whole from the end to fit."""
    seed: int = 0
    """Seed for anything random in a strategy (shuffled derangement)."""
    few_shot: str = "default"
    """Few-shot example set: ``default`` or ``test`` (tiny, for golden tests), or a JSON path."""
    show_values: bool = False
    """highlighted: also list the 0-10 value of each highlighted token."""
    threshold: float = 0.3
    """highlighted: a token is highlighted when its activation exceeds this fraction of the max."""
    n_tokens: int = 20
    """top_tokens: tokens listed; baseline: tokens named in the explanation (``min(n_tokens, 5)``)."""
    n_negatives: int = 2
    """with_negatives: non-activating contrast records shown."""
    k: int = 4
    """best_of_k: candidates sampled."""
    temperature: float = 1.0
    """best_of_k: sampling temperature of the candidates."""
    simulator: str = "logprob"
    """best_of_k: simulator kind used to score candidates on the calibration split."""
    simulator_examples: str = "default"
    """best_of_k: the logprob simulator's few-shot examples (``default``, ``openai``, a path)."""
    explanation_file: str | None = None
    """from_file (and shuffled with ``shuffle_source="file"``): explanations to read."""
    shuffle_source: str = "baseline"
    """shuffled: whose explanations are dealt out, ``baseline`` or ``file``."""
    neurons: dict[str, NeuronRecord] = field(default_factory=dict)
    """The selected neurons that can run, by sample id (shuffled needs all of them at once);
    skipped neurons (``metadata["skip"]``) are left out, so no strategy builds on them."""


# ---------------------------------------------------------------------------- prompt data


@cache
def load_data(name: str) -> Any:
    """A JSON data file from ``strategies/prompts/`` (prompt text lives there, not in code)."""
    text = (
        resources.files("neuronbench.evals.strategies").joinpath("prompts", name).read_text("utf-8")
    )
    return json.loads(text)


@dataclass(frozen=True)
class FewShotExample:
    """A worked example: records of an (invented) neuron and the explanation we want."""

    explanation: str
    """Completion of "the main thing this neuron does is find", without the final period."""
    records: tuple[ActivationRecord, ...]
    """Records where the neuron fires, shown like the neuron under study's."""
    negatives: tuple[ActivationRecord, ...] = ()
    """Records where it stays silent (for ``with_negatives``)."""


OPENAI_REFERENCE_INSTALL = 'pip install -e ".[openai-reference]"'
"""How to install OpenAI's neuron-explainer, which ``few_shot="openai"`` reads its examples from."""


def _openai_few_shot() -> dict[str, Any]:
    """OpenAI's ORIGINAL explainer examples, read from the installed ``neuron_explainer``.

    Read at run time, never copied into this package: the paper-comparable prompt is
    available to whoever installs OpenAI's package, and its texts stay OpenAI's.
    """
    try:
        from neuron_explainer.explanations.few_shot_examples import FewShotExampleSet
    except ImportError as e:
        raise ValueError(
            f"few_shot='openai' reads OpenAI's examples from their neuron-explainer package, "
            f"which is not importable ({e}): {OPENAI_REFERENCE_INSTALL}"
        ) from None
    return {
        "examples": [
            {
                "explanation": ex.explanation,
                "records": [
                    {"tokens": list(r.tokens), "activations": [float(a) for a in r.activations]}
                    for r in ex.activation_records
                ],
            }
            for ex in FewShotExampleSet.ORIGINAL.get_examples()
        ]
    }


@cache
def load_few_shot(name: str = "default") -> tuple[FewShotExample, ...]:
    """Few-shot set ``default``/``test`` (bundled), ``openai`` (OpenAI's original examples, from
    the installed neuron-explainer), ``none`` (zero-shot) or a JSON file of the bundled shape."""
    if name == "none":
        return ()
    if name in ("default", "test"):
        raw = load_data(f"few_shot_{name}.json")
    elif name == "openai":
        raw = _openai_few_shot()
    else:
        with open(name, encoding="utf-8") as f:
            raw = json.load(f)

    def recs(xs: list[dict[str, Any]]) -> tuple[ActivationRecord, ...]:
        out = tuple(ActivationRecord(tokens=x["tokens"], activations=x["activations"]) for x in xs)
        for i, r in enumerate(out):
            r.validate(f"few-shot set {name!r} record {i}")
        return out

    return tuple(
        FewShotExample(
            explanation=ex["explanation"],
            records=recs(ex["records"]),
            negatives=recs(ex.get("negatives", [])),
        )
        for ex in raw["examples"]
    )


# ---------------------------------------------------------------------------- records


def neuron_of(state: TaskState) -> NeuronRecord:
    """The sample's neuron, rebuilt from its metadata (top + random records, no quantiles)."""
    return NeuronRecord.from_dict(state.metadata["neuron"])


def shown_records(state: TaskState, n: int) -> list[ActivationRecord]:
    """The first ``n`` train records of the sample's neuron: all an explainer may see."""
    return train_records(neuron_of(state), n)


def negatives_of(state: TaskState, n: int) -> list[ActivationRecord]:
    """Up to ``n`` non-activating records the task drew from quantile samples (never scored)."""
    return [ActivationRecord.from_dict(d) for d in state.metadata.get("negatives", [])[:n]]


def format_records(
    records: Sequence[ActivationRecord], max_activation: float, *, omit_zeros: bool = False
) -> str:
    """The paper's format: ``token<TAB>value`` lines (0-10), each record in ``<start>``/``<end>``."""
    blocks = []
    for r in records:
        values = normalize(r.activations, max_activation)
        pairs = [(t, v) for t, v in zip(r.tokens, values, strict=True) if v > 0 or not omit_zeros]
        blocks.append("\n".join(f"{t}\t{v}" for t, v in pairs))
    return "\n<start>\n" + "\n<end>\n<start>\n".join(blocks) + "\n<end>\n"


def nonzero_fraction(records: Sequence[ActivationRecord], max_activation: float) -> float:
    """Fraction of shown tokens whose 0-10 value is not 0 (decides the paper's zeros-filtered repeat)."""
    values = [v for r in records for v in normalize(r.activations, max_activation)]
    return sum(v != 0 for v in values) / len(values) if values else 0.0


def top_activating_tokens(records: Sequence[ActivationRecord], n: int) -> list[tuple[str, float]]:
    """Distinct tokens (whitespace-stripped) by their max activation over ``records``, top ``n``.

    Only tokens that fire (activation > 0) count; ties keep first-seen order.
    """
    best: dict[str, float] = {}
    for r in records:
        for tok, a in zip(r.tokens, r.activations, strict=True):
            key = tok.strip()
            if a > 0 and key and a > best.get(key, -math.inf):
                best[key] = a
    return sorted(best.items(), key=lambda kv: -kv[1])[:n]


def max_over(records: Sequence[ActivationRecord]) -> float:
    return relu_max(records)


# ---------------------------------------------------------------------------- context fit


@dataclass
class Fitted:
    """A prompt that fits the budget and what had to go for it to fit."""

    messages: list[ChatMessage]
    """The prompt."""
    records: list[ActivationRecord]
    """The neuron's records it shows."""
    trimmed: dict[str, Any]
    """``{"dropped", "kept", "few_shot_dropped", "prompt_tokens", "budget", "counter", "reason"}``."""


def _has_own_counter(model: Model | None) -> bool:
    """True when the provider counts with its real tokenizer (inspect's default downloads tiktoken)."""
    if model is None:
        return False
    api = type(model.api)
    return api.count_text_tokens is not ModelAPI.count_text_tokens or (
        api.count_tokens is not ModelAPI.count_tokens
    )


def estimate_tokens(messages: Sequence[ChatMessage]) -> int:
    """Conservative token count from characters, plus a few tokens of chat framing per message."""
    return sum(math.ceil(len(m.text) / CHARS_PER_TOKEN) + 4 for m in messages)


async def count_prompt(messages: list[ChatMessage], model: Model | None) -> tuple[int, str]:
    """Token count of ``messages`` and how it was obtained (``model`` or ``chars/3``)."""
    if _has_own_counter(model):
        assert model is not None
        try:
            return await model.count_tokens(messages), "model"
        except Exception:  # a counter that needs the network must not stop the eval
            pass
    return estimate_tokens(messages), f"chars/{CHARS_PER_TOKEN:g}"


async def fit_prompt(
    build: Callable[[list[ActivationRecord], int], list[ChatMessage]],
    records: list[ActivationRecord],
    n_few_shot: int,
    budget: int,
    model: Model | None,
) -> Fitted:
    """Drop whole records from the end (then few-shot examples) until the prompt fits ``budget``.

    ``build(records, n_few_shot)`` renders the prompt. At least one record is always kept;
    if even the smallest prompt is over budget it is sent anyway and ``reason`` says so.
    Nothing is ever cut mid-record.
    """
    kept, shots = list(records), n_few_shot
    while True:
        messages = build(kept, shots)
        tokens, counter = await count_prompt(messages, model)
        if tokens <= budget:
            reason = None
            break
        if len(kept) > 1:
            kept = kept[:-1]
        elif shots > 0:
            shots -= 1
        else:
            reason = f"prompt of {tokens} tokens exceeds max_prompt_tokens={budget} with one record"
            break
    if reason is None and (len(kept) < len(records) or shots < n_few_shot):
        reason = f"prompt over max_prompt_tokens={budget}; dropped records from the end"
    trimmed = {
        "dropped": len(records) - len(kept),
        "kept": len(kept),
        "few_shot_dropped": n_few_shot - shots,
        "prompt_tokens": tokens,
        "budget": budget,
        "counter": counter,
        "reason": reason,
    }
    return Fitted(messages=messages, records=kept, trimmed=trimmed)


# ---------------------------------------------------------------------------- result


def no_trim() -> dict[str, Any]:
    """``prompt_trimmed`` for strategies that build no prompt."""
    return {"dropped": 0, "kept": 0, "few_shot_dropped": 0, "reason": None}


def finish(
    state: TaskState,
    extraction: Extraction,
    *,
    strategy: str,
    trimmed: dict[str, Any],
    shown: Sequence[ActivationRecord] = (),
    **extra: Any,
) -> TaskState:
    """Write the solver contract: explanation, flags, strategy, trim note, completion."""
    state.metadata["explanation"] = extraction.explanation
    state.metadata["explanation_flags"] = list(extraction.flags) + copied_from_prompt(
        extraction.explanation, state.messages
    )
    state.metadata["strategy"] = strategy
    state.metadata["prompt_trimmed"] = trimmed
    state.metadata["shown_positions"] = [r.position for r in shown]
    state.metadata.update(extra)
    state.output.completion = extraction.explanation
    return state


@solver
def skip_unusable(strategy: str) -> Solver:
    """Ends a skipped sample (``metadata["skip"]``, set by the task) before any strategy runs.

    The plan's first step, so no strategy, whether it calls a model or not, ever touches a
    neuron whose records cannot fill the run's splits. The sample keeps an empty
    explanation and ``skipped=True``; no explanation flag, since nothing was asked of the
    explainer (a flag would count as the explainer's failure).

    Args:
        strategy: The run's strategy, recorded in the sample like any other.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        reason = state.metadata.get("skip")
        if not reason:
            return state
        finish(state, Extraction(explanation=""), strategy=strategy, trimmed=no_trim())
        state.metadata["skipped"] = True
        state.completed = True  # inspect runs no further solver step; scorers still run
        return state

    return solve


async def explain_once(
    state: TaskState,
    generate: Generate,
    build: Callable[[list[ActivationRecord], int], list[ChatMessage]],
    *,
    strategy: str,
    n_examples: int,
    n_few_shot: int,
    max_prompt_tokens: int,
    marker: str | None = None,
    extra_shown: Sequence[ActivationRecord] = (),
    **extra: Any,
) -> TaskState:
    """One explainer call: fit ``build``'s prompt to the budget, generate (cached), extract, finish.

    Args:
        state: The sample's state.
        generate: inspect's generate, so the call goes through the eval's explainer model.
        build: ``build(records, n_few_shot)`` renders the prompt (see :func:`fit_prompt`).
        strategy: Name recorded in the sample metadata.
        n_examples: Train records offered to the prompt before trimming.
        n_few_shot: Few-shot examples offered to the prompt before trimming.
        max_prompt_tokens: Context budget.
        marker: Answer marker for :func:`extract_explanation` (chain of thought).
        extra_shown: Records shown besides the fitted ones (contrast negatives).
        **extra: More metadata written by :func:`finish`.
    """
    fitted = await fit_prompt(
        build, shown_records(state, n_examples), n_few_shot, max_prompt_tokens, get_model()
    )
    state.messages = fitted.messages
    state = await generate(state, cache=explainer_cache())
    raw = state.output.completion
    return finish(
        state,
        extract_explanation(raw, marker=marker),
        strategy=strategy,
        trimmed=fitted.trimmed,
        shown=[*fitted.records, *extra_shown],
        raw_output=raw,
        **extra,
    )


def few_shot_chat(
    system: str,
    answer: str,
    few_shot: Sequence[FewShotExample],
    user: Callable[[int, Sequence[ActivationRecord], Sequence[ActivationRecord]], str],
    records: Sequence[ActivationRecord],
    negatives: Sequence[ActivationRecord] = (),
) -> list[ChatMessage]:
    """The chat every few-shot strategy sends: system, each example's neuron and its answer,
    then the neuron under study. ``user(index, records, negatives)`` renders one neuron
    (index 1-based; the target is ``len(few_shot) + 1``); ``answer`` formats ``{explanation}``.
    """
    messages: list[ChatMessage] = [ChatMessageSystem(content=system)]
    for i, ex in enumerate(few_shot, start=1):
        messages.append(ChatMessageUser(content=user(i, ex.records, ex.negatives)))
        messages.append(ChatMessageAssistant(content=answer.format(explanation=ex.explanation)))
    messages.append(ChatMessageUser(content=user(len(few_shot) + 1, records, negatives)))
    return messages


_FORMAT_TOKENS = {"<start>", "<end>", "unknown"}


def _norm(text: str) -> str:
    return " ".join("".join(c.lower() if c.isalnum() else " " for c in text).split())


def copied_from_prompt(explanation: str, messages: Sequence[ChatMessage]) -> list[str]:
    """``["copied_from_prompt"]`` when the explanation repeats prompt text instead of explaining.

    Small explainers often echo the last few-shot explanation or a record marker; such an
    output says nothing about this neuron and must not be scored as if it were an answer.
    Only the prompt (everything before the model's reply, few-shot answers included) counts,
    and only long matches
    (>= 3 words) or bare format markers, so a short legitimate answer is never flagged.
    """
    text = explanation.strip()
    if text.lower() in _FORMAT_TOKENS:
        return ["copied_from_prompt"]
    norm = _norm(text)
    if len(norm.split()) < 3:
        return []
    prompt = list(messages)
    if prompt and prompt[-1].role == "assistant":
        prompt = prompt[:-1]  # the model's own reply; few-shot answers before it stay
    haystack = _norm(" ".join(m.text for m in prompt))
    return ["copied_from_prompt"] if f" {norm} " in f" {haystack} " else []


def explainer_cache() -> Any:
    """inspect cache policy for explainer calls, so a rerun or a second simulator is free.

    The key ignores ``model_args``, so a local model's weights revision goes into the scopes:
    a new checkpoint under the same name is a miss. Epochs stay distinct (``per_epoch``),
    so test-retest runs still sample fresh explanations.
    """
    from inspect_ai.model import CachePolicy

    api = get_model().api
    revision = str(getattr(api, "revision", "") or "")
    return CachePolicy(
        expiry=None, per_epoch=True, scopes={"revision": revision} if revision else {}
    )
