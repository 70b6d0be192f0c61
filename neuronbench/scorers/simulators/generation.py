"""Generation simulator: a chat model rewrites the token lines with activations filled in.

For models without prompt logprobs (OpenAI, Anthropic, any inspect provider). Each
record is one generate call: the prompt (``generation_prompt.txt``) lists the tokens
one per line as ``token<TAB>unknown``; the model answers ``token<TAB>value``. Where the
provider returns top logprobs at a value token, the prediction is the expected value
over the numbers 0-10 among them (the paper's method, restricted to what the API gives);
otherwise it is the integer written.

Output is parsed tolerantly (surrounding text, code fences, spaces instead of tabs when
no line has a tab), but the tokens must come back in order and count: anything else
makes the whole simulation a flagged failure with the reason and the raw output, never
a silent row of zeros. Calls go through inspect's cache, so re-scoring an explanation
already simulated costs no model call.
"""

from __future__ import annotations

import asyncio
import math
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from string import Template
from typing import TYPE_CHECKING

from neuronbench.scorers.simulators.base import Simulation

if TYPE_CHECKING:
    from inspect_ai.model import Logprobs, Model

MAX_VALUE = 10
"""Top of the activation scale the model writes."""

_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_LINE_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Other characters ``str.splitlines`` breaks on: escaped as ``\\uXXXX`` in prompts."""


class ParseError(ValueError):
    """The model's output does not give one value per token, in order."""


@lru_cache(maxsize=1)
def prompt_template() -> Template:
    """The prompt, with ``$explanation``, ``$n_tokens`` and ``$lines`` placeholders."""
    text = (
        resources.files(__package__).joinpath("generation_prompt.txt").read_text(encoding="utf-8")
    )
    return Template(text.rstrip("\n"))


def display_token(token: str) -> str:
    """A token as one prompt line shows it: newlines and tabs escaped so a line is a token."""
    return "".join(
        _ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ch in _LINE_BREAKS else ch) for ch in token
    )


def build_prompt(explanation: str, tokens: Sequence[str]) -> str:
    """The simulation prompt for one record."""
    lines = "\n".join(f"{display_token(t)}\tunknown" for t in tokens)
    return prompt_template().substitute(
        explanation=explanation.strip(), n_tokens=len(tokens), lines=lines
    )


@dataclass
class ParsedValue:
    """One value the model wrote, with where it sits in the output (for its logprobs)."""

    value: float
    """The number written (0-10)."""
    start: int
    """Offset of the number's first character in the output."""
    end: int
    """Offset just past the number's last character."""


def _lines(text: str) -> list[tuple[int, str]]:
    """(offset, line) for every line of ``text``, line endings removed."""
    out, offset = [], 0
    for raw in text.splitlines(keepends=True):
        out.append((offset, raw.rstrip("\r\n")))
        offset += len(raw)
    return out


def _split(line: str, tabbed: bool) -> tuple[str, str, int] | None:
    """(token, value text, offset of value text in line), or None if not a token line."""
    if tabbed:
        cut = line.rfind("\t")
        return None if cut < 0 else (line[:cut], line[cut + 1 :], cut + 1)
    m = re.match(r"^(.*?)\s*(\S+)\s*$", line)
    if m is None or _NUMBER.match(m.group(2)) is None:
        return None
    return m.group(1), m.group(2), m.start(2)


def parse_values(completion: str, tokens: Sequence[str]) -> list[ParsedValue]:
    """One value per token from the model's output.

    Token lines are the lines holding a tab (or, if no line has one, the lines ending in
    a number); other lines (preamble, code fences) are ignored. There must be exactly
    one token line per token, with the token copied (up to surrounding whitespace) and a
    number 0-10 after it.

    Raises:
        ParseError: naming the first line that does not fit.
    """
    lines = [(o, ln) for o, ln in _lines(completion) if not ln.lstrip().startswith("```")]
    tabbed = any("\t" in ln for _, ln in lines)
    found = [(o, s) for o, ln in lines if ln.strip() and (s := _split(ln, tabbed)) is not None]
    if len(found) != len(tokens):
        how = "" if tabbed else " (no tab in the output: read 'token value' lines)"
        raise ParseError(f"expected {len(tokens)} token<TAB>value lines, found {len(found)}{how}")
    values = []
    for i, ((offset, (tok, value_text, at)), expected) in enumerate(
        zip(found, tokens, strict=True)
    ):
        if tok.strip() != display_token(expected).strip():
            raise ParseError(
                f"line {i + 1}: expected token {display_token(expected)!r}, got {tok!r}"
            )
        m = _NUMBER.match(value_text)
        if m is None:
            raise ParseError(
                f"line {i + 1} (token {tok!r}): value {value_text.strip()!r} is not a number"
            )
        value = float(m.group(1))
        if value > MAX_VALUE:
            raise ParseError(f"line {i + 1} (token {tok!r}): value {value:g} is above {MAX_VALUE}")
        start = offset + at + m.start(1)
        values.append(ParsedValue(value=value, start=start, end=offset + at + m.end(1)))
    return values


