"""Ground-truth suite v2: hundreds of generated planted neurons, each explanation evaluable.

v1 (``planted.py``) hand-writes 25 neurons. v2 generates them, deterministically given
``(version, seed)`` and the corpus slice, from real resources: WordNet concepts (hyponym
closures, through the shipped lexicon of ``scripts/build_lexicon.py``), WordNet parts of
speech and inflections, corpus-frequent word endings, Unicode punctuation names and
properties, and context rules (after a word, before punctuation, sentence start, inside
quotes), repetition and capitalisation.

Every neuron has six explanations (:data:`KINDS`), each an :class:`Explanation` with its
text *and its own rule* (``neuronbench.groundtruth.rules``), so the activations an
explanation would produce are computable on any tokens with :func:`rules.evaluate`:

- ``truth`` and ``paraphrase``: two phrasings of the neuron's own rule;
- ``too_broad``: a strict superset (a WordNet ancestor, a shorter ending, a union with a
  sibling concept); ``too_narrow``: a strict subset (a WordNet descendant, a longer ending,
  the rule restricted to a part of speech or to quoted speech);
- ``literal``: the literal list of the truth's most frequent firing words in the corpus;
- ``different``: an unrelated concept of the same split that also fires in the corpus.

Splits: every concept belongs to a *group* (its WordNet lexicographer file such as
``noun.body``, or a structural family such as ``punctuation``), and a group's split is
drawn by :func:`assign_splits` (hash order, 60/20/20 train/dev/test by candidate count). All
explanations of a neuron use concepts of the neuron's own split, so test concepts never
appear in train, not even as decoys. (Restrictions used only to narrow a rule, such as
"inside quotation marks" or a part of speech, are modifiers, not concepts.)

API (for simulators trained on the suite)::

    from neuronbench.groundtruth.suite import generate_suite, write_suite, load_suite
    from neuronbench.groundtruth.rules import evaluate

    suite = generate_suite(tokenizer, version="v2", seed=0)   # 600 neurons, ~3 min on 2 cores
    for n in suite.split("train"):                            # train / dev / test
        n.key, n.family, n.concept, n.group, n.split, n.noise
        e = n.explanations["too_narrow"]                      # any of KINDS
        e.text, e.rule, e.concepts
        record = suite.dataset[n.id]                          # NeuronRecord: top + random
        evaluate(e.rule, record.top[0].tokens)                # levels that explanation implies
    write_suite(suite, "out/suite"); suite = load_suite("out/suite")

Lower level: ``tokenize_corpus`` → ``generate(records, ...)`` (specs only, no activations;
``Suite.digest()`` identifies them) → ``plant_suite(suite, records)`` (the dataset).
``neuronbench plant --suite v2 --out DIR`` writes the same thing; v1 stays the default of
``neuronbench plant``. ``rules.evaluate`` is exact for a record on its own; the truth's
levels times the neuron's noise are its recorded activations.

A neuron's activation is ``SCALE * level * lognormal(noise)`` where its truth rule fires
and exactly 0 elsewhere (``noise`` 0.2; 0.4 for the ``graded`` family).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuronbench.datasets.errors import DatasetError
from neuronbench.datasets.schema import ActivationRecord, DatasetCard, NeuronId, NeuronRecord
from neuronbench.datasets.storage import NeuronDataset
from neuronbench.groundtruth import rules as R
from neuronbench.groundtruth.planted import SCALE, SUBJECT, _moments, random_sample

VERSIONS = ("v2",)
KINDS: tuple[str, ...] = ("truth", "paraphrase", "too_broad", "too_narrow", "literal", "different")
DECOY_KINDS: tuple[str, ...] = ("too_broad", "too_narrow", "literal", "different")
FAMILIES: tuple[str, ...] = (
    "semantic", "rare", "polysemantic", "graded", "morphology", "pos", "punctuation",
    "context", "repetition", "capitalisation",
)  # fmt: skip
"""Neuron families; a neuron's layer in the dataset is its family's index here."""
SPLITS: tuple[str, ...] = ("train", "dev", "test")
SPLIT_SHARES = (0.6, 0.2, 0.2)
UNASSIGNED = "unassigned"
"""Split of a group a fixed ``splits`` map does not know (see :func:`generate`)."""
DEFAULT_NEURONS = 600
NOISE = 0.2
GRADED_NOISE = 0.4
MIN_FIRING = 30
"""Firing tokens a concept needs in the corpus slice (a rare neuron: 3 to RARE_MAX)."""
RARE_MAX = 25
STRUCTURAL_SHARE = 0.3
"""At most this share of the neurons comes from non-WordNet families (all of them at the
default size)."""
FAMILY_BUDGET = {"rare": 0.08, "polysemantic": 0.1, "graded": 0.08}
"""Shares of the requested neurons; structural families take all their candidates and
``semantic`` fills the rest."""


# ---------------------------------------------------------------- data model


@dataclass(frozen=True)
class Explanation:
    """One candidate explanation: what it says and what it means (its rule)."""

    text: str
    rule: dict[str, Any]
    concepts: tuple[str, ...]
    """Concept ids it names (its split's concepts only)."""

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "rule": self.rule, "concepts": list(self.concepts)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Explanation:
        return cls(str(d["text"]), dict(d["rule"]), tuple(str(c) for c in d["concepts"]))


@dataclass(frozen=True)
class SuiteNeuron:
    """A planted neuron of the suite: its truth rule and six explanations."""

    number: int
    family: str
    concept: str
    """The truth's concept id (e.g. ``wn:body_part.n.01``, ``suffix:ness``)."""
    group: str
    """The concept group the split is drawn for (e.g. ``noun.body``)."""
    split: str
    explanations: dict[str, Explanation]
    noise: float = NOISE

    @property
    def id(self) -> NeuronId:
        return NeuronId(SUBJECT, FAMILIES.index(self.family), self.number, site=SUBJECT)

    @property
    def key(self) -> str:
        return self.id.key

    @property
    def rule(self) -> dict[str, Any]:
        return self.explanations["truth"].rule

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "family": self.family,
            "concept": self.concept,
            "group": self.group,
            "split": self.split,
            "noise": self.noise,
            "explanations": {k: e.to_dict() for k, e in self.explanations.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SuiteNeuron:
        return cls(
            number=int(d["number"]),
            family=str(d["family"]),
            concept=str(d["concept"]),
            group=str(d["group"]),
            split=str(d["split"]),
            explanations={k: Explanation.from_dict(e) for k, e in d["explanations"].items()},
            noise=float(d.get("noise", NOISE)),
        )


@dataclass
class Suite:
    """A generated suite: its neurons and (once planted) their neuron dataset."""

    version: str
    seed: int
    neurons: list[SuiteNeuron]
    dataset: NeuronDataset | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[SuiteNeuron]:
        return [n for n in self.neurons if n.split == name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "seed": self.seed,
            "info": self.info,
            "neurons": [n.to_dict() for n in self.neurons],
        }

    def digest(self) -> str:
        """SHA-256 of the suite's specs (neurons, explanations, rules): equal iff identical."""
        raw = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()


def assign_splits(weights: dict[str, float], version: str = "v2") -> dict[str, str]:
    """Split of each concept group: groups in the order of a hash of ``version:group``, each
    to the split furthest below its 60/20/20 share of the candidate concepts so far.

    A hash alone leaves the shares to chance over a few dozen groups of very unequal size;
    the greedy fill keeps them near target while staying a pure function of the groups.
    """
    order = sorted(weights, key=lambda g: hashlib.sha256(f"{version}:{g}".encode()).hexdigest())
    got = dict.fromkeys(SPLITS, 0.0)
    out = {}
    for g in order:
        total = sum(got.values()) + weights[g]
        s = max(SPLITS, key=lambda k: SPLIT_SHARES[SPLITS.index(k)] * total - got[k])
        out[g] = s
        got[s] += weights[g]
    return out


# ---------------------------------------------------------------- phrasing


def _join(items: Sequence[str], quote: bool = False, conj: str = "and") -> str:
    xs = [f'"{x}"' if quote else x for x in items]
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + f" {conj} " + xs[-1]


def plural(name: str) -> str:
    """English plural of a (possibly multi-word) noun phrase's last word."""
    if " of " in name:  # "change of state" -> "changes of state"
        head_, _, tail = name.partition(" of ")
        return f"{plural(head_)} of {tail}"
    *head, last = name.split(" ")
    if re.search(r"[^su]s$", last) or last.endswith("ics") or last.endswith("ies"):
        return name  # already plural ("woods", "humanities")
    irregular = {"man": "men", "woman": "women", "person": "people", "child": "children",
                 "foot": "feet", "tooth": "teeth", "mouse": "mice", "goose": "geese"}  # fmt: skip
    low = last.lower()
    for sing, plu in irregular.items():
        if low.endswith(sing):
            last = last[: len(last) - len(sing)] + plu
            break
    else:
        if re.search(r"(s|x|z|ch|sh)$", low):
            last += "es"
        elif re.search(r"[^aeiou]y$", low):
            last = last[:-1] + "ies"
        else:
            last += "s"
    return " ".join([*head, last])


def _gloss(g: str) -> str:
    return g.split(";")[0].strip().rstrip(".")


@dataclass
class Concept:
    """An atomic concept: id, group, rule and phrasings (full and short)."""

    id: str
    group: str
    rule: dict[str, Any]
    texts: list[str]
    """Complete phrasings (truth and paraphrase draw two different ones)."""
    short: list[str]
    """Short phrasings for use inside combined explanations."""
    fired: np.ndarray | None = None
    """Flat per-token levels over the corpus slice (filled when planted)."""


# ---------------------------------------------------------------- generation


class _Builder:
    def __init__(
        self, records: list[tuple[int, list[str]]], version: str, seed: int, min_firing: int = 30
    ):
        self.min_firing = min_firing
        self.records = records
        self.version = version
        self.rng = np.random.default_rng([seed, 2])
        self.a = R.analyze([t for _, t in records])
        self.lex = R.lexicon()
        self._masks: dict[str, tuple[np.ndarray, int]] = {}
        self._word_counts: dict[str, Counter[str]] = {}
        self.split_map: dict[str, str] = {}

    def split(self, group: str) -> str:
        return self.split_map[group]

    # levels over the slice, cached by rule
    def fires(self, rule: dict[str, Any]) -> np.ndarray:
        """Where ``rule`` fires on the slice (kept bit-packed: thousands of rules are tried)."""
        k = json.dumps(rule, sort_keys=True)
        if k not in self._masks:
            mask = R.levels(rule, self.a) > 0
            self._masks[k] = (np.packbits(mask), int(mask.sum()))
        return np.unpackbits(self._masks[k][0], count=self.a.n_tokens).astype(bool)

    def n_fire(self, rule: dict[str, Any]) -> int:
        k = json.dumps(rule, sort_keys=True)
        if k not in self._masks:
            self.fires(rule)
        return self._masks[k][1]

    def firing_words(self, rule: dict[str, Any], exact: bool = False) -> Counter[str]:
        """Words whose tokens fire: lowercase (exact for capitalised-only names), or as
        written with ``exact``."""
        k = json.dumps(rule, sort_keys=True) + ("|exact" if exact else "")
        if k not in self._word_counts:
            fired = self.fires(rule)
            hit = fired[self.a.w_first] & fired[self.a.w_last]
            c: Counter[str] = Counter()
            for i in np.flatnonzero(hit):
                w = self.a.word[i]
                c[w if exact or w in self.lex["proper"] else w.lower()] += 1
            self._word_counts[k] = c
        return self._word_counts[k]

    def subset(self, small: dict[str, Any], big: dict[str, Any]) -> bool:
        """``small`` fires on a strict, non-empty subset of ``big``'s tokens."""
        s, b = self.fires(small), self.fires(big)
        return bool(s.any() and not (s & ~b).any() and (b & ~s).any())

    @functools.cached_property
    def _wordnet_fire(self) -> dict[str, int]:
        concepts = sorted(self.lex["concepts"])
        return {cid: self.n_fire({"kind": "concept", "id": cid}) for cid in concepts}

    def wordnet_fire(self) -> dict[str, int]:
        """Firing tokens of every WordNet concept in the slice."""
        return self._wordnet_fire

    def pick(self, xs: Sequence[Any]) -> Any:
        return xs[int(self.rng.integers(len(xs)))]

    def two(self, xs: Sequence[str]) -> tuple[str, str]:
        i, j = self.rng.choice(len(xs), size=2, replace=False)
        return xs[int(i)], xs[int(j)]

    def examples(self, rule: dict[str, Any], k: int = 3) -> list[str]:
        top = [w for w, _ in sorted(self.firing_words(rule).items(), key=lambda x: (-x[1], x[0]))]
        pool = top[: max(k, 8)]
        idx = sorted(self.rng.choice(len(pool), size=min(k, len(pool)), replace=False))
        return [pool[int(i)] for i in idx]


def _wordnet_concept(b: _Builder, cid: str, c: dict[str, Any]) -> Concept:
    rule = {"kind": "concept", "id": cid}
    names = c["names"]
    gloss = _gloss(c["gloss"])
    if c["pos"] == "n":
        texts = [
            "{P}, such as {E}",
            "words for {P} (e.g. {E})",
            "mentions of any kind of {n}, like {E}",
            "nouns naming {P}: {E} and similar words",
            "words that denote {g}, for example {E}",
        ]
        short = ["{P} ({E})", "words for {P}"]
    else:
        texts = [
            "verbs meaning to {n} or a way to {n}, such as {E}",
            "forms of verbs for ways to {n} (e.g. {E})",
            "words for the action to {g}, like {E}",
            "any form of a verb that means to {n}: {E} and the like",
        ]
        short = ["verbs meaning to {n} ({E})", "ways to {n}"]

    def fill(t: str) -> str:
        n = b.pick(names)
        return t.format(P=plural(n), n=n, g=gloss, E=_join(b.examples(rule)))

    return Concept(
        f"wn:{cid}", c["lexname"], rule, [fill(t) for t in texts], [fill(t) for t in short]
    )


def _literal(b: _Builder, truth: dict[str, Any]) -> Explanation | None:
    """The truth's most frequent firing words, listed: a too-narrow decoy by rule."""
    cased = _case_dependent(truth)
    counts = b.firing_words(truth, exact=cased)
    words = [w for w, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
    if not words:  # punctuation: list the firing tokens themselves
        return _literal_tokens(b, truth)
    k = min(3, len(words) - 1)
    if k < 1:
        return None
    top = words[:k]
    text = b.pick(
        [
            f"the words {_join(top, quote=True)}",
            f"occurrences of {_join(top, quote=True, conj='or')}",
            f"the tokens {_join(top, quote=True)}",
        ]
    )
    if k == 1:
        text = f'the word "{top[0]}"'

    return Explanation(text, {"kind": "words", "words": top, "case_sensitive": cased}, ())


def _case_dependent(rule: dict[str, Any]) -> bool:
    """Whether the rule looks at letter case (then its literal list keeps the case)."""
    raw = json.dumps(rule)
    return any(s in raw for s in ('"capitalized"', '"all_caps"', '"skip_periods": true'))


def _literal_tokens(b: _Builder, truth: dict[str, Any]) -> Explanation | None:
    fired = b.fires(truth)
    counts = Counter(t for t, f in zip(b.a.flat_tokens, fired, strict=True) if f and t)
    top = [t for t, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))][:2]
    rule = {"kind": "tokens", "tokens": top}
    if not top or not (fired & ~b.fires(rule)).any():
        return None
    text = b.pick(
        [
            f"the tokens {_join(top, quote=True)}",
            f"the literal strings {_join(top, quote=True, conj='or')}",
        ]
    )
    return Explanation(text if len(top) > 1 else f'the token "{top[0]}"', rule, ())


def _neuron(
    b: _Builder,
    family: str,
    truth: Concept,
    broad: tuple[str, dict[str, Any], tuple[str, ...]],
    narrow: tuple[str, dict[str, Any], tuple[str, ...]],
    different: Concept,
    texts: list[str] | None = None,
    truth_rule: dict[str, Any] | None = None,
    concepts: tuple[str, ...] | None = None,
    noise: float = NOISE,
) -> dict[str, Any] | None:
    rule = truth_rule or truth.rule
    own = concepts or (truth.id,)
    t, p = b.two(texts or truth.texts)
    literal = _literal(b, rule)
    if literal is None:
        return None
    ex = {
        "truth": Explanation(t, rule, own),
        "paraphrase": Explanation(p, rule, own),
        "too_broad": Explanation(broad[0], broad[1], broad[2]),
        "too_narrow": Explanation(narrow[0], narrow[1], narrow[2]),
        "literal": literal,
        "different": Explanation(b.pick(different.texts), different.rule, (different.id,)),
    }
    if len({e.text.lower() for e in ex.values()}) < len(ex):
        return None
    return {"family": family, "concept": truth.id, "group": truth.group, "ex": ex, "noise": noise}


def _narrow_by(b: _Builder, c: Concept) -> tuple[str, dict[str, Any], tuple[str, ...]] | None:
    """The rule restricted by a modifier (quoted speech, narration, a part of speech)."""
    base = b.n_fire(c.rule)
    short = b.pick(c.short)
    options = [
        ({"kind": "inside_quotes", "any": True}, f"{short}, but only inside quoted speech"),
        (
            {"kind": "not", "rule": {"kind": "inside_quotes", "any": True}},
            f"{short}, only outside quotations",
        ),
        ({"kind": "sentence_start"}, f"{short} at the start of a sentence"),
    ]
    for pos, name in (("n", "nouns"), ("v", "verbs"), ("a", "adjectives"), ("r", "adverbs")):
        options.append(({"kind": "pos", "pos": pos}, f"{short}, only when they are {name}"))
    best = None
    for mod, text in options:
        rule = {"kind": "and", "rules": [c.rule, mod]}
        n = b.n_fire(rule)
        if 0.1 * base <= n <= 0.8 * base and b.subset(rule, c.rule):
            score = abs(n - 0.4 * base)
            if best is None or score < best[0]:
                best = (score, text, rule)
    return None if best is None else (best[1], best[2], (c.id,))


def _broad_by_union(
    b: _Builder, c: Concept, siblings: Sequence[Concept]
) -> tuple[str, dict[str, Any], tuple[str, ...]] | None:
    opts = [s for s in siblings if s.id != c.id]
    b.rng.shuffle(opts)  # type: ignore[arg-type]
    for s in opts:
        rule = {"kind": "union", "rules": [c.rule, s.rule]}
        if b.subset(c.rule, rule) and b.n_fire(rule) >= 1.3 * b.n_fire(c.rule):
            return (f"{b.pick(c.short)} or {b.pick(s.short)}", rule, (c.id, s.id))
    return None


def _structural(b: _Builder) -> list[tuple[str, Concept, list[Concept]]]:
    """(family, concept, its group's siblings) for every non-WordNet concept."""
    out: list[tuple[str, Concept, list[Concept]]] = []
    counts: dict[str, int] = b.lex["counts"]
    stop = set(b.lex["stopwords"])

    # morphology: word endings shared by many corpus words
    ends: Counter[str] = Counter()
    for w in counts:
        if len(w) >= 6 and w.isalpha():
            for k in range(2, 5):
                ends[w[-k:]] += 1
    suffixes = sorted((e for e, n in ends.items() if n >= 40), key=lambda e: (-ends[e], e))
    morph: list[Concept] = []
    for e in suffixes:
        rule = {"kind": "suffix", "suffixes": [e], "min_len": len(e) + 3}
        if b.n_fire(rule) < b.min_firing:
            continue
        ex = _join(b.examples(rule))
        morph.append(
            Concept(
                f"suffix:{e}",
                f"suffix:-{e[-2:]}",
                rule,
                [
                    f'words ending in "-{e}", such as {ex}',
                    f"words with the ending -{e} (e.g. {ex})",
                    f'any word that ends with the letters "{e}": {ex}',
                ],
                [f'words ending in "-{e}"', f"-{e} words"],
            )
        )
    for c in morph:
        out.append(("morphology", c, [s for s in morph if s.group == c.group]))

    # parts of speech and inflections
    pos_names = {"n": "nouns", "v": "verbs", "a": "adjectives", "r": "adverbs"}
    pos: list[Concept] = []
    for p, name in pos_names.items():
        rule = {"kind": "pos", "pos": p}
        ex = _join(b.examples(rule))
        pos.append(
            Concept(
                f"pos:{p}",
                "pos",
                rule,
                [
                    f"{name}, such as {ex}",
                    f"any word used as one of the {name} ({ex})",
                    f"{name} (e.g. {ex})",
                ],
                [name, f"{name} in general"],
            )  # fmt: skip
        )
    for p, name, alt in (("n", "plural nouns", "nouns in the plural"),
                         ("v", "inflected verb forms", "verbs with an ending such as -ed, -s or -ing")):  # fmt: skip
        rule = {"kind": "inflection", "pos": p}
        ex = _join(b.examples(rule))
        pos.append(Concept(f"inflection:{p}", "pos", rule,
                           [f"{name}, such as {ex}", f"{alt} ({ex})", f"{name} like {ex}"],
                           [name, alt]))  # fmt: skip
    for c in pos:
        out.append(("pos", c, pos))

    # punctuation: Unicode names and the Terminal_Punctuation / Sentence_Terminal properties
    chars = Counter(
        ch
        for row in b.a.texts
        for t in row
        for ch in t.strip()
        if unicodedata.category(ch).startswith("P")
    )
    punct: list[Concept] = []
    for ch, _ in sorted(chars.items(), key=lambda x: (-x[1], x[0])):
        rule = {"kind": "chars", "chars": [ch]}
        if b.n_fire(rule) < b.min_firing:
            continue
        name = unicodedata.name(ch).lower()
        punct.append(Concept(f"punct:{ch}", "punctuation", rule,
                             [f"{plural(name)} ({ch})", f"the {name} character '{ch}'",
                              f"punctuation: the {name}"], [plural(name), f"the {name}"]))  # fmt: skip
    classes = [
        (".!?", "sentence-ending punctuation (full stops, question and exclamation marks)",
         "marks that end a sentence"),
        (",.:;!?", "terminal punctuation: commas, full stops, colons, semicolons, ? and !",
         "punctuation that ends a clause or sentence"),
    ]  # fmt: skip
    for cs, text, alt in classes:
        punct.append(Concept(f"punct:{cs}", "punctuation", {"kind": "chars", "chars": list(cs)},
                             [text, alt, f"any of the marks {' '.join(cs)}"], [alt, text]))  # fmt: skip
    punct.append(Concept("punct:all", "punctuation", {"kind": "property", "property": "punctuation"},
                         ["punctuation marks", "any punctuation token", "tokens made of punctuation"],
                         ["punctuation", "punctuation marks"]))  # fmt: skip
    for c in punct:
        out.append(("punctuation", c, punct))

    # context: after frequent function words, before punctuation, sentence start, quotes
    stopc = sorted(
        (w for w in stop if w.isalpha() and len(w) > 1), key=lambda w: (-counts.get(w, 0), w)
    )
    after: list[Concept] = []
    for w in stopc[:60]:
        rule = {"kind": "after", "words": [w]}
        if b.n_fire(rule) < b.min_firing:
            continue
        bucket = int(hashlib.sha256(w.encode()).hexdigest()[:4], 16) % 4
        ex = _join(b.examples(rule))
        after.append(Concept(f"after:{w}", f"after:{bucket}", rule,
                             [f'the word right after "{w}", such as {ex}',
                              f'words that follow "{w}" (e.g. {ex})',
                              f'whatever word comes next after "{w}"'],
                             [f'words after "{w}"', f'the word following "{w}"']))  # fmt: skip
    for c in after:
        out.append(("context", c, [s for s in after if s.group == c.group]))
    boundary: list[Concept] = []
    for ch in ",.;!?":
        name = unicodedata.name(ch).lower()
        rule = {"kind": "before", "chars": [ch]}
        if b.n_fire(rule) < b.min_firing:
            continue
        boundary.append(Concept(f"before:{ch}", "boundary", rule,
                                [f"the word just before a {name}", f"words directly followed by '{ch}'",
                                 f"the last word before a {name}"],
                                [f"words before a {name}", f"the word preceding '{ch}'"]))  # fmt: skip
    boundary.append(Concept("sentence_start", "boundary", {"kind": "sentence_start"},
                            ["the first word of each sentence", "words that begin a sentence",
                             "sentence-initial words"], ["sentence-initial words", "the first word of a sentence"]))  # fmt: skip
    for c in boundary:
        out.append(("context", c, boundary))
    quotes = [
        Concept("quotes:inside", "quotes", {"kind": "inside_quotes"},
                ["words inside quotation marks (spoken dialogue)", "the text of quoted speech",
                 "anything a character says, between quotes"], ["quoted speech", "words in quotes"]),
        Concept("quotes:outside", "quotes", {"kind": "and", "rules": [{"kind": "property", "property": "word"}, {"kind": "not", "rule": {"kind": "inside_quotes"}}]},
                ["narration: words outside quotation marks", "words of the narrative, not dialogue",
                 "text outside quoted speech"], ["narration", "words outside quotes"]),
        Concept("word:any", "quotes", {"kind": "property", "property": "word"},
                ["every word", "any word at all", "all words"], ["any word", "every word"]),
    ]  # fmt: skip
    for c in quotes[:2]:
        out.append(("context", c, quotes))

    # repetition
    reps = []
    for n in range(3, 10):
        rule = {"kind": "repeat", "min_len": n}
        reps.append(Concept(f"repeat:{n}", "repetition", rule,
                            [f"a word of {n} or more letters that already appeared earlier in the passage",
                             f"repeated words (at least {n} letters) seen before in the same text",
                             f"the second and later mentions of a word at least {n} letters long"],
                            [f"repeated words of {n}+ letters", f"words used again ({n}+ letters)"]))  # fmt: skip
    reps.append(Concept("repeat:any", "repetition", {"kind": "repeat", "min_len": 1, "stopwords": True},
                        ["any word that already occurred earlier in the text", "repeated words",
                         "words seen before in the passage"], ["repeated words", "any repeated word"]))  # fmt: skip
    for c in reps[:-1]:
        out.append(("repetition", c, reps))

    # capitalisation and names
    titles = _title_words(b)
    caps = [
        Concept("caps:all", "capitals", {"kind": "property", "property": "capitalized"},
                ["capitalised words", "words starting with a capital letter", "any word with an initial capital"],
                ["capitalised words", "words with a capital letter"]),
        Concept("caps:mid", "capitals", {"kind": "and", "rules": [{"kind": "property", "property": "capitalized"}, {"kind": "not", "rule": {"kind": "sentence_start"}}]},
                ["capitalised words in the middle of a sentence (names)", "proper names and other capitalised words not at a sentence start",
                 "names: words with a capital letter inside a sentence"], ["names", "mid-sentence capitals"]),
    ]  # fmt: skip
    if titles:
        ex = _join(titles[:3], quote=True)
        caps.append(Concept("caps:after_title", "capitals", {"kind": "after", "words": titles, "skip_periods": True},
                            [f"names after a title such as {ex}", f"the name that follows a form of address ({ex})",
                             f"surnames and first names right after {ex}"], ["names after titles", f"the word after {ex}"]))  # fmt: skip
    any_word = Concept("caps:word", "capitals", {"kind": "property", "property": "word"},
                       ["every word", "any word at all"], ["any word", "all words"])  # fmt: skip
    for c in caps:
        out.append(("capitalisation", c, [*caps, any_word]))
    return out


def _title_words(b: _Builder) -> list[str]:
    """Words followed by a capitalised word at least 90% of the time (Mr, Miss, Lady...)."""
    nxt: dict[str, list[bool]] = {}
    for i in range(len(b.a.word) - 1):
        if b.a.prev_lower[i + 1] == b.a.lower[i] and b.a.after_period_ok[i + 1]:
            nxt.setdefault(b.a.word[i], []).append(b.a.word[i + 1][0].isupper())
    out = [
        w for w, xs in nxt.items()
        if len(xs) >= 20 and np.mean(xs) >= 0.9 and w[0].isupper() and w.lower() not in b.lex["stopwords"]
    ]  # fmt: skip
    return sorted(out, key=lambda w: (-len(nxt[w]), w))[:8]


def _wordnet_neurons(b: _Builder, n_target: dict[str, int]) -> list[dict[str, Any]]:
    lex = b.lex["concepts"]
    children: dict[str, list[str]] = {}
    for cid, c in lex.items():
        if c["parent"]:
            children.setdefault(c["parent"], []).append(cid)
    fire = b.wordnet_fire()
    split = {cid: b.split(c["lexname"]) for cid, c in lex.items()}
    concepts: dict[str, Concept] = {}

    def concept(cid: str) -> Concept:
        if cid not in concepts:
            concepts[cid] = _wordnet_concept(b, cid, lex[cid])
        return concepts[cid]

    def broad(cid: str) -> str | None:
        p = lex[cid]["parent"]
        while p is not None:
            if split[p] == split[cid] and 1.2 * fire[cid] <= fire[p] <= 15 * max(fire[cid], 1):
                return p
            p = lex[p]["parent"]
        return None

    def narrow(cid: str, lo: float = 0.1) -> str | None:
        """The descendant firing most often, on 10% (``lo``) to 85% of the concept's tokens."""
        stack, found = list(children.get(cid, [])), []
        while stack:
            k = stack.pop()
            stack.extend(children.get(k, []))
            if split[k] == split[cid] and max(1, lo * fire[cid]) <= fire[k] <= 0.85 * fire[cid]:
                found.append((fire[k], k))
        return max(found)[1] if found else None

    def disjoint(x: dict[str, Any], y: dict[str, Any]) -> bool:
        return not (b.fires(x) & b.fires(y)).any()

    common = [c for c in sorted(lex) if fire[c] >= b.min_firing and broad(c) and narrow(c, 0.05)]
    rare = [c for c in sorted(lex) if 3 <= fire[c] <= RARE_MAX and broad(c) and narrow(c, 0.0)]
    by_split = {s: [c for c in common if split[c] == s] for s in (*SPLITS, UNASSIGNED)}

    def different(cid: str) -> Concept | None:
        pool = [c for c in by_split[split[cid]] if lex[c]["lexname"] != lex[cid]["lexname"]]
        for _ in range(20):
            d = b.pick(pool) if pool else None
            if d and disjoint({"kind": "concept", "id": d}, {"kind": "concept", "id": cid}):
                return concept(d)
        return None

    def decoys(cid: str, lo: float = 0.1) -> tuple[Any, Any, Concept] | None:
        bc, nc, d = broad(cid), narrow(cid, lo), different(cid)
        if bc is None or nc is None or d is None:
            return None
        bcon, ncon = concept(bc), concept(nc)
        return (
            (b.pick(bcon.texts), bcon.rule, (bcon.id,)),
            (b.pick(ncon.texts), ncon.rule, (ncon.id,)),
            d,
        )

    out: list[dict[str, Any]] = []
    order = list(common)
    b.rng.shuffle(order)  # type: ignore[arg-type]
    rare_order = list(rare)
    b.rng.shuffle(rare_order)  # type: ignore[arg-type]
    # rare
    for cid in rare_order:
        if sum(o["family"] == "rare" for o in out) >= n_target["rare"]:
            break
        dec = decoys(cid, 0.0)
        if dec and (n := _neuron(b, "rare", concept(cid), *dec)):
            out.append(n)
    # graded: strong on a sub-concept, weak on the rest of the concept
    for cid in order:
        if sum(o["family"] == "graded" for o in out) >= n_target["graded"]:
            break
        sub, bc, d = narrow(cid), broad(cid), different(cid)
        if not (sub and bc and d):
            continue
        c, s, bcon = concept(cid), concept(sub), concept(bc)
        rule = {"kind": "union", "rules": [dict(s.rule), {**c.rule, "level": 0.35}]}
        texts = [f"{c.short[0]}, most strongly {s.short[1]}", f"mainly {s.short[1]}, and weakly other {c.short[1]}",
                 f"{c.short[1]}, firing hardest on {s.short[0]}"]  # fmt: skip
        n = _neuron(b, "graded", c, (b.pick(bcon.texts), bcon.rule, (bcon.id,)),
                    (b.pick(s.texts), s.rule, (s.id,)), d, texts, rule, (c.id, s.id), GRADED_NOISE)  # fmt: skip
        if n:
            out.append(n)
    # polysemantic: two unrelated concepts of the same split
    for cid in order:
        if sum(o["family"] == "polysemantic" for o in out) >= n_target["polysemantic"]:
            break
        other, bc = different(cid), broad(cid)
        if other is None or bc is None:
            continue
        c, bcon = concept(cid), concept(bc)
        d = different(cid)
        if d is None or d.id == other.id:
            continue
        rule = {"kind": "union", "rules": [c.rule, other.rule]}
        texts = [f"{c.short[0]}, and also {other.short[0]}", f"two unrelated things: {c.short[1]} and {other.short[1]}",
                 f"both {c.short[1]} and {other.short[1]}"]  # fmt: skip
        brule = {"kind": "union", "rules": [bcon.rule, other.rule]}
        n = _neuron(b, "polysemantic", c, (f"{bcon.short[1]} and {other.short[1]}", brule, (bcon.id, other.id)),
                    (b.pick(c.texts), c.rule, (c.id,)), d, texts, rule, (c.id, other.id))  # fmt: skip
        if n:
            out.append(n)
    # semantic: the rest
    for cid in order:
        if sum(o["family"] == "semantic" for o in out) >= n_target["semantic"]:
            break
        dec = decoys(cid, 0.05)
        if dec and (n := _neuron(b, "semantic", concept(cid), *dec)):
            out.append(n)
    return out


def generate(
    records: Sequence[tuple[int, Sequence[str]]],
    *,
    version: str = "v2",
    seed: int = 0,
    n_neurons: int = DEFAULT_NEURONS,
    progress: Callable[[str], None] | None = None,
    min_firing: int = MIN_FIRING,
    splits: dict[str, str] | None = None,
) -> Suite:
    """The suite's neurons over tokenized ``(position, tokens)`` records (no activations yet).

    ``min_firing``: firing tokens a (non-rare) concept needs in the slice; lower it only for
    small test slices.

    ``splits``: a fixed split per group (another suite's ``info["splits"]``) instead of
    :func:`assign_splits`, whose greedy fill weighs groups by what fires in *this* slice, so
    another seed or size would move groups between splits. Groups it lacks get
    ``"unassigned"`` and their neurons belong to no split: extra training data drawn this way
    never touches the reference suite's dev or test groups.
    """
    if version not in VERSIONS:
        raise DatasetError(f"unknown suite version {version!r} (known: {', '.join(VERSIONS)})")
    recs = sorted(((int(p), [str(t) for t in toks]) for p, toks in records), key=lambda r: r[0])
    if not recs:
        raise DatasetError("suite: no corpus records to plant neurons in")
    say = progress or (lambda s: None)
    b = _Builder(recs, version, seed, min_firing)
    say(f"analysed {len(recs)} records, {b.a.n_tokens} tokens")
    structural = _structural(b)
    weights: dict[str, float] = dict(Counter(c.group for _, c, _ in structural))
    # WordNet groups weigh by their share of the neurons WordNet concepts will fill
    wn = Counter(b.lex["concepts"][k]["lexname"] for k, f in b.wordnet_fire().items() if f >= 3)
    scale = max(n_neurons - sum(weights.values()), 0) / max(sum(wn.values()), 1)
    for c in b.lex["concepts"].values():
        weights.setdefault(c["lexname"], 0.0)  # every group gets a split, used or not
    for g, count in wn.items():
        weights[g] += count * scale
    b.split_map = assign_splits(weights, version)
    if splits is not None:
        b.split_map = {g: splits.get(g, UNASSIGNED) for g in b.split_map}
    specs: list[dict[str, Any]] = []
    for family, c, siblings in structural:
        if b.n_fire(c.rule) < b.min_firing:
            continue
        br = _broad_by_union(b, c, siblings)
        nr = _narrow_by(b, c)
        if br is None or nr is None:
            continue
        specs.append({"family": family, "concept": c, "broad": br, "narrow": nr})
    say(f"{len(specs)} structural candidates")
    structural_concepts = [s["concept"] for s in specs]
    built: list[dict[str, Any]] = []
    for s in specs:
        c = s["concept"]
        sp = b.split(c.group)
        pool = [x for x in structural_concepts if x.group != c.group and b.split(x.group) == sp
                and not (b.fires(x.rule) & b.fires(c.rule)).mean() > 0.5 * b.fires(x.rule).mean()]  # fmt: skip
        if not pool:
            continue
        spec = _neuron(b, s["family"], c, s["broad"], s["narrow"], b.pick(pool))
        if spec:
            built.append(spec)
    cap = int(round(STRUCTURAL_SHARE * n_neurons))
    if len(built) > cap:  # a small suite keeps a seeded sample, in generation order
        keep = sorted(int(i) for i in b.rng.choice(len(built), size=cap, replace=False))
        built = [built[i] for i in keep]
    rest = max(0, n_neurons - len(built))
    target = {k: int(round(v * n_neurons)) for k, v in FAMILY_BUDGET.items()}
    target["semantic"] = max(0, rest - sum(target.values()))
    say(f"{len(built)} structural neurons; WordNet targets {target}")
    built += _wordnet_neurons(b, target)
    built = built[:n_neurons]
    neurons = [
        SuiteNeuron(
            number=i,
            family=n["family"],
            concept=n["concept"],
            group=n["group"],
            split=b.split(n["group"]),
            explanations=n["ex"],
            noise=n["noise"],
        )
        for i, n in enumerate(built)
    ]
    say(
        f"{len(neurons)} neurons: "
        + ", ".join(f"{s} {sum(n.split == s for n in neurons)}" for s in SPLITS)
    )
    info = {"n_records": len(recs), "n_tokens": b.a.n_tokens, "splits": b.split_map}
    return Suite(version, seed, neurons, info=info)


# ---------------------------------------------------------------- activations and dataset


def activations(neuron: SuiteNeuron, records: Sequence[tuple[int, Sequence[str]]], seed: int,
                levels: list[np.ndarray] | None = None) -> list[np.ndarray]:  # fmt: skip
    """``SCALE * level * lognormal(noise)`` where the truth fires; noise per (seed, neuron, position)."""
    lv = levels if levels is not None else R.evaluate_records(neuron.rule, [t for _, t in records])
    out = []
    for (pos, _), x in zip(records, lv, strict=True):
        rng = np.random.default_rng([seed, 7, neuron.number, max(pos, 0)])
        noise = np.exp(neuron.noise * rng.standard_normal(len(x)))
        out.append(np.where(x > 0, SCALE * x * noise, 0.0))
    return out


def plant_suite(
    suite: Suite,
    records: Sequence[tuple[int, Sequence[str]]],
    *,
    top_k: int = 40,
    n_random: int = 30,
    corpus: str = "",
    extra: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> NeuronDataset:
    """The suite's neuron dataset: top-k and a per-neuron random sample outside it, as v1's plant."""
    recs = sorted(((int(p), [str(t) for t in toks]) for p, toks in records), key=lambda r: r[0])
    a = R.analyze([t for _, t in recs])
    ds = NeuronDataset(
        card=DatasetCard(
            subject=SUBJECT, corpus=corpus, n_tokens=a.n_tokens,
            record_length=max(len(t) for _, t in recs), seed=suite.seed, site=SUBJECT,
            extra={**(extra or {}), "top_k": top_k, "n_random": n_random,
                   "suite": suite.to_dict(), "planted": {n.key: _v1_view(n) for n in suite.neurons}},
        )
    )  # fmt: skip
    for i, n in enumerate(suite.neurons):
        acts = activations(n, recs, suite.seed, a.split(R.levels(n.rule, a)))
        maxes = np.array([x.max() for x in acts])
        order = np.lexsort((np.arange(len(recs)), -maxes))[:top_k]

        def record(j: int, acts: list[np.ndarray] = acts) -> ActivationRecord:
            return ActivationRecord(recs[j][1], [float(v) for v in acts[j]], recs[j][0])

        random_idx = random_sample(len(recs), order, n_random, suite.seed, n.number)
        ds.neurons[n.id] = NeuronRecord(
            id=n.id, top=[record(int(j)) for j in order], random=[record(j) for j in random_idx],
            n_tokens=a.n_tokens, **_moments(np.concatenate(acts)),  # type: ignore[arg-type]
        )  # fmt: skip
        if progress:
            progress(i + 1, len(suite.neurons))
    suite.dataset = ds
    return ds


def _v1_view(n: SuiteNeuron) -> dict[str, Any]:
    """The v1 ``extra['planted']`` entry, so v1 tools (recovery, validate) read v2 too."""
    return {
        "name": n.concept, "family": n.family, "rule": n.rule, "number": n.number,
        "truth": n.explanations["truth"].text,
        "decoys": {k: n.explanations[k].text for k in ("too_broad", "too_narrow", "different")},
    }  # fmt: skip


def tokenize_corpus(tokenizer: Any, corpus: str = "austen", *, n_tokens: int = 100_000,
                    record_length: int = 64, seed: int = 0) -> list[tuple[int, list[str]]]:  # fmt: skip
    from neuronbench.subjects.corpus import iter_records, token_strings

    it = iter_records(
        tokenizer, corpus, record_length=record_length, max_tokens=n_tokens, seed=seed
    )
    return [(r.position, token_strings(tokenizer, r.token_ids)) for r in it]


def generate_suite(
    tokenizer: Any,
    *,
    version: str = "v2",
    seed: int = 0,
    n_neurons: int = DEFAULT_NEURONS,
    corpus: str = "austen",
    n_tokens: int = 100_000,
    record_length: int = 64,
    top_k: int = 40,
    n_random: int = 30,
    plant: bool = True,
    progress: Callable[[str], None] | None = None,
    splits: dict[str, str] | None = None,
) -> Suite:
    """Tokenize the corpus, generate the suite and (``plant``) its neuron dataset."""
    records = tokenize_corpus(
        tokenizer, corpus, n_tokens=n_tokens, record_length=record_length, seed=seed
    )
    suite = generate(records, version=version, seed=seed, n_neurons=n_neurons, progress=progress,
                     splits=splits)  # fmt: skip
    if plant:
        plant_suite(suite, records, top_k=top_k, n_random=n_random, corpus=corpus)
    return suite


def write_suite(suite: Suite, out_dir: str | Path) -> Path:
    """Save the planted dataset (its card carries the suite) and ``suite.json`` beside it."""
    if suite.dataset is None:
        raise DatasetError("write_suite: the suite has no dataset yet (plant_suite first)")
    out = Path(suite.dataset.save(out_dir))
    (out / "suite.json").write_text(json.dumps(suite.to_dict(), sort_keys=True, indent=1), "utf-8")
    return out


def suite_from_dataset(ds: NeuronDataset) -> Suite:
    raw = ds.card.extra.get("suite")
    if not isinstance(raw, dict):
        raise DatasetError(f"{ds.path or ds.card.subject}: not a suite dataset (no extra['suite'])")
    return Suite(str(raw["version"]), int(raw["seed"]),
                 [SuiteNeuron.from_dict(d) for d in raw["neurons"]], ds, dict(raw.get("info", {})))  # fmt: skip


def load_suite(out_dir: str | Path) -> Suite:
    """A suite written by :func:`write_suite` (or ``neuronbench plant --suite v2``)."""
    return suite_from_dataset(NeuronDataset.load(out_dir))
