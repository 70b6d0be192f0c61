"""Detection scorer: golden prompt, known answers from a scripted judge, flagged parse failures."""

from __future__ import annotations

import asyncio
import math

import pytest
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessageAssistant,
    Logprob,
    Logprobs,
    ModelOutput,
    ModelUsage,
    TopLogprob,
    get_model,
)
from inspect_ai.solver import Generate, TaskState, solver

from neuronbench.scorers._classify import (
    Example,
    answer_probabilities,
    binary_metrics,
    build_prompt,
    labelled_records,
    parse_answer,
)
from neuronbench.scorers.detection import detect, detection, prompt_template
from tests.scorers.gt_builders import examples_in, judge, word_neuron


def test_golden_prompt() -> None:
    batch = [Example("The rain fell.", 1), Example("She smiled.", 0)]
    assert build_prompt(prompt_template(), " rain and weather ", batch) == (
        "We are studying a neuron in a language model. Someone explained what makes it activate:\n"
        "\n"
        "Explanation: rain and weather\n"
        "\n"
        "Here are 2 text examples. The neuron activates in some of them and not in others.\n"
        "\n"
        "Example 1: The rain fell.\n"
        "Example 2: She smiled.\n"
        "\n"
        "For each example, decide from the explanation alone whether the neuron activates "
        "anywhere in it. Answer with a list of 2 numbers in order, 1 if it activates and 0 if "
        "it does not, such as [1, 0, 1]. Reply with the list only.\n"
    )


def test_parse_answer_takes_last_list_of_the_right_length() -> None:
    assert parse_answer("Sure: [1, 0, 1]", 3) == [1, 0, 1]
    assert parse_answer("[1,0] no wait [0, 1]", 2) == [0, 1]
    assert parse_answer("[1, 1, 0, 0, 1,]", 5) == [1, 1, 0, 0, 1]
    for bad in ("yes", "[1, 0]", "[1, 2, 0]", ""):
        with pytest.raises(ValueError):
            parse_answer(bad, 3)


def test_binary_metrics_hand_computed() -> None:
    m = binary_metrics(
        [1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 1, 0, 0, 0], [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.3]
    )
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert m["f1"] == pytest.approx(2 / 3)
    # positives 0.9, 0.8, 0.3 vs negatives 0.6, 0.2, 0.1, 0.3: 10 wins + 1 tie of 12 pairs
    assert m["auc"] == pytest.approx(10.5 / 12)
    assert math.isnan(binary_metrics([1, 0], [1, 0])["auc"])


def test_detect_with_a_judge_that_knows_the_trigger_scores_perfectly() -> None:
    neuron = word_neuron()
    respond = judge(lambda ex: int("Bath" in ex))
    model = get_model("mockllm/model", custom_outputs=respond)
    result, labelled = asyncio.run(
        detect(model, "the city of Bath", neuron, batch_size=4, cache=False)
    )
    assert len(labelled.activating) == 5 and len(labelled.non_activating) == 5
    assert len(respond.prompts) == 3  # 10 examples in batches of 4
    assert not result.failures
    m = binary_metrics(result.labels, result.predictions, result.probabilities)
    assert m["balanced_accuracy"] == 1.0 and m["precision"] == 1.0 and m["recall"] == 1.0
    # the examples are the held-out valid split, shuffled: not the explainer's train records
    valid = {r.position for r in labelled.activating + labelled.non_activating}
    assert sorted(e["position"] for e in result.examples) == sorted(valid)
    assert [e["position"] for e in result.examples] != sorted(valid)


def test_answer_probabilities_from_logprobs_give_auc() -> None:
    def lp(tok: str, p1: float) -> Logprob:
        return Logprob(
            token=tok,
            logprob=math.log(p1 if tok == "1" else 1 - p1),
            top_logprobs=[
                TopLogprob(token="1", logprob=math.log(p1)),
                TopLogprob(token="0", logprob=math.log(1 - p1)),
            ],
        )

    content = [
        Logprob(token="[", logprob=0.0),
        lp("1", 0.9),
        Logprob(token=",", logprob=0.0),
        lp("0", 0.2),
    ]
    output = ModelOutput(
        model="mockllm",
        choices=[
            ChatCompletionChoice(
                message=ChatMessageAssistant(content="[1, 0]"), logprobs=Logprobs(content=content)
            )
        ],
        usage=ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2),
    )
    assert answer_probabilities(output, 2) == pytest.approx([0.9, 0.2])
    assert answer_probabilities(output, 3) is None
    assert answer_probabilities(ModelOutput.from_content("m", "[1, 0]"), 2) is None


@solver
def scripted(text: str):
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state.metadata["explanation"] = text
        state.metadata["explanation_flags"] = []
        return state

    return solve


