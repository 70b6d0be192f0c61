"""Build the embedded default corpus from Debian's r-cran-janeaustenr package.

Reproducible: reads the package's lazy-load database (``Rdata.rdx`` index +
``Rdata.rdb`` zlib-compressed R serializations) with the pure-Python ``rdata``
reader, cleans the six novels and writes
``neuronbench/subjects/data/austen.txt.xz``, ``tiny.txt`` (a short extract for
tests) and ``PROVENANCE.md`` (source, license, hashes). Regenerate with::

    apt-get install r-cran-janeaustenr && pip install rdata
    python scripts/build_austen_corpus.py

Output format (what ``neuronbench.subjects.corpus`` reads): one paragraph per line;
novels (documents) separated by a line holding only a form feed (``\\f``). Cleaning:
lines are joined into paragraphs (blank lines end a paragraph), whitespace is
collapsed, Project Gutenberg ``_italic_`` markers lose their underscores, and
chapter headings ("Chapter 1", "CHAPTER I") are kept as their own paragraphs
because they are ordinary text a language model reads.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import lzma
import re
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

PACKAGE_DIR = Path("/usr/lib/R/site-library/janeaustenr")
# Publication order, so the file reads naturally (the corpus reader may shuffle documents).
NOVELS = [
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
]
DATA_DIR = Path(__file__).resolve().parent.parent / "neuronbench" / "subjects" / "data"
TINY_CHARS = 6000
_ITALIC = re.compile(r"_([^_]+)_")
_SPACES = re.compile(r"\s+")


def read_novels(package_dir: Path) -> dict[str, list[str]]:
    """Each novel's raw lines, read from the R lazy-load database without R."""
    import rdata

    warnings.simplefilter("ignore")  # rdata warns that the stream has no RDS magic header
    data = package_dir / "data"
    index = rdata.conversion.convert(
        rdata.parser.parse_data(gzip.decompress((data / "Rdata.rdx").read_bytes()))
    )
    db = (data / "Rdata.rdb").read_bytes()
    novels: dict[str, list[str]] = {}
    for name in NOVELS:
        offset, length = (int(x) for x in index["variables"][name])
        # Each entry: 4-byte big-endian uncompressed length, then a zlib stream.
        raw = zlib.decompress(db[offset + 4 : offset + length])
        novels[name] = [
            str(line) for line in rdata.conversion.convert(rdata.parser.parse_data(raw))
        ]
    return novels


def paragraphs(lines: list[str]) -> list[str]:
    """Join wrapped lines into cleaned paragraphs; blank lines separate paragraphs."""
    out: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            text = _SPACES.sub(" ", _ITALIC.sub(r"\1", " ".join(current))).strip()
            if text:
                out.append(text)
            current = []
    return out


def build(package_dir: Path, out_dir: Path) -> dict[str, str]:
    novels = read_novels(package_dir)
    docs = ["\n".join(paragraphs(novels[name])) for name in NOVELS]
    text = "\n\f\n".join(docs) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    # preset 9 and no multithreading keep the compressed bytes reproducible.
    xz_bytes = lzma.compress(text.encode("utf-8"), preset=9)
    (out_dir / "austen.txt.xz").write_bytes(xz_bytes)

    # tiny.txt: the opening paragraphs of Pride and Prejudice, whole paragraphs only.
    tiny: list[str] = []
    for para in paragraphs(novels["prideprejudice"]):
        if sum(len(p) + 1 for p in tiny) + len(para) > TINY_CHARS:
            break
        tiny.append(para)
    tiny_text = "\n".join(tiny) + "\n"
    (out_dir / "tiny.txt").write_text(tiny_text, encoding="utf-8")
    return {
        "austen_chars": str(len(text)),
        "austen_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "austen_xz_sha256": hashlib.sha256(xz_bytes).hexdigest(),
        "tiny_chars": str(len(tiny_text)),
        "tiny_sha256": hashlib.sha256(tiny_text.encode("utf-8")).hexdigest(),
    }


PROVENANCE = """# Bundled corpora: provenance

## `austen.txt.xz` (the default corpus, source `austen`)

The six completed novels of Jane Austen: *Sense and Sensibility* (1811), *Pride and
Prejudice* (1813), *Mansfield Park* (1814), *Emma* (1815), *Northanger Abbey* (1817)
and *Persuasion* (1817).

- **Source:** Debian package `r-cran-janeaustenr` {deb_version} (CRAN package
  `janeaustenr` {version}, Julia Silge, <https://github.com/juliasilge/janeaustenr>),
  which takes the texts from Project Gutenberg. Read from its R lazy-load database
  (`data/Rdata.rdx`, `data/Rdata.rdb`) with the pure-Python `rdata` reader; R is not needed.
- **License:** the novels are in the public domain. The janeaustenr packaging (R code,
  Debian files) is MIT-licensed (Debian copyright file: "Files: * Copyright: 2016-2017
  Julia Silge, License: MIT"); none of that code is redistributed here, only the texts.
- **Cleaning** (`scripts/build_austen_corpus.py`): wrapped lines are joined into
  paragraphs (a blank line ends a paragraph), whitespace is collapsed, Project Gutenberg
  `_italic_` underscores are removed, chapter headings stay as their own paragraphs.
  Format: one paragraph per line; novels separated by a line holding only a form feed.
- **Size:** {austen_chars} characters (about 0.9M SmolLM2 tokens).
- **sha256 of the decompressed text:** `{austen_sha256}`
- **sha256 of `austen.txt.xz`:** `{austen_xz_sha256}`

## `tiny.txt` (source `tiny`, for tests)

The opening paragraphs of *Pride and Prejudice* from the same cleaned text (whole
paragraphs, at most {tiny_max} characters): {tiny_chars} characters, sha256 `{tiny_sha256}`.

## Regenerate

```
apt-get install r-cran-janeaustenr
pip install rdata
python scripts/build_austen_corpus.py
```
"""


def package_versions(package_dir: Path) -> tuple[str, str]:
    """(CRAN version, Debian package version) of the installed janeaustenr."""
    version = "unknown"
    for line in (package_dir / "DESCRIPTION").read_text(encoding="utf-8").splitlines():
        if line.startswith("Version:"):
            version = line.split(":", 1)[1].strip()
    try:
        deb = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "r-cran-janeaustenr"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        deb = "unknown"
    return version, deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-dir", type=Path, default=PACKAGE_DIR)
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    facts = build(args.package_dir, args.out_dir)
    version, deb_version = package_versions(args.package_dir)
    provenance = PROVENANCE.format(
        version=version, deb_version=deb_version, tiny_max=TINY_CHARS, **facts
    )
    (args.out_dir / "PROVENANCE.md").write_text(provenance, encoding="utf-8")
    for key, value in facts.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
