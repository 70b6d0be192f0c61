"""Corpora as streams of fixed-length token records.

A source is read as a sequence of *documents* (a novel, a file, a JSONL row, a dataset
row). ``seed`` shuffles document order; documents are then tokenized one after another
into one token stream, with the tokenizer's EOS token between documents (when it has
one), and the stream is cut into consecutive records of ``record_length`` tokens. The
last partial record is dropped; nothing is padded.

Memory stays bounded: documents are read line by line and tokenized in chunks of about
``CHUNK_CHARS`` characters. A chunk always ends after a letter or digit, just before
a whitespace run, which goes to the next chunk. The GPT-2 and Llama 3 pre-tokenizer
regexes (GPT-2, SmolLM2, Llama 3, Qwen2) never put a letter or digit and the whitespace
after it in one piece, so the chunked stream equals tokenizing each document whole
(tested). SentencePiece tokenizers that add a prefix space may differ at chunk starts
(at most one token per ~16 KB of text), as may text with no letter or digit followed by
whitespace for 64 KB (e.g. unspaced CJK), which is cut wherever the limit falls.

Positions are global record indices over the whole (capped) stream; shard ``(i, n)``
keeps the records with ``position % n == i``, so the union of all shards is exactly the
unsharded run. Every shard therefore tokenizes the stream up to its last record.
"""

from __future__ import annotations

import codecs
import io
import json
import lzma
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from neuronbench.datasets.errors import DatasetError

CHUNK_CHARS = 16_384
"""Target characters per tokenizer call; the bound on text held in memory per document."""
DOC_SEPARATOR = "\f"
"""A line holding only a form feed separates documents inside one .txt file."""
HF_TEXT_FIELD = "text"
"""The field read from .jsonl rows and Hugging Face dataset rows."""
_HF_SHUFFLE_BUFFER = 10_000
# The last letter/digit followed by whitespace: greedy ".*" backtracks from the end.
_BREAK = re.compile(r"(?s).*[^\W_](\s+)")

Document = Callable[[], Iterator[str]]
"""A document, opened lazily: calling it yields its text in pieces (lines)."""


@dataclass(frozen=True)
class CorpusRecord:
    """One fixed-length window of the token stream."""

    position: int
    """Global record index in the stream (stable across shards): ``ActivationRecord.position``."""
    token_ids: list[int]
    """Exactly ``record_length`` token ids, consecutive in the stream."""


