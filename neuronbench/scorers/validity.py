"""Scorer validity: does a simulator or scorer rank a planted neuron's true explanation first?

For every planted neuron (``neuronbench.groundtruth.planted``) the truth and its three decoys
(too broad, too narrow, a different concept) are scored on the neuron's held-out scoring
split. A good scorer gives the truth the highest score. A v2 suite dataset
(``neuronbench.groundtruth.suite``) adds a ``literal`` decoy (the most frequent firing words,
listed) and a ``paraphrase`` of the truth, which should score about like it
(``paraphrase_gap``: mean |truth - paraphrase|), and reports per suite split
(train/dev/test concept families). Reported per scorer:

- ``truth_beats_decoys``: fraction of neurons whose truth scores strictly above every decoy;
- ``per_kind``: fraction whose truth beats the decoy of each kind;
- ``per_family``: the same, per neuron family;
- ``auc``: P(truth score > decoy score) over all (truth, decoy) pairs, ties 0.5.

On a suite, the rule executor (``neuronbench.scorers.simulators.rules``) runs each
explanation's own rule: its report (``ceiling:rules``) is what a perfect simulator reaches
on the same records, and the pairs it separates are the *decidable* ones. Every report
repeats its figures on decidable pairs only: a decoy the scored records cannot tell from
the truth says nothing about a simulator, whichever way its tie is broken.

An explanation the scorer cannot score (None) ranks below every scored one; two unscored
explanations tie. Ties never count as the truth winning.

Human-written puzzles (``neuronbench.groundtruth.puzzles``, ``validate --puzzles``) are
the check from outside the generated suite: per simulator, how many puzzles' truth scores
strictly above all its false explanations (beside a random ranking's expectation and a
bootstrap interval over puzzles), per false kind, and which kind scores highest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuronbench._progress import Progress
from neuronbench.datasets import NeuronDataset, NeuronRecord, scoring_records
from neuronbench.groundtruth.planted import DECOY_KINDS, PlantedNeuron, load_planted

CEILING = "ceiling:rules"
"""Label of the rule executor's report on a suite (what a perfect simulator reaches)."""
ExplanationScorer = Callable[[str, NeuronRecord], Awaitable["float | None"]]
"""Scores one explanation of one neuron (higher is better); None when it cannot."""
CANDIDATES = ("truth", *DECOY_KINDS)


@dataclass
class ValidityReport:
    """How often one scorer ranks the true explanation above the decoys."""

    scorer: str
    """Label, e.g. ``simulator:embedding`` or ``scorer:embedding``."""
    truth_beats_decoys: float
    """Fraction of neurons whose truth scores strictly above all three decoys."""
    auc: float
    """P(truth > decoy) over all (neuron, decoy) pairs; ties count 0.5."""
    per_kind: dict[str, float]
    """Fraction of neurons whose truth beats the decoy of each kind."""
    per_family: dict[str, dict[str, float]]
    """Per neuron family: ``all`` (beats every decoy) and each decoy kind."""
    n_neurons: int
    """Planted neurons scored."""
    n_unscored: int
    """Explanations (truth or decoy) the scorer returned no score for."""
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """Every score: neuron key → candidate (``truth`` or a decoy kind) → score."""
    paraphrase_gap: float | None = None
    """Mean |truth - paraphrase| over neurons with both scored (v2 suites)."""
    per_split: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per suite split (v2): ``all``, each decoy kind, ``auc``, ``paraphrase_gap``, ``n``."""
    decidable: dict[str, float] = field(default_factory=dict)
    """The same figures on the pairs the rule executor separates (:func:`decidable_figures`);
    empty without a reference (v1 planted neurons)."""
    per_split_decidable: dict[str, dict[str, float]] = field(default_factory=dict)
    """:attr:`decidable` per suite split."""

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (no per-neuron scores)."""
        return {
            "truth_beats_decoys": self.truth_beats_decoys,
            "auc": self.auc,
            "per_kind": self.per_kind,
            "per_family": self.per_family,
            "n_neurons": self.n_neurons,
            "n_unscored": self.n_unscored,
            "paraphrase_gap": self.paraphrase_gap,
            "per_split": self.per_split,
            "decidable": self.decidable,
            "per_split_decidable": self.per_split_decidable,
        }


