"""Build the ground-truth suite's lexicon from WordNet 3.0, restricted to the Austen corpus.

The suite generator (``neuronbench.groundtruth.suite``) plants neurons on semantic
categories, parts of speech and word forms. Rather than hand lists it reads them from
WordNet, but only through the compact lexicon this script writes, so neither nltk nor the
WordNet database is needed at run time. Rebuild it with::

    apt-get install -y wordnet-base && pip install nltk scikit-learn
    python scripts/build_lexicon.py

Output: ``neuronbench/groundtruth/data/lexicon.json.xz`` and ``LICENSE-WordNet.txt``
(WordNet 3.0's license, which permits redistribution with its notice). Contents:

- ``counts``: every lowercase word (ASCII letter run) of the corpus with its count;
- ``proper``: capitalised forms that are capitalised in >= 80% of their occurrences;
- ``stopwords``: scikit-learn's English stop words that occur in the corpus (closed-class
  words: kept out of semantic categories, where e.g. "must" would be grape juice);
- ``pos``: each corpus word's dominant WordNet part of speech (n, v, a, r), by
  SemCor-tagged sense counts;
- ``forms``: inflected corpus words (plural nouns, verb forms) → ``[pos, lemma]`` by
  WordNet's morphy;
- ``concepts``: WordNet noun and verb synsets whose hyponym closure names >= 3 corpus
  words: ``members`` (the corpus words whose first sense, or a sense tagged about as often,
  lies in the closure; proper names of places and dates keep their capital, except names
  that follow a title such as "Miss" in the corpus), ``name``/``names`` (lemma names),
  ``gloss``, ``lexname`` (WordNet's lexicographer file, e.g. ``noun.body``: the concept
  family the suite splits on), ``freq`` and ``parent`` (the nearest ancestor concept whose
  members are a strict superset). Synsets with the same member set keep the shallowest.
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "neuronbench" / "groundtruth" / "data"
WORDNET = Path("/usr/share/wordnet")
LEXNAMES_MAN = Path("/usr/share/man/man5/lexnames.5WN.gz")
LICENSE_SRC = Path("/usr/share/doc/wordnet-base/copyright")
MIN_MEMBERS = 3
MIN_FREQ = 10
MAX_MEMBERS = 3000
PROPER_LEXNAMES = ("noun.location", "noun.time")
"""Proper names join categories only as places and dates: Austen's people share names
with WordNet's cities and queens (Charlotte, Augusta, Catherine)."""
PERSONS = (
    r"\b(?:Mr|Mrs|Miss|Lady|Sir|Lord|Dr|Colonel|Captain|Admiral)\.? ([A-Z][a-z]+)",
    r"\b([A-Z][a-z]+),? (?:said|replied|cried|answered)\b",
    r"\b(?:said|replied|cried|answered) ([A-Z][a-z]+)\b",
)
"""A capitalised word after a title or beside "said" names a person, whatever WordNet says."""


def open_wordnet(tmp: Path):  # type: ignore[no-untyped-def]
    """nltk's reader over Debian's database (nltk wants it under a data path, with lexnames)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = tmp / "corpora" / "wordnet"
    shutil.copytree(WORDNET, root, ignore=shutil.ignore_patterns("bin", "wnres", "pixmaps"))
    lines = [
        ln
        for ln in gzip.decompress(LEXNAMES_MAN.read_bytes()).decode().splitlines()
        if re.match(r"^\d\d\t\S+", ln)
    ]
    (root / "lexnames").write_text(
        "".join(f"{ln.split()[0]}\t{ln.split()[1]}\t0\n" for ln in lines), encoding="utf-8"
    )
    nltk.data.path.insert(0, str(tmp))

    class Reader(WordNetCorpusReader):  # type: ignore[misc]
        def map_wn(self, version: str = "wordnet") -> None:
            return None  # this *is* WordNet 3.0: no mapping to another installed copy

    return Reader(str(root), None)


def corpus_counts() -> tuple[Counter[str], Counter[str]]:
    from neuronbench.subjects.corpus import bundled_text

    words = re.findall(r"[A-Za-z]+", bundled_text("austen"))
    return Counter(w.lower() for w in words), Counter(words)


def tag_counts() -> dict[str, int]:
    """SemCor tag count by sense key (``cntlist.rev``: sense_key sense_number tag_count)."""
    out = {}
    for line in (WORDNET / "cntlist.rev").read_text(encoding="utf-8").splitlines():
        key, _, count = line.split()
        out[key] = int(count)
    return out


_COUNTS: dict[str, int] = {}


def tagged(wn, lemma: str, pos: str) -> list[tuple[object, int]]:  # type: ignore[no-untyped-def]
    """Synsets of ``lemma`` in ``pos`` (most frequent first) with the lemma's tagged count."""
    if not _COUNTS:
        _COUNTS.update(tag_counts())
    out = []
    for s in wn.synsets(lemma, pos):
        n = sum(_COUNTS.get(lm.key(), 0) for lm in s.lemmas() if lm.name().lower() == lemma.lower())
        out.append((s, n))
    return out


