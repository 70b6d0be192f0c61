"""Shared machinery of the classification scorers (detection, fuzzing) and the embedding scorer.

EleutherAI's delphi scores an explanation by whether a model, given only the explanation,
can tell activating examples from non-activating ones. Here:

- :func:`labelled_records` picks the held-out examples of a scoring split: top records
  that clearly fire are positives, random records that stay low are negatives;
- :func:`classify` shows examples in numbered batches (one prompt per batch is cheaper
  than one per record), parses the model's ``[1, 0, ...]`` answer, and reads P("1") from
  the output logprobs when the provider returns them;
- :func:`binary_metrics` turns labels and predictions into balanced accuracy, precision,
  recall, F1 and AUC.

A batch whose answer does not parse is a flagged failure (raw output kept), never
counted as wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from neuronbench.datasets import ActivationRecord, NeuronRecord, scoring_records

if TYPE_CHECKING:
    from inspect_ai.model import Model, ModelOutput
    from inspect_ai.solver import TaskState

METRIC_KEYS = ("balanced_accuracy", "precision", "recall", "f1", "auc")
"""Value keys of a classification score (NaN when undefined)."""
_ANSWER = re.compile(r"\[\s*([01](?:\s*,\s*[01])*)\s*,?\s*\]")


@dataclass
class Labelled:
    """Held-out records of one neuron, split into positives and negatives."""

    activating: list[ActivationRecord]
    """Top records of the split whose max activation exceeds the threshold."""
    non_activating: list[ActivationRecord]
    """Random records of the split whose max activation stays at or below the threshold."""
    threshold: float
    """The activation separating the two (``fraction`` x the neuron's max activation)."""
    dropped: int = 0
    """Records of the split that fit neither group (weak top records, firing random ones)."""


def labelled_records(
    neuron: NeuronRecord, split: str, n: int | None = None, fraction: float = 0.1
) -> Labelled:
    """Positives and negatives from the scoring split ``split`` (never the explainer's train split).

    A random record that fires as strongly as a top record is not a negative example, and
    a top record of a rare neuron may not fire at all, so both groups are filtered by
    ``fraction`` x the neuron's max activation.
    """
    scoring = scoring_records(neuron, split, n)  # type: ignore[arg-type]
    threshold = fraction * max(neuron.max_activation, 0.0)
    pos = [r for r in scoring.top if r.max_activation > threshold]
    neg = [r for r in scoring.random if r.max_activation <= threshold]
    return Labelled(pos, neg, threshold, len(scoring.all) - len(pos) - len(neg))


def record_text(tokens: Sequence[str]) -> str:
    """A record as one line of plain text (newlines flattened so numbered examples stay apart)."""
    return " ".join("".join(tokens).split())


@dataclass
class Example:
    """One example shown to the scorer model."""

    text: str
    """What the model sees (plain or highlighted record text)."""
    label: int
    """1 if the explanation should say yes (activating / correctly highlighted), else 0."""
    position: int = -1
    """Corpus position of the record it came from."""


@dataclass
class Classified:
    """The scorer model's answers for a set of examples."""

    labels: list[int] = field(default_factory=list)
    """True labels of the examples whose batch parsed."""
    predictions: list[int] = field(default_factory=list)
    """The model's 0/1 answer per parsed example."""
    probabilities: list[float] | None = field(default_factory=list)
    """P("1") per parsed example from logprobs; None when any batch had no usable logprobs."""
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Batches whose answer did not parse: ``{"batch", "error", "raw_output"}``."""
    raw_outputs: list[str] = field(default_factory=list)
    """Every batch's raw completion, in order."""
    examples: list[dict[str, Any]] = field(default_factory=list)
    """Per example: text, label, position, prediction, probability (for score metadata)."""


def parse_answer(text: str, n: int) -> list[int]:
    """The last ``[0/1, ...]`` list of exactly ``n`` entries in ``text``.

    Raises:
        ValueError: no such list (the batch is then a flagged failure).
    """
    found = [m for m in _ANSWER.finditer(text) if len(m.group(1).split(",")) == n]
    if not found:
        raise ValueError(f"no list of {n} 0/1 answers in the output")
    return [int(x) for x in json.loads(f"[{found[-1].group(1)}]")]


def answer_probabilities(output: ModelOutput, n: int) -> list[float] | None:
    """P("1") / (P("0") + P("1")) at each of the ``n`` answer digits, from the output logprobs."""
    choice = output.choices[0] if output.choices else None
    logprobs = getattr(choice, "logprobs", None) if choice else None
    if logprobs is None or not logprobs.content:
        return None
    probs: list[float] = []
    for lp in logprobs.content:
        if lp.token.strip() not in ("0", "1"):
            continue
        p = {"0": 0.0, "1": 0.0}
        candidates = lp.top_logprobs or []
        for c in candidates:
            if c.token.strip() in p:
                p[c.token.strip()] += math.exp(c.logprob)
        if not candidates:
            p[lp.token.strip()] = math.exp(lp.logprob)
        total = p["0"] + p["1"]
        probs.append(p["1"] / total if total > 0 else float(lp.token.strip() == "1"))
    return probs[-n:] if len(probs) >= n else None


def batches(examples: Sequence[Example], size: int) -> list[list[Example]]:
    return [list(examples[i : i + size]) for i in range(0, len(examples), size)]


def format_examples(batch: Sequence[Example]) -> str:
    return "\n".join(f"Example {i + 1}: {ex.text}" for i, ex in enumerate(batch))


async def classify(
    model: Model,
    template: str,
    explanation: str,
    examples: Sequence[Example],
    *,
    batch_size: int = 5,
    logprobs: bool = True,
    cache: bool = True,
    scope: str = "",
) -> Classified:
    """Ask ``model`` about ``examples`` in batches of ``batch_size``; parse and collect answers."""
    from inspect_ai.model import CachePolicy, GenerateConfig

    config = GenerateConfig(
        max_tokens=200, logprobs=True if logprobs else None, top_logprobs=5 if logprobs else None
    )
    policy = CachePolicy(expiry=None, per_epoch=False, scopes={"scorer": scope}) if cache else False
    out = Classified()
    for b, batch in enumerate(batches(examples, batch_size)):
        prompt = build_prompt(template, explanation, batch)
        output = await model.generate(prompt, config=config, cache=policy)
        raw = output.completion
        out.raw_outputs.append(raw)
        try:
            preds = parse_answer(raw, len(batch))
        except ValueError as e:
            out.failures.append({"batch": b, "error": str(e), "raw_output": raw})
            continue
        probs = answer_probabilities(output, len(batch)) if logprobs else None
        if probs is None or out.probabilities is None:
            out.probabilities = None
        else:
            out.probabilities.extend(probs)
        for i, (ex, pred) in enumerate(zip(batch, preds, strict=True)):
            out.labels.append(ex.label)
            out.predictions.append(pred)
            out.examples.append(
                {
                    "text": ex.text,
                    "label": ex.label,
                    "position": ex.position,
                    "prediction": pred,
                    "probability": None if probs is None else probs[i],
                }
            )
    return out


def build_prompt(template: str, explanation: str, batch: Sequence[Example]) -> str:
    """Fill a prompt template's ``{explanation}``, ``{examples}`` and ``{n}`` fields."""
    return template.format(
        explanation=explanation.strip(), examples=format_examples(batch), n=len(batch)
    )


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """P(score of a random positive > score of a random negative), ties 0.5; NaN if one class."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    diff = pos[:, None] - neg[None, :]  # (n_pos, n_neg)
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def binary_metrics(
    labels: Sequence[int], predictions: Sequence[int], probabilities: Sequence[float] | None = None
) -> dict[str, float]:
    """Balanced accuracy, precision, recall, F1, and AUC (from probabilities; NaN without).

    Balanced accuracy (mean of the true positive and true negative rates) is the headline:
    it does not reward saying "yes" to everything when positives dominate, or vice versa.
    """
    y = np.asarray(labels, dtype=bool)
    p = np.asarray(predictions, dtype=bool)
    tp, fp = int((y & p).sum()), int((~y & p).sum())
    fn, tn = int((y & ~p).sum()), int((~y & ~p).sum())
    nan = math.nan
    tpr = tp / (tp + fn) if tp + fn else nan
    tnr = tn / (tn + fp) if tn + fp else nan
    precision = tp / (tp + fp) if tp + fp else nan
    f1 = 2 * precision * tpr / (precision + tpr) if tp else (0.0 if tp + fn else nan)
    return {
        "balanced_accuracy": (tpr + tnr) / 2,
        "precision": precision,
        "recall": tpr,
        "f1": f1,
        "auc": auc(labels, probabilities) if probabilities is not None else nan,
    }


def classification_metrics() -> dict[str, list[Any]]:
    """Dict-form metrics for a classification score value (the list form would give 0)."""
    from inspect_ai.scorer import mean, stderr

    from neuronbench.scorers.metrics import bootstrap_ci, n_failed, n_skipped, n_unscored

    return {
        "balanced_accuracy": [mean(), stderr(), bootstrap_ci()],
        "precision": [mean()],
        "recall": [mean()],
        "f1": [mean(), stderr()],
        "auc": [mean(), stderr()],
        "scored": [mean(), n_failed(), n_unscored(), n_skipped()],
    }


def scorer_model(model: str | None) -> Model:
    """``model`` if named, else the ``simulator`` role (required: never the explainer)."""
    from inspect_ai.model import get_model

    return get_model(model) if model else get_model(role="simulator", required=True)


def sample_context(
    state: TaskState, scorer: str, split: str | None
) -> tuple[NeuronRecord, str, str, dict[str, Any]]:
    """The sample's neuron, scoring split, explanation, and the score metadata they make.

    The split is ``split``, else the sample's ``split`` metadata, else ``valid``; the
    explanation is the solver's, else the completion (a solver that wrote no metadata).
    """
    neuron = NeuronRecord.from_dict(state.metadata["neuron"])
    use_split = split or state.metadata.get("split") or "valid"
    explanation = state.metadata.get("explanation")
    if not isinstance(explanation, str):
        explanation = state.output.completion if state.output else ""
    base = {
        "scorer": scorer,
        "explanation": explanation,
        "split": use_split,
        "neuron_id": neuron.id.key,
        "layer": neuron.id.layer,
    }
    return neuron, use_split, explanation, base


def skipped(state: TaskState, scorer: str) -> Any:
    """The ``skipped`` score when the sample's neuron cannot fill the split, else None."""
    from neuronbench.scorers._skip import sample_base, skip_reason, skipped_score

    reason = skip_reason(state.metadata)
    if reason is None:
        return None
    return skipped_score(METRIC_KEYS, reason, sample_base(state, scorer))


def need_both_reason(split: str, labelled: Labelled) -> str:
    """Why a split with no activating or no non-activating records is unscored."""
    return (
        f"split {split!r} has {len(labelled.activating)} activating and "
        f"{len(labelled.non_activating)} non-activating records; need both"
    )


def to_score(
    result: Classified | None, metadata: dict[str, Any], unscored_reason: str | None = None
) -> Any:
    """An inspect ``Score``: metric values, or NaN values with status failed / unscored and why.

    Any unparsed batch fails the whole sample: scoring only the batches that parsed would
    silently change which examples a neuron is judged on.
    """
    from inspect_ai.scorer import Score

    nan_value = {**dict.fromkeys(METRIC_KEYS, math.nan), "scored": 0.0}
    if result is None:
        meta = {**metadata, "status": "unscored", "reason": unscored_reason, "raw_output": None}
        return Score(
            value=nan_value, explanation=unscored_reason, reason="unscorable", metadata=meta
        )
    meta = {
        **metadata,
        "examples": result.examples,
        "raw_outputs": result.raw_outputs,
        "failures": result.failures,
    }
    if result.failures:
        reason = f"{len(result.failures)} batch(es) did not parse: {result.failures[0]['error']}"
        raw = "\n---\n".join(f["raw_output"] for f in result.failures)
        meta.update(status="failed", reason=reason, raw_output=raw)
        return Score(value=nan_value, explanation=reason, reason="grader_failed", metadata=meta)
    value = binary_metrics(result.labels, result.predictions, result.probabilities)
    meta.update(status="ok", reason=None, raw_output=None)
    summary = " ".join(f"{k}={v:.3f}" for k, v in value.items() if not math.isnan(v))
    return Score(value={**value, "scored": 1.0}, explanation=summary, metadata=meta)