def _key(x: float | None) -> float:
    return -np.inf if x is None or not np.isfinite(x) else float(x)


def beats(truth: float | None, decoy: float | None, tol: float = 0.0) -> float:
    """1 if the truth scores strictly higher, 0.5 on a tie (within ``tol``), else 0
    (unscored = lowest)."""
    t, d = _key(truth), _key(decoy)
    if t == d or abs(t - d) <= tol:
        return 0.5
    return 1.0 if t > d else 0.0


def _gap(scores: dict[str, dict[str, float | None]], keys: Sequence[str]) -> float | None:
    gaps = [
        abs(float(t) - float(p))
        for k in keys
        if (t := scores[k].get("truth")) is not None
        and (p := scores[k].get("paraphrase")) is not None
        and np.isfinite(t)
        and np.isfinite(p)
    ]
    return float(np.mean(gaps)) if gaps else None


THREE = ("too_broad", "too_narrow", "different")
"""The decoy kinds of the issue's "all three" (literal word lists aside)."""


def decidable_figures(
    scores: dict[str, dict[str, float | None]],
    reference: dict[str, dict[str, float | None]],
    decoy_kinds: Sequence[str],
) -> dict[str, float]:
    """Win rates on the (neuron, decoy) pairs the reference separates.

    ``reference`` holds the rule executor's scores of the same candidates on the same
    records (:class:`~neuronbench.scorers.simulators.rules.RuleSimulator`). A pair is
    decidable when the reference scores the truth strictly above the decoy: elsewhere the
    scored records cannot tell them apart (a too-broad decoy whose extra words never occur
    there correlates exactly like the truth), so a simulator's "win" there rewards how the
    decoy is phrased, not what it means. Returns per kind the win rate and ``n_<kind>``
    (decidable pairs), ``all`` (the truth beats every decidable decoy of a neuron, over
    neurons with one), ``all_three`` (the same over :data:`THREE`), ``auc`` over decidable
    pairs (ties 0.5) and ``n_pairs``. Neurons missing from ``reference`` are left out.
    """
    per: dict[str, list[float]] = {k: [] for k in decoy_kinds}
    pairs: list[float] = []
    every: list[float] = []
    three: list[float] = []
    for key, row in scores.items():
        ref = reference.get(key)
        if ref is None:
            continue
        dec = [k for k in decoy_kinds if k in row and beats(ref["truth"], ref.get(k)) == 1.0]
        won = {k: beats(row["truth"], row[k]) for k in dec}
        for k in dec:
            per[k].append(float(won[k] == 1.0))
            pairs.append(won[k])
        if dec:
            every.append(float(all(v == 1.0 for v in won.values())))
        if any(k in won for k in THREE):
            three.append(float(all(won[k] == 1.0 for k in THREE if k in won)))

    def mean(xs: list[float]) -> float:
        return float(np.mean(xs)) if xs else float("nan")

    out = {"all": mean(every), "all_three": mean(three)}
    for k in decoy_kinds:
        out[k] = mean(per[k])
        out[f"n_{k}"] = float(len(per[k]))
    out["auc"] = mean(pairs)
    out["n_pairs"] = float(len(pairs))
    return out


