"""Evaluable firing rules of the v2 ground-truth suite: what an explanation *means*, as data.

Every explanation in the suite (truth and decoys) carries a rule; :func:`evaluate` gives the
graded level each token would have if that explanation were exactly right (0 where it
does not fire). A trained simulator can therefore be taught on any explanation's
activations, not only the truth's.

Rules are JSON-ready dicts, ``{"kind": ..., "level": optional multiplier}``:

- ``words``: ``words`` (lowercase members match any case; members with a capital match
  exactly; ``case_sensitive`` makes all exact). Level: :func:`member_weight` of the word.
- ``tokens``: tokens whose text, stripped of spaces, is one of ``tokens`` (punctuation lists).
- ``concept``: ``id`` of a WordNet concept in the shipped lexicon (its members, as ``words``).
- ``pos``: words whose dominant WordNet part of speech is ``pos`` (n, v, a, r), stop words
  and words under three letters out.
- ``inflection``: inflected forms (``pos`` n: plural nouns; v: verb forms) by WordNet morphy.
- ``suffix``: alphabetic words ending in one of ``suffixes`` with at least ``min_len`` letters.
- ``property``: ``capitalized``, ``punctuation``, ``ends_ly``, ``long_word``, ``digit`` (as v1),
  ``all_caps`` (two or more capitals), ``word`` (any word).
- ``chars``: punctuation-only tokens containing one of ``chars``.
- ``after``: the word right after one of ``words`` (whitespace between; ``skip_periods``).
- ``before``: the word directly followed by one of ``chars`` (no space between).
- ``sentence_start``: the first word of a sentence (after . ! ? or a line break; never the
  record's first word, whose context is unseen).
- ``inside_quotes``: tokens with a letter or digit between quotation marks (``any``: any
  character but a quotation mark, so punctuation too).
- ``repeat``: a word already seen earlier in the record (case-insensitive), of at least
  ``min_len`` letters, stop words out unless ``stopwords`` is true.
- ``union`` (``rules``: max of levels), ``and`` (``rules``: the first rule's level where all
  fire), ``not`` (``rule``: 1 where it does not fire).

Word rules fire on every token that overlaps a matching word (a run of ASCII letters or
digits), so they hold for any tokenizer. Each record is read on its own: quote state at a
record's start is inferred from the first quotation mark it holds (an opening mark follows
whitespace; a closing one follows a letter or punctuation).
"""

from __future__ import annotations

import functools
import json
import lzma
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from neuronbench.groundtruth.planted import display_text, member_weight

Rule = dict[str, Any]
_WORD = re.compile(r"[A-Za-z0-9]+")
_END = re.compile(r"[.!?]")
_ABBREV = re.compile(r"[A-Z][a-z]?[a-z]?")
KINDS = (
    "words", "tokens", "concept", "pos", "inflection", "suffix", "property", "chars", "after", "before",
    "sentence_start", "inside_quotes", "repeat", "union", "and", "not",
)  # fmt: skip
CACHE_SIZE = 64
WORD_PROPERTIES = ("capitalized", "ends_ly", "long_word", "all_caps", "word")


class RuleError(ValueError):
    """A rule that is not well formed (unknown kind, missing field, unknown concept)."""


@functools.lru_cache(maxsize=1)
def lexicon() -> dict[str, Any]:
    """The shipped WordNet-derived lexicon (see ``scripts/build_lexicon.py``)."""
    data = resources.files("neuronbench.groundtruth").joinpath("data/lexicon.json.xz")
    return json.loads(lzma.decompress(data.read_bytes()))


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    return frozenset(lexicon()["stopwords"])


@functools.cache
def _selection(kind: str, value: str) -> frozenset[str]:
    lex = lexicon()
    stop = _stopwords()
    # words of one or two letters are mostly clitics and letters ("s" of "'s" is a noun)
    if kind == "pos":
        return frozenset(
            w for w, p in lex["pos"].items() if p == value and w not in stop and len(w) > 2
        )
    return frozenset(
        w for w, (p, _) in lex["forms"].items() if p == value and w not in stop and len(w) > 2
    )


def concept_members(concept_id: str) -> list[str]:
    try:
        return list(lexicon()["concepts"][concept_id]["members"])
    except KeyError:
        raise RuleError(f"unknown lexicon concept {concept_id!r}") from None


