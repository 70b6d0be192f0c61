"""Our paper-format explainer prompt is OpenAI's, message by message (``-T few_shot=openai``).

OpenAI's ``TokenActivationPairExplainer`` (HARMONY_V4 chat format, ORIGINAL few-shot set)
builds the prompt from the same records; every role and every character must agree,
including the 0-10 values, the ``<start>``/``<end>`` blocks and the zeros-filtered repeat.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from inspect_ai import eval
from inspect_ai.model import get_model

from neuronbench.datasets import ActivationRecord, DatasetCard, NeuronDataset, train_records
from neuronbench.evals import explain_neurons
from neuronbench.evals.strategies._base import FewShotExample, load_few_shot
from neuronbench.evals.strategies.token_activation_pairs import build_messages
from tests.conftest import make_neuron, make_record
from tests.evals._helpers import golden_neuron, mock_output

pytestmark = pytest.mark.usefixtures("no_tiktoken")


def openai_prompt(
    records: Sequence[ActivationRecord], examples: Sequence[FewShotExample] | None = None
) -> list[tuple[str, str]]:
    """OpenAI's explainer prompt for ``records``, as (role, text) pairs, after OpenAI's
    ORIGINAL few-shot examples or, when given, ``examples`` handed to OpenAI's builder."""
    from neuron_explainer.activations.activation_records import calculate_max_activation
    from neuron_explainer.activations.activations import ActivationRecord as OpenAIRecord
    from neuron_explainer.explanations.explainer import TokenActivationPairExplainer
    from neuron_explainer.explanations.few_shot_examples import Example, FewShotExampleSet
    from neuron_explainer.explanations.prompt_builder import PromptFormat, Role

    def conv(rs: Sequence[ActivationRecord]) -> list[OpenAIRecord]:
        return [OpenAIRecord(tokens=list(r.tokens), activations=list(r.activations)) for r in rs]

    example_set: Any = FewShotExampleSet.ORIGINAL
    if examples is not None:
        converted = [
            Example(
                activation_records=conv(e.records),
                explanation=e.explanation,
                first_revealed_activation_indices=[],
            )
            for e in examples
        ]
        example_set = SimpleNamespace(get_examples=lambda: converted)
    theirs = conv(records)
    explainer = TokenActivationPairExplainer(
        model_name="gpt-4",
        prompt_format=PromptFormat.HARMONY_V4,
        few_shot_example_set=example_set,
    )
    prompt = explainer.make_explanation_prompt(
        all_activation_records=theirs,
        max_activation=calculate_max_activation(theirs),
        max_tokens_for_completion=60,
    )
    assert isinstance(prompt, list)
    return [(Role(m["role"]).value, m["content"]) for m in prompt]


def ours_with(
    records: Sequence[ActivationRecord], examples: Sequence[FewShotExample]
) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in build_messages(records, examples)]


def ours(records: Sequence[ActivationRecord]) -> list[tuple[str, str]]:
    return ours_with(records, load_few_shot("openai"))


def assert_same(mine: list[tuple[str, str]], theirs: list[tuple[str, str]]) -> None:
    assert [r for r, _ in mine] == [r for r, _ in theirs]
    for i, ((role, a), (_, b)) in enumerate(zip(mine, theirs, strict=True)):
        assert a == b, f"message {i} ({role}) differs"


def _dense(seed: int) -> list[ActivationRecord]:
    rng = np.random.default_rng(seed)
    return [
        ActivationRecord(
            tokens=[f" w{seed}_{k}_{i}" for i in range(20)],
            activations=[float(a) for a in rng.uniform(-0.5, 3.0, size=20)],
        )
        for k in range(3)
    ]


