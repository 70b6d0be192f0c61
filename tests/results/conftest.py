"""Synthetic ``explain_neurons`` logs with known true scores, for the results tests.

``write_logs`` runs real inspect evals (so the log format is the real one): a tiny
task named ``explain_neurons`` whose samples carry neuron-like metadata, a solver that
asks the explainer (``mockllm/<name>``) for an explanation, and a scorer that calls
the ``simulator`` role and returns a dict score drawn from a known distribution:

    score(row, neuron, epoch) = mu[row] + difficulty[neuron] + noise(row, neuron, epoch)

with ``difficulty ~ N(0, DIFFICULTY_SD)`` shared by all rows (so paired differences
cancel it) and ``noise ~ N(0, NOISE_SD)``. A row's true mean is ``mu``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

DIFFICULTY_SD = 0.15
"""Spread of per-neuron difficulty (shared by every row)."""
NOISE_SD = 0.03
"""Per-row, per-epoch noise on each neuron's score."""
USAGE: dict[str, Any] = {
    "input_tokens": 100,
    "output_tokens": 10,
    "total_tokens": 110,
    "total_cost": 0.001,
}
"""Usage every mock generate call reports (explainer and simulator alike)."""
TOKENS = ["The", " cat", " <b>sat</b>", " &amp;", "</script>", " on", " the", " mat"]
"""Record tokens, with HTML and a closing script tag to test the viewer's escaping."""


@dataclass
class RowSpec:
    """One synthetic eval: an explainer model, a strategy, and its score distribution."""

    explainer: str
    """Mock model name (``mockllm/<explainer>``)."""
    strategy: str
    """Task arg ``strategy``."""
    mu: float
    """True mean score of the row."""
    neurons: int = 40
    """Neurons 0..neurons-1 are in the eval."""
    failed: list[int] = field(default_factory=list)
    """Neuron indices whose simulation fails (status ``failed``, NaN values)."""
    unscored: list[int] = field(default_factory=list)
    """Neuron indices with status ``unscored`` (NaN values, as for failed)."""
    skipped: list[int] = field(default_factory=list)
    """Neuron indices with status ``skipped`` (NaN values; too few records)."""
    constant: list[int] = field(default_factory=list)
    """Neuron indices whose simulation is constant: status ``ok``, score 0, flagged."""
    epochs: int = 1
    """Epochs (independent explanations per neuron)."""
    seed: int = 1
    """Noise seed of this row."""
    simulator: str = "generation"
    """Task arg ``simulator`` (rows are compared only within one simulator)."""
    site: str | None = None
    """The dataset card's site in the eval metadata (``mlp``, ``sae:<name>``); None: no card,
    as in logs of tasks that copy none. Units of another site are other units: their keys
    and difficulties differ."""
    dataset: str = "/data/synthetic"
    """Task arg ``dataset``."""


def neuron_key(i: int, site: str | None = None) -> str:
    where = "" if site in (None, "mlp") else f"{site.replace(':', '-')}-"
    return f"test-subject-{where}L{i % 3}-N{i}"


def true_score(spec: RowSpec, i: int, epoch: int = 1) -> float:
    """The score the synthetic scorer gives neuron ``i`` of ``spec`` in ``epoch``."""
    unit = [7, i] if spec.site in (None, "mlp") else [7, i, *spec.site.encode()]
    difficulty = np.random.default_rng(unit).normal(0.0, DIFFICULTY_SD)
    noise = np.random.default_rng([spec.seed, i, epoch]).normal(0.0, NOISE_SD)
    return float(spec.mu + difficulty + noise)


