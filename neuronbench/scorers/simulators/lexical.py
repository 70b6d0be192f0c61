"""Lexical baseline simulator: a token fires (10) when the explanation names it, else 0.

Needs no model, so it gives a meaningful offline score and a floor an LLM simulator
should beat: an explanation that names the neuron's trigger words already scores well
here, one that only paraphrases its concept does not.

"Named" words are the explanation's quoted strings (``"London"``, ```the```, ``','``)
and its content words (lowercase, stopwords and explanation boilerplate removed; see
``lexical_stopwords.txt``). A token matches after normalization (whitespace and the
``Ġ``/``▁`` subword markers stripped, lowercase): equal to a quoted string, or, on its
letters and digits, equal to a content word or a prefix/extension of one of at least
three characters, so the subword ``Lond`` and the plural ``cats`` fire for ``London``
and ``cat``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from neuronbench.scorers.simulators.base import Simulation

FIRE = 10.0
"""Prediction for a named token (the top of the 0-10 scale)."""
MIN_PREFIX = 3
"""Shortest shared prefix that counts as a subword / inflection match."""

_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|`([^`]+)`|(?<![A-Za-z])'([^']+)'(?![A-Za-z])")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_SUBWORD_MARKERS = "Ġ▁Ċ"


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """Words never treated as named (function words and explanation boilerplate)."""
    text = (
        resources.files(__package__).joinpath("lexical_stopwords.txt").read_text(encoding="utf-8")
    )
    return frozenset(w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#"))


def normalize_token(token: str) -> str:
    """Token text as compared: subword markers and surrounding whitespace removed, lowercase."""
    return token.strip().lstrip(_SUBWORD_MARKERS).strip().lower()


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


@dataclass(frozen=True)
class NamedTerms:
    """What an explanation names, as the lexical simulator reads it."""

    quoted: frozenset[str]
    """Quoted strings (normalized), matched against whole tokens; may be punctuation."""
    words: frozenset[str]
    """Content words (lowercase, letters/digits only), matched on a token's letters and digits."""


def named_terms(explanation: str) -> NamedTerms:
    """Extract the quoted strings and content words an explanation names."""
    quoted: set[str] = set()
    for groups in _QUOTED.findall(explanation):
        q = next(g for g in groups if g)
        quoted.add(normalize_token(q))
    stop = stopwords()
    words = {_alnum(w) for w in _WORD.findall(explanation.lower()) if w not in stop}
    words |= {_alnum(w) for q in quoted for w in _WORD.findall(q)}
    return NamedTerms(
        quoted=frozenset(q for q in quoted if q),
        words=frozenset(w for w in words if w and w not in stop),
    )


def token_fires(token: str, terms: NamedTerms) -> bool:
    """Whether ``token`` is named by ``terms`` (exact quoted string, word, subword or inflection)."""
    norm = normalize_token(token)
    if not norm:
        return False
    if norm in terms.quoted:
        return True
    core = _alnum(norm)
    if not core:
        return False
    for w in terms.words:
        if core == w:
            return True
        if (
            len(core) >= MIN_PREFIX
            and len(w) >= MIN_PREFIX
            and (w.startswith(core) or core.startswith(w))
        ):
            return True
    return False


@dataclass
class LexicalSimulator:
    """Predicts 10 on tokens the explanation names and 0 elsewhere; needs no model."""

    name: str = "lexical"
    """Identifier recorded in scores."""

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        terms = named_terms(explanation)
        predictions = [[FIRE if token_fires(t, terms) else 0.0 for t in rec] for rec in records]
        return Simulation(
            predictions=predictions,
            details={"quoted": sorted(terms.quoted), "words": sorted(terms.words)},
        )