# ---------------------------------------------------------------- analysis of records


@dataclass
class Analysis:
    """Records split into words once, so many rules evaluate fast over the same tokens."""

    texts: list[list[str]]
    """Per record, each token's display text."""
    offsets: np.ndarray
    """Start of each record in the flat token arrays (length ``n_records + 1``)."""
    word: list[str]
    lower: list[str]
    w_first: np.ndarray
    """Flat index of the first / last token each word overlaps."""
    w_last: np.ndarray
    after_ok: np.ndarray
    """Whitespace-only gap to the previous word (in the same record)."""
    after_period_ok: np.ndarray
    """Gap to the previous word is an optional period then whitespace."""
    prev_lower: list[str | None]
    next_char: list[str]
    """The character right after the word ('' at the record end)."""
    sentence_start: np.ndarray
    repeat: np.ndarray
    """The word (lowercase) occurred earlier in its record."""
    quoted_tokens: np.ndarray
    """Per flat token: holds a letter or digit inside quotation marks."""
    quoted_any: np.ndarray
    """Per flat token: holds any character other than a quotation mark inside quotes."""
    lower_ids: np.ndarray
    """Per word: index of its lowercase form in ``vocab`` (fast set membership)."""
    exact_ids: np.ndarray
    """Per word: index of its exact form in ``vocab``."""
    vocab: dict[str, int]
    weights: np.ndarray
    """Per vocab entry: :func:`member_weight` of it."""
    cache: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)
    """Levels of the rules evaluated here last (rules nest and share parts), at most
    :data:`CACHE_SIZE`: a suite tries thousands of rules over 100k tokens."""

    @functools.cached_property
    def flat_tokens(self) -> list[str]:
        return [t.strip() for row in self.texts for t in row]

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        return [flat[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]


def analyze(records: Sequence[Sequence[str]]) -> Analysis:
    """Words, their context and quote state of each record (tokens as decoded strings)."""
    texts = [[display_text(str(t)) for t in toks] for toks in records]
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64)
    cols: dict[str, list[Any]] = {k: [] for k in (
        "word", "lower", "first", "last", "after", "after_p", "prev", "next", "start", "repeat",
    )}  # fmt: skip
    quoted = np.zeros(int(offsets[-1]), dtype=bool)
    quoted_any = np.zeros(int(offsets[-1]), dtype=bool)
    for r, toks in enumerate(texts):
        text = "".join(toks)
        owner = np.repeat(np.arange(len(toks)), [len(t) for t in toks]) + offsets[r]
        _quotes(text, owner, quoted, quoted_any)
        seen: set[str] = set()
        prev: re.Match[str] | None = None
        for m in _WORD.finditer(text):
            w = m.group()
            gap = text[prev.end() : m.start()] if prev else None
            cols["word"].append(w)
            cols["lower"].append(w.lower())
            cols["first"].append(owner[m.start()])
            cols["last"].append(owner[m.end() - 1])
            cols["after"].append(gap is not None and gap.isspace())
            cols["after_p"].append(gap is not None and re.fullmatch(r"\.?\s+", gap) is not None)
            cols["prev"].append(prev.group().lower() if prev else None)
            cols["next"].append(text[m.end()] if m.end() < len(text) else "")
            cols["start"].append(_starts_sentence(gap, prev.group() if prev else None))
            cols["repeat"].append(w.lower() in seen)
            seen.add(w.lower())
            prev = m
    vocab: dict[str, int] = {}
    lower_ids = np.array([vocab.setdefault(w, len(vocab)) for w in cols["lower"]], dtype=np.int64)
    exact_ids = np.array([vocab.setdefault(w, len(vocab)) for w in cols["word"]], dtype=np.int64)
    return Analysis(
        lower_ids=lower_ids,
        exact_ids=exact_ids,
        vocab=vocab,
        weights=np.array([member_weight(w) for w in vocab]),
        texts=texts,
        offsets=offsets,
        word=cols["word"],
        lower=cols["lower"],
        w_first=np.array(cols["first"], dtype=np.int64),
        w_last=np.array(cols["last"], dtype=np.int64),
        after_ok=np.array(cols["after"], dtype=bool),
        after_period_ok=np.array(cols["after_p"], dtype=bool),
        prev_lower=cols["prev"],
        next_char=cols["next"],
        sentence_start=np.array(cols["start"], dtype=bool),
        repeat=np.array(cols["repeat"], dtype=bool),
        quoted_tokens=quoted,
        quoted_any=quoted_any,
    )