def iter_records(
    tokenizer: Any,
    source: str = "austen",
    *,
    record_length: int = 64,
    max_tokens: int | None = None,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[CorpusRecord]:
    """Yield this shard's records of ``source`` tokenized with ``tokenizer``.

    Args:
        tokenizer: a Hugging Face tokenizer.
        source: ``austen`` (embedded default, ~1M tokens), ``tiny`` (small bundled text),
            a ``.txt`` file, a directory of ``.txt`` files, a ``.jsonl`` file (field
            ``text``) or ``hf:<dataset>[:<config>]`` (Hugging Face datasets, streaming).
        record_length: tokens per record (the paper uses 64).
        max_tokens: cap on the tokens of all records over all shards; the record set
            is fixed first, then sharded.
        seed: shuffles document order.
        shard: ``(index, count)``: keep records whose position is ``index`` mod ``count``.
    """
    if record_length < 1:
        raise ValueError(f"record_length must be >= 1, got {record_length}")
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    max_records = None if max_tokens is None else max_tokens // record_length
    if max_records is not None and max_records < 1:
        raise ValueError(f"max_tokens={max_tokens} is less than one record ({record_length})")
    return _records(tokenizer, source, record_length, max_records, seed, index, count)


def _records(
    tokenizer: Any,
    source: str,
    record_length: int,
    max_records: int | None,
    seed: int,
    index: int,
    count: int,
) -> Iterator[CorpusRecord]:
    encode = _encoder(tokenizer)
    separator = getattr(tokenizer, "eos_token_id", None)
    buffer: list[int] = []
    position = 0
    for d, document in enumerate(documents(source, seed)):
        if d > 0 and separator is not None:
            buffer.append(separator)
        for chunk in _chunks(document()):
            buffer.extend(encode(chunk))
            start = 0
            while len(buffer) - start >= record_length:
                if position % count == index:
                    yield CorpusRecord(position, buffer[start : start + record_length])
                start += record_length
                position += 1
                if max_records is not None and position >= max_records:
                    return
            del buffer[:start]
    if position == 0:
        raise DatasetError(
            f"corpus {source!r} is empty: it has fewer than {record_length} tokens (one record)"
        )


def _encoder(tokenizer: Any) -> Callable[[str], list[int]]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Straight to the Rust tokenizer: no "sequence longer than max length" warning.
        return lambda text: backend.encode(text, add_special_tokens=False).ids
    return lambda text: tokenizer.encode(text, add_special_tokens=False, verbose=False)


def _chunks(pieces: Iterable[str], size: int = CHUNK_CHARS) -> Iterator[str]:
    """Join pieces into ~``size``-character chunks, each cut after a letter or digit
    that a whitespace run follows (see the module docstring)."""
    pending: list[str] = []
    n = 0
    for piece in pieces:
        pending.append(piece)
        n += len(piece)
        if n < size:
            continue
        text = "".join(pending)
        match = _BREAK.match(text)  # anchored: one backward scan, linear time
        if match is None and n < 4 * size:
            # No break point yet (no letter or digit before whitespace): keep accumulating.
            pending = [text]
            continue
        # Text without such a point (e.g. unspaced CJK) is cut anywhere to bound memory.
        cut = match.start(1) if match is not None else len(text)
        yield text[:cut]
        pending, n = [text[cut:]], len(text) - cut
    tail = "".join(pending)
    if tail:
        yield tail


# --- sources ----------------------------------------------------------------------------


def documents(source: str, seed: int = 0) -> Iterable[Document]:
    """The documents of ``source`` in the order ``seed`` gives them.

    Local sources return a list (file offsets, not text, so memory stays small);
    ``hf:`` sources a lazy stream shuffled by ``datasets`` within a buffer.
    """
    docs: list[Document]
    if source.startswith("hf:"):
        return _hf_documents(source, seed)
    if source in ("austen", "tiny"):
        docs = _bundled_documents(source)
    else:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not files:
                raise DatasetError(f"corpus {source!r}: directory has no .txt files")
            docs = [doc for f in files for doc in _txt_documents(f)]
        elif path.is_file() and path.suffix == ".jsonl":
            docs = _jsonl_documents(path)
        elif path.is_file() and path.suffix == ".txt":
            docs = _txt_documents(path)
        elif path.exists():
            raise DatasetError(f"corpus {source!r}: expected a .txt or .jsonl file")
        else:
            raise DatasetError(
                f"corpus {source!r} not found: expected 'austen', 'tiny', a .txt/.jsonl file, "
                "a directory of .txt files or 'hf:<dataset>[:<config>]'"
            )
    random.Random(seed).shuffle(docs)
    return docs


def bundled_text(name: str) -> str:
    """The full text of a bundled corpus: ``austen`` (xz-compressed) or ``tiny``."""
    data = resources.files("neuronbench.subjects").joinpath("data")
    if name == "austen":
        return lzma.decompress(data.joinpath("austen.txt.xz").read_bytes()).decode("utf-8")
    return data.joinpath(f"{name}.txt").read_text(encoding="utf-8")


def _bundled_documents(name: str) -> list[Document]:
    # Bundled texts are small (austen: 4 MB), so they are split in memory.
    texts = re.split(rf"\n{DOC_SEPARATOR}\n", bundled_text(name))
    return [_string_document(t) for t in texts]


def _string_document(text: str) -> Document:
    return lambda: iter(io.StringIO(text))


def _txt_documents(path: Path) -> list[Document]:
    """Documents of one .txt file, as byte ranges found by one streaming scan."""
    ranges: list[tuple[int, int]] = []
    start = 0
    with open(path, "rb") as f:
        while line := f.readline(CHUNK_CHARS):
            if line.rstrip(b"\r\n") == DOC_SEPARATOR.encode():
                ranges.append((start, f.tell() - len(line)))
                start = f.tell()
        ranges.append((start, f.tell()))
    return [_txt_range(path, a, b) for a, b in ranges if b > a]


def _txt_range(path: Path, begin: int, end: int) -> Document:
    def read() -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        with open(path, "rb") as f:
            f.seek(begin)
            while f.tell() < end and (line := f.readline(min(CHUNK_CHARS, end - f.tell()))):
                try:
                    yield decoder.decode(line)
                except UnicodeDecodeError as exc:
                    raise DatasetError(f"corpus file {path}: not UTF-8 near byte {begin}") from exc

    return read


def _jsonl_documents(path: Path) -> list[Document]:
    offsets: list[tuple[int, int]] = []
    with open(path, "rb") as f:
        lineno = 0
        while True:
            offset = f.tell()
            line = f.readline()
            if not line:
                break
            lineno += 1
            if line.strip():
                offsets.append((offset, lineno))
    return [_jsonl_row(path, offset, lineno) for offset, lineno in offsets]


def _jsonl_row(path: Path, offset: int, lineno: int) -> Document:
    def read() -> Iterator[str]:
        with open(path, "rb") as f:
            f.seek(offset)
            line = f.readline()
        try:
            text = json.loads(line)[HF_TEXT_FIELD]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(
                f"corpus file {path}, line {lineno}: expected a JSON object with a "
                f"string field {HF_TEXT_FIELD!r} ({exc})"
            ) from exc
        if not isinstance(text, str):
            raise DatasetError(f"corpus file {path}, line {lineno}: {HF_TEXT_FIELD!r} is not text")
        return iter(io.StringIO(text))

    return read


def parse_hf_source(source: str) -> tuple[str, str | None]:
    """``hf:<dataset>[:<config>]`` -> (dataset, config)."""
    body = source.removeprefix("hf:")
    name, _, config = body.partition(":")
    if not name:
        raise DatasetError(f"corpus {source!r}: expected 'hf:<dataset>[:<config>]'")
    return name, config or None


def _hf_documents(source: str, seed: int) -> Iterator[Document]:
    """Rows of a streamed Hugging Face dataset (split ``train``), one document each."""
    from datasets import load_dataset

    name, config = parse_hf_source(source)
    stream = load_dataset(name, config, split="train", streaming=True)
    stream = stream.shuffle(seed=seed, buffer_size=_HF_SHUFFLE_BUFFER)
    for row in stream:
        text = row.get(HF_TEXT_FIELD)
        if not isinstance(text, str):
            raise DatasetError(f"corpus {source!r}: row has no string field {HF_TEXT_FIELD!r}")
        yield _string_document(text)


# --- display ----------------------------------------------------------------------------


def token_strings(tokenizer: Any, ids: Iterable[int]) -> list[str]:
    """Each token decoded on its own, for display next to its activation.

    Byte-level tokens that hold part of a UTF-8 character decode to U+FFFD (kept, so
    lengths always match). SentencePiece word-start tokens (``▁the``) keep their space.
    """
    ids = list(ids)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    out = []
    for token_id, piece in zip(ids, pieces, strict=True):
        text = tokenizer.decode(
            [token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        if isinstance(piece, str) and piece.startswith("▁") and not text.startswith(" "):
            text = " " + text
        out.append(text)
    return out
