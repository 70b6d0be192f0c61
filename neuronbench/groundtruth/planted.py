"""Planted neurons: synthetic neurons over a real corpus whose true explanation is known.

Each planted neuron fires by an exact rule over the tokens of corpus records (a word set,
a token property, a context rule, a union of two of them) with graded activations, and
carries its ground-truth explanation plus three decoys: ``too_broad`` (a superset
concept), ``too_narrow`` (a strict subset) and ``different`` (an unrelated concept that
also occurs in the corpus). They are written as an ordinary neuron dataset (subject
``planted``), so every explainer and scorer runs on them unchanged, and
``neuronbench validate`` can check whether a scorer ranks the truth above the decoys.

Rules work on characters, not token ids, so they hold for any tokenizer: a token fires
when it overlaps a matching word (a run of ASCII letters/digits). Activations are exactly
zero where the rule does not hold; noise only scales firing tokens, so "activation > 0
iff the rule holds" is testable. The specs (rules, truths, decoys) live in
``planted_neurons.json`` beside this module.
"""

from __future__ import annotations

import json
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuronbench.datasets.errors import DatasetError
from neuronbench.datasets.schema import ActivationRecord, DatasetCard, NeuronId, NeuronRecord
from neuronbench.datasets.storage import NeuronDataset

SPECS_FILE = Path(__file__).with_name("planted_neurons.json")
FAMILIES: tuple[str, ...] = ("word_set", "token_property", "context", "polysemantic", "rare")
"""Neuron families; a neuron's layer is its family's index here."""
DECOY_KINDS: tuple[str, ...] = ("too_broad", "too_narrow", "different")
PROPERTIES: tuple[str, ...] = ("capitalized", "punctuation", "ends_ly", "long_word", "digit")
SUBJECT = "planted"
SCALE = 4.0
"""Activation of a firing token at level 1.0 before noise (real MLP neurons peak at a few units)."""
NOISE = 0.2
"""Sigma of the multiplicative log-normal noise on firing tokens."""

_WORD = re.compile(r"[A-Za-z0-9]+")
_QUOTES_TOGGLE = '"'
_QUOTES_OPEN = "\u201c"
_QUOTES_CLOSE = "\u201d"


@dataclass(frozen=True)
class PlantedNeuron:
    """One planted neuron: its firing rule and the explanations it is scored against."""

    name: str
    """Short unique name, e.g. ``family`` or ``after_the``."""
    family: str
    """One of :data:`FAMILIES`: word_set, token_property, context, polysemantic or rare."""
    rule: dict[str, Any]
    """The firing rule as data: ``{"kind": "words"|"property"|"after"|"inside_quotes"|"union", ...}``."""
    truth: str
    """The ground-truth explanation: what an ideal explainer would say."""
    decoys: dict[str, str]
    """Wrong explanations by kind (:data:`DECOY_KINDS`): too_broad, too_narrow, different."""
    number: int = 0
    """Neuron index in the planted dataset (its order in the spec list)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "rule": self.rule,
            "truth": self.truth,
            "decoys": dict(self.decoys),
            "number": self.number,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlantedNeuron:
        return cls(
            name=str(d["name"]),
            family=str(d["family"]),
            rule=dict(d["rule"]),
            truth=str(d["truth"]),
            decoys={str(k): str(v) for k, v in d["decoys"].items()},
            number=int(d.get("number", 0)),
        )

    @property
    def neuron_id(self) -> NeuronId:
        return NeuronId(SUBJECT, FAMILIES.index(self.family), self.number, site=SUBJECT)

    @property
    def word_set(self) -> list[str]:
        """The words the neuron fires on (word_set / rare families; empty for other rules)."""
        return list(self.rule.get("words", [])) if self.rule.get("kind") == "words" else []


def default_specs(path: str | Path = SPECS_FILE) -> list[PlantedNeuron]:
    """The bundled planted neurons (or a spec file of the same shape), checked for consistency."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))["neurons"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: cannot read planted neuron specs ({e})") from None
    specs = [PlantedNeuron.from_dict({**d, "number": i}) for i, d in enumerate(raw)]
    check_specs(specs, str(path))
    return specs