def senses(wn, word: str, stop: set[str]) -> tuple[dict[str, list], dict[str, str], str | None]:  # type: ignore[no-untyped-def]
    """(pos → the word's kept senses, pos → lemma, dominant pos) for a lowercase word."""
    by_pos: dict[str, list] = {}
    lemmas: dict[str, str] = {}
    totals: dict[str, int] = {}
    for pos in ("n", "v", "a", "r"):
        lemma = wn.morphy(word, pos)
        if lemma is None:
            continue
        ranked = tagged(wn, lemma, pos)
        if not ranked:
            continue
        lemmas[pos] = lemma
        totals[pos] = sum(n for _, n in ranked)
        first = ranked[0][1]
        by_pos[pos] = [
            s for i, (s, n) in enumerate(ranked) if i == 0 or (first > 0 and n * 2 >= first)
        ]
    if not totals:
        return {}, {}, None
    best = max(totals.values())
    dominant = max(totals, key=lambda p: (totals[p], -"nvar".index(p)))
    if word in stop or len(word) < 3:
        return {}, lemmas, dominant
    keep = {
        p: v
        for p, v in by_pos.items()
        if p in ("n", "v") and (best == 0 or totals[p] * 10 >= best * 3)
    }
    return keep, lemmas, dominant


def build(out: Path) -> dict:  # type: ignore[type-arg]
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from neuronbench.subjects.corpus import bundled_text

    lower, cased = corpus_counts()
    stop = {w for w in ENGLISH_STOP_WORDS if w in lower}
    proper = {
        w: n
        for w, n in cased.items()
        if w[0].isupper() and len(w) >= 3 and not w.isupper() and n >= 0.8 * lower[w.lower()]
    }
    with tempfile.TemporaryDirectory() as tmp:
        wn = open_wordnet(Path(tmp))
        pos_of: dict[str, str] = {}
        forms: dict[str, list[str]] = {}
        members: dict[str, set[str]] = {}
        for word in sorted(lower):
            keep, lemmas, dominant = senses(wn, word, stop)
            if cased[word] * 5 < lower[word]:
                keep = {}  # mostly capitalised: a name, handled below
            if dominant is not None:
                pos_of[word] = dominant
            for p in ("n", "v"):
                if p in lemmas and lemmas[p] != word and lemmas[p] in lower:
                    forms.setdefault(word, [p, lemmas[p]])
            # an inflected form whose lemma never occurs is a guess ("alas" -> "ala")
            keep = {p: v for p, v in keep.items() if lemmas[p] == word or lemmas[p] in lower}
            for ss in keep.values():
                for s in ss:
                    for anc in {s, *s.closure(lambda x: x.hypernyms() + x.instance_hypernyms())}:
                        members.setdefault(anc.name(), set()).add(word)
        text = bundled_text("austen")
        titled = {name for pattern in PERSONS for name in re.findall(pattern, text)}
        for word in sorted(set(proper) - titled):
            props = [
                s
                for s in wn.synsets(word, "n")
                if s.lexname() in PROPER_LEXNAMES and any(lm.name() == word for lm in s.lemmas())
            ]
            for s in props[:1]:
                for anc in {s, *s.closure(lambda x: x.hypernyms() + x.instance_hypernyms())}:
                    members.setdefault(anc.name(), set()).add(word)

        def freq(ms: set[str]) -> int:
            return sum(proper[m] if m[0].isupper() else lower[m] for m in ms)

        cands = {
            k: v
            for k, v in members.items()
            if MIN_MEMBERS <= len(v) <= MAX_MEMBERS and freq(v) >= MIN_FREQ
        }
        by_set: dict[frozenset[str], str] = {}
        for k in sorted(cands, key=lambda k: (wn.synset(k).min_depth(), k)):
            by_set.setdefault(frozenset(cands[k]), k)
        kept = {k: cands[k] for k in by_set.values()}
        concepts = {}
        for k in sorted(kept):
            s = wn.synset(k)
            ancestors = [
                a.name()
                for a in s.closure(lambda x: x.hypernyms() + x.instance_hypernyms())
                if a.name() in kept and kept[a.name()] > kept[k]
            ]
            parent = min(ancestors, key=lambda a: (len(kept[a]), a)) if ancestors else None
            names = [lm.name().replace("_", " ") for lm in s.lemmas()]
            concepts[k] = {
                "name": names[0],
                "names": names,
                "gloss": s.definition(),
                "lexname": s.lexname(),
                "pos": s.pos(),
                "depth": s.min_depth(),
                "members": sorted(kept[k]),
                "freq": freq(kept[k]),
                "parent": parent,
            }
    lex = {
        "format": 1,
        "source": "WordNet 3.0 (Debian wordnet-base) over the bundled Austen corpus",
        "counts": dict(sorted(lower.items())),
        "proper": dict(sorted(proper.items())),
        "stopwords": sorted(stop),
        "pos": pos_of,
        "forms": forms,
        "concepts": concepts,
    }
    out.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(lex, sort_keys=True, separators=(",", ":")).encode()
    (out / "lexicon.json.xz").write_bytes(lzma.compress(raw, preset=9))
    text = LICENSE_SRC.read_text(encoding="utf-8")
    body = text.split("License: WordNet3.0", 1)[1].split("\nFiles:", 1)[0]
    notice = "\n".join(ln[1:] if ln.startswith(" ") else ln for ln in body.strip("\n").splitlines())
    (out / "LICENSE-WordNet.txt").write_text(
        "The suite lexicon (lexicon.json.xz) is derived from WordNet 3.0.\n\n"
        + notice.replace("\n.\n", "\n\n")
        + "\n",
        encoding="utf-8",
    )
    return lex


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    lex = build(args.out)
    size = (args.out / "lexicon.json.xz").stat().st_size
    print(
        f"{len(lex['concepts'])} concepts, {len(lex['counts'])} words, {len(lex['forms'])} forms "
        f"→ {args.out / 'lexicon.json.xz'} ({size / 1e6:.2f} MB)"
    )


if __name__ == "__main__":
    main()