def _run(spec: RowSpec, log_dir: Path) -> None:
    from inspect_ai import Task, eval, task
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import Score, mean, scorer, stderr
    from inspect_ai.solver import solver

    def output(text: str) -> ModelOutput:
        out = ModelOutput.from_content(model="mockllm", content=text)
        out.usage = ModelUsage(**USAGE)
        return out

    @solver
    def explain():  # type: ignore[no-untyped-def]
        async def solve(state, generate):  # type: ignore[no-untyped-def]
            out = await get_model().generate(state.input_text)
            text = f"{out.completion} for neuron {state.metadata['index']}"
            state.metadata["explanation"] = text
            state.metadata["explanation_flags"] = []
            state.output.completion = text
            return state

        return solve

    @scorer(
        metrics={
            "top_and_random": [mean(), stderr()],
            "random_only": [mean()],
            "top_only": [mean()],
        }
    )
    def simulation():  # type: ignore[no-untyped-def]
        async def score(state, target):  # type: ignore[no-untyped-def]
            await get_model(role="simulator", required=True).generate("simulate")
            i = int(state.metadata["index"])
            meta = {
                "simulator": "generation",
                "explanation": state.metadata["explanation"],
                "raw_output": None,
            }
            nan = float("nan")
            value = {"top_and_random": nan, "random_only": nan, "top_only": nan}
            if i in spec.failed:
                return Score(
                    value=value,
                    metadata=meta | {"status": "failed", "reason": "unparseable", "records": []},
                )
            if i in spec.unscored:
                return Score(
                    value=value,
                    metadata=meta | {"status": "unscored", "reason": "constant", "records": []},
                )
            if i in spec.skipped:
                return Score(
                    value=value,
                    metadata=meta | {"status": "skipped", "reason": "0 random", "records": []},
                )
            s = 0.0 if i in spec.constant else true_score(spec, i, state.epoch)
            meta["constant_simulation"] = i in spec.constant
            acts = [0.0, 0.5, 1.0 + i, 0.0, 2.0, 0.0, 0.1, 0.0]
            records = [
                {
                    "group": g,
                    "position": p,
                    "tokens": TOKENS,
                    "activations": acts,
                    "predictions": [10 * a / max(acts) for a in reversed(acts)],
                }
                for g, p in (("top", 3), ("random", 1003))
            ]
            value = {"top_and_random": s, "random_only": s - 0.2, "top_only": s + 0.1}
            if i in spec.constant:  # a constant simulation correlates 0 with every group
                value = dict.fromkeys(value, 0.0)
            return Score(
                value=value, metadata=meta | {"status": "ok", "reason": None, "records": records}
            )

        return score

    @task
    def explain_neurons(
        strategy: str,
        simulator: str = "generation",
        split: str = "valid",
        dataset: str = "/data/synthetic",
    ) -> Task:
        samples = [
            Sample(
                id=neuron_key(i, spec.site),
                input="explain this neuron",
                metadata={
                    "layer": i % 3,
                    "index": i,
                    "subject": "test-subject",
                    "firing_rate": 0.001 * (i + 1),
                    "max_activation": 1.0 + i,
                    "neuron": {"top": [[0.0] * 64] * 5},
                    "split": split,
                },
            )
            for i in range(spec.neurons)
        ]
        card = {"dataset": {"site": spec.site}} if spec.site else None
        return Task(dataset=samples, solver=explain(), scorer=simulation(), metadata=card)

    explainer = get_model(
        f"mockllm/{spec.explainer}", custom_outputs=lambda *a: output(f"{spec.explainer} says")
    )
    simulator = get_model("mockllm/sim", custom_outputs=lambda *a: output("0"))
    [log] = eval(
        explain_neurons(strategy=spec.strategy, simulator=spec.simulator, dataset=spec.dataset),
        model=explainer,
        model_roles={"simulator": simulator},
        epochs=spec.epochs,
        log_dir=str(log_dir),
        display="none",
    )
    assert log.status == "success", log.error


def write_logs(log_dir: Path, specs: list[RowSpec]) -> Path:
    """Run one synthetic eval per spec into ``log_dir``."""
    for spec in specs:
        _run(spec, log_dir)
    return log_dir


MAIN_SPECS = [
    RowSpec("strong", "token_activation_pairs", mu=0.6, seed=1),
    RowSpec(
        "weak",
        "token_activation_pairs",
        mu=0.45,
        neurons=30,
        failed=[0, 1, 2],
        unscored=[5],
        seed=2,
    ),
    RowSpec("strong", "shuffled", mu=0.05, seed=3),
]
"""A strong explainer, a weak one that misses neurons, and a shuffled control."""


@pytest.fixture(scope="session")
def main_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_logs(tmp_path_factory.mktemp("logs"), MAIN_SPECS)