def check_specs(specs: Sequence[PlantedNeuron], where: str = "specs") -> None:
    """Raise :class:`DatasetError` on an unknown family/rule, missing decoy or duplicate name."""
    names = {s.name for s in specs}
    if len(names) != len(specs):
        raise DatasetError(f"{where}: duplicate planted neuron names")
    by_name = {s.name: s for s in specs}
    for s in specs:
        if s.family not in FAMILIES:
            raise DatasetError(f"{where}: neuron {s.name!r}: unknown family {s.family!r}")
        if set(s.decoys) != set(DECOY_KINDS):
            raise DatasetError(f"{where}: neuron {s.name!r}: decoys must be exactly {DECOY_KINDS}")
        if any(d.strip().lower() == s.truth.strip().lower() for d in s.decoys.values()):
            raise DatasetError(f"{where}: neuron {s.name!r}: a decoy repeats the truth")
        _check_rule(s.rule, by_name, f"{where}: neuron {s.name!r}")


def _check_rule(rule: dict[str, Any], by_name: dict[str, PlantedNeuron], where: str) -> None:
    if "ref" in rule:
        target = by_name.get(rule["ref"])
        if target is None or target.rule.get("kind") == "union":  # one level: no cycles
            raise DatasetError(f"{where}: rule reference {rule['ref']!r} is unknown or a union")
        return
    kind = rule.get("kind")
    if kind in ("words", "after") and not rule.get("words"):
        raise DatasetError(f"{where}: rule {kind!r} needs a non-empty 'words' list")
    elif kind == "property" and rule.get("property") not in PROPERTIES:
        raise DatasetError(f"{where}: unknown property {rule.get('property')!r} (use {PROPERTIES})")
    elif kind == "union":
        for r in rule.get("rules", []):
            _check_rule(r, by_name, where)
    elif kind not in ("words", "after", "property", "inside_quotes", "union"):
        raise DatasetError(f"{where}: unknown rule kind {kind!r}")


# ---------------------------------------------------------------- rules → per-token levels


def display_text(token: str) -> str:
    """A token's text with byte-level BPE / sentencepiece space and newline markers decoded."""
    return token.replace("\u0120", " ").replace("\u2581", " ").replace("\u010a", "\n")


def member_weight(word: str) -> float:
    """Graded level in [0.4, 1.0] of a word-set member, stable across runs and machines."""
    return 0.4 + 0.6 * (zlib.crc32(word.lower().encode()) % 1000) / 999


def _spans(tokens: Sequence[str]) -> tuple[str, np.ndarray]:
    """Record text and, per character, the index of the token it came from."""
    texts = [display_text(t) for t in tokens]
    owner = np.repeat(np.arange(len(texts)), [len(t) for t in texts])
    return "".join(texts), owner


def _word_levels(tokens: Sequence[str], level_of: Any) -> np.ndarray:
    """Per-token level: max of ``level_of(word, prev_word, gap)`` over the words it overlaps."""
    text, owner = _spans(tokens)
    out = np.zeros(len(tokens))
    prev: re.Match[str] | None = None
    for m in _WORD.finditer(text):
        gap = text[prev.end() : m.start()] if prev else None
        level = level_of(m.group(), prev.group() if prev else None, gap)
        if level > 0:
            idx = np.unique(owner[m.start() : m.end()])
            out[idx] = np.maximum(out[idx], level)
        prev = m
    return out


def _property_levels(tokens: Sequence[str], prop: str) -> np.ndarray:
    if prop == "punctuation":
        return np.array(
            [
                float(bool(s) and all(unicodedata.category(c).startswith("P") for c in s))
                for s in (display_text(t).strip() for t in tokens)
            ]
        )
    if prop == "digit":
        return np.array([float(any(c.isdigit() for c in t)) for t in tokens])
    tests = {
        "capitalized": lambda w: w[0].isupper(),
        "ends_ly": lambda w: len(w) >= 4 and w.lower().endswith("ly") and w.isalpha(),
        "long_word": lambda w: len(w) >= 10 and w.isalpha(),
    }
    test = tests[prop]
    return _word_levels(tokens, lambda w, p, g: 1.0 if test(w) else 0.0)


def _quote_levels(tokens: Sequence[str], inside: bool) -> tuple[np.ndarray, bool]:
    """Tokens with a letter or digit inside quotation marks; returns the state after the record.

    A newline closes any open quote: in the corpus a quote left open at a paragraph's end
    reopens with a fresh quotation mark in the next paragraph.
    """
    out = np.zeros(len(tokens))
    for i, tok in enumerate(tokens):
        for c in display_text(tok):
            if c == "\n":
                inside = False
            elif c == _QUOTES_TOGGLE:
                inside = not inside
            elif c == _QUOTES_OPEN:
                inside = True
            elif c == _QUOTES_CLOSE:
                inside = False
            elif inside and c.isalnum():
                out[i] = 1.0
    return out, inside


