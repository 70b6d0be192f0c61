"""Human-written puzzles: markup, file errors, tokenisation, and the bundled dev set."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from neuronbench.datasets.errors import DatasetError
from neuronbench.groundtruth.puzzles import (
    FALSE_KINDS,
    Sentence,
    Span,
    load_puzzles,
    parse_markup,
    puzzle_record,
    render_markup,
    sentence_record,
)
from tests.groundtruth.puzzle_helpers import DEV, ToyTokenizer


def test_markup_parses_and_round_trips() -> None:
    line = r"She wore a [crimson:8] scarf, [red:10] too \[sic\] at [10:30:2.5]."
    s = parse_markup(line)
    assert s.text == "She wore a crimson scarf, red too [sic] at 10:30."
    assert s.spans == (Span(11, 18, 8.0), Span(26, 29, 10.0), Span(43, 48, 2.5))
    assert [s.text[x.start : x.end] for x in s.spans] == ["crimson", "red", "10:30"]
    assert render_markup(s) == line
    assert parse_markup(render_markup(s)) == s
    odd = Sentence("a [b] \\ c", (Span(0, 1, 1.0), Span(2, 5, 0.5)))
    assert parse_markup(render_markup(odd)) == odd


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a [red:10 hat", "column 3: '[' is never closed"),
        ("a red] hat", "column 6: ']' without '['"),
        ("a [re[d:1] hat", "column 6: '[' inside a marked span"),
        ("a [red] hat", "column 3: marked span [red] has no ':STRENGTH'"),
        ("a [red:x] hat", "strength 'x' is not a number"),
        ("a [red:11] hat", "strength 11 is outside 0-10"),
        ("a [red:-1] hat", "outside 0-10"),
        ("a [:3] hat", "marks no text"),
        ("a [red :3] hat", "starts or ends with a space"),
        ("a \\x hat", "column 3: '\\' must escape"),
    ],
)
def test_bad_markup_names_where_and_column(line: str, message: str) -> None:
    with pytest.raises(DatasetError, match="^puzzle 'p' sentence 2: ") as e:
        parse_markup(line, "puzzle 'p' sentence 2")
    assert message in str(e.value)


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(body, encoding="utf-8")
    return path


GOOD = """puzzles:
- name: colours
  truth: colour words
  false_explanations:
  - literal: the word 'red'
  - too_broad: adjectives
  - {kind: different, text: hats}
  sentences:
  - "A [red:10] hat."
  - "The [blue:10] sky."
  - "A wet dog."
  - "Tall [green:10] trees."
"""


def test_load_puzzles_reads_kinds_and_candidates(tmp_path: Path) -> None:
    (p,) = load_puzzles(_write(tmp_path, GOOD))
    assert p.name == "colours" and len(p.sentences) == 4
    assert p.candidates() == {
        "truth": "colour words",
        "literal": "the word 'red'",
        "too_broad": "adjectives",
        "different": "hats",
    }


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"A wet dog."', '"A [wet dog."', "puzzle 1 ('colours') sentence 3: column 3"),
        ("- too_broad: adjectives", "- vague: adjectives", "false_explanations[2]: unknown"),
        ("  - too_broad: adjectives\n", "", "false_explanations must be a list of 3-6 (got 2)"),
        ('  - "A wet dog."\n', "", "sentences must be a list of 4-8 (got 3)"),
        ("truth: colour words", "truth: hats", "two explanations have the same text"),
        ("false_explanations:", "false:", "YAML reads the key 'false' as a boolean"),
        ("[red:10]", "red", ""),  # still fires elsewhere: loads
    ],
)
def test_bad_puzzle_file_names_file_and_puzzle(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    if not message:
        assert load_puzzles(path)[0].sentences[0].spans == ()
        return
    with pytest.raises(DatasetError) as e:
        load_puzzles(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


def test_no_firing_and_duplicate_names_are_errors(tmp_path: Path) -> None:
    silent = re.sub(r"\[(\w+):10\]", r"\1", GOOD)
    with pytest.raises(DatasetError, match="no sentence marks a firing span"):
        load_puzzles(_write(tmp_path, silent))
    twice = GOOD + GOOD.split("puzzles:\n", 1)[1]
    with pytest.raises(DatasetError, match="puzzle 2: name 'colours' is used twice"):
        load_puzzles(_write(tmp_path, twice))


def test_activation_spreads_to_every_subword_of_a_marked_span() -> None:
    tok = ToyTokenizer()
    s = parse_markup("She wore a [crimson:8] scarf, [red hat:10] too.")
    r = sentence_record(tok, s)
    # hand-tokenised: " crimson" splits into " crim" + "son"; "red hat" is two tokens
    assert r.tokens == [
        "She",
        " wore",
        " a",
        " crim",
        "son",
        " scarf",
        ",",
        " red",
        " hat",
        " too",
        ".",
    ]
    assert r.activations == [0, 0, 0, 8, 8, 0, 0, 10, 10, 0, 0]


def test_offsets_path_agrees_with_spelling_path() -> None:
    """A fast tokenizer's character offsets and the tokens' own spelling place spans alike."""
    from neuronbench.subjects.models import tiny_tokenizer

    fast = tiny_tokenizer()

    class Slow:  # the same tokenizer, offsets hidden
        is_fast = False

        def __getattr__(self, name: str) -> Any:
            return getattr(fast, name)

        def __call__(self, text: str, add_special_tokens: bool = False) -> Any:
            return fast(text, add_special_tokens=add_special_tokens)

    for p in load_puzzles(DEV)[:6]:
        for s in p.sentences:
            a, b = sentence_record(fast, s), sentence_record(Slow(), s)
            assert a.tokens == b.tokens and a.activations == b.activations


def test_dev_set_is_well_formed() -> None:
    """The bundled dev set: 30+ puzzles of every kind, each marked span lands on tokens that
    spell it, and some sentences do not fire at all."""
    from neuronbench.subjects.models import tiny_tokenizer

    puzzles = load_puzzles(DEV)
    assert len(puzzles) >= 30
    assert {f.kind for p in puzzles for f in p.false} == set(FALSE_KINDS)
    tok = tiny_tokenizer()
    silent = 0
    for i, p in enumerate(puzzles):
        n = puzzle_record(p, tok, i)
        assert n.top[0].max_activation > 0 and 0 < n.firing_rate < 0.5
        silent += sum(r.max_activation == 0 for r in n.top)
        for r in n.top:
            s = p.sentences[r.position]
            fired = "".join(t for t, a in zip(r.tokens, r.activations, strict=True) if a > 0)
            for span in s.spans:
                marked = s.text[span.start : span.end]  # a byte token of '£' decodes to U+FFFD
                assert marked.encode("ascii", "ignore").decode() in fired.replace("\ufffd", "")
    assert silent >= len(puzzles)