def expected_values(
    logprobs: Logprobs | None, completion: str, values: Sequence[ParsedValue]
) -> list[float | None]:
    """Expected value over 0-10 at each written value, from the top logprobs there.

    None where it cannot be read: no logprobs, tokens that do not spell the output, a
    number split over several tokens, or no numeric alternative among the top logprobs.
    """
    if logprobs is None or not logprobs.content:
        return [None] * len(values)
    toks = logprobs.content
    if "".join(t.token for t in toks) != completion:
        return [None] * len(values)
    starts, pos = [], 0
    for t in toks:
        starts.append(pos)
        pos += len(t.token)
    out: list[float | None] = []
    for v in values:
        i = bisect_right(starts, v.start) - 1
        tok = toks[i]
        if starts[i] + len(tok.token) < v.end or tok.token.strip() != completion[v.start : v.end]:
            out.append(None)
            continue
        mass: dict[int, float] = {}
        for alt in tok.top_logprobs or []:
            s = alt.token.strip()
            if s.isdigit() and int(s) <= MAX_VALUE:
                mass[int(s)] = mass.get(int(s), 0.0) + math.exp(alt.logprob)
        total = sum(mass.values())
        out.append(sum(k * p for k, p in mass.items()) / total if total > 0 else None)
    return out


@dataclass
class GenerationSimulator:
    """Simulates by asking a chat model (any inspect provider) to fill in the values."""

    model: Model
    """The simulator model (inspect ``Model``, usually from the ``simulator`` role)."""
    logprobs: bool = True
    """Request top logprobs at each output token (ignored by providers without them)."""
    top_logprobs: int = 15
    """How many alternatives per position to request (OpenAI allows up to 20)."""
    cache: bool = True
    """Use inspect's generate cache (no expiry, shared across epochs)."""
    name: str = "generation"
    """Identifier recorded in scores."""
    max_tokens_per_token: int = 12
    """Output budget per record token (a line is the token, a tab, a number and a newline)."""

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        # gather, not a task group: a failed call (a server's 500 after retries) then
        # surfaces as itself, not as "unhandled errors in a TaskGroup"
        results: list[_RecordResult] = list(
            await asyncio.gather(*(self._simulate_record(explanation, rec) for rec in records))
        )
        raw_output = "\n".join(f"=== record {i} ===\n{r.raw}" for i, r in enumerate(results))
        details = {
            "values_from_logprobs": sum(r.n_expected for r in results),
            "values": sum(len(r) for r in records),
        }
        errors = [f"record {i}: {r.error}" for i, r in enumerate(results) if r.error is not None]
        if errors:
            return Simulation(None, error="; ".join(errors), raw_output=raw_output, details=details)
        preds = [r.predictions or [] for r in results]
        return Simulation(predictions=preds, raw_output=raw_output, details=details)

    async def _simulate_record(self, explanation: str, tokens: Sequence[str]) -> _RecordResult:
        from inspect_ai.model import CachePolicy, GenerateConfig

        config = GenerateConfig(
            temperature=0.0,
            max_tokens=self.max_tokens_per_token * len(tokens) + 64,
            logprobs=True if self.logprobs else None,
            top_logprobs=self.top_logprobs if self.logprobs else None,
        )
        cache = CachePolicy(expiry=None, per_epoch=False) if self.cache else False
        prompt = build_prompt(explanation, tokens)
        output = await self.model.generate(prompt, config=config, cache=cache)
        completion = output.completion
        try:
            parsed = parse_values(completion, tokens)
        except ParseError as e:
            truncated = " (output hit max_tokens)" if output.stop_reason == "max_tokens" else ""
            return _RecordResult(None, completion, f"{e}{truncated}")
        logprobs = output.choices[0].logprobs if output.choices else None
        evs = expected_values(logprobs, completion, parsed)
        preds = [ev if ev is not None else p.value for ev, p in zip(evs, parsed, strict=True)]
        return _RecordResult(preds, completion, None, sum(ev is not None for ev in evs))


@dataclass
class _RecordResult:
    """One record's simulation: predictions, or the error that flags it."""

    predictions: list[float] | None
    """One prediction per token; None on failure."""
    raw: str
    """The model's output for this record."""
    error: str | None
    """Why the output was rejected; None on success."""
    n_expected: int = 0
    """Values read as expected values from logprobs (the rest are the integers written)."""
