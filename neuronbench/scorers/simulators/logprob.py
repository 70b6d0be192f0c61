"""Logprob simulator: the paper's "all at once" method, restored for local models and vLLM.

The prompt lists every token of the scored records as ``token<TAB>unknown``, after
few-shot examples whose values are revealed (``prompts/logprob_few_shot.json``). One
forward pass gives, right after each token's tab, the model's distribution over the
value tokens ``0`` ... ``10``; the prediction is the expected value, renormalized over
those eleven values. Hosted APIs no longer return prompt logprobs; two backends do:

- ``neuronbench/<model>`` (the in-process provider): exact logprobs of exactly the value
  tokens, requested through ``generate()`` so inspect's cache covers them;
- any provider that returns vLLM-style ``prompt_logprobs`` on the raw prompt
  (``vllm-completions/<model>``, ``openai-api-completions`` against vLLM or SGLang):
  the top 20 alternatives per position (inspect's maximum); values outside them count
  as probability 0, and a position with none of them fails the simulation.

Alignment. Every subject token sits on its own line (newlines and tabs escaped as
``\\n``/``\\t``), so the value position is a character offset: just after the line's tab.
The simulator's tokenizer may split a subject token into pieces or merge it with the
tab; neither matters, because the model's output at the last token ending at the tab
predicts what follows the tab. Only a tokenizer that merges the tab with the text
*after* it (no token boundary there) cannot be read in one pass: that is a flagged
failure, never a guess.

Multi-token values. When "10" is one token (GPT-2, cl100k), all eleven values are
read exactly. Digit-splitting tokenizers (Llama, SmolLM2) spell 10 as "1" then "0",
so the probability of the first token "1" is the probability of "1 or 10", and the
next digit is not visible when the prompt says ``unknown``. We split that mass in
proportion to how often 1 and 10 appear among the values revealed in the prompt's own
examples (add-one smoothed): the in-context prior the model saw. The split is
reported in ``details["shared_first_tokens"]``.

Cost. All scored records of a neuron go into one prompt (chunked only where the
context would overflow), so scoring a neuron costs one forward pass, not one per
record, and far fewer than the one-per-token "one at a time" method.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from inspect_ai.model import CachePolicy, GenerateConfig, Model, get_model

from neuronbench.scorers.simulators.base import Simulation

VALUES = tuple(range(11))
"""The value scale of shown activations (0-10, the paper's)."""
PLACEHOLDER = "unknown"
"""What the prompt shows in place of a value to be predicted."""
CACHE_SCOPE = "neuronbench-logprob-simulator/1"
"""Bumped when the prompt or the request changes, so old cache entries are not reused."""
VLLM_TOP_LOGPROBS = 20
"""Alternatives per prompt position requested from vLLM (inspect allows at most 20)."""


def escape_token(token: str) -> str:
    """Show a token on one line: newline, carriage return and tab become visible escapes."""
    return (
        token.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )


@dataclass(frozen=True)
class FewShot:
    """The prompt's fixed part: instructions and examples with revealed values."""

    header: str
    """Instructions that open the prompt."""
    explanation_prefix: str
    """Words before each explanation ("the main thing this neuron does is find")."""
    examples: tuple[tuple[str, tuple[tuple[tuple[str, int], ...], ...]], ...]
    """``(explanation, records)``; each record a sequence of ``(token, value 0-10)``."""

    def value_prior(self) -> list[float]:
        """Add-one smoothed frequency of each value among the revealed examples."""
        counts = [1.0] * len(VALUES)
        for _, records in self.examples:
            for record in records:
                for _, value in record:
                    counts[value] += 1.0
        return counts


def load_few_shot(path: str | Path | None = None) -> FewShot:
    """Read a few-shot file (default: the bundled ``prompts/logprob_few_shot.json``)."""
    if path is None:
        text = (
            resources.files(__package__)
            .joinpath("prompts/logprob_few_shot.json")
            .read_text("utf-8")
        )
        where = "prompts/logprob_few_shot.json"
    else:
        text, where = Path(path).read_text("utf-8"), str(path)
    data = json.loads(text)
    examples = []
    for i, ex in enumerate(data["examples"]):
        records = tuple(tuple((str(t), int(v)) for t, v in rec) for rec in ex["records"])
        if any(v not in VALUES for rec in records for _, v in rec):
            raise ValueError(f"{where}: example {i} has a value outside 0-10")
        examples.append((str(ex["explanation"]), records))
    return FewShot(data["header"], data["explanation_prefix"], tuple(examples))


@dataclass
class BuiltPrompt:
    """A simulation prompt and where its values go."""

    text: str
    """The raw prompt (no chat template)."""
    value_offsets: list[list[int]]
    """Per target record, per token: character offset just after that line's tab."""
    revealed_offsets: dict[int, list[int]]
    """Per value, character offsets where the examples reveal it (shows how values tokenize)."""


def build_prompt(
    few_shot: FewShot, explanation: str, records: Sequence[Sequence[str]]
) -> BuiltPrompt:
    """The all-at-once prompt: examples with values, then the target with ``unknown``."""
    parts: list[str] = [few_shot.header]
    length = len(few_shot.header)
    revealed: dict[int, list[int]] = {}

    def add(s: str) -> None:
        nonlocal length
        parts.append(s)
        length += len(s)

    def section(i: int, expl: str) -> None:
        add(
            f"\nNeuron {i}\nExplanation of neuron {i} behavior: {few_shot.explanation_prefix} {expl}\nActivations:\n"
        )

    for i, (expl, ex_records) in enumerate(few_shot.examples, start=1):
        section(i, expl)
        for rec in ex_records:
            add("<start>\n")
            for tok, value in rec:
                add(escape_token(tok) + "\t")
                revealed.setdefault(value, []).append(length)
                add(f"{value}\n")
            add("<end>\n")
    section(len(few_shot.examples) + 1, explanation.strip())
    offsets: list[list[int]] = []
    for target in records:
        add("<start>\n")
        rec_offsets = []
        for token in target:
            add(escape_token(token) + "\t")
            rec_offsets.append(length)
            add(PLACEHOLDER + "\n")
        offsets.append(rec_offsets)
        add("<end>\n")
    return BuiltPrompt("".join(parts), offsets, revealed)


def value_probabilities(
    logprobs: Mapping[Any, float], first_tokens: Sequence[Any], prior: Sequence[float]
) -> list[float] | None:
    """Probability of each value 0-10 at one position, renormalized over the valid values.

    Args:
        logprobs: log-probability of candidate first tokens at this position (absent = 0).
        first_tokens: the first token (id or string) of each value's spelling.
        prior: weights that split a first token shared by several values (e.g. "1" of
            1 and 10) among them.

    Returns:
        Eleven probabilities summing to 1, or None when no value has any probability.
    """
    groups: dict[Any, list[int]] = {}
    for value, key in zip(VALUES, first_tokens, strict=True):
        groups.setdefault(key, []).append(value)
    mass = [0.0] * len(VALUES)
    for key, members in groups.items():
        if key not in logprobs:
            continue
        p = math.exp(logprobs[key])
        weight = sum(prior[v] for v in members)
        for v in members:
            mass[v] = p * prior[v] / weight
    total = sum(mass)
    if total <= 0.0:
        return None
    return [m / total for m in mass]


def expected_value(probs: Sequence[float]) -> float:
    return float(sum(v * p for v, p in zip(VALUES, probs, strict=True)))


def local_first_tokens(tokenizer: Any) -> list[int]:
    """The first token id of each value as the tokenizer spells it after a tab."""
    first = []
    for value in VALUES:
        enc = tokenizer(f"a\t{value}\n", add_special_tokens=False, return_offsets_mapping=True)
        starts = {
            s: tid
            for tid, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
            if e > s
        }
        if 2 not in starts:
            raise ValueError(f"the simulator's tokenizer merges the tab with the value {value}")
        first.append(starts[2])
    return first


class LogprobSimulator:
    """Predicts activations from prompt logprobs at every ``unknown`` (see module docstring)."""

    name = "logprob"

    def __init__(
        self,
        model: Model | str,
        *,
        few_shot: FewShot | str | Path | None = None,
        max_prompt_tokens: int | None = None,
        cache: bool = True,
    ) -> None:
        """
        Args:
            model: ``neuronbench/<model>`` (exact) or a provider returning vLLM prompt logprobs.
            few_shot: examples with revealed values, or a path to such a JSON file.
            max_prompt_tokens: chunk records so no prompt exceeds this (default: the local
                model's context, else 4096).
            cache: cache each prompt's logprobs with inspect's cache (keyed by prompt, model
                name and checkpoint revision), so a rerun makes no model call.
        """
        self.model = get_model(model) if isinstance(model, str) else model
        self.few_shot = few_shot if isinstance(few_shot, FewShot) else load_few_shot(few_shot)
        self.max_prompt_tokens = max_prompt_tokens
        self.cache = cache
        self._local = _local_api(self.model)

    def _limit(self) -> int:
        if self._local is not None:
            context = self._local.local.context_length
            return min(context, self.max_prompt_tokens or context)
        return self.max_prompt_tokens or 4096

    def _count(self, text: str) -> int:
        if self._local is not None:
            return len(self._local.tokenizer(text, verbose=False)["input_ids"])
        return len(text) // 2  # no tokenizer at hand: a conservative 2 characters per token

    def chunks(self, explanation: str, records: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
        """Record ranges ``[start, end)`` packed greedily into prompts under the token limit."""
        limit, spans, start = self._limit(), [], 0
        while start < len(records):
            end = start + 1
            if (
                self._count(build_prompt(self.few_shot, explanation, records[start:end]).text)
                > limit
            ):
                raise _SimulationFailure(
                    f"record {start} alone does not fit in {limit} prompt tokens"
                )
            while (
                end < len(records)
                and self._count(
                    build_prompt(self.few_shot, explanation, records[start : end + 1]).text
                )
                <= limit
            ):
                end += 1
            spans.append((start, end))
            start = end
        return spans

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        predictions: list[list[float]] = []
        details: dict[str, Any] = {"prompts": 0, "prompt_tokens": 0}
        try:
            for start, end in self.chunks(explanation, records):
                prompt = build_prompt(self.few_shot, explanation, records[start:end])
                dists = await self._distributions(prompt, details)
                for i, rec in enumerate(dists):
                    row = []
                    for j, probs in enumerate(rec):
                        if probs is None:
                            tok = records[start + i][j]
                            raise _SimulationFailure(
                                f"record {start + i} token {j} ({tok!r}): no value 0-10 among the returned logprobs"
                            )
                        row.append(expected_value(probs))
                    predictions.append(row)
                details["prompts"] += 1
        except _SimulationFailure as ex:
            return Simulation(
                predictions=None, error=str(ex), raw_output=json.dumps(details), details=details
            )
        return Simulation(predictions=predictions, details=details)

    def _cache_policy(self, revision: str) -> CachePolicy | bool:
        if not self.cache:
            return False
        return CachePolicy(
            expiry=None, per_epoch=False, scopes={"simulator": CACHE_SCOPE, "revision": revision}
        )

    async def _distributions(
        self, prompt: BuiltPrompt, details: dict[str, Any]
    ) -> list[list[list[float] | None]]:
        prior = self.few_shot.value_prior()
        if self._local is not None:
            from neuronbench.models.local import LocalModelError, token_positions_for_offsets

            tok = self._local.tokenizer
            try:
                first = local_first_tokens(tok)
            except ValueError as ex:
                raise _SimulationFailure(str(ex)) from ex
            flat = [c for rec in prompt.value_offsets for c in rec]
            enc = tok(prompt.text, return_offsets_mapping=True, verbose=False)
            try:
                token_positions_for_offsets(enc["offset_mapping"], flat, len(prompt.text))
            except LocalModelError as ex:
                raise _SimulationFailure(f"cannot align value positions: {ex}") from ex
            ids = sorted(set(first))
            request = {"prompt_logprobs": {"offsets": flat, "token_ids": ids}}
            out = await self.model.generate(
                prompt.text,
                config=GenerateConfig(max_tokens=1, temperature=0, extra_body=request),
                cache=self._cache_policy(self._local.revision),
            )
            rows = iter((out.metadata or {})["prompt_logprobs"])
            details["prompt_tokens"] += out.metadata["prompt_tokens"] if out.metadata else 0
            keys: Sequence[Any] = first
            per_position: list[dict[Any, float]] = [
                dict(zip(ids, next(rows), strict=True)) for _ in flat
            ]
        else:
            out = await self.model.generate(
                prompt.text,
                config=GenerateConfig(
                    max_tokens=1, temperature=0, prompt_logprobs=VLLM_TOP_LOGPROBS
                ),
                cache=self._cache_policy(""),
            )
            found = vllm_position_logprobs(
                prompt, out.choices[0].prompt_logprobs if out.choices else None
            )
            keys, per_position = found[0], list(found[1])
        details.setdefault("shared_first_tokens", _shared(keys, prior))
        positions = iter(per_position)
        return [
            [value_probabilities(next(positions), keys, prior) for _ in rec]
            for rec in prompt.value_offsets
        ]


def vllm_position_logprobs(
    prompt: BuiltPrompt, prompt_logprobs: Any
) -> tuple[list[str], list[dict[str, float]]]:
    """Value first-token strings and per-value-position ``{token: logprob}`` from vLLM output.

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
    first = [str(v) for v in VALUES]
    ten = [starts[c].token for c in prompt.revealed_offsets.get(10, []) if c in starts]
    if ten and ten[0] != "10":
        first[10] = ten[0]
    per_position = []
    for rec in prompt.value_offsets:
        for c in rec:
            if c not in starts:
                raise _SimulationFailure(f"no prompt token starts at value offset {c}")
            e = starts[c]
            lps = {t.token: t.logprob for t in e.top_logprobs or []}
            lps[e.token] = e.logprob
            per_position.append(lps)
    return first, per_position


def _shared(keys: Sequence[Any], prior: Sequence[float]) -> list[dict[str, Any]]:
    groups: dict[Any, list[int]] = {}
    for v, k in zip(VALUES, keys, strict=True):
        groups.setdefault(k, []).append(v)
    return [
        {"values": vs, "split": [prior[v] / sum(prior[u] for u in vs) for v in vs]}
        for vs in groups.values()
        if len(vs) > 1
    ]


def _local_api(model: Model) -> Any:
    from neuronbench.models.provider import LocalModelAPI

    return model.api if isinstance(model.api, LocalModelAPI) else None


class _SimulationFailure(Exception):
    """A reason this neuron cannot be simulated; becomes ``Simulation.error``."""
