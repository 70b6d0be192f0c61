"""Detection scorer (EleutherAI delphi): can a model tell from the explanation which records fire?

The scorer model sees held-out records of the scoring split, activating (top records that
fire) and non-activating (random records that stay low), shuffled and numbered in batches
of ``batch_size`` per prompt, and answers which ones the explanation predicts to fire.
Value: balanced accuracy (headline), precision, recall, F1, and AUC from P("1") when
the provider returns logprobs. The prompt is ``detection_prompt.txt`` beside this file.

Scorers that need an LLM use the ``simulator`` model role::

    inspect eval neuronbench/explain_neurons -T dataset=DIR -T scorer=simulation,detection \\
        --model-role simulator=neuronbench/smollm2
"""

from __future__ import annotations

import random
import zlib
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from inspect_ai.scorer import Score, Scorer, Target, scorer
from inspect_ai.solver import TaskState

from neuronbench.datasets import NeuronRecord
from neuronbench.scorers._classify import (
    Classified,
    Example,
    Labelled,
    classification_metrics,
    classify,
    labelled_records,
    need_both_reason,
    record_text,
    sample_context,
    scorer_model,
    skipped,
    to_score,
)

if TYPE_CHECKING:
    from inspect_ai.model import Model


@lru_cache(maxsize=1)
def prompt_template() -> str:
    """The detection prompt (``{explanation}``, ``{examples}``, ``{n}`` fields)."""
    return resources.files(__package__).joinpath("detection_prompt.txt").read_text("utf-8")


def detection_examples(labelled: Labelled, seed: int) -> list[Example]:
    """Activating and non-activating records as plain text, shuffled by ``seed``."""
    examples = [Example(record_text(r.tokens), 1, r.position) for r in labelled.activating]
    examples += [Example(record_text(r.tokens), 0, r.position) for r in labelled.non_activating]
    random.Random(seed).shuffle(examples)
    return examples


def neuron_seed(neuron: NeuronRecord, seed: int) -> int:
    """A per-neuron shuffle seed, stable across runs and processes."""
    return zlib.crc32(f"{neuron.id.key}:{seed}".encode())


async def detect(
    model: Model,
    explanation: str,
    neuron: NeuronRecord,
    *,
    split: str = "valid",
    n_records: int | None = None,
    batch_size: int = 5,
    threshold: float = 0.1,
    logprobs: bool = True,
    seed: int = 0,
    cache: bool = True,
) -> tuple[Classified | None, Labelled]:
    """Run detection for one explanation; None when the split has no positives or negatives."""
    labelled = labelled_records(neuron, split, n_records, threshold)
    if not labelled.activating or not labelled.non_activating:
        return None, labelled
    examples = detection_examples(labelled, neuron_seed(neuron, seed))
    result = await classify(
        model,
        prompt_template(),
        explanation,
        examples,
        batch_size=batch_size,
        logprobs=logprobs,
        cache=cache,
        scope="detection",
    )
    return result, labelled


@scorer(metrics=classification_metrics())
def detection(
    split: str | None = None,
    n_records: int | None = None,
    batch_size: int = 5,
    threshold: float = 0.1,
    logprobs: bool = True,
    seed: int = 0,
    cache: bool = True,
    model: str | None = None,
) -> Scorer:
    """Score an explanation by how well a model detects activating records from it.

    Args:
        split: Scoring split; None = the sample's ``split`` metadata, else ``valid``.
        n_records: Top and random records each to draw from the split (None = all).
        batch_size: Examples per prompt (one generate call per batch).
        threshold: Fraction of the neuron's max activation separating activating
            top records from non-activating random ones.
        logprobs: Ask for logprobs to compute AUC from P("1") (ignored by providers
            that do not return them; AUC is then NaN).
        seed: Shuffle seed (combined with the neuron id).
        cache: Cache the scorer model's answers.
        model: Scorer model; None = the ``simulator`` model role (required).
    """

    async def score(state: TaskState, target: Target) -> Score:
        if (skip := skipped(state, "detection")) is not None:
            return skip  # type: ignore[no-any-return]
        neuron, use_split, explanation, base = sample_context(state, "detection", split)
        if not explanation.strip():
            return to_score(None, base, "empty explanation")
        result, labelled = await detect(
            scorer_model(model),
            explanation,
            neuron,
            split=use_split,
            n_records=n_records,
            batch_size=batch_size,
            threshold=threshold,
            logprobs=logprobs,
            seed=seed,
            cache=cache,
        )
        base.update(
            n_activating=len(labelled.activating),
            n_non_activating=len(labelled.non_activating),
            dropped=labelled.dropped,
        )
        if result is None:
            return to_score(None, base, need_both_reason(use_split, labelled))
        return to_score(result, base)

    return score