def summarize(
    scorer: str,
    scores: dict[str, dict[str, float | None]],
    families: dict[str, str],
    splits: dict[str, str] | None = None,
    decoy_kinds: Sequence[str] = DECOY_KINDS,
    reference: dict[str, dict[str, float | None]] | None = None,
) -> ValidityReport:
    """Rates and AUC from ``scores[neuron_key][candidate]`` (see the module docstring);
    with ``reference`` (the rule executor's scores) also on decidable pairs."""
    keys = sorted(scores)
    win = {
        k: {kind: beats(scores[k]["truth"], scores[k][kind]) == 1.0 for kind in decoy_kinds}
        for k in keys
    }

    def rates(subset: list[str]) -> dict[str, float]:
        out = {"all": float(np.mean([all(win[k].values()) for k in subset]))}
        out.update({kind: float(np.mean([win[k][kind] for k in subset])) for kind in decoy_kinds})
        return out

    def auc(subset: list[str]) -> float:
        pairs = [beats(scores[k]["truth"], scores[k][kind]) for k in subset for kind in decoy_kinds]
        return float(np.mean(pairs)) if pairs else float("nan")

    per_split: dict[str, dict[str, float]] = {}
    for name in sorted(set((splits or {}).values())):
        sub = [k for k in keys if (splits or {}).get(k) == name]
        if sub:
            gap = _gap(scores, sub)
            per_split[name] = {
                **rates(sub),
                "auc": auc(sub),
                "paraphrase_gap": float("nan") if gap is None else gap,
                "n": float(len(sub)),
            }
    pairs = [beats(scores[k]["truth"], scores[k][kind]) for k in keys for kind in decoy_kinds]
    overall = rates(keys) if keys else {"all": float("nan")}
    decidable: dict[str, float] = {}
    split_decidable: dict[str, dict[str, float]] = {}
    if reference is not None:
        decidable = decidable_figures(scores, reference, decoy_kinds)
        for name in per_split:
            of_split = {k: scores[k] for k in keys if (splits or {}).get(k) == name}
            split_decidable[name] = decidable_figures(of_split, reference, decoy_kinds)
    by_family: dict[str, list[str]] = {}
    for k in keys:
        by_family.setdefault(families[k], []).append(k)
    return ValidityReport(
        scorer=scorer,
        truth_beats_decoys=overall.pop("all"),
        auc=float(np.mean(pairs)) if pairs else float("nan"),
        per_kind=overall,
        per_family={f: rates(ks) for f, ks in sorted(by_family.items())},
        n_neurons=len(keys),
        n_unscored=sum(v is None for k in keys for v in scores[k].values()),
        scores=scores,
        paraphrase_gap=_gap(scores, keys),
        per_split=per_split,
        decidable=decidable,
        per_split_decidable=split_decidable,
    )


async def score_candidates(
    fn: ExplanationScorer,
    ds: NeuronDataset,
    planted: dict[str, PlantedNeuron],
    texts: dict[str, dict[str, str]] | None = None,
    bar: Progress | None = None,
) -> dict[str, dict[str, float | None]]:
    """Score truth and decoys of every planted neuron of ``ds`` with ``fn``
    (``texts``: candidate → text per neuron key, e.g. a v2 suite's six explanations;
    ``bar`` counts neurons scored)."""
    out: dict[str, dict[str, float | None]] = {}
    for neuron in ds:
        spec = planted.get(neuron.id.key)
        if spec is None:
            continue
        cands = (texts or {}).get(neuron.id.key) or {"truth": spec.truth, **spec.decoys}
        out[neuron.id.key] = {c: await fn(t, neuron) for c, t in cands.items()}
        if bar is not None:
            bar.update()
    return out


def simulator_scorer(
    kind: str, model: Any = None, split: str = "valid", n_records: int | None = None
) -> ExplanationScorer:
    """Headline simulation score (top-and-random correlation) with simulator ``kind``."""
    from neuronbench.scorers.registry import make_simulator

    return simulation_scorer(make_simulator(kind, model), split, n_records)


def simulation_scorer(
    sim: Any, split: str = "valid", n_records: int | None = None
) -> ExplanationScorer:
    """Headline simulation score (top-and-random correlation) of a simulator instance."""
    from neuronbench.scorers.correlation import score_simulation

    async def fn(explanation: str, neuron: NeuronRecord) -> float | None:
        scoring = scoring_records(neuron, split, n_records)  # type: ignore[arg-type]
        result = await sim.simulate(explanation, [r.tokens for r in scoring.all])
        return score_simulation(result, scoring).top_and_random

    return fn