def rule_levels(
    rule: dict[str, Any],
    records: Sequence[tuple[int, Sequence[str]]],
    by_name: dict[str, PlantedNeuron] | None = None,
) -> list[np.ndarray]:
    """Noise-free activation level of every token of every record (0 exactly where the rule fails).

    ``records`` are ``(position, tokens)`` in corpus order; the quote state carries over from
    one record to the next only when their positions are consecutive.
    """
    by_name = by_name or {}
    if "ref" in rule:
        base = rule_levels(by_name[rule["ref"]].rule, records, by_name)
        return [lv * float(rule.get("level", 1.0)) for lv in base]
    kind = rule["kind"]
    level = float(rule.get("level", 1.0))
    if kind == "union":
        parts = [rule_levels(r, records, by_name) for r in rule["rules"]]
        return [
            np.max(np.stack(per_record), axis=0) * level for per_record in zip(*parts, strict=True)
        ]
    if kind == "inside_quotes":
        out, inside, last = [], False, None
        for pos, toks in records:
            if last is None or pos != last + 1:
                inside = False
            lv, inside = _quote_levels(toks, inside)
            out.append(lv * level)
            last = pos
        return out
    if kind == "property":
        return [_property_levels(toks, rule["property"]) * level for _, toks in records]
    cased = bool(rule.get("case_sensitive", False))
    words = {w if cased else w.lower() for w in rule["words"]}
    if kind == "words":

        def fire(w: str, p: str | None, g: str | None) -> float:
            return member_weight(w) * level if (w if cased else w.lower()) in words else 0.0

    else:  # "after": the word right after one of ``words``, separated by whitespace only
        gap_ok = re.compile(r"\.?\s+" if rule.get("skip_periods") else r"\s+")

        def fire(w: str, p: str | None, g: str | None) -> float:
            if p is None or g is None or (p if cased else p.lower()) not in words:
                return 0.0
            return level if gap_ok.fullmatch(g) else 0.0

    return [_word_levels(toks, fire) for _, toks in records]


def activations(
    spec: PlantedNeuron,
    records: Sequence[tuple[int, Sequence[str]]],
    seed: int = 0,
    by_name: dict[str, PlantedNeuron] | None = None,
) -> list[np.ndarray]:
    """Activations of ``spec`` on ``records``: ``SCALE * level * lognormal noise`` on firing tokens.

    Noise is drawn per (seed, neuron, record position), so a record's activations do not
    depend on which other records were planted alongside it.
    """
    out = []
    for (pos, _), lv in zip(records, rule_levels(spec.rule, records, by_name), strict=True):
        rng = np.random.default_rng([seed, spec.number, max(pos, 0)])
        noise = np.exp(NOISE * rng.standard_normal(len(lv)))
        out.append(np.where(lv > 0, SCALE * lv * noise, 0.0))
    return out


# ---------------------------------------------------------------- dataset


def _moments(acts: np.ndarray) -> dict[str, float]:
    mean = float(acts.mean())
    c = acts - mean
    var = float(np.mean(c**2))
    skew = float(np.mean(c**3) / var**1.5) if var > 0 else float("nan")
    kurt = float(np.mean(c**4) / var**2 - 3.0) if var > 0 else float("nan")
    rate = float(np.mean(acts > 0))
    return {"mean": mean, "variance": var, "skewness": skew, "kurtosis": kurt, "firing_rate": rate}


@dataclass
class PlantOptions:
    """How many records to keep per planted neuron (the recorder's defaults)."""

    top_k: int = 40
    """Records with the highest max activation, sorted descending (ties: lower position first)."""
    n_random: int = 30
    """Uniformly sampled records, drawn per neuron from the records outside its top-k (as the
    recorder does), so a scored random record is never one the explainer was shown."""
    seed: int = 0
    """Seeds the noise and the random sample."""
    corpus: str = ""
    """Corpus name recorded in the dataset card."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else for the card (e.g. the tokenizer used)."""


def random_sample(
    n_records: int, top: Sequence[int] | np.ndarray, n_random: int, seed: int, number: int
) -> list[int]:
    """One neuron's random record indices: uniform over the records outside its top-k.

    Drawn per neuron (seeded by ``seed`` and the neuron's number), as OpenAI's random samples
    are: a sample shared by every neuron would be, for some neurons, one of their own top
    records, i.e. a train record the explainer saw, then scored as held-out.
    """
    excluded = {int(i) for i in top}
    pool = np.array([i for i in range(n_records) if i not in excluded], dtype=np.int64)
    rng = np.random.default_rng([seed, 1, number])
    size = min(n_random, len(pool))
    return sorted(int(i) for i in rng.choice(pool, size=size, replace=False)) if size else []


