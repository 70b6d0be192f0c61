"""Which records each stage uses, proved through the task: a wrong split must change a score.

Every earlier test passed with these silent routing bugs: the scorer always on ``valid``,
the linear calibration fitted on the scored split, best-of-k choosing on ``test``, the task
dropping ``n_score_records``, ``neuronbench run`` scoring ``valid``. Here a probe simulator,
registered for the test, looks each record up by its tokens (unique per neuron, record and
position) and predicts from the split the record was dealt to, so the score itself says
which records were simulated: +1 on the split the run asked for, -1 on any other.

The expected split of each record is written out here (OpenAI's round-robin deal: top
record ``i`` to ``TOP_DEAL[i % 4]``, random record ``j`` to ``RANDOM_DEAL[j % 3]``), not
taken from ``neuronbench.datasets.splits``, so a dealing bug cannot hide a routing bug.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inspect_ai import eval
from inspect_ai.log import EvalLog, EvalSample
from inspect_ai.model import get_model

from neuronbench.datasets import ActivationRecord, DatasetCard, NeuronDataset, NeuronRecord
from neuronbench.scorers.registry import SIMULATORS, SimulatorSpec
from neuronbench.scorers.simulators.base import Simulation
from tests.conftest import make_neuron
from tests.evals._helpers import run

TOP_DEAL = ("train", "calibration", "valid", "test")
RANDOM_DEAL = ("calibration", "valid", "test")
N_TOP, N_RANDOM, LENGTH = 16, 12, 6
"""4 top and 4 random records in every scoring split, 6 tokens each."""

Rule = dict[str, tuple[float, float]]
"""split -> (scale, offset): the probe predicts ``scale * activation + offset`` there."""


def tagged_neuron(layer: int, index: int) -> NeuronRecord:
    """A neuron whose every token names neuron, group and record (`` L0N1top3t2``)."""
    n = make_neuron(
        layer=layer,
        index=index,
        seed=10 * layer + index,
        n_top=N_TOP,
        n_random=N_RANDOM,
        n_tokens_per_record=LENGTH,
    )

    def tag(r: ActivationRecord, group: str, i: int) -> ActivationRecord:
        return replace(r, tokens=[f" L{layer}N{index}{group}{i}t{j}" for j in range(len(r.tokens))])

    n.top = [tag(r, "top", i) for i, r in enumerate(n.top)]
    n.random = [tag(r, "rnd", j) for j, r in enumerate(n.random)]
    n.quantile = [[tag(r, f"q{b}_", k) for k, r in enumerate(q)] for b, q in enumerate(n.quantile)]
    return n


NEURONS = [tagged_neuron(layer, i) for layer in (0, 1) for i in range(2)]


def expected(neuron: NeuronRecord, split: str, n: int | None = None) -> list[ActivationRecord]:
    """The split's top then random records (``n`` of each), dealt by hand."""
    top = [r for i, r in enumerate(neuron.top) if TOP_DEAL[i % 4] == split]
    rnd = [r for j, r in enumerate(neuron.random) if RANDOM_DEAL[j % 3] == split]
    k = min(len(top), len(rnd)) if n is None else n
    return top[:k] + rnd[:k]


@dataclass
class SplitProbe:
    """Predicts a record's activations from the split it belongs to (and the explanation).

    ``rules[explanation]`` (or ``rules["*"]``) maps each split to a linear map of the real
    activations; a record of a split without a rule (``train``) raises, so a train record
    sent to a simulator fails the eval loudly.
    """

    table: dict[tuple[str, ...], tuple[str, list[float]]]
    rules: dict[str, Rule]
    name: str = "probe"
    calls: list[tuple[str, list[str]]] = field(default_factory=list)

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        rule = self.rules.get(explanation, self.rules.get("*"))
        assert rule is not None, f"probe has no rule for explanation {explanation!r}"
        preds, splits = [], []
        for tokens in records:
            split, acts = self.table[tuple(tokens)]
            scale, offset = rule[split]
            preds.append([scale * a + offset for a in acts])
            splits.append(split)
        self.calls.append((explanation, splits))
        return Simulation(predictions=preds)