def scorer_fn(
    name: str, model: Any = None, split: str = "valid", n_records: int | None = None
) -> ExplanationScorer:
    """The headline value of scorer ``name`` (``embedding`` AUC, ``detection``/``fuzzing``
    balanced accuracy; the latter two need ``model``)."""
    import math

    if name == "embedding":
        from neuronbench.scorers.embedding_scorer import embedding_score

        async def emb(explanation: str, neuron: NeuronRecord) -> float | None:
            value, _, _ = await embedding_score(
                explanation, neuron, split=split, n_records=n_records
            )
            return None if math.isnan(value) else value

        return emb
    if name in ("detection", "fuzzing"):
        if model is None:
            raise ValueError(f"scorer {name!r} needs a scorer model (--model)")
        from neuronbench.scorers._classify import binary_metrics
        from neuronbench.scorers.detection import detect
        from neuronbench.scorers.fuzzing import fuzz

        run = detect if name == "detection" else fuzz

        async def classify(explanation: str, neuron: NeuronRecord) -> float | None:
            result, _ = await run(model, explanation, neuron, split=split, n_records=n_records)
            if result is None or result.failures:
                return None
            value = binary_metrics(result.labels, result.predictions)["balanced_accuracy"]
            return None if math.isnan(value) else value

        return classify
    raise ValueError(f"unknown scorer {name!r} for validate (choose embedding, detection, fuzzing)")


def validate(
    ds: NeuronDataset,
    simulators: Sequence[str] = ("lexical", "embedding"),
    scorers: Sequence[str] = (),
    *,
    model: Any = None,
    split: str = "valid",
    n_records: int | None = None,
    neurons: Sequence[str] | None = None,
    suite_split: str | None = None,
    progress: bool = False,
) -> list[ValidityReport]:
    """Validity report of each simulator and scorer on a planted dataset.

    Args:
        ds: A planted dataset (``neuronbench plant``).
        simulators: Simulator kinds (``lexical``, ``embedding``, ``logprob``, ``generation``).
        scorers: Scorer names (``embedding``, ``detection``, ``fuzzing``).
        model: inspect model (or name) for model-based simulators and scorers.
        split: Held-out scoring split.
        n_records: Top and random records each per neuron (None = all in the split).
        neurons: Restrict to these neuron keys (e.g. a subset for the slow logprob simulator).
        suite_split: For a v2 suite, only neurons of this split (train, dev, test).
        progress: Report neurons scored per simulator/scorer on stderr.

    On a v2 suite the first report is the rule executor's (:data:`CEILING`: each
    explanation's own rule run on the scored records), and every report also carries its
    figures on the pairs that executor can decide (:func:`decidable_figures`).
    """
    import asyncio

    planted = load_planted(ds)
    if neurons is not None:
        planted = {k: v for k, v in planted.items() if k in set(neurons)}
    if isinstance(model, str):
        from inspect_ai.model import get_model

        model = get_model(model)
    suite = ds.card.extra.get("suite")
    texts = splits = None
    rule_sim = None
    decoy_kinds: Sequence[str] = DECOY_KINDS
    if isinstance(suite, dict):
        from neuronbench.groundtruth.suite import DECOY_KINDS as SUITE_DECOYS
        from neuronbench.groundtruth.suite import suite_from_dataset
        from neuronbench.scorers.simulators.rules import RuleSimulator, suite_rules

        suite_obj = suite_from_dataset(ds)
        members = {n.key: n for n in suite_obj.neurons}
        rule_sim = RuleSimulator(suite_rules(suite_obj))
        if suite_split is not None:
            planted = {k: v for k, v in planted.items() if members[k].split == suite_split}
        texts = {k: {c: e.text for c, e in members[k].explanations.items()} for k in planted}
        splits = {k: members[k].split for k in planted}
        decoy_kinds = SUITE_DECOYS
    elif suite_split is not None:
        raise ValueError("suite_split needs a v2 suite dataset (neuronbench plant --suite v2)")
    families = {k: v.family for k, v in planted.items()}
    jobs = [(f"simulator:{s}", simulator_scorer(s, model, split, n_records)) for s in simulators]
    jobs += [(f"scorer:{s}", scorer_fn(s, model, split, n_records)) for s in scorers]
    reports = []
    reference = None
    if rule_sim is not None:  # a suite: the ceiling first, and the pairs it can decide
        reference = asyncio.run(
            score_candidates(simulation_scorer(rule_sim, split, n_records), ds, planted, texts)
        )
        reports.append(
            summarize(CEILING, reference, families, splits, decoy_kinds, reference=reference)
        )
    total = sum(1 for i in ds.neurons if i.key in planted)
    for label, fn in jobs:
        with Progress(f"validate {label}", total, unit="neurons", enabled=progress) as bar:
            scores = asyncio.run(score_candidates(fn, ds, planted, texts, bar))
        reports.append(summarize(label, scores, families, splits, decoy_kinds, reference))
    return reports


