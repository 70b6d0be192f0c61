"""Logprob simulator: the paper's "all at once" simulator (Bills et al. 2023), for local models and vLLM.

Prompt. One prompt per record, in the layout of OpenAI's ``ExplanationNeuronSimulator``
(``make_simulation_prompt``, ``PromptFormat.NONE``), character for character: OpenAI's
header (``prompts/logprob_header.txt``); per few-shot example ``"\\n\\nNeuron i\\nExplanation
of neuron i behavior: the main thing this neuron does is find <explanation>"``, then
``"\\nActivations: "``, the example's records as ``\\n<start>\\n`` ... ``\\n<end>\\n`` blocks of
``token<TAB>value`` lines (``unknown`` before each record's first revealed index, the 0-10
value normalized by the example's max from it on) and ``"\\n"``; then the scored neuron's
explanation, ``"\\nActivations: "`` and the record as ``token<TAB>unknown`` lines between
``\\n<start>\\n`` and ``\\n<end>\\n``. The examples start "unknown" and then reveal values, so
at every ``unknown`` of the scored record the model weighs a value against ``unknown``:
its distribution over the value tokens there is the simulation. Examples:
``simulator_examples=default`` (our own, ``prompts/logprob_few_shot.json``) or ``openai``
(OpenAI's ``FewShotExampleSet.ORIGINAL``, loaded at run time from the optional
``neuron-explainer`` package, for exactly paper-comparable runs), or a JSON path.

One deviation: a subject token's newline, carriage return and tab are written as ``\\n``,
``\\r``, ``\\t`` so every token sits on its own line and the value position is a character
offset (just after the line's tab). OpenAI writes raw tokens and loses alignment on them.

Reading. The prediction at a token is the expected value over 0-10, renormalized over
the eleven values. Two backends return prompt logprobs:

- ``neuronbench/<model>`` (the in-process provider): exact logprobs. A neuron's records
  run as one padded batch (one forward row per record; the header and examples, identical
  for every record and neuron, are computed once and their keys and values reused,
  which is exact). Where "10" is one token (GPT-2) it is read directly. Where digits
  split (Llama, SmolLM2), ``P(10) = P("1") * P("0" | ... TAB "1")`` and ``P(1) = P("1") - P(10)``,
  the second factor read in the same pass by one extra "1" token per value position
  that sees only the text up to its tab (tree attention): the exact computation, not a prior.
- vLLM-style ``prompt_logprobs`` on the raw prompt (``vllm-completions/<model>``; one
  request per record): the top 20 alternatives per position; value tokens outside them
  count as 0. As in OpenAI's parser, only the strings "0" ... "10" are values, so a
  digit-splitting tokenizer reads "1" as 1 and never 10 (``details["ten"]``).

A tokenizer that merges the tab with the value text after it cannot be read in one
pass: a flagged failure, never a guess.

Value mass. Per simulation ``details["value_mass"]`` holds the median and min over read
positions of the raw probability of the value tokens (before renormalizing). A median
below ``LOW_VALUE_MASS`` means the model is hardly answering with values (it expects
``unknown`` or other text); the expected values then rest on noise, so the simulation is
flagged ``low_value_mass`` in ``details["flags"]`` (kept and scored; consumers decide).

``layout="packed"`` (not the default) puts all of a neuron's records into one prompt,
chunked to fit (OpenAI's multi-sequence format). It exists only to reproduce earlier runs:
with SmolLM2 it drops the median value mass from 0.044 (one record per prompt) to 0.0007
(8 records per prompt; ``benchmarks/simulate.py``), so its expected values rest on noise,
and packing changed correlations by 0.04 on average in the audit of issue 14.

Measured (SmolLM2-135M, CPU, ``results/benchmarks/simulate.txt``): 1 forward row per
record; CPU time 0.43x a bare forward over the same prompts (the cached prefix);
the tree-attention P(10) within 2e-6 of separate forwards (expected values within 1e-5).
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from inspect_ai.model import CachePolicy, GenerateConfig, Model, get_model

from neuronbench.datasets.normalize import normalize
from neuronbench.scorers.simulators.base import Simulation

VALUES = tuple(range(11))
"""The value scale of shown activations (0-10, the paper's)."""
PLACEHOLDER = "unknown"
"""What the prompt shows in place of a value to be predicted."""
EXPLANATION_PREFIX = "the main thing this neuron does is find"
"""Words before every explanation in the prompt (OpenAI's)."""
CACHE_SCOPE = "neuronbench-logprob-simulator/2"
"""Bumped when the prompt or the request changes, so old cache entries are not reused."""
VLLM_TOP_LOGPROBS = 20
"""Alternatives per prompt position requested from vLLM (inspect allows at most 20)."""
LOW_VALUE_MASS = 0.01
"""Median raw probability of the value tokens below which a simulation is flagged
``low_value_mass``: under 1% the model mostly predicts ``unknown`` or other text."""
OPENAI_EXTRA = 'pip install -e ".[openai-reference]"'
NO_PROMPT_LOGPROBS = frozenset(
    {
        "openai",
        "openai-api",
        "anthropic",
        "google",
        "grok",
        "mistral",
        "groq",
        "bedrock",
        "azureai",
        "together",
        "fireworks",
        "openrouter",
        "deepseek",
        "perplexity",
        "hf-inference-providers",
        "vllm",
        "sglang",
        "ollama",
    }
)
"""inspect providers that go through a chat endpoint, which has no prompt logprobs (the
OpenAI-compatible servers behind ``openai-api/``, ``vllm/`` and ``sglang/`` included:
only their ``/v1/completions`` route takes vLLM's ``prompt_logprobs``)."""

Layout = Literal["all_at_once", "packed"]


def escape_token(token: str) -> str:
    """Keep a token on one line: newline, carriage return and tab become visible escapes."""
    return token.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


@dataclass(frozen=True)
class ExampleRecord:
    """One few-shot record: tokens, raw activations, and where values start showing."""

    tokens: tuple[str, ...]
    """Tokens as strings."""
    activations: tuple[float, ...]
    """Raw activations (normalized 0-10 by the example's max when shown)."""
    first_revealed: int
    """Tokens before this index show ``unknown``; from it on, their value."""


@dataclass(frozen=True)
class Example:
    """A few-shot neuron: its explanation and records."""

    explanation: str
    """Completes "the main thing this neuron does is find"."""
    records: tuple[ExampleRecord, ...]
    """Records shown under the explanation."""


@dataclass(frozen=True)
class FewShot:
    """The prompt's fixed part: header and few-shot examples."""

    examples: tuple[Example, ...]
    """Examples in prompt order."""
    source: str
    """Where they came from (``default``, ``openai`` or a path): recorded in details."""
    header: str = ""
    """Instructions that open the prompt (default: OpenAI's, ``prompts/logprob_header.txt``)."""

    def __post_init__(self) -> None:
        if not self.header:
            object.__setattr__(self, "header", _read_prompt("logprob_header.txt"))


def _read_prompt(name: str) -> str:
    return resources.files(__package__).joinpath("prompts", name).read_text("utf-8")


def load_few_shot(name: str | Path = "default") -> FewShot:
    """Few-shot examples: ``default`` (bundled), ``openai`` (OpenAI's ORIGINAL set) or a JSON path."""
    if str(name) == "openai":
        return openai_few_shot()
    if str(name) == "default":
        text, where = _read_prompt("logprob_few_shot.json"), "prompts/logprob_few_shot.json"
    else:
        path = Path(name)
        if not path.is_file():
            raise ValueError(
                f"simulator examples {str(name)!r}: use default, openai or a JSON file path"
            )
        text, where = path.read_text("utf-8"), str(path)
    data = json.loads(text)
    examples = []
    for i, ex in enumerate(data["examples"]):
        records = []
        for j, rec in enumerate(ex["records"]):
            tokens, acts = rec["tokens"], rec["activations"]
            first = int(rec["first_revealed"])
            if len(tokens) != len(acts) or not 0 <= first <= len(tokens):
                raise ValueError(
                    f"{where}: example {i} record {j}: {len(tokens)} tokens, {len(acts)} "
                    f"activations, first_revealed {first}"
                )
            records.append(ExampleRecord(tuple(tokens), tuple(map(float, acts)), first))
        examples.append(Example(str(ex["explanation"]), tuple(records)))
    return FewShot(tuple(examples), source=str(name))


def openai_few_shot() -> FewShot:
    """OpenAI's original simulator examples, read from the installed ``neuron_explainer``."""
    try:
        from neuron_explainer.explanations.few_shot_examples import FewShotExampleSet
    except ImportError as ex:
        raise ValueError(
            f"simulator_examples=openai needs OpenAI's neuron-explainer package ({ex}): {OPENAI_EXTRA}"
        ) from ex
    examples = tuple(
        Example(
            e.explanation,
            tuple(
                ExampleRecord(tuple(r.tokens), tuple(r.activations), first)
                for r, first in zip(
                    e.activation_records, e.first_revealed_activation_indices, strict=True
                )
            ),
        )
        for e in FewShotExampleSet.ORIGINAL.get_examples()
    )
    return FewShot(examples, source="openai")


@dataclass
class BuiltPrompt:
    """A simulation prompt, split where it stops being the same for every record."""

    prefix: str
    """Header, examples and the scored neuron's heading, up to "...is find": shared by all
    records of all neurons under one few-shot set."""
    suffix: str
    """The explanation and the records to simulate."""
    value_offsets: list[list[int]]
    """Per record, per token: offset into ``text`` just after that line's tab."""
    revealed_offsets: dict[int, list[int]]
    """Per value, offsets into ``text`` where the examples reveal it (how values tokenize)."""

    @property
    def text(self) -> str:
        return self.prefix + self.suffix


def _lines(parts: list[str], offsets: list[int], length: int, token: str, value: str) -> int:
    """Append ``token<TAB>value``; record the value's offset; return the new length."""
    line = escape_token(token) + "\t"
    parts.append(line + value)
    offsets.append(length + len(line))
    return length + len(line) + len(value)


def _records_block(
    parts: list[str], length: int, rows: Sequence[Sequence[tuple[str, str]]]
) -> tuple[int, list[list[int]]]:
    """OpenAI's ``\\n<start>\\n`` + records joined by ``\\n<end>\\n<start>\\n`` + ``\\n<end>\\n``."""
    all_offsets: list[list[int]] = []
    for r, row in enumerate(rows):
        sep = "\n<start>\n" if r == 0 else "\n<end>\n<start>\n"
        parts.append(sep)
        length += len(sep)
        offsets: list[int] = []
        for k, (token, value) in enumerate(row):
            if k:
                parts.append("\n")
                length += 1
            length = _lines(parts, offsets, length, token, value)
        all_offsets.append(offsets)
    parts.append("\n<end>\n")
    return length + len("\n<end>\n"), all_offsets


def shared_prefix(few_shot: FewShot) -> tuple[str, dict[int, list[int]]]:
    """The prompt up to the scored explanation, and where its examples reveal each value."""
    parts = [few_shot.header]
    length = len(few_shot.header)
    revealed: dict[int, list[int]] = {}
    for i, ex in enumerate(few_shot.examples, start=1):
        head = f"\n\nNeuron {i}\nExplanation of neuron {i} behavior: {EXPLANATION_PREFIX} {ex.explanation}\nActivations: "
        parts.append(head)
        length += len(head)
        top = max(max(0.0, *r.activations) for r in ex.records)
        rows = []
        for rec in ex.records:
            values = normalize(rec.activations, top)
            rows.append(
                [
                    (tok, str(v) if k >= rec.first_revealed else PLACEHOLDER)
                    for k, (tok, v) in enumerate(zip(rec.tokens, values, strict=True))
                ]
            )
        length, offsets = _records_block(parts, length, rows)
        for row, offs in zip(rows, offsets, strict=True):
            for (_, shown), c in zip(row, offs, strict=True):
                if shown != PLACEHOLDER:
                    revealed.setdefault(int(shown), []).append(c)
        parts.append("\n")
        length += 1
    n = len(few_shot.examples) + 1
    parts.append(f"\n\nNeuron {n}\nExplanation of neuron {n} behavior: {EXPLANATION_PREFIX}")
    return "".join(parts), revealed


def build_prompt(
    few_shot: FewShot, explanation: str, records: Sequence[Sequence[str]]
) -> BuiltPrompt:
    """The simulation prompt for ``records`` (one for the paper's layout, several if packed)."""
    prefix, revealed = shared_prefix(few_shot)
    parts = [f" {explanation.strip()}\nActivations: "]
    length = len(prefix) + len(parts[0])
    rows = [[(tok, PLACEHOLDER) for tok in rec] for rec in records]
    _, offsets = _records_block(parts, length, rows)
    return BuiltPrompt(prefix, "".join(parts), offsets, revealed)


def value_spellings(tokenizer: Any) -> list[list[int]]:
    """Token ids of each value 0-10 as the tokenizer writes it after a tab."""
    spellings = []
    for value in VALUES:
        text = f"a\t{value}\n"
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        spans = [
            (s, e, tid)
            for tid, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
            if e > s
        ]
        if not any(s == 2 for s, _, _ in spans):
            raise ValueError(f"the simulator's tokenizer merges the tab with the value {value}")
        spellings.append([tid for s, e, tid in spans if s >= 2 and e <= len(text) - 1])
    digits = spellings[:10]
    if any(len(d) != 1 for d in digits) or len({d[0] for d in digits}) != 10:
        raise ValueError("the simulator's tokenizer does not spell the digits 0-9 as ten tokens")
    ten = spellings[10]
    if not (len(ten) == 1 or ten == [digits[1][0], digits[0][0]]):
        raise ValueError(f"the simulator's tokenizer spells 10 as {len(ten)} unexpected tokens")
    return spellings


def distribution(
    probs: Sequence[float], zero_after_one: float | None = None
) -> tuple[list[float] | None, float]:
    """Eleven renormalized value probabilities and the raw value mass at one position.

    Args:
        probs: raw probability of each value's first token; 11 entries where "10" is one
            token, 10 where it starts with "1" (then ``zero_after_one`` is needed).
        zero_after_one: ``P("0" | ... "1")``, which splits ``P("1")`` into 1 and 10.
    """
    p = list(probs)
    if len(p) == 10:
        if zero_after_one is None:
            raise ValueError("a split 10 needs P('0' | '1')")
        one = p[1]
        p[1] = one * (1.0 - zero_after_one)
        p.append(one * zero_after_one)
    mass = sum(p)
    if mass <= 0.0:
        return None, 0.0
    return [x / mass for x in p], mass


def expected_value(probs: Sequence[float]) -> float:
    return float(sum(v * p for v, p in zip(VALUES, probs, strict=True)))


Read = list[list[tuple[list[float] | None, float]]]
"""Per record, per token: renormalized value probabilities (None: no value) and raw mass."""


class LogprobSimulator:
    """Predicts activations from prompt logprobs at every ``unknown`` (see module docstring)."""

    name = "logprob"

    def __init__(
        self,
        model: Model | str,
        *,
        few_shot: FewShot | str | Path | None = None,
        layout: Layout = "all_at_once",
        max_prompt_tokens: int | None = None,
        cache: bool = True,
    ) -> None:
        """
        Args:
            model: ``neuronbench/<model>`` (exact) or a provider returning vLLM prompt logprobs.
            few_shot: examples, or ``default`` / ``openai`` / a JSON path (``simulator_examples``).
            layout: ``all_at_once`` (the paper's: one prompt per record) or ``packed`` (all
                records of a neuron per prompt; reproduces earlier runs only).
            max_prompt_tokens: ``packed``: records per prompt are chunked under this
                (default: the local model's context, else 4096).
            cache: cache logprobs with inspect's cache (keyed by prompt, model name and
                checkpoint revision), so a rerun makes no model call.
        """
        if layout not in ("all_at_once", "packed"):
            raise ValueError(f"layout={layout!r}: use all_at_once or packed")
        self.model = get_model(model) if isinstance(model, str) else model
        self.few_shot = (
            few_shot if isinstance(few_shot, FewShot) else load_few_shot(few_shot or "default")
        )
        self.layout = layout
        self.max_prompt_tokens = max_prompt_tokens
        self.cache = cache
        self._local = _local_api(self.model)
        unsupported = prompt_logprobs_unsupported(self.model)
        if unsupported is not None:
            raise ValueError(unsupported)

    def prompts(self, explanation: str, records: Sequence[Sequence[str]]) -> list[BuiltPrompt]:
        """The prompts that simulate ``records``, in order (one per record unless packed)."""
        if self.layout == "all_at_once":
            return [build_prompt(self.few_shot, explanation, [rec]) for rec in records]
        return [
            build_prompt(self.few_shot, explanation, records[s:e])
            for s, e in self.chunks(explanation, records)
        ]

    def chunks(self, explanation: str, records: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
        """``packed``: record ranges ``[start, end)`` packed greedily under the token limit."""
        if self._local is not None:
            context = self._local.local.context_length
            limit = min(context, self.max_prompt_tokens or context)
        else:
            limit = self.max_prompt_tokens or 4096

        def count(s: int, e: int) -> int:
            text = build_prompt(self.few_shot, explanation, records[s:e]).text
            if self._local is not None:
                return len(self._local.tokenizer(text, verbose=False)["input_ids"])
            return len(text) // 2  # no tokenizer at hand: a conservative 2 characters per token

        spans, start = [], 0
        while start < len(records):
            end = start + 1
            if count(start, end) > limit:
                raise _SimulationFailure(
                    f"record {start} alone does not fit in {limit} prompt tokens"
                )
            while end < len(records) and count(start, end + 1) <= limit:
                end += 1
            spans.append((start, end))
            start = end
        return spans

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        details: dict[str, Any] = {
            "layout": self.layout,
            "examples": self.few_shot.source,
            "prompts": 0,
            "prompt_tokens": 0,
            "flags": [],
        }
        if not records:
            return Simulation(predictions=[], details=details)
        try:
            prompts = self.prompts(explanation, records)
            details["prompts"] = len(prompts)
            if self._local is not None:
                read = await self._local_read(prompts, details)
            else:
                read = await self._vllm_read(prompts, details)
        except _SimulationFailure as ex:
            return _failed(str(ex), details)
        masses = [mass for rec in read for _, mass in rec]
        if masses:
            median = statistics.median(masses)
            details["value_mass"] = {"median": median, "min": min(masses)}
            if median < LOW_VALUE_MASS:
                details["flags"].append("low_value_mass")
        predictions: list[list[float]] = []
        for r, rec in enumerate(read):
            row = []
            for j, (probs, _) in enumerate(rec):
                if probs is None:
                    return _failed(
                        f"record {r} token {j} ({records[r][j]!r}): no value 0-10 among "
                        "the returned logprobs",
                        details,
                    )
                row.append(expected_value(probs))
            predictions.append(row)
        return Simulation(predictions=predictions, details=details)

    def _cache_policy(self, revision: str) -> CachePolicy | bool:
        if not self.cache:
            return False
        return CachePolicy(
            expiry=None, per_epoch=False, scopes={"simulator": CACHE_SCOPE, "revision": revision}
        )

    async def _local_read(self, prompts: Sequence[BuiltPrompt], details: dict[str, Any]) -> Read:
        """Exact distributions from the in-process model: one batched request per neuron."""
        from neuronbench.models.local import LocalModelError

        try:
            spellings = value_spellings(self._local.tokenizer)
        except ValueError as ex:
            raise _SimulationFailure(str(ex)) from ex
        split_ten = len(spellings[10]) == 2
        ids = [s[0] for s in spellings[: 10 if split_ten else 11]]
        request: dict[str, Any] = {
            "suffixes": [p.suffix for p in prompts],
            "offsets": [[c for rec in p.value_offsets for c in rec] for p in prompts],
            "token_ids": ids,
        }
        if split_ten:
            request["branch_token"] = spellings[1][0]
        details["ten"] = "exact_two_tokens" if split_ten else "one_token"
        try:
            out = await self.model.generate(
                prompts[0].prefix,
                config=GenerateConfig(
                    max_tokens=1, temperature=0, extra_body={"prompt_logprobs": request}
                ),
                cache=self._cache_policy(self._local.revision),
            )
        except LocalModelError as ex:
            if "not a token boundary" in str(ex):
                unit = "record" if self.layout == "all_at_once" else "prompt"
                raise _SimulationFailure(
                    f"the simulator's tokenizer merges a tab with the text after it, so the "
                    f"value cannot be read in one pass ({unit} {str(ex).removeprefix('text ')})"
                ) from ex
            raise _SimulationFailure(str(ex)) from ex
        meta = out.metadata or {}
        details["prompt_tokens"] = sum(meta.get("prompt_tokens") or [])
        branch = meta.get("branch_logprobs")
        read: Read = []
        for i, prompt in enumerate(prompts):
            rows = iter(meta["prompt_logprobs"][i])
            after_one = iter(branch[i]) if branch is not None else None
            for rec in prompt.value_offsets:
                got = []
                for _ in rec:
                    probs = [math.exp(lp) for lp in next(rows)]
                    zero = math.exp(next(after_one)[0]) if after_one is not None else None
                    got.append(distribution(probs, zero))
                read.append(got)
        return read

    async def _vllm_read(self, prompts: Sequence[BuiltPrompt], details: dict[str, Any]) -> Read:
        """Top-20 prompt logprobs from a vLLM-style provider: one request per prompt."""

        async def one(prompt: BuiltPrompt) -> tuple[bool, list[list[dict[str, float]]]]:
            out = await self.model.generate(
                prompt.text,
                config=GenerateConfig(
                    max_tokens=1, temperature=0, prompt_logprobs=VLLM_TOP_LOGPROBS
                ),
                cache=self._cache_policy(""),
            )
            if out.usage is not None:
                details["prompt_tokens"] += out.usage.input_tokens
            return vllm_position_logprobs(
                prompt, out.choices[0].prompt_logprobs if out.choices else None
            )

        results = await asyncio.gather(*(one(p) for p in prompts))
        details["ten"] = "one_token" if all(t for t, _ in results) else "not_read"
        read: Read = []
        for _, per_record in results:
            for positions in per_record:
                read.append(
                    [
                        distribution(
                            [math.exp(lps[str(v)]) if str(v) in lps else 0.0 for v in VALUES]
                        )
                        for lps in positions
                    ]
                )
        return read


def vllm_position_logprobs(
    prompt: BuiltPrompt, prompt_logprobs: Any
) -> tuple[bool, list[list[dict[str, float]]]]:
    """Whether "10" is one token, and per record, per value position, ``{token: logprob}``.

    vLLM returns, for every prompt token after the first, the token's decoded text and
    logprob plus top alternatives. Token start offsets are recovered from the end of the
    prompt backwards (the first token has no entry) and checked against the prompt text.
    How 10 is spelled is read off the examples, where values are revealed.
    """
    if prompt_logprobs is None or not prompt_logprobs.content:
        raise _SimulationFailure(
            "the simulator model returned no prompt logprobs: use neuronbench/<model> or vllm-completions/<model>"
        )
    entries = prompt_logprobs.content
    starts: dict[int, Any] = {}
    pos = len(prompt.text) - sum(len(e.token) for e in entries)
    for e in entries:
        if pos < 0 or prompt.text[pos : pos + len(e.token)] != e.token:
            raise _SimulationFailure(
                f"prompt logprob tokens do not spell the prompt at character {pos}"
            )
        starts.setdefault(pos, e)
        pos += len(e.token)
    ten = [starts[c].token for c in prompt.revealed_offsets.get(10, []) if c in starts]
    per_record = []
    for rec in prompt.value_offsets:
        positions = []
        for c in rec:
            if c not in starts:
                raise _SimulationFailure(f"no prompt token starts at value offset {c}")
            e = starts[c]
            lps = {t.token: t.logprob for t in e.top_logprobs or []}
            lps[e.token] = e.logprob
            positions.append(lps)
        per_record.append(positions)
    return bool(ten) and ten[0] == "10", per_record


def prompt_logprobs_unsupported(model: Model) -> str | None:
    """Why ``model`` cannot serve the logprob simulator, or None when it may.

    Checked before any call: a chat provider silently drops ``prompt_logprobs``, and
    guessing another simulator would change what the score means. Providers not known
    either way (a custom one, ``mockllm``) are tried; one that then returns no prompt
    logprobs makes each simulation a flagged failure.
    """
    from inspect_ai.model._model import ModelName

    if _local_api(model) is not None:
        return None
    try:
        provider = ModelName(model).api
    except ValueError:  # an unregistered ModelAPI (the planner's token counter, a test double)
        provider = str(getattr(model, "_plan_name", model)).split("/", 1)[0]
    if provider not in NO_PROMPT_LOGPROBS:
        return None
    return (
        f"simulator=logprob needs prompt logprobs, which the simulator model {model} does not "
        f"return ({provider}/ is a chat API). Use -T simulator=generation with this model, or "
        "bind a model that returns them: neuronbench/<model> (in-process) or "
        "vllm-completions/<model> (a vLLM server's /v1/completions)"
    )


def _failed(error: str, details: dict[str, Any]) -> Simulation:
    return Simulation(
        predictions=None, error=error, raw_output=json.dumps(details), details=details
    )


def _local_api(model: Model) -> Any:
    from neuronbench.models.provider import LocalModelAPI

    return model.api if isinstance(model.api, LocalModelAPI) else None


class _SimulationFailure(Exception):
    """A reason this neuron cannot be simulated; becomes ``Simulation.error``."""