def _table(neurons: Sequence[NeuronRecord]) -> dict[tuple[str, ...], tuple[str, list[float]]]:
    table = {}
    for n in neurons:
        for i, r in enumerate(n.top):
            table[tuple(r.tokens)] = (TOP_DEAL[i % 4], list(r.activations))
        for j, r in enumerate(n.random):
            table[tuple(r.tokens)] = (RANDOM_DEAL[j % 3], list(r.activations))
    return table


def only(split: str) -> Rule:
    """+1 correlation on ``split``, -1 on the other scoring splits."""
    return {s: (1.0, 0.0) if s == split else (-1.0, 0.0) for s in RANDOM_DEAL}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    ds = NeuronDataset(card=DatasetCard(subject="probe-subject", corpus="unit"))
    ds.add(NEURONS)
    return ds.save(tmp_path / "ds")


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``install(rules)`` registers a fresh :class:`SplitProbe` as simulator ``probe``."""

    def install(rules: dict[str, Rule]) -> SplitProbe:
        sim = SplitProbe(_table(NEURONS), rules)
        monkeypatch.setitem(SIMULATORS, "probe", SimulatorSpec(lambda _m: sim, needs_model=False))
        return sim

    yield install


def _eval(dataset: Path, tmp_path: Path, outputs: Sequence[str], **args: Any) -> EvalLog:
    args.setdefault("scorer", "simulation")  # the task's default; ``run`` turns scoring off
    return run(dataset, tmp_path, list(outputs), simulator="probe", **args)


def _neuron(sample: EvalSample) -> NeuronRecord:
    return next(n for n in NEURONS if n.id.key == sample.id)


def _score(sample: EvalSample) -> Any:
    assert sample.scores
    (score,) = sample.scores.values()
    return score


@pytest.mark.parametrize("split", ["valid", "test", "calibration"])
def test_scorer_simulates_the_split_asked_for(
    split: str, dataset: Path, tmp_path: Path, probe: Any
) -> None:
    sim = probe({"*": only(split)})
    log = _eval(dataset, tmp_path, [" probe words."] * 8, split=split, scorer="simulation")
    assert len(log.samples) == len(NEURONS)
    for s in log.samples:
        score = _score(s)
        assert score.value["top_and_random"] == pytest.approx(1.0), (split, score.explanation)
        assert score.value["top_only"] == pytest.approx(1.0)
        assert score.value["random_only"] == pytest.approx(1.0)
        want = [r.position for r in expected(_neuron(s), split)]
        assert [r["position"] for r in score.metadata["records"]] == want
        assert score.metadata["split"] == split == s.metadata["split"]
    assert {tuple(splits) for _, splits in sim.calls} == {(split,) * 8}


def test_n_score_records_reaches_the_scorer(dataset: Path, tmp_path: Path, probe: Any) -> None:
    sim = probe({"*": only("test")})
    log = _eval(
        dataset,
        tmp_path,
        [" probe words."] * 8,
        split="test",
        scorer="simulation",
        n_score_records=2,
    )
    assert log.eval.task_args["n_score_records"] == 2
    for s in log.samples:
        score = _score(s)
        want = expected(_neuron(s), "test", 2)
        assert [r["position"] for r in score.metadata["records"]] == [r.position for r in want]
        assert score.metadata["n_tokens"] == 4 * LENGTH
        assert score.value["top_and_random"] == pytest.approx(1.0)
    assert [len(splits) for _, splits in sim.calls] == [4] * len(NEURONS)


def _r2_ade(real: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    r2 = 1 - np.mean((real - pred) ** 2) / np.mean(real**2)
    ade = 1 - np.mean(np.abs(real - pred)) / np.mean(np.abs(real))
    return float(r2), float(ade)


def test_calibration_is_fitted_on_the_calibration_split(
    dataset: Path, tmp_path: Path, probe: Any
) -> None:
    """Predictions are 2a+1 on calibration and a on test: the map fitted on calibration
    (a = p/2 - 1/2) turns the test predictions into a/2 - 1/2, not into a (r² = 1), which is
    what a fit on the scored split itself would give."""
    probe({"*": {"calibration": (2.0, 1.0), "test": (1.0, 0.0), "valid": (-1.0, 0.0)}})
    log = _eval(dataset, tmp_path, [" probe words."] * 8, split="test", calibrate=True)
    for s in log.samples:
        value = _score(s).value
        real = np.concatenate([r.activations for r in expected(_neuron(s), "test")])
        r2, ade = _r2_ade(real, 0.5 * real - 0.5)
        assert r2 < 0.9 and ade < 0.9  # far from the 1.0 a fit on test would give
        assert value["r2"] == pytest.approx(r2, abs=1e-9)
        assert value["absolute_deviation_explained"] == pytest.approx(ade, abs=1e-9)
        assert value["top_and_random"] == pytest.approx(1.0)  # scored on test


def test_best_of_k_selects_on_calibration_not_test(
    dataset: Path, tmp_path: Path, probe: Any
) -> None:
    """``alpha`` simulates calibration perfectly and test backwards, ``beta`` the reverse:
    choosing on calibration keeps alpha (which then scores -1 on test, honestly)."""
    sim = probe(
        {
            "alpha": {"calibration": (1.0, 0.0), "valid": (-1.0, 0.0), "test": (-1.0, 0.0)},
            "beta": {"calibration": (-1.0, 0.0), "valid": (1.0, 0.0), "test": (1.0, 0.0)},
        }
    )
    log = _eval(
        dataset,
        tmp_path,
        [" alpha.", " beta."] * len(NEURONS),
        strategy="best_of_k",
        k=2,
        split="test",
        scorer="simulation",
    )
    for s in log.samples:
        cands = {c["explanation"]: c for c in s.metadata["candidates"]}
        assert set(cands) == {"alpha", "beta"}
        assert cands["alpha"]["score"] == pytest.approx(1.0)
        assert cands["beta"]["score"] == pytest.approx(-1.0)
        assert s.metadata["explanation"] == "alpha"
        assert s.metadata["candidates"][s.metadata["best_index"]]["explanation"] == "alpha"
        assert (
            s.metadata["selection_split"] == "calibration" and s.metadata["best_of_k_note"] is None
        )
        assert _score(s).value["top_and_random"] == pytest.approx(-1.0)  # alpha, scored on test
    # each candidate simulated on calibration only; test only by the scorer, once per neuron
    kinds = sorted(tuple(sorted(set(splits))) for _, splits in sim.calls)
    assert kinds == [("calibration",)] * (2 * len(NEURONS)) + [("test",)] * len(NEURONS)


def test_neuronbench_run_scores_test_by_default(
    dataset: Path, tmp_path: Path, probe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI with no --split: every task it builds must score ``test`` (the leaderboard split)."""
    import inspect_ai

    from neuronbench import pipeline
    from neuronbench.cli import main

    probe({"*": only("test")})
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # run() sets them; restore after
        monkeypatch.setenv(var, "1")
    built: list[Any] = []

    def fake_eval_set(tasks: list[Any], **kwargs: Any) -> tuple[bool, list[Any]]:
        built.extend(tasks)
        return True, []

    def fake_publish(cfg: Any, out: Path, log_dir: Path) -> dict[str, Any]:
        (out / "leaderboard.md").write_text("", encoding="utf-8")
        return {}

    monkeypatch.setattr(pipeline, "ensure_recording", lambda cfg, d, site="mlp": dataset)
    monkeypatch.setattr(inspect_ai, "eval_set", fake_eval_set)
    monkeypatch.setattr(pipeline, "publish", fake_publish)
    out = tmp_path / "out"
    rc = main(
        ["run", "--out", str(out), "--neurons", "4", "--strategies", "", "--baselines", "baseline"]
        + ["--simulators", "probe", "--sites", "mlp"]
    )
    assert rc == 0 and len(built) == 1
    (task,) = built
    assert task.metadata["split"] == "test"
    (log,) = eval(
        task,
        model=get_model("mockllm/model"),
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    assert log.samples and len(log.samples) == len(NEURONS)
    for s in log.samples:
        score = _score(s)
        assert score.metadata["split"] == "test"
        assert score.value["top_and_random"] == pytest.approx(1.0), score.explanation