def _starts_sentence(gap: str | None, prev: str | None) -> bool:
    """After a line break or . ! ? (not the period of an abbreviation such as "Mr.")."""
    if gap is None or prev is None:
        return False
    if "\n" in gap:
        return True
    if _END.search(gap) is None:
        return False
    return not (gap.startswith(".") and _ABBREV.fullmatch(prev) is not None and "!" not in gap)


def _quotes(text: str, owner: np.ndarray, out: np.ndarray, out_any: np.ndarray) -> None:
    """Mark tokens with a letter or digit inside quotation marks (see the module docstring)."""
    marks = []
    for i, c in enumerate(text):
        if c == "\u201c":
            marks.append((i, True))
        elif c == "\u201d":
            marks.append((i, False))
        elif c == '"':
            before = text[i - 1] if i > 0 else " "
            after = text[i + 1] if i + 1 < len(text) else " "
            opening = (before.isspace() or before in "([-\u2014") and not after.isspace()
            marks.append((i, opening))
    first_break = text.find("\n")
    inside = bool(marks) and not marks[0][1] and (first_break < 0 or marks[0][0] < first_break)
    opens = dict(marks)
    for i, c in enumerate(text):
        if c == "\n":
            inside = False
        elif i in opens:
            inside = opens[i]
        elif inside and not c.isspace():
            out_any[owner[i]] = True
            out[owner[i]] |= c.isalnum()


# ---------------------------------------------------------------- evaluation


def _scatter(a: Analysis, word_levels: np.ndarray) -> np.ndarray:
    out = np.zeros(a.n_tokens)
    hit = np.flatnonzero(word_levels > 0)
    np.maximum.at(out, a.w_first[hit], word_levels[hit])
    np.maximum.at(out, a.w_last[hit], word_levels[hit])
    for i in hit[a.w_last[hit] - a.w_first[hit] > 1]:  # words over 3+ tokens: rare
        lo, hi = a.w_first[i], a.w_last[i] + 1
        out[lo:hi] = np.maximum(out[lo:hi], word_levels[i])
    return out


def _member_levels(a: Analysis, members: Sequence[str], cased: bool) -> np.ndarray:
    exact = [a.vocab[m] for m in members if (cased or m != m.lower()) and m in a.vocab]
    loose = [a.vocab[m] for m in members if not cased and m == m.lower() and m in a.vocab]
    hit = np.isin(a.lower_ids, loose) | np.isin(a.exact_ids, exact)
    return np.where(hit, a.weights[a.lower_ids], 0.0)


def _word_test(a: Analysis, test: Any) -> np.ndarray:
    """``test`` of each word, computed once per distinct word form."""
    per_form = np.array([1.0 if test(w) else 0.0 for w in a.vocab])
    return per_form[a.exact_ids] if len(per_form) else np.zeros(0)


def levels(rule: Rule, a: Analysis) -> np.ndarray:
    """Flat per-token levels of ``rule`` over analysed records (0 exactly where it fails)."""
    if not isinstance(rule, dict) or rule.get("kind") not in KINDS:
        raise RuleError(f"unknown rule kind in {rule!r} (use one of {', '.join(KINDS)})")
    key = json.dumps(rule, sort_keys=True)
    if key in a.cache:
        a.cache.move_to_end(key)
        return a.cache[key]
    out = _levels(rule, a)
    out.setflags(write=False)  # shared through the cache
    a.cache[key] = out
    if len(a.cache) > CACHE_SIZE:
        a.cache.popitem(last=False)
    return out


