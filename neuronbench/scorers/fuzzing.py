"""Fuzzing scorer (EleutherAI delphi): do highlighted tokens match the explanation?

The scorer model sees activating held-out records with some tokens highlighted
``<<like this>>``: in half of them the highlights mark exactly the tokens where the neuron
fires (above the activation threshold), in the other half the same number of highlights
sit on randomly chosen other positions. It answers, per example, whether the highlights
match the explanation. Value: balanced accuracy (headline), precision, recall, F1, and
AUC from P("1") when logprobs are available. Unlike detection, this checks that the
explanation names the right *tokens*, not just the right texts. Prompt:
``fuzzing_prompt.txt`` beside this file; the scorer model is the ``simulator`` role.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
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
    sample_context,
    scorer_model,
    skipped,
    to_score,
)
from neuronbench.scorers.detection import neuron_seed

if TYPE_CHECKING:
    from inspect_ai.model import Model


@lru_cache(maxsize=1)
def prompt_template() -> str:
    """The fuzzing prompt (``{explanation}``, ``{examples}``, ``{n}`` fields)."""
    return resources.files(__package__).joinpath("fuzzing_prompt.txt").read_text("utf-8")


def highlight(tokens: Sequence[str], marked: set[int]) -> str:
    """Record text with each run of marked tokens wrapped in ``<<`` ``>>`` (whitespace flattened)."""
    out: list[str] = []
    for i, tok in enumerate(tokens):
        if i in marked and i - 1 not in marked:
            lead = tok[: len(tok) - len(tok.lstrip())]
            tok = f"{lead}<<{tok.lstrip()}"
        out.append(tok)
        if i in marked and i + 1 not in marked:
            out.append(">>")
    return " ".join("".join(out).split())


def fuzzing_examples(labelled: Labelled, seed: int) -> list[Example]:
    """Half the activating records correctly highlighted (label 1), half shuffled (label 0).

    A record whose firing tokens cover it entirely cannot be mis-highlighted, so it is
    only ever shown correctly highlighted.
    """
    rng = random.Random(seed)
    records = list(labelled.activating)
    rng.shuffle(records)
    examples = []
    for k, rec in enumerate(records):
        true = {i for i, a in enumerate(rec.activations) if a > labelled.threshold}
        n = len(rec.tokens)
        if k % 2 == 0 or len(true) >= n:
            examples.append(Example(highlight(rec.tokens, true), 1, rec.position))
            continue
        wrong = true
        while wrong == true:
            wrong = set(rng.sample(range(n), len(true)))
        examples.append(Example(highlight(rec.tokens, wrong), 0, rec.position))
    rng.shuffle(examples)
    return examples


async def fuzz(
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
    """Run fuzzing for one explanation; None when the split has fewer than 2 activating records."""
    labelled = labelled_records(neuron, split, n_records, threshold)
    examples = fuzzing_examples(labelled, neuron_seed(neuron, seed))
    if len({ex.label for ex in examples}) < 2:
        return None, labelled
    result = await classify(
        model,
        prompt_template(),
        explanation,
        examples,
        batch_size=batch_size,
        logprobs=logprobs,
        cache=cache,
        scope="fuzzing",
    )
    return result, labelled


@scorer(metrics=classification_metrics())
def fuzzing(
    split: str | None = None,
    n_records: int | None = None,
    batch_size: int = 5,
    threshold: float = 0.1,
    logprobs: bool = True,
    seed: int = 0,
    cache: bool = True,
    model: str | None = None,
) -> Scorer:
    """Score an explanation by whether a model tells correct from shuffled highlights with it.

    Args:
        split: Scoring split; None = the sample's ``split`` metadata, else ``valid``.
        n_records: Top records to draw from the split (None = all).
        batch_size: Examples per prompt (one generate call per batch).
        threshold: Fraction of the neuron's max activation above which a token is highlighted.
        logprobs: Ask for logprobs to compute AUC from P("1").
        seed: Seed of the highlight shuffling (combined with the neuron id).
        cache: Cache the scorer model's answers.
        model: Scorer model; None = the ``simulator`` model role (required).
    """

    async def score(state: TaskState, target: Target) -> Score:
        if (skip := skipped(state, "fuzzing")) is not None:
            return skip  # type: ignore[no-any-return]
        neuron, use_split, explanation, base = sample_context(state, "fuzzing", split)
        if not explanation.strip():
            return to_score(None, base, "empty explanation")
        result, labelled = await fuzz(
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
        base.update(n_activating=len(labelled.activating), dropped=labelled.dropped)
        if result is None:
            reason = (
                f"split {use_split!r} has {len(labelled.activating)} activating records; "
                "need 2 or more to show correct and shuffled highlights"
            )
            return to_score(None, base, reason)
        return to_score(result, base)

    return score