CASES = {
    "train_records_seed0": lambda: train_records(make_neuron(seed=0), 5),
    "train_records_seed7": lambda: train_records(make_neuron(seed=7), 5),
    "sparse_one_record": lambda: [make_record(max_activation=2.5, seed=3)],
    "dense_with_negatives": lambda: _dense(1),
    "never_fires": lambda: [
        ActivationRecord(tokens=[" a", " b", " c"], activations=[-1.0, 0.0, -0.25])
    ],
    "odd_tokens": lambda: [
        ActivationRecord(
            tokens=["", " ", "\u00e9t\u00e9", "<end>", "10", "\\n"],
            activations=[0.0, 1.0, 9.99, 10.0, 0.05, 3.3],
        )
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_explainer_prompt_equals_openai(case: str, neuron_explainer: ModuleType) -> None:
    records = CASES[case]()
    assert_same(ours(records), openai_prompt(records))


def test_both_branches_of_the_zeros_filtered_repeat_are_covered(
    neuron_explainer: ModuleType,
) -> None:
    """The cases above include prompts with and without the repeat (else half is untested)."""
    target = [openai_prompt(CASES[c]())[-1][1] for c in CASES]
    with_repeat = ["zeros filtered out" in t for t in target]
    assert any(with_repeat) and not all(with_repeat)


def test_task_prompt_with_openai_examples_equals_openai(
    tmp_path: Path, neuron_explainer: ModuleType
) -> None:
    """Through the task: the prompt the explainer model received (``-T few_shot=openai``) for
    a neuron's first 5 train records, as OpenAI deals train records and builds the prompt."""
    from neuron_explainer.activations.activations import ActivationRecord as OpenAIRecord
    from neuron_explainer.activations.activations import (
        ActivationRecordSliceParams,
        NeuronId,
        NeuronRecord,
    )

    neuron = make_neuron(seed=5, n_tokens_per_record=32)
    ds = NeuronDataset(card=DatasetCard(subject="test-subject", corpus="unit"))
    ds.add([neuron])
    path = ds.save(tmp_path / "ds")
    model = get_model("mockllm/model", custom_outputs=[mock_output(" cats.")])
    (log,) = eval(
        explain_neurons(
            dataset=str(path), few_shot="openai", scorer="", max_prompt_tokens=1_000_000
        ),
        model=model,
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    assert log.samples
    (sample,) = log.samples
    assert sample.metadata["prompt_trimmed"]["dropped"] == 0
    sent = [(m.role, m.text) for m in sample.messages[:-1]]  # the last is the model's answer

    def theirs(rs: Sequence[ActivationRecord]) -> list[OpenAIRecord]:
        return [OpenAIRecord(tokens=list(r.tokens), activations=list(r.activations)) for r in rs]

    record = NeuronRecord(
        neuron_id=NeuronId(layer_index=0, neuron_index=0),
        random_sample=theirs(neuron.random),
        most_positive_activation_records=theirs(neuron.top),
    )
    train = record.train_activation_records(ActivationRecordSliceParams(n_examples_per_split=None))
    shown = [ActivationRecord(tokens=r.tokens, activations=r.activations) for r in train[:5]]
    assert_same(sent, openai_prompt(shown))


def test_openai_examples_are_read_from_the_package(neuron_explainer: ModuleType) -> None:
    from neuron_explainer.explanations.few_shot_examples import FewShotExampleSet

    originals = FewShotExampleSet.ORIGINAL.get_examples()
    loaded = load_few_shot("openai")
    assert [e.explanation for e in loaded] == [e.explanation for e in originals]
    for mine, theirs in zip(loaded, originals, strict=True):
        assert [list(r.tokens) for r in mine.records] == [
            r.tokens for r in theirs.activation_records
        ]
        assert [list(r.activations) for r in mine.records] == [
            r.activations for r in theirs.activation_records
        ]


GOLDEN = Path(__file__).parents[1] / "evals" / "golden"


def test_default_examples_golden_is_what_openai_builds(neuron_explainer: ModuleType) -> None:
    """The golden prompt with our own default examples is pinned by OpenAI's builder fed the
    same examples, not by the code that wrote it."""
    records = train_records(golden_neuron(), 2)
    theirs = openai_prompt(records, load_few_shot("default"))
    assert_same(ours_with(records, load_few_shot("default")), theirs)
    rendered = "".join(f"=== {role} ===\n{text}\n" for role, text in theirs)
    golden = GOLDEN / "token_activation_pairs_default.txt"
    assert rendered == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_top_tokens_prompt_equals_openai_token_space_format(
    case: str, neuron_explainer: ModuleType
) -> None:
    """top_tokens (zero-shot) against OpenAI's TokenSpaceRepresentationExplainer on our list."""
    from neuron_explainer.explanations.explainer import TokenSpaceRepresentationExplainer
    from neuron_explainer.explanations.prompt_builder import PromptFormat, Role

    from neuronbench.evals.strategies import top_tokens
    from neuronbench.evals.strategies._base import top_activating_tokens

    records = CASES[case]()
    tokens = [t for t, _ in top_activating_tokens(records, 20)]
    explainer = TokenSpaceRepresentationExplainer(
        model_name="gpt-4", prompt_format=PromptFormat.HARMONY_V4
    )
    prompt = explainer.make_explanation_prompt(tokens=tokens, max_tokens_for_completion=60)
    assert isinstance(prompt, list)
    theirs = [(Role(m["role"]).value, m["content"]) for m in prompt]
    mine = [(m.role, m.text) for m in top_tokens.build_messages(records, (), n_tokens=20)]
    assert_same(mine, theirs)
