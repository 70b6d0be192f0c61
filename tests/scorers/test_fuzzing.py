"""Fuzzing scorer: golden prompt, highlight construction, known answers, flagged failures."""

from __future__ import annotations

import asyncio
import re

from inspect_ai.model import get_model

from neuronbench.scorers._classify import Example, binary_metrics, build_prompt, labelled_records
from neuronbench.scorers.fuzzing import fuzz, fuzzing_examples, highlight, prompt_template
from tests.scorers.gt_builders import judge, word_neuron


def test_golden_prompt() -> None:
    text = build_prompt(prompt_template(), "rain", [Example("The <<rain>> fell.", 1)])
    assert text == (
        "We are studying a neuron in a language model. Someone explained what makes it activate:\n"
        "\n"
        "Explanation: rain\n"
        "\n"
        "Here are 1 text examples. In each, some tokens are highlighted between << and >>. In "
        "some examples the highlights mark exactly where the neuron activates; in others they "
        "were moved to the wrong tokens.\n"
        "\n"
        "Example 1: The <<rain>> fell.\n"
        "\n"
        "For each example, decide from the explanation alone whether the highlighted tokens are "
        "the ones the explanation describes. Answer with a list of 1 numbers in order, 1 if the "
        "highlights match the explanation and 0 if they do not, such as [1, 0, 1]. Reply with "
        "the list only.\n"
    )


def test_highlight_wraps_runs_and_keeps_spaces_outside() -> None:
    toks = ["The", " old", " rain", "coat", " fell", "\n", "."]
    assert highlight(toks, {2, 3}) == "The old <<raincoat>> fell ."
    assert highlight(toks, {0, 4}) == "<<The>> old raincoat <<fell>> ."


def test_fuzzing_examples_half_correct_half_moved_with_same_count() -> None:
    labelled = labelled_records(word_neuron(n_top=40, n_random=30), "valid")
    examples = fuzzing_examples(labelled, seed=1)
    assert len(examples) == 10 and sum(e.label for e in examples) == 5
    for ex in examples:
        marked = re.findall(r"<<(.*?)>>", ex.text)
        assert len(marked) >= 1
        assert (marked == ["Bath"]) == bool(ex.label)  # correct ones mark exactly the trigger


def test_fuzz_with_a_judge_that_checks_the_highlight_scores_perfectly() -> None:
    neuron = word_neuron(n_top=40, n_random=30)
    respond = judge(lambda ex: int(re.findall(r"<<(.*?)>>", ex) == ["Bath"]))
    model = get_model("mockllm/model", custom_outputs=respond)
    result, _ = asyncio.run(fuzz(model, "the city of Bath", neuron, cache=False))
    assert len(respond.prompts) == 2 and not result.failures
    assert binary_metrics(result.labels, result.predictions)["balanced_accuracy"] == 1.0


def test_fuzz_parse_failure_is_kept_as_failure() -> None:
    model = get_model("mockllm/model", custom_outputs=judge("[1, 0]"))  # wrong length
    result, _ = asyncio.run(fuzz(model, "Bath", word_neuron(n_top=40, n_random=30), cache=False))
    assert len(result.failures) == 2 and result.failures[0]["raw_output"] == "[1, 0]"
    assert result.predictions == []