def plant(
    records: Iterable[tuple[int, Sequence[str]]],
    specs: Sequence[PlantedNeuron] | None = None,
    options: PlantOptions | None = None,
) -> NeuronDataset:
    """Build a neuron dataset (subject ``planted``) of ``specs`` over tokenized corpus records.

    Selection is exact and in memory (planted corpora are small): top-k by max activation
    over all records, a uniform random sample, moments and firing rate over every token.
    Truths and decoys go into the card's ``extra["planted"]`` keyed by neuron key.
    """
    specs = list(specs) if specs is not None else default_specs()
    check_specs(specs)
    opts = options or PlantOptions()
    recs = sorted(((int(p), [str(t) for t in toks]) for p, toks in records), key=lambda r: r[0])
    if not recs:
        raise DatasetError("plant: no corpus records to plant neurons in")
    by_name = {s.name: s for s in specs}
    n_tokens = sum(len(t) for _, t in recs)
    ds = NeuronDataset(
        card=DatasetCard(
            subject=SUBJECT,
            corpus=opts.corpus,
            n_tokens=n_tokens,
            record_length=max(len(t) for _, t in recs),
            seed=opts.seed,
            site=SUBJECT,
            extra={
                **opts.extra,
                "top_k": opts.top_k,
                "n_random": opts.n_random,
                "planted": {s.neuron_id.key: s.to_dict() for s in specs},
            },
        )
    )
    for spec in specs:
        acts = activations(spec, recs, opts.seed, by_name)

        def record(i: int, acts: list[np.ndarray] = acts) -> ActivationRecord:
            return ActivationRecord(recs[i][1], [float(a) for a in acts[i]], recs[i][0])

        maxes = np.array([a.max() for a in acts])
        order = np.lexsort((np.arange(len(recs)), -maxes))[: opts.top_k]
        random_idx = random_sample(len(recs), order, opts.n_random, opts.seed, spec.number)
        ds.neurons[spec.neuron_id] = NeuronRecord(
            id=spec.neuron_id,
            top=[record(int(i)) for i in order],
            random=[record(i) for i in random_idx],
            n_tokens=n_tokens,
            **_moments(np.concatenate(acts)),  # type: ignore[arg-type]
        )
    return ds


def load_planted(ds: NeuronDataset) -> dict[str, PlantedNeuron]:
    """Truth and decoys of a planted dataset, by neuron key; error if it is not planted."""
    raw = ds.card.extra.get("planted")
    if not isinstance(raw, dict) or not raw:
        where = ds.path or ds.card.subject
        raise DatasetError(f"{where}: not a planted dataset (its card has no extra['planted'])")
    return {_current_key(key): PlantedNeuron.from_dict(d) for key, d in raw.items()}


LEGACY_PREFIX = f"{SUBJECT}-{SUBJECT}-"
"""Key prefix of planted datasets written before ``NeuronId.key`` stopped repeating a site
that equals the subject (``planted-planted-L0-N0``); their cards still use it."""


def _current_key(key: str) -> str:
    """The key today's ``NeuronId.key`` gives the neuron a card entry was written under, so
    datasets planted before the change (the published ``results/planted``) still load."""
    if key.startswith(LEGACY_PREFIX):
        return f"{SUBJECT}-{key[len(LEGACY_PREFIX) :]}"
    return key


def plant_corpus(
    tokenizer: Any,
    corpus: str = "austen",
    *,
    n_tokens: int = 100_000,
    record_length: int = 64,
    options: PlantOptions | None = None,
    specs: Sequence[PlantedNeuron] | None = None,
) -> NeuronDataset:
    """Tokenize ``n_tokens`` of a corpus with ``tokenizer`` and plant ``specs`` in it."""
    from neuronbench.subjects.corpus import iter_records, token_strings

    opts = options or PlantOptions()
    opts.corpus = opts.corpus or corpus
    it = iter_records(
        tokenizer, corpus, record_length=record_length, max_tokens=n_tokens, seed=opts.seed
    )
    records = [(r.position, token_strings(tokenizer, r.token_ids)) for r in it]
    return plant(records, specs, opts)
