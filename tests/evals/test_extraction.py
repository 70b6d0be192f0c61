"""Explanation extraction: wrapping removed, problems flagged, never passed on as valid."""

from __future__ import annotations

import pytest

from neuronbench.evals.extraction import COT_MARKER, extract_explanation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" words that negate a statement.", "words that negate a statement"),
        ("the main thing this neuron does is find years in dates.", "years in dates"),
        ('"years in dates"', "years in dates"),
        ("Explanation: the main thing this neuron does is find 'years'.", "years"),
        ("**Explanation:** closing quotes", "closing quotes"),
        (
            "Explanation of neuron 4 behavior: the main thing this neuron does is find commas.",
            "commas",
        ),
        (" plural nouns.\n\nNeuron 5\nActivations:\n<start>", "plural nouns"),
        ("This neuron is looking for verbs...", "verbs"),
        (' the word "not" and similar.', 'the word "not" and similar'),
    ],
)
def test_cleans_wrapping(raw: str, expected: str) -> None:
    out = extract_explanation(raw)
    assert out.explanation == expected
    assert out.flags == [] and out.valid


@pytest.mark.parametrize("raw", ["", "   \n ", None, '""', "Explanation:", " ."])
def test_empty_is_flagged(raw: str | None) -> None:
    out = extract_explanation(raw)
    assert out.explanation == ""
    assert out.flags == ["empty"] and not out.valid


@pytest.mark.parametrize(
    "raw",
    [
        "I'm sorry, but I can't determine what this neuron does.",
        "I cannot explain this neuron.",
        "As an AI, I am not able to see neurons.",
        "Unfortunately, I do not have enough information.",
    ],
)
def test_refusal_is_flagged(raw: str) -> None:
    assert "refusal" in extract_explanation(raw).flags


def test_too_long_is_flagged_by_words_and_chars() -> None:
    assert "too_long" in extract_explanation("word " * 61).flags
    assert "too_long" in extract_explanation("x" * 401).flags
    assert extract_explanation("word " * 60).flags == []


def test_chain_of_thought_takes_the_last_marked_line() -> None:
    raw = (
        "The top tokens are ' cat' and ' dog'.\nEXPLANATION: maybe animals\n"
        "Checking zeros: ' sat' is 0.\nexplanation: animal nouns, especially pets.\n"
    )
    out = extract_explanation(raw, marker=COT_MARKER)
    assert out.explanation == "animal nouns, especially pets"
    assert out.flags == []
    bracketed = extract_explanation("reasoning...\n[EXPLANATION]: pets", marker=COT_MARKER)
    assert bracketed.explanation == "pets"


def test_chain_of_thought_without_marker_is_flagged() -> None:
    out = extract_explanation("Step 1: tokens.\nSo it finds animals.", marker=COT_MARKER)
    assert out.flags == ["no_marked_line"]
    assert out.explanation == "So it finds animals"


def test_chain_of_thought_with_empty_marked_line_is_flagged_empty() -> None:
    assert extract_explanation("thinking\nEXPLANATION:", marker=COT_MARKER).flags == ["empty"]


def test_copied_prompt_text_is_flagged_but_short_answers_are_not() -> None:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageUser

    from neuronbench.evals.strategies._base import copied_from_prompt

    prompt = [
        ChatMessageUser(content="Neuron 1\n<start>\nto\t3\n<end>"),
        ChatMessageAssistant(content=" the end of a quotation in dialogue."),  # few-shot answer
        ChatMessageUser(content="Neuron 2\n<start>\nfirst\t10\n<end>"),
        ChatMessageAssistant(content="The end of a quotation in dialogue"),  # the model's reply
    ]
    assert copied_from_prompt("The end of a quotation in dialogue", prompt) == [
        "copied_from_prompt"
    ]
    assert copied_from_prompt("<start>", prompt) == ["copied_from_prompt"]
    assert copied_from_prompt("dialogue", prompt) == []  # short: may be a real answer
    assert copied_from_prompt("words about family and marriage", prompt) == []
    # the reply itself is not "prompt": an answer is never flagged for matching itself
    own = [prompt[0], ChatMessageAssistant(content="words about family and marriage")]
    assert copied_from_prompt("words about family and marriage", own) == []