def _eval(tmp_path, respond, explanation="the city of Bath"):
    neuron = word_neuron()
    sample = Sample(
        id=neuron.id.key, input="x", metadata={"neuron": neuron.to_dict(), "split": "valid"}
    )
    task = Task(dataset=[sample], solver=scripted(explanation), scorer=detection(cache=False))
    log = _run(task, respond, tmp_path)
    return log, log.samples[0].scores["detection"]


def _run(task, respond, tmp_path, **kwargs):
    """Eval ``task`` with a scripted mockllm bound to the simulator role."""
    mock = get_model("mockllm/model", custom_outputs=respond)
    [log] = eval(
        task,
        model="mockllm/model",
        model_roles={"simulator": mock},
        log_dir=str(tmp_path),
        display="none",
        **kwargs,
    )
    assert log.status == "success", log.error
    return log


def test_scorer_end_to_end_known_answer(tmp_path) -> None:
    log, score = _eval(tmp_path, judge(lambda ex: 1))  # says yes to everything
    assert score.value["recall"] == 1.0
    assert score.value["precision"] == 0.5
    assert score.value["balanced_accuracy"] == 0.5
    assert score.metadata["status"] == "ok"
    metrics = {s.name: s.metrics for s in log.results.scores}
    assert metrics["balanced_accuracy"]["mean"].value == 0.5


def test_parse_failure_is_flagged_not_counted_wrong(tmp_path) -> None:
    log, score = _eval(tmp_path, judge("I cannot tell."))
    assert score.metadata["status"] == "failed"
    assert "I cannot tell." in score.metadata["raw_output"]
    assert math.isnan(score.value["balanced_accuracy"]) and score.value["scored"] == 0.0
    metrics = {
        s.name: {k.split("/")[-1]: m.value for k, m in s.metrics.items()}
        for s in log.results.scores
    }
    assert metrics["scored"]["n_failed"] == 1


def test_labelled_records_filters_firing_random_and_silent_top_records() -> None:
    neuron = word_neuron()
    neuron.random[1].activations[0] = 5.0  # random record 1 (valid split) fires
    labelled = labelled_records(neuron, "valid")
    assert [r.position for r in labelled.non_activating] == [1004, 1007, 1010, 1013]
    assert labelled.dropped == 1


@solver
def explanation_from_metadata():
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        state.metadata["explanation"] = state.metadata["script"]
        state.metadata["explanation_flags"] = []
        return state

    return solve


def test_one_unparsed_batch_fails_the_sample_and_never_counts_as_zero(tmp_path) -> None:
    """Neuron A's judge answers every batch; neuron B's answers its first batch, then prose.
    B is a flagged failure (not scored on the batch that parsed, not a 0) with the
    unparsed reply kept; the run's mean is A's alone and the failure is counted."""
    from dataclasses import replace

    from neuronbench.datasets import NeuronId

    first_seen: set[str] = set()

    def respond(input, tools, tool_choice, config):
        prompt = input[-1].text
        right = "[" + ", ".join(str(int("Bath" in ex)) for ex in examples_in(prompt)) + "]"
        if "Explanation: unlucky" in prompt and "unlucky" in first_seen:
            text = "Hard to say, maybe the second one?"
        else:
            text = right
        first_seen.add("unlucky" if "Explanation: unlucky" in prompt else "lucky")
        out = ModelOutput.from_content(model="mockllm", content=text)
        out.usage = ModelUsage(input_tokens=10, output_tokens=10, total_tokens=20)
        return out

    neurons = [word_neuron(seed=0), replace(word_neuron(seed=1), id=NeuronId("test", 0, 1))]
    samples = [
        Sample(
            id=n.id.key,
            input="x",
            metadata={"neuron": n.to_dict(), "split": "valid", "script": script},
        )
        for n, script in zip(neurons, ["the city of Bath", "unlucky"], strict=True)
    ]
    task = Task(dataset=samples, solver=explanation_from_metadata(), scorer=detection(cache=False))
    log = _run(task, respond, tmp_path, max_samples=1)
    scores = {s.id: s.scores["detection"] for s in log.samples}
    good, bad = scores[neurons[0].id.key], scores[neurons[1].id.key]
    assert good.metadata["status"] == "ok" and good.value["balanced_accuracy"] == 1.0
    assert bad.metadata["status"] == "failed" and bad.value["scored"] == 0.0
    assert "1 batch(es) did not parse" in bad.metadata["reason"]
    assert bad.metadata["raw_output"] == "Hard to say, maybe the second one?"
    assert len(bad.metadata["raw_outputs"]) == 2  # the parsed first batch is logged, not scored
    assert all(math.isnan(bad.value[k]) for k in ("balanced_accuracy", "precision", "recall"))
    metrics = {
        s.name: {k.split("/")[-1]: m.value for k, m in s.metrics.items()}
        for s in log.results.scores
    }
    assert metrics["balanced_accuracy"]["mean"] == 1.0  # a failure counted as 0 would give 0.5
    assert metrics["scored"]["n_failed"] == 1 and metrics["scored"]["mean"] == 0.5
