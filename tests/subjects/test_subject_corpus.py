"""Corpus streams: record framing, determinism, sharding, caps, sources, display."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

from neuronbench.datasets import DatasetError
from neuronbench.subjects import corpus
from neuronbench.subjects.corpus import iter_records, token_strings
from neuronbench.subjects.models import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _encode(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


def test_tiny_records_are_the_token_stream_cut_in_windows(tok):
    records = list(iter_records(tok, "tiny", record_length=32))
    whole = _encode(tok, corpus.bundled_text("tiny"))
    assert len(records) == len(whole) // 32  # last partial record dropped
    assert [r.position for r in records] == list(range(len(records)))
    assert all(len(r.token_ids) == 32 for r in records)
    assert [t for r in records for t in r.token_ids] == whole[: 32 * len(records)]


def test_chunking_does_not_change_tokenization(tok):
    text = corpus.bundled_text("tiny")
    lines = text.splitlines(keepends=True)
    for size in (8, 37, 200, 5000):
        chunks = list(corpus._chunks(lines, size=size))
        assert "".join(chunks) == text
        assert all(c[-1].isalnum() for c in chunks[:-1])
        assert [t for c in chunks for t in _encode(tok, c)] == _encode(tok, text)
    assert len(list(corpus._chunks(lines, size=200))) > 10


def test_chunks_without_break_points_stay_bounded():
    unspaced = ["日本語" * 200] * 40  # 24,000 characters, no whitespace at all
    chunks = list(corpus._chunks(unspaced, size=1000))
    assert "".join(chunks) == "".join(unspaced)
    assert max(len(c) for c in chunks) < 4 * 1000 + 600


def test_shards_partition_the_unsharded_run(tok):
    full = list(iter_records(tok, "tiny", record_length=16))
    shards = [list(iter_records(tok, "tiny", record_length=16, shard=(i, 3))) for i in range(3)]
    for i, shard in enumerate(shards):
        assert shard and all(r.position % 3 == i for r in shard)
    merged = sorted((r for s in shards for r in s), key=lambda r: r.position)
    assert merged == full


def test_max_tokens_caps_all_shards_together(tok):
    full = list(iter_records(tok, "tiny", record_length=16))
    capped = list(iter_records(tok, "tiny", record_length=16, max_tokens=16 * 7 + 5))
    assert capped == full[:7]
    shard = list(iter_records(tok, "tiny", record_length=16, max_tokens=16 * 7, shard=(1, 2)))
    assert [r.position for r in shard] == [1, 3, 5]
    with pytest.raises(ValueError, match="less than one record"):
        iter_records(tok, "tiny", record_length=16, max_tokens=15)


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0)])
def test_bad_shard_is_rejected(tok, shard):
    with pytest.raises(ValueError, match="shard"):
        iter_records(tok, "tiny", shard=shard)


def _write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_jsonl_documents_are_separated_by_eos_and_shuffled_by_seed(tok, tmp_path):
    texts = [f"Document number {i} says hello to the reader." for i in range(12)]
    path = _write_jsonl(tmp_path / "docs.jsonl", texts)
    streams = {}
    for seed in (0, 0, 1):
        records = list(iter_records(tok, str(path), record_length=8, seed=seed))
        stream = [t for r in records for t in r.token_ids]
        assert stream.count(tok.eos_token_id) >= 8  # separators between documents
        streams.setdefault(seed, []).append(stream)
    assert streams[0][0] == streams[0][1]  # same seed, same stream
    assert streams[0][0] != streams[1][0]  # another seed, another document order
    # Each document appears whole, in the order the seed gives.
    order = [doc() for doc in corpus.documents(str(path), 0)]
    expected: list[int] = []
    for i, doc in enumerate(order):
        expected += ([tok.eos_token_id] if i else []) + _encode(tok, "".join(doc))
    assert streams[0][0] == expected[: len(streams[0][0])]


def test_bad_jsonl_row_names_file_and_line(tok, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine words here to fill a record"}\n\n{"body": "x"}\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl, line 3"):
        list(iter_records(tok, str(path), record_length=4, seed=1))


def test_txt_form_feed_splits_documents_and_directories_read_all(tok, tmp_path):
    (tmp_path / "a.txt").write_text("first part of a\n\f\nsecond part of a\n", encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.txt").write_text("Text of b, café.\n", encoding="utf-8")
    (tmp_path / "ignored.md").write_text("not a corpus file")
    assert len(list(corpus.documents(str(tmp_path / "a.txt")))) == 2
    docs = corpus.documents(str(tmp_path), seed=0)
    texts = sorted("".join(d()) for d in docs)
    assert texts == ["Text of b, café.\n", "first part of a\n", "second part of a\n"]
    records = list(iter_records(tok, str(tmp_path), record_length=4))
    assert len(records) >= 5


def test_large_txt_streams_in_chunks_without_changing_tokens(tok, tmp_path):
    text = corpus.bundled_text("tiny") * 4  # ~24 KB: more than one chunk
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    records = list(iter_records(tok, str(path), record_length=64))
    whole = _encode(tok, text)
    assert [t for r in records for t in r.token_ids] == whole[: 64 * len(records)]


def test_empty_or_missing_corpus_is_a_clear_error(tok, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Too short.")
    with pytest.raises(DatasetError, match=r"short\.txt.*empty"):
        list(iter_records(tok, str(short), record_length=64))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(DatasetError, match="no .txt files"):
        iter_records(tok, str(empty_dir)).__next__()
    with pytest.raises(DatasetError, match="nope.txt.*not found"):
        next(iter_records(tok, str(tmp_path / "nope.txt")))
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(DatasetError, match="expected a .txt or .jsonl"):
        next(iter_records(tok, str(tmp_path / "data.csv")))


def test_hf_source_parsing():
    assert corpus.parse_hf_source("hf:wikitext:wikitext-2-raw-v1") == (
        "wikitext",
        "wikitext-2-raw-v1",
    )
    assert corpus.parse_hf_source("hf:org/name") == ("org/name", None)
    with pytest.raises(DatasetError, match="hf:<dataset>"):
        corpus.parse_hf_source("hf:")


class _FakeStream:
    """Stands in for a streamed ``datasets`` dataset (no network in tests)."""

    def __init__(self, rows):
        self.rows = rows
        self.shuffled_with = None

    def shuffle(self, seed, buffer_size):
        self.shuffled_with = (seed, buffer_size)
        return self

    def __iter__(self):
        return iter(self.rows)


def test_hf_source_streams_rows_as_documents(tok, monkeypatch):
    import datasets

    calls = []
    stream = _FakeStream([{"text": f"Row {i} of the streamed dataset."} for i in range(6)])

    def fake_load_dataset(name, config, split, streaming):
        calls.append((name, config, split, streaming))
        return stream

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    records = list(iter_records(tok, "hf:org/corpus:en", record_length=8, seed=5))
    assert calls == [("org/corpus", "en", "train", True)]
    assert stream.shuffled_with is not None and stream.shuffled_with[0] == 5
    stream_ids = [t for r in records for t in r.token_ids]
    expected: list[int] = []
    for i, row in enumerate(stream.rows):
        expected += ([tok.eos_token_id] if i else []) + _encode(tok, row["text"])
    assert stream_ids == expected[: len(stream_ids)] and len(records) >= 5

    stream.rows = [{"content": "no text field"}]
    with pytest.raises(DatasetError, match="org/corpus.*'text'"):
        list(iter_records(tok, "hf:org/corpus", record_length=8))


def test_austen_is_six_novels_of_about_a_million_tokens():
    text = corpus.bundled_text("austen")
    assert 3_900_000 < len(text) < 4_100_000  # ~4.4 chars per token -> ~0.9M tokens
    docs = list(corpus.documents("austen", seed=0))
    assert len(docs) == 6
    firsts = sorted("".join(d()).split("\n", 1)[0].upper() for d in docs)
    assert "PRIDE AND PREJUDICE" in firsts and "PERSUASION" in firsts
    assert "It is a truth universally acknowledged" in text
    assert "_" not in text  # Gutenberg italics markers were removed


def test_austen_records_stream(tok):
    records = list(iter_records(tok, "austen", record_length=64, max_tokens=64 * 50, seed=2))
    assert len(records) == 50 and all(len(r.token_ids) == 64 for r in records)
    assert records == list(iter_records(tok, "austen", max_tokens=64 * 50, seed=2))


def test_provenance_hash_matches_shipped_austen():
    import hashlib
    from importlib import resources

    data = resources.files("neuronbench.subjects").joinpath("data")
    raw = lzma.decompress(data.joinpath("austen.txt.xz").read_bytes())
    provenance = data.joinpath("PROVENANCE.md").read_text(encoding="utf-8")
    assert hashlib.sha256(raw).hexdigest() in provenance


def test_token_strings_match_tokens_and_survive_partial_utf8(tok):
    text = "Mr. Darcy's café 日本 🙂"
    ids = _encode(tok, text)
    strings = token_strings(tok, ids)
    assert len(strings) == len(ids)
    assert "\ufffd" in "".join(strings)  # multi-byte characters split across tokens
    ascii_ids = _encode(tok, "Mr. Bennet made no answer.")
    assert "".join(token_strings(tok, ascii_ids)) == "Mr. Bennet made no answer."
    assert token_strings(tok, [tok.eos_token_id]) == ["<|im_end|>"]


def test_token_strings_keep_sentencepiece_word_spaces():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "▁the": 1, "▁cat": 2, "s": 3}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="<unk>", continuing_subword_prefix=""))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    sp = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    assert token_strings(sp, [1, 2, 3]) == [" the", " cat", "s"]
