"""Best of k (Transluce's method): sample k explanations, keep the one that simulates best.

Candidates come from the paper's prompt (``token_activation_pairs``) sampled at
``temperature``. Each valid candidate is simulated on the neuron's **calibration** split
and scored by correlation (top + random pooled); the best one is the explanation. The
calibration split is disjoint from valid and test, so choosing on it does not leak the
scores the leaderboard reports. Every candidate, its flags and its score go into the
sample metadata (``candidates``).

The simulator model is the ``simulator`` role (``--model-role simulator=...``) for LLM
simulators; it is never silently the explainer. ``lexical`` and ``embedding`` need no model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspect_ai.model import GenerateConfig, Model, get_model
from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.datasets import NeuronRecord, ScoringSet, scoring_records
from neuronbench.evals.extraction import Extraction, extract_explanation
from neuronbench.evals.strategies._base import (
    StrategyOptions,
    finish,
    fit_prompt,
    load_few_shot,
    neuron_of,
    shown_records,
)
from neuronbench.evals.strategies.token_activation_pairs import build_messages


def simulator_model(kind: str) -> Model | None:
    """The ``simulator`` role's model for LLM simulators; a clear error if it was not given."""
    from neuronbench.scorers.registry import simulator_needs_model

    if not simulator_needs_model(kind):
        return None
    try:
        return get_model(role="simulator", required=True)
    except Exception as e:
        raise RuntimeError(
            f"simulator={kind!r} needs a simulator model: pass --model-role simulator=<model> "
            "(e.g. neuronbench/smollm2), or use -T simulator=lexical / embedding, which need none. "
            "The explainer is never used as the simulator by default."
        ) from e


@dataclass
class Candidate:
    """One sampled explanation and how it did on the calibration split."""

    explanation: str
    """Extracted explanation text."""
    flags: list[str]
    """Extraction flags; flagged candidates are not simulated."""
    score: float | None
    """Correlation (top + random) on the calibration split; None if unscored."""
    reason: str | None
    """Why ``score`` is None."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "explanation": self.explanation,
            "flags": self.flags,
            "score": self.score,
            "reason": self.reason,
        }


async def score_candidate(extraction: Extraction, scoring: ScoringSet, simulator: Any) -> Candidate:
    """Simulate ``extraction`` on ``scoring`` records with ``simulator`` and score the result."""
    from neuronbench.scorers.correlation import score_simulation

    if extraction.flags:
        return Candidate(
            extraction.explanation,
            extraction.flags,
            None,
            "flagged: " + ", ".join(extraction.flags),
        )
    sim = await simulator.simulate(extraction.explanation, [r.tokens for r in scoring.all])
    scores = score_simulation(sim, scoring)
    reason = (
        None
        if scores.top_and_random is not None
        else scores.unscored.get("top_and_random", "unscored")
    )
    return Candidate(extraction.explanation, [], scores.top_and_random, reason)


def pick_best(candidates: Sequence[Candidate]) -> tuple[int, str | None]:
    """Index of the best-scoring candidate; ties go to the earliest.

    If none has a score, the first unflagged candidate (or candidate 0) is kept, and the
    returned note says so, so the choice is never mistaken for a scored one.
    """
    scored = [(c.score, -i) for i, c in enumerate(candidates) if c.score is not None]
    if scored:
        return -max(scored)[1], None
    valid = [i for i, c in enumerate(candidates) if not c.flags]
    if valid:
        return valid[0], "no candidate could be scored; kept the first valid one"
    return 0, "every candidate was flagged"


async def choose(
    raws: Sequence[str], neuron: NeuronRecord, simulator: Any, n_records: int | None = None
) -> tuple[Extraction, list[Candidate], int, str | None]:
    """Extract, score on calibration and pick among the raw completions ``raws``."""
    scoring = scoring_records(neuron, "calibration", n_records)
    extractions = [extract_explanation(r) for r in raws]
    candidates = list(
        await asyncio.gather(*(score_candidate(e, scoring, simulator) for e in extractions))
    )
    best, note = pick_best(candidates)
    return extractions[best], candidates, best, note


@solver
def best_of_k(
    k: int = 4,
    temperature: float = 1.0,
    simulator: str = "logprob",
    n_examples: int = 5,
    max_prompt_tokens: int = 4000,
    few_shot: str = "default",
    simulator_examples: str = "default",
) -> Solver:
    """Sample ``k`` paper-prompt explanations and keep the one that simulates best on calibration.

    Args:
        k: Candidates sampled.
        temperature: Sampling temperature of the candidates.
        simulator: Simulator kind (``logprob``, ``generation``, ``lexical``, ``embedding``).
        n_examples: Train records shown (fewer if the prompt must be trimmed to fit).
        max_prompt_tokens: Context budget; whole records are dropped from the end to fit.
        few_shot: Few-shot set, ``default``, ``test`` or a JSON path.
        simulator_examples: The logprob simulator's few-shot examples (``default``,
            ``openai`` or a JSON path).
    """
    if k < 1:
        raise ValueError(f"best_of_k needs k >= 1 (got {k})")
    shots = load_few_shot(few_shot)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        from neuronbench.scorers.registry import make_simulator

        sim = make_simulator(simulator, simulator_model(simulator), examples=simulator_examples)
        explainer = get_model()
        fitted = await fit_prompt(
            lambda recs, n: build_messages(recs, shots[:n]),
            shown_records(state, n_examples),
            len(shots),
            max_prompt_tokens,
            explainer,
        )
        state.messages = fitted.messages
        config = GenerateConfig(temperature=temperature)
        outputs = await asyncio.gather(
            *(explainer.generate(fitted.messages, config=config) for _ in range(k))
        )
        raws = [o.completion for o in outputs]
        best, candidates, index, note = await choose(raws, neuron_of(state), sim)
        state.output = outputs[index]
        return finish(
            state,
            best,
            strategy="best_of_k",
            trimmed=fitted.trimmed,
            shown=fitted.records,
            raw_output=raws[index],
            candidates=[c.as_dict() for c in candidates],
            best_index=index,
            best_of_k_note=note,
            selection_split="calibration",
            selection_simulator=simulator,
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    if opts.split == "calibration":
        raise ValueError("best_of_k selects on the calibration split; score it on valid or test")
    return best_of_k(
        k=opts.k,
        temperature=opts.temperature,
        simulator=opts.simulator,
        n_examples=opts.n_examples,
        max_prompt_tokens=opts.max_prompt_tokens,
        few_shot=opts.few_shot,
        simulator_examples=opts.simulator_examples,
    )