def _levels(rule: Rule, a: Analysis) -> np.ndarray:
    kind = rule["kind"]
    scale = float(rule.get("level", 1.0))
    stop = _stopwords()
    if kind in ("union", "and"):
        parts = [levels(r, a) for r in _field(rule, "rules")]
        if kind == "union":
            return np.max(np.stack(parts), axis=0) * scale
        gate = np.all(np.stack(parts) > 0, axis=0)
        return np.where(gate, parts[0], 0.0) * scale
    if kind == "not":
        return (levels(_field(rule, "rule"), a) <= 0).astype(float) * scale
    if kind == "inside_quotes":
        return (a.quoted_any if rule.get("any") else a.quoted_tokens).astype(float) * scale
    if kind == "tokens":
        wanted = set(_field(rule, "tokens"))
        return np.array([float(t in wanted) for t in a.flat_tokens]).reshape(-1) * scale
    if kind == "chars":
        chars = set(_field(rule, "chars"))
        return (
            np.array(
                [
                    float(bool(s) and not any(c.isalnum() for c in s) and bool(chars & set(s)))
                    for s in a.flat_tokens
                ]
            )
            * scale
        )
    if kind == "property" and rule.get("property") in ("punctuation", "digit"):
        if rule["property"] == "digit":
            return np.array([float(any(c.isdigit() for c in t)) for t in a.flat_tokens]) * scale
        return (
            np.array(
                [
                    float(bool(s) and all(unicodedata.category(c).startswith("P") for c in s))
                    for s in a.flat_tokens
                ]
            )
            * scale
        )
    return _scatter(a, _word_rule(rule, kind, a, stop)) * scale


def _word_rule(rule: Rule, kind: str, a: Analysis, stop: frozenset[str]) -> np.ndarray:
    if kind == "words":
        return _member_levels(a, _field(rule, "words"), bool(rule.get("case_sensitive")))
    if kind == "concept":
        return _member_levels(a, concept_members(_field(rule, "id")), False)
    if kind in ("pos", "inflection"):
        chosen = _selection(kind, _field(rule, "pos"))
        ids = [i for w, i in a.vocab.items() if w in chosen]
        return np.where(np.isin(a.lower_ids, ids), a.weights[a.lower_ids], 0.0)
    if kind == "suffix":
        ends = tuple(_field(rule, "suffixes"))
        n = int(rule.get("min_len", 1))
        return _word_test(a, lambda w: w.isalpha() and len(w) >= n and w.lower().endswith(ends))
    if kind == "property":
        prop = rule.get("property")
        tests = {
            "capitalized": lambda w: w[0].isupper(),
            "ends_ly": lambda w: len(w) >= 4 and w.lower().endswith("ly") and w.isalpha(),
            "long_word": lambda w: len(w) >= 10 and w.isalpha(),
            "all_caps": lambda w: len(w) >= 2 and w.isalpha() and w.isupper(),
            "word": lambda w: True,
        }
        if prop not in tests:
            raise RuleError(f"unknown property {prop!r}")
        return _word_test(a, tests[prop])
    if kind == "after":
        words = {w.lower() for w in _field(rule, "words")}
        ok = a.after_period_ok if rule.get("skip_periods") else a.after_ok
        return np.array(
            [float(bool(g) and p in words) for g, p in zip(ok, a.prev_lower, strict=True)]
        ).reshape(-1)
    if kind == "before":
        chars = set(_field(rule, "chars"))
        return np.array([float(c in chars) for c in a.next_char]).reshape(-1)
    if kind == "sentence_start":
        return a.sentence_start.astype(float)
    if kind == "repeat":
        n = int(rule.get("min_len", 1))
        keep_stop = bool(rule.get("stopwords"))
        ok = _word_test(
            a, lambda w: len(w) >= n and w.isalpha() and (keep_stop or w.lower() not in stop)
        )
        return np.where(a.repeat, ok, 0.0)
    raise RuleError(f"unknown rule kind {kind!r}")


def _field(rule: Rule, name: str) -> Any:
    value = rule.get(name)
    if value is None or (isinstance(value, (list, str)) and not value):
        raise RuleError(f"rule {rule.get('kind')!r} needs a non-empty {name!r}: {rule!r}")
    return value


def evaluate(rule: Rule, tokens: Sequence[str]) -> np.ndarray:
    """Graded level of every token of one record under ``rule`` (0 where it does not fire)."""
    return levels(rule, analyze([tokens]))


def evaluate_records(rule: Rule, records: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """:func:`evaluate` of each record (one analysis for all of them)."""
    a = analyze(records)
    return a.split(levels(rule, a))


def check_rule(rule: Rule) -> None:
    """Raise :class:`RuleError` if ``rule`` cannot be evaluated (tried on a tiny record)."""
    levels(rule, analyze([["A", " b", ","]]))
