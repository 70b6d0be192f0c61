"""Oracle: our logprob simulator prompt equals OpenAI's own ``make_simulation_prompt``.

OpenAI's ``neuron-explainer`` (the dev install) builds the prompt of the paper's "all at
once" simulator; with its original few-shot examples loaded (``simulator_examples=openai``)
ours must be the same string, character for character, and the hand-written golden file
must be what OpenAI's code makes from its TEST examples. Tokens here have no tab or
newline: those are where we deliberately differ (we escape them to keep one token a line).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("neuron_explainer")

from neuronbench.scorers.simulators.logprob import build_prompt, load_few_shot  # noqa: E402

GOLDEN = Path(__file__).parents[1] / "scorers" / "golden" / "logprob_simulator_prompt.txt"
TOKEN_LISTS = [
    ["The", " cat", " sat", " on", " the", " mat", "."],
    ["def", " f", "(", "x", "):", " return", " x", " **", " 2"],
    [" 10", "%", " of", " £", "3", ",", "000", " —", " \u00e9t\u00e9", " <", "start", ">"],
    ["a"],
]
EXPLANATIONS = [
    "words about cats",
    "  the number two, and exponents  ",
    "",
    'currency symbols (£, $) and the word "start"',
]


@pytest.fixture
def openai_simulator(monkeypatch):
    # neuron_explainer's API client asserts a key at import; nothing is ever sent.
    monkeypatch.setenv("OPENAI_API_KEY", "test-not-a-key")
    from neuron_explainer.explanations.prompt_builder import PromptFormat
    from neuron_explainer.explanations.simulator import ExplanationNeuronSimulator

    def make(explanation: str, example_set: str = "original") -> ExplanationNeuronSimulator:
        from neuron_explainer.explanations.few_shot_examples import FewShotExampleSet

        return ExplanationNeuronSimulator(
            "not-a-model",
            explanation,
            few_shot_example_set=FewShotExampleSet.from_string(example_set),
            prompt_format=PromptFormat.NONE,
        )

    return make


@pytest.mark.parametrize(
    ("tokens", "explanation"), list(zip(TOKEN_LISTS, EXPLANATIONS, strict=True))
)
def test_prompt_with_openai_examples_equals_openai_make_simulation_prompt(
    openai_simulator, tokens, explanation
):
    ours = build_prompt(load_few_shot("openai"), explanation, [tokens])
    theirs = openai_simulator(explanation).make_simulation_prompt(tokens)
    assert ours.text == theirs
    # and every value offset sits right after a tab, before "unknown"
    for c in ours.value_offsets[0]:
        assert theirs[c - 1] == "\t" and theirs[c:].startswith("unknown")


def test_golden_file_is_what_openai_makes_from_its_test_examples(openai_simulator):
    # The golden's last target token is a newline, which we write as the two characters
    # backslash-n; OpenAI's code writes a literal backslash-n token the same way.
    theirs = openai_simulator("dogs", "test").make_simulation_prompt(["The", " dog", "\\n"])
    assert GOLDEN.read_text("utf-8") == theirs
