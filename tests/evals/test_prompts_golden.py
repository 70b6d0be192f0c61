"""Golden prompt text for every strategy: exact strings, no model call.

The paper-format prompt is pinned inline (its few-shot part is byte-identical to the
paper's own test prompt); the others are pinned by the hand-checked files in ``golden/``
(every 0-10 value, marker and repeat worked out from the golden neuron by hand; the
paper-format ones are also rebuilt by OpenAI's own code in ``tests/oracle``). The test
never writes them: on a mismatch it saves what the code produced next to the test's
temporary files and names that path, so an intended prompt change is a reviewed edit of
the golden file, not a regeneration from the code under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from neuronbench.datasets import train_records
from neuronbench.evals.samples import negatives
from neuronbench.evals.strategies import (
    chain_of_thought,
    highlighted,
    token_activation_pairs,
    top_tokens,
    with_negatives,
)
from neuronbench.evals.strategies._base import load_few_shot
from neuronbench.evals.strategies.baseline import baseline_explanation
from tests.evals._helpers import golden_neuron, render

GOLDEN = Path(__file__).parent / "golden"

SYSTEM = (
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in "
    "a short document. Look at the parts of the document the neuron activates for and summarize "
    "in a single sentence what the neuron is looking for. Don't list examples of words.\n\n"
    "The activation format is token<tab>activation. Activation values range from 0 to 10. A "
    "neuron finding what it's looking for is represented by a non-zero activation value. The "
    "higher the activation value, the stronger the match."
)

PAPER_PROMPT = [
    ("system", SYSTEM),
    (
        "user",
        "\n\nNeuron 1\nActivations:\n<start>\na\t10\nb\t0\nc\t0\n<end>\n<start>\nd\t0\ne\t10\nf\t0\n<end>\n"
        "\nExplanation of neuron 1 behavior: the main thing this neuron does is find",
    ),
    ("assistant", " vowels."),
    (
        "user",
        "\n\nNeuron 2\nActivations:\n<start>\n"
        "The\t0\n cat\t10\n sat\t0\n on\t0\n a\t0\n mat\t0\n<end>\n<start>\n"
        "The\t0\n fox\t7\n sat\t0\n on\t0\n a\t0\n mat\t0\n<end>\n"
        "\nSame activations, but with all zeros filtered out:\n<start>\n cat\t10\n<end>\n<start>\n fox\t7\n<end>\n"
        "\nExplanation of neuron 2 behavior: the main thing this neuron does is find",
    ),
]


def test_token_activation_pairs_matches_the_paper_format() -> None:
    records = train_records(golden_neuron(), 2)
    messages = token_activation_pairs.build_messages(records, load_few_shot("test"))
    assert [(m.role, m.text) for m in messages] == PAPER_PROMPT


def test_zeros_filtered_repeat_only_when_sparse() -> None:
    (shot,) = load_few_shot("test")  # 2 of 6 values non-zero: 33% >= 20%, no repeat
    text = token_activation_pairs.build_messages(shot.records, [])[1].text
    assert "zeros filtered out" not in text


def _prompts() -> dict[str, str]:
    neuron = golden_neuron()
    records = train_records(neuron, 2)
    shots = load_few_shot("test")
    return {
        "token_activation_pairs_default": render(
            token_activation_pairs.build_messages(records, load_few_shot("default"))
        ),
        "highlighted": render(highlighted.build_messages(records, shots)),
        "highlighted_values": render(highlighted.build_messages(records, shots, show_values=True)),
        "top_tokens": render(top_tokens.build_messages(records, shots)),
        "with_negatives": render(
            with_negatives.build_messages(records, negatives(neuron, 2), shots)
        ),
        "chain_of_thought": render(chain_of_thought.build_messages(records)),
        "baseline": baseline_explanation(records).explanation + "\n",
    }


@pytest.mark.parametrize("name", sorted(_prompts()))
def test_golden_prompt(name: str, tmp_path: Path) -> None:
    text = _prompts()[name]
    path = GOLDEN / f"{name}.txt"
    if not path.exists() or text != path.read_text(encoding="utf-8"):
        actual = tmp_path / f"{name}.actual.txt"
        actual.write_text(text, encoding="utf-8")
        pytest.fail(f"{name}: prompt differs from {path} (hand-checked); the code gave {actual}")


def test_goldens_are_all_pinned() -> None:
    """Every golden file is checked by a test (a stale file would pin nothing)."""
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(_prompts())


def test_highlight_marks_runs_above_threshold() -> None:
    from neuronbench.datasets import ActivationRecord

    r = ActivationRecord(
        tokens=["a", " b", " c", " d", " e"], activations=[0.0, 5.0, 4.0, 0.0, 9.0]
    )
    assert highlighted.highlight(r, cutoff=3.0) == "a<< b c>> d<< e>>"
