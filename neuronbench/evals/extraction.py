"""Turn an explainer's raw completion into one explanation string, plus flags.

Models wrap the answer in quotes, repeat the prompt's prefix ("the main thing this neuron
does is find"), label it ("Explanation:"), keep writing the few-shot pattern on the next
lines, or refuse. Extraction removes the wrapping and *flags* the rest: a flagged
explanation is still recorded (so the log shows what happened) but is never passed on
as if it were valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EXPLANATION_PREFIX = "the main thing this neuron does is find"
"""The paper's completion prefix; the explainer completes this sentence."""

COT_MARKER = "EXPLANATION:"
"""Marker of the final answer line in chain-of-thought output (case-insensitive)."""

MAX_WORDS = 60
"""Explanations longer than this many words are flagged ``too_long`` (the paper asked for one sentence)."""

MAX_CHARS = 400
"""Explanations longer than this many characters are flagged ``too_long``."""

FLAGS = ("empty", "refusal", "too_long", "no_marked_line", "missing", "no_donor")
"""Every flag extraction or a strategy may set. An empty flag list means a valid explanation."""

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry[,.!]|i apologi[sz]e|i cannot|i can'?t|i can not|"
    r"i'?m (?:not )?(?:unable|able)|i am unable|i do not have enough|i don'?t have enough|"
    r"as an ai\b|unfortunately,? i)",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"^\s*(?:\*\*|__)?\s*(?:\[?explanation\]?(?: of neuron \d+(?: behaviou?r)?)?|answer|"
    r"final answer|neuron \d+)\s*(?:\*\*|__)?\s*[:\-–—]\s*(?:\*\*|__)?",
    re.IGNORECASE,
)
_PREFIX = re.compile(
    r"^\s*(?:the main thing this neuron does is (?:to )?find|this neuron (?:finds|looks for|is looking for))\s*:?\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’«»"


@dataclass
class Extraction:
    """An explanation pulled out of raw model output, with what was wrong with it."""

    explanation: str
    """The cleaned explanation ("" when nothing usable was found)."""
    flags: list[str] = field(default_factory=list)
    """Problems found (see :data:`FLAGS`); empty means valid."""

    @property
    def valid(self) -> bool:
        return not self.flags


def clean(text: str) -> str:
    """Strip labels, the paper's prefix, quotes, markdown emphasis and trailing periods."""
    s = " ".join(text.split())
    for _ in range(3):  # labels and prefixes come in any order: "Explanation: the main thing..."
        before = s
        s = _LABEL.sub("", s, count=1).strip()
        s = _PREFIX.sub("", s, count=1).strip()
        s = s.strip("*_").strip()
        if len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
            s = s[1:-1].strip()
        s = s.rstrip(" .").strip()
        if s == before:
            break
    return s


def _marked_line(text: str, marker: str) -> str | None:
    """Text after the last occurrence of ``marker`` (case-insensitive), up to the end of its line."""
    hits = list(re.finditer(re.escape(marker.rstrip(":")) + r"\]?\s*:", text, re.IGNORECASE))
    if not hits:
        return None
    rest = text[hits[-1].end() :].strip()
    line = next((ln for ln in rest.splitlines() if ln.strip()), "")
    return line


def extract_explanation(
    text: str | None,
    *,
    marker: str | None = None,
    max_words: int = MAX_WORDS,
    max_chars: int = MAX_CHARS,
) -> Extraction:
    """Extract and flag the explanation in ``text``.

    Args:
        text: Raw completion of the explainer.
        marker: If given (chain-of-thought), the explanation is the line after the last
            ``marker``; without one the output is flagged ``no_marked_line`` and its last
            non-empty line is kept for inspection.
        max_words: Word limit before ``too_long``.
        max_chars: Character limit before ``too_long``.

    Without a marker the first non-empty line is the explanation: completion models often
    go on to write the next few-shot block ("Neuron 5 / Activations: ...") after it.
    """
    flags: list[str] = []
    raw = (text or "").strip()
    if marker is not None and raw:
        found = _marked_line(raw, marker)
        if found is None:
            flags.append("no_marked_line")
            found = [ln for ln in raw.splitlines() if ln.strip()][-1]
        candidate = found
    else:
        candidate = next((ln for ln in raw.splitlines() if ln.strip()), "")
    explanation = clean(candidate)
    if not explanation:
        flags.append("empty")
    elif _REFUSAL.search(explanation):
        flags.append("refusal")
    if len(explanation.split()) > max_words or len(explanation) > max_chars:
        flags.append("too_long")
    return Extraction(explanation=explanation, flags=flags)