# ---------------------------------------------------------------- human-written puzzles


@dataclass
class PuzzleReport:
    """How often one simulator ranks a puzzle's true explanation above all its false ones."""

    simulator: str
    """Simulator kind."""
    n_puzzles: int
    wins: int
    """Puzzles whose truth scores strictly above every false explanation."""
    win_rate: float
    """``wins / n_puzzles``."""
    random_expectation: float
    """Expected win rate of a random ranking: mean over puzzles of 1 / (1 + #false)."""
    ci: tuple[float, float]
    """95% percentile bootstrap interval of ``win_rate`` over puzzles."""
    per_kind: dict[str, float]
    """Per false kind, over the puzzles that have one: fraction whose truth beats every
    false explanation of that kind."""
    per_kind_n: dict[str, int]
    """Puzzles with a false explanation of each kind."""
    auc: float
    """P(truth > false) over all (puzzle, false explanation) pairs; ties 0.5."""
    top_kind: dict[str, int]
    """How many puzzles each candidate kind (``truth`` or a false kind) scored highest in;
    a tie for the top counts for every kind in it."""
    n_unscored: int
    """Explanations the simulator gave no score (constant prediction, failure)."""
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """Puzzle name → candidate (``truth``, ``literal``, ``too_broad_2``...) → score."""
    kinds: dict[str, dict[str, str]] = field(default_factory=dict)
    """Puzzle name → false candidate → its kind."""

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures and per-puzzle scores."""
        return {
            "n_puzzles": self.n_puzzles,
            "wins": self.wins,
            "win_rate": self.win_rate,
            "random_expectation": self.random_expectation,
            "ci95": list(self.ci),
            "per_kind": self.per_kind,
            "per_kind_n": self.per_kind_n,
            "auc": self.auc,
            "top_kind": self.top_kind,
            "n_unscored": self.n_unscored,
            "scores": self.scores,
        }


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement):
    the leaderboard's ``bootstrap_mean``, as a (low, high) pair."""
    from neuronbench.results.bootstrap import bootstrap_mean

    iv = bootstrap_mean(values, confidence=level, n_resamples=n_boot, seed=seed)
    if iv.n == 1:  # every resample of one puzzle is that puzzle
        return (iv.estimate, iv.estimate)
    return (iv.low, iv.high)


TIE_TOL = 1e-9
"""Puzzle scores this close are a tie: two explanations that predict the same tokens get
correlations that differ only in float rounding (1e-16), which must not decide a win."""


def summarize_puzzles(
    simulator: str,
    scores: dict[str, dict[str, float | None]],
    kinds: dict[str, dict[str, str]],
    n_boot: int = 2000,
    seed: int = 0,
) -> PuzzleReport:
    """Win rates from ``scores[puzzle][candidate]`` and ``kinds[puzzle][false candidate]``."""
    names = list(scores)

    def won(p: str, c: str) -> bool:
        return beats(scores[p]["truth"], scores[p][c], TIE_TOL) == 1.0

    wins = [all(won(p, c) for c in kinds[p]) for p in names]
    all_kinds = sorted({k for p in names for k in kinds[p].values()})
    per_kind: dict[str, float] = {}
    per_kind_n: dict[str, int] = {}
    for kind in all_kinds:
        having = [p for p in names if kind in kinds[p].values()]
        per_kind_n[kind] = len(having)
        per_kind[kind] = float(
            np.mean([all(won(p, c) for c, k in kinds[p].items() if k == kind) for p in having])
        )
    pairs = [beats(scores[p]["truth"], scores[p][c], TIE_TOL) for p in names for c in kinds[p]]
    top_kind: dict[str, int] = {}
    for p in names:
        best = max(_key(v) for v in scores[p].values())
        top = {c for c, v in scores[p].items() if beats(v, best, TIE_TOL) == 0.5}
        for kind in {kinds[p].get(c, c) for c in top}:
            top_kind[kind] = top_kind.get(kind, 0) + 1
    n = len(names)
    return PuzzleReport(
        simulator=simulator,
        n_puzzles=n,
        wins=int(sum(wins)),
        win_rate=float(np.mean(wins)) if n else float("nan"),
        random_expectation=float(np.mean([1 / (1 + len(kinds[p])) for p in names]))
        if n
        else float("nan"),
        ci=bootstrap_ci([float(w) for w in wins], n_boot, seed),
        per_kind=per_kind,
        per_kind_n=per_kind_n,
        auc=float(np.mean(pairs)) if pairs else float("nan"),
        top_kind=dict(sorted(top_kind.items())),
        n_unscored=sum(v is None for p in names for v in scores[p].values()),
        scores=scores,
        kinds=kinds,
    )


async def score_puzzles(
    simulator: Any,
    kind: str,
    puzzles: Sequence[Any],
    neurons: Sequence[NeuronRecord],
    bar: Progress | None = None,
) -> dict[str, dict[str, float | None]]:
    """Every candidate of every puzzle simulated over all the puzzle's sentences together and
    correlated, by the code ``neuronbench score --records all`` runs."""
    import asyncio

    from neuronbench.scorers.score_explanations import ALL_RECORDS, records_for, score_candidate

    out: dict[str, dict[str, float | None]] = {}
    for puzzle, neuron in zip(puzzles, neurons, strict=True):
        scoring = records_for(neuron, ALL_RECORDS)
        cands = puzzle.candidates()
        rows = await asyncio.gather(
            *(
                score_candidate(simulator, kind, neuron.id.key, name, text, scoring)
                for name, text in cands.items()
            )
        )
        out[puzzle.name] = {r.candidate: r.top_and_random for r in rows}
        if bar is not None:
            bar.update()
    return out


def validate_puzzles(
    path: str,
    simulators: Sequence[str],
    tokenizer: Any,
    *,
    model: Any = None,
    progress: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[PuzzleReport]:
    """Puzzle validity of each simulator kind on the puzzles file ``path``
    (``neuronbench.groundtruth.puzzles``), sentences tokenized with ``tokenizer``."""
    import asyncio

    from neuronbench.groundtruth.puzzles import load_puzzles, puzzle_records
    from neuronbench.scorers.registry import make_simulator, simulator_needs_model

    puzzles = load_puzzles(path)
    neurons = puzzle_records(puzzles, tokenizer)
    kinds = {p.name: p.candidate_kinds() for p in puzzles}
    if isinstance(model, str):
        from inspect_ai.model import get_model

        import neuronbench.models.provider  # noqa: F401  (registers neuronbench/<model>)

        model = get_model(model)
    reports = []
    for kind in simulators:
        sim = make_simulator(kind, model if simulator_needs_model(kind) else None)
        with Progress(f"puzzles {kind}", len(puzzles), unit="puzzles", enabled=progress) as bar:
            scores = asyncio.run(score_puzzles(sim, kind, puzzles, neurons, bar))
        reports.append(summarize_puzzles(kind, scores, kinds, n_boot, seed))
    return reports
