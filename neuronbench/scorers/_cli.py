"""``neuronbench plant`` (planted-neuron dataset), ``validate`` (scorer validity),
``train-simulator`` (the trained offline simulator) and ``score`` (given explanations,
any simulator)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _recovery(args: Any) -> int:
    import json
    from pathlib import Path

    from neuronbench.errors import UsageError
    from neuronbench.scorers.recovery_report import recovery_report, to_dicts, to_markdown

    if not Path(args.log_dir).is_dir():
        raise UsageError(f"{args.log_dir}: no such log directory")
    rows = recovery_report(args.log_dir)
    if not rows:  # a user error like any other: one line on stderr, rc 2
        raise UsageError(f"no explain_neurons logs over a planted dataset under {args.log_dir}")
    print(to_markdown(rows), end="")
    if args.json:
        print(json.dumps({"rows": to_dicts(rows)}))
    return 0


def register(sub: Any) -> None:
    r = sub.add_parser(
        "recovery",
        help="explainer recovery on planted neurons: simulation score and closeness to the truth",
        description="For explain_neurons logs over a planted dataset, report per explainer x "
        "strategy x simulator the mean simulation score and how close the explanations are "
        "to the true ones (embedding similarity, closer than every decoy, word check).",
    )
    r.add_argument("log_dir", help="directory of inspect logs")
    r.add_argument("--json", action="store_true", help="last line: one JSON object")
    r.set_defaults(func=_recovery)

    p = sub.add_parser(
        "plant",
        help="write a dataset of planted neurons with known explanations",
        description="Tokenize a corpus and plant synthetic neurons whose true explanation "
        "(and three decoys) is known; the result is an ordinary neuron dataset.",
    )
    p.add_argument("--corpus", default="austen", help="corpus source (default: austen)")
    p.add_argument(
        "--subject",
        default="smollm2",
        help="whose tokenizer to use: smollm2 (offline default), tiny, or a HF id/path",
    )
    p.add_argument("--tokens", type=int, default=100_000, help="corpus tokens (default 100000)")
    p.add_argument("--record-length", type=int, default=64)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--random", type=int, default=30, dest="n_random")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--specs", default=None, help="planted neuron spec JSON (default: bundled)")
    p.add_argument(
        "--suite",
        default="v1",
        choices=["v1", "v2"],
        help="v1 (default): the 25 hand-written neurons; v2: the generated suite "
        "(WordNet concepts, morphology, punctuation, context...; train/dev/test families)",
    )
    p.add_argument(
        "--neurons", type=int, default=None, help="v2: neurons to generate (default 600)"
    )
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.set_defaults(func=_plant)

    v = sub.add_parser(
        "validate",
        help="rank simulators/scorers by how often they prefer true explanations of planted neurons",
        description="Score the true and decoy explanations of every planted neuron and report "
        "how often the truth beats every decoy (and the AUC), per decoy kind and family.",
    )
    v.add_argument(
        "dataset", nargs="?", default=None, help="planted dataset directory (neuronbench plant)"
    )
    v.add_argument(
        "--puzzles",
        default=None,
        metavar="FILE",
        help="instead of a dataset: human-written puzzles (YAML/JSON, e.g. "
        "tests/data/dev_puzzles.yaml); reports how often each simulator ranks the truth first",
    )
    v.add_argument(
        "--tokenizer",
        default="smollm2",
        help="with --puzzles: whose tokenizer splits the sentences (default smollm2)",
    )
    v.add_argument(
        "--simulator", default="lexical,embedding", help="comma-separated simulator kinds"
    )
    v.add_argument(
        "--scorer", default="", help="comma-separated scorers: embedding, detection, fuzzing"
    )
    v.add_argument(
        "--model", default=None, help="inspect model for logprob/generation/detection/fuzzing"
    )
    v.add_argument("--split", default="valid", choices=["calibration", "valid", "test"])
    v.add_argument("--n-records", type=int, default=None)
    v.add_argument("--neurons", default=None, help="comma-separated neuron keys (default: all)")
    v.add_argument(
        "--suite-split",
        default=None,
        choices=["train", "dev", "test"],
        help="v2 suites: only neurons of this concept-family split (--split is the record split)",
    )
    v.add_argument("--json", action="store_true", help="last line: one JSON object")
    v.set_defaults(func=_validate)
    _register_score(sub)

    t = sub.add_parser(
        "train-simulator",
        help="rebuild a trained offline simulator (-T simulator=reader or trained) from scratch on CPU",
        description="Generate the ground-truth suite, train an offline simulator on its train "
        "families (checkpoint chosen on dev), report dev and test validity (beside the rule "
        "executor's ceiling and on decidable pairs), and write the weights, config and "
        "MODEL_CARD.md to --out. Seeded. --arch reader (default; -T simulator=reader): "
        "concept-agnostic features weighed by the explanation, minutes on 2 cores. --arch "
        "crossencoder (-T simulator=trained): the MiniLM cross-encoder, 38 CPU-minutes.",
    )
    t.add_argument(
        "--arch",
        choices=("reader", "crossencoder"),
        default="reader",
        help="which simulator to train (default reader)",
    )
    t.add_argument("--out", default="trained_simulator", help="output directory")
    t.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default: the recipe's)"
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    t.add_argument(
        "--evals", type=int, default=None, help="dev evaluations; the best is kept (default 5)"
    )
    t.add_argument(
        "--extra-suite-seeds",
        type=int,
        nargs="*",
        default=[],
        metavar="SEED",
        help="also train on the train split of suites generated with these seeds (other corpus "
        "slices; seed 0's group splits kept, so no dev or test concept is added)",
    )
    t.add_argument(
        "--extra-suite-neurons", type=int, default=None, help="neurons per extra suite (600)"
    )
    t.add_argument(
        "--extra-suite-tokens",
        type=int,
        default=None,
        help="corpus tokens per extra suite's slice (100000; more firing concepts to draw from)",
    )
    t.add_argument("--json", action="store_true", help="last line: one JSON object")
    t.set_defaults(func=_train_simulator)


def load_tokenizer(subject: str) -> Any:
    """A tokenizer only (no weights): ``smollm2`` from its converted cache or GGUF, ``tiny``, or HF."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoTokenizer

    from neuronbench.subjects import models

    if subject == "tiny":
        return models.tiny_tokenizer()
    if subject in models.SMOLLM2_ALIASES:
        cache = models.cache_root() / models.SMOLLM2_NAME
        if (cache / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(str(cache))
        gguf = models.smollm2_gguf_path()
        return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return AutoTokenizer.from_pretrained(subject)


def _plant_suite(args: argparse.Namespace) -> int:
    import sys
    import time

    from neuronbench.groundtruth import suite as S

    start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {msg}", flush=True)

    records = S.tokenize_corpus(
        load_tokenizer(args.subject), args.corpus, n_tokens=args.tokens,
        record_length=args.record_length, seed=args.seed,
    )  # fmt: skip
    say(f"tokenized {len(records)} records of {args.corpus} with the {args.subject} tokenizer")
    suite = S.generate(
        records, version=args.suite, seed=args.seed,
        n_neurons=args.neurons or S.DEFAULT_NEURONS, progress=say,
    )  # fmt: skip

    def bar(i: int, n: int) -> None:
        if i == n or i % 25 == 0:
            sys.stdout.write(f"\r  planting {i}/{n} neurons" + ("\n" if i == n else ""))
            sys.stdout.flush()

    S.plant_suite(
        suite, records, top_k=args.top_k, n_random=args.n_random, corpus=args.corpus,
        extra={"tokenizer": args.subject}, progress=bar,
    )  # fmt: skip
    out = S.write_suite(suite, args.out)
    say(f"wrote {len(suite.neurons)} neurons → {out} (digest {suite.digest()[:12]})")
    table: dict[str, dict[str, int]] = {}
    for n in suite.neurons:
        table.setdefault(n.family, dict.fromkeys(S.SPLITS, 0))[n.split] += 1
    print(f"  {'family':16s} " + " ".join(f"{s:>6s}" for s in S.SPLITS))
    for fam in S.FAMILIES:
        if fam in table:
            print(f"  {fam:16s} " + " ".join(f"{table[fam][s]:6d}" for s in S.SPLITS))
    if args.json:
        splits = {s: len(suite.split(s)) for s in S.SPLITS}
        print(json.dumps({"neurons": len(suite.neurons), "splits": splits, "path": str(out),
                          "version": suite.version, "digest": suite.digest()}))  # fmt: skip
    return 0


def _plant(args: argparse.Namespace) -> int:
    from neuronbench.groundtruth.planted import PlantOptions, default_specs, plant_corpus

    if getattr(args, "suite", "v1") != "v1":
        return _plant_suite(args)
    specs = default_specs(args.specs) if args.specs else default_specs()
    opts = PlantOptions(
        top_k=args.top_k,
        n_random=args.n_random,
        seed=args.seed,
        corpus=args.corpus,
        extra={"tokenizer": args.subject},
    )
    ds = plant_corpus(
        load_tokenizer(args.subject),
        args.corpus,
        n_tokens=args.tokens,
        record_length=args.record_length,
        options=opts,
        specs=specs,
    )
    out = ds.save(args.out)
    print(f"planted {len(ds)} neurons over {ds.card.n_tokens} tokens of {args.corpus} → {out}")
    for n in ds:
        name = ds.card.extra["planted"][n.id.key]["name"]
        print(f"  {n.id.key:28s} {name:20s} firing rate {n.firing_rate:.4f}")
    if args.json:
        print(json.dumps({"neurons": len(ds), "n_tokens": ds.card.n_tokens, "path": str(out)}))
    return 0


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


TRAINED_ON_SUITE = frozenset({"reader", "trained"})
"""Simulators fitted to the ground-truth suite's train split (their figures there are not held out)."""


def _validate(args: argparse.Namespace) -> int:
    from neuronbench.errors import UsageError

    if (args.dataset is None) == (args.puzzles is None):
        raise UsageError("give a planted dataset directory or --puzzles FILE (one of them)")
    if args.puzzles is not None:
        return _validate_puzzles(args)
    from neuronbench.datasets import NeuronDataset
    from neuronbench.scorers.agreement import rank_agreement
    from neuronbench.scorers.validity import validate

    ds = NeuronDataset.load(args.dataset)
    trained = sorted(set(_split(args.simulator)) & TRAINED_ON_SUITE)
    suite_split = getattr(args, "suite_split", None)
    if trained and isinstance(ds.card.extra.get("suite"), dict) and suite_split in (None, "train"):
        print(
            f"neuronbench validate: note: {', '.join(trained)} were trained on the suite's train "
            "split; held-out figures need --suite-split dev or test",
            file=sys.stderr,
        )
    reports = validate(
        ds,
        _split(args.simulator),
        _split(args.scorer),
        model=args.model,
        split=args.split,
        n_records=args.n_records,
        neurons=_split(args.neurons) if args.neurons else None,
        suite_split=getattr(args, "suite_split", None),
        progress=True,
    )
    kinds = ["all", *next(iter(reports)).per_kind] if reports else []
    print(
        f"{'scorer':22s} {'beats all':>9s} {'auc':>6s}  " + " ".join(f"{k:>10s}" for k in kinds[1:])
    )
    for r in reports:
        cells = " ".join(f"{r.per_kind[k]:10.2f}" for k in kinds[1:])
        print(
            f"{r.scorer:22s} {r.truth_beats_decoys:9.2f} {r.auc:6.3f}  {cells}  (n={r.n_neurons}, unscored={r.n_unscored})"
        )
    if any(r.decidable for r in reports):
        _print_decidable(reports, kinds[1:])
    for r in reports:
        print(f"\n{r.scorer} by family (truth beats: all / " + " / ".join(kinds[1:]) + ")")
        for fam, rates in r.per_family.items():
            print(f"  {fam:16s} " + " ".join(f"{rates[k]:.2f}" for k in kinds))
        if r.per_split:
            print(f"{r.scorer} by suite split (all / {' / '.join(kinds[1:])} / auc / |truth-para|)")
            for name, row in r.per_split.items():
                cells = " ".join(f"{row[k]:.2f}" for k in [*kinds, "auc", "paraphrase_gap"])
                print(f"  {name:16s} {cells}  (n={int(row['n'])})")
        if r.paraphrase_gap is not None:
            print(f"  mean |truth - paraphrase|: {r.paraphrase_gap:.3f}")
    # agreement over every (neuron, candidate) explanation both scorers scored
    flat = {
        r.scorer: {f"{k}/{c}": v for k, row in r.scores.items() for c, v in row.items()}
        for r in reports
    }
    agreement = rank_agreement(flat) if len(reports) > 1 else None
    if agreement is not None:
        print("\nSpearman rank agreement over the same explanations:")
        print(agreement.render())
    if args.json:
        out: dict[str, Any] = {
            "truth_beats_decoys": {r.scorer: r.truth_beats_decoys for r in reports},
            "auc": {r.scorer: r.auc for r in reports},
            "scorers": {r.scorer: r.summary() for r in reports},
        }
        if agreement is not None:
            out["agreement"] = agreement.to_dict()
        print(json.dumps(out))
    return 0


def _print_decidable(reports: Any, kinds: list[str]) -> None:
    """The validity table again, on the (neuron, decoy) pairs the rule executor separates."""
    print(
        "\non decidable pairs (the rule executor scores the truth strictly above the decoy;"
        " elsewhere no simulator can separate them):"
    )
    print(
        f"{'scorer':22s} {'beats all':>9s} {'all three':>9s} {'auc':>6s}  "
        + " ".join(f"{k:>10s}" for k in kinds)
    )
    for r in reports:
        d = r.decidable
        cells = " ".join(f"{d[k]:10.2f}" for k in kinds)
        print(f"{r.scorer:22s} {d['all']:9.2f} {d['all_three']:9.2f} {d['auc']:6.3f}  {cells}")
    d = reports[0].decidable
    print("  decidable pairs: " + ", ".join(f"{k} {int(d[f'n_{k}'])}" for k in kinds))


def _validate_puzzles(args: argparse.Namespace) -> int:
    from neuronbench.errors import UsageError
    from neuronbench.scorers.validity import validate_puzzles

    if _split(args.scorer) or args.suite_split or args.neurons:
        raise UsageError("--puzzles scores simulators only (no --scorer, --suite-split, --neurons)")
    kinds = _split(args.simulator)
    problem = _simulator_problem(kinds, args.model)
    if problem is not None:
        raise UsageError(problem)
    reports = validate_puzzles(
        args.puzzles, kinds, load_tokenizer(args.tokenizer), model=args.model, progress=True
    )
    fkinds = sorted({k for r in reports for k in r.per_kind})
    n = reports[0].n_puzzles if reports else 0
    print(f"puzzles: {args.puzzles} ({n}; tokenizer {args.tokenizer}); truth beats all false:")
    print(
        f"{'simulator':10s} {'wins':>7s} {'rate':>5s} {'95% CI':>12s} {'random':>6s} {'auc':>5s}  "
        + " ".join(f"{k:>10s}" for k in fkinds)
    )
    for r in reports:
        cells = " ".join(f"{r.per_kind.get(k, float('nan')):10.2f}" for k in fkinds)
        print(
            f"{r.simulator:10s} {r.wins:3d}/{r.n_puzzles:<3d} {r.win_rate:5.2f} "
            f"[{r.ci[0]:.2f},{r.ci[1]:.2f}] {r.random_expectation:6.2f} {r.auc:5.2f}  {cells}"
            + (f"  (unscored {r.n_unscored})" if r.n_unscored else "")
        )
    if reports:
        print("per kind: truth beats every false explanation of that kind, over puzzles with one")
        print("puzzles where each kind scores highest (ties count for each):")
        for r in reports:
            print(f"  {r.simulator:10s} " + ", ".join(f"{k} {v}" for k, v in r.top_kind.items()))
    if args.json:
        out = {"puzzles": args.puzzles, "tokenizer": args.tokenizer}
        print(json.dumps({**out, "simulators": {r.simulator: r.summary() for r in reports}}))
    return 0


def _train_simulator(args: argparse.Namespace) -> int:
    from neuronbench.errors import UsageError
    from neuronbench.scorers.simulators.training import build_simulator

    if args.arch == "reader":
        if args.extra_suite_seeds:
            raise UsageError("--extra-suite-seeds trains the cross-encoder (--arch crossencoder)")
        from neuronbench.scorers.simulators.reader_training import build_reader

        summary = build_reader(
            args.out, steps=args.steps, seed=args.seed, threads=args.threads, evals=args.evals
        )
    else:
        summary = build_simulator(
            args.out,
            steps=args.steps,
            seed=args.seed,
            threads=args.threads,
            extra_seeds=args.extra_suite_seeds,
            extra_neurons=args.extra_suite_neurons,
            extra_tokens=args.extra_suite_tokens,
            evals=args.evals,
        )
    print(f"trained simulator ({args.arch}) → {summary['path']} ({summary['seconds']:.0f} s)")
    for split in ("dev", "test"):
        figs = summary["figures"].get(split)
        if figs:
            print(f"  {split:4s} " + ", ".join(f"{k} {v:.3f}" for k, v in figs.items()))
    if args.json:
        print(json.dumps(summary))
    return 0


def _register_score(sub: Any) -> None:
    s = sub.add_parser(
        "score",
        help="score given explanations (human-written, published) with any simulator",
        description="Simulate each candidate explanation of each neuron and report its "
        "correlation with the real activations (top_and_random, random_only, top_only), "
        "as the simulation scorer would. Explanations: JSON {KEY: TEXT | [TEXT, ...] | "
        '{NAME: TEXT}} or JSONL lines {"neuron": KEY, "explanation": TEXT, "name": NAME}.',
    )
    s.add_argument("dataset", help="neuron dataset directory")
    s.add_argument("--explanations", required=True, help="JSON or JSONL explanations file")
    s.add_argument(
        "--simulator",
        required=True,
        help="comma-separated simulator kinds: lexical, embedding, reader, trained, logprob, generation",
    )
    s.add_argument(
        "--model", default=None, help="inspect model for logprob/generation (neuronbench/smollm2)"
    )
    where = s.add_mutually_exclusive_group()
    where.add_argument(
        "--split", default="valid", choices=["calibration", "valid", "test"], help="default valid"
    )
    where.add_argument(
        "--records",
        choices=["all"],
        default=None,
        help="all: every top and random record (small hand-written neurons)",
    )
    s.add_argument("--n-records", type=int, default=None, help="with --split: at most N per group")
    s.add_argument(
        "--neurons", default=None, help="only these: N, stratified:N or comma-separated keys"
    )
    s.add_argument("--json", action="store_true", help="last line: one JSON object")
    s.set_defaults(func=_score)


def _fmt(x: float | None) -> str:
    return f"{x:8.3f}" if x is not None else f"{'-':>8s}"


def _simulator_problem(kinds: list[str], model: str | None) -> str | None:
    from neuronbench.scorers.registry import SIMULATORS, simulator_needs_model

    choices = f"choose from {', '.join(SIMULATORS)}"
    if not kinds:
        return f"--simulator names no simulator ({choices})"
    unknown = [k for k in kinds if k not in SIMULATORS]
    if unknown:
        return f"unknown simulator {unknown[0]!r} ({choices})"
    needs = [k for k in kinds if simulator_needs_model(k)]
    if needs and model is None:
        return f"simulator {needs[0]!r} needs --model (e.g. neuronbench/smollm2)"
    return None


def _candidates_by_neuron(path: str, ids: list[Any]) -> dict[str, dict[str, str]]:
    """The file's candidates under ``NeuronId.key``, whatever key form the file used."""
    from neuronbench.datasets import DatasetError
    from neuronbench.evals.samples import resolve_key
    from neuronbench.scorers.score_explanations import load_candidates

    def resolve(raw: str) -> str:
        try:
            return resolve_key(ids, raw).key
        except DatasetError as e:
            raise DatasetError(f"{path}: {e}") from None

    return load_candidates(path, resolve)


def _score(args: argparse.Namespace) -> int:
    import sys

    from neuronbench.datasets import NeuronDataset
    from neuronbench.evals.samples import select_ids
    from neuronbench.scorers.score_explanations import score_explanations, summarize

    kinds = _split(args.simulator)
    problem = _simulator_problem(kinds, args.model)
    if problem is not None:
        print(f"neuronbench score: error: {problem}", file=sys.stderr)
        return 2
    ids = NeuronDataset.ids(args.dataset)
    by_key = _candidates_by_neuron(args.explanations, ids)
    chosen = select_ids(ids, args.neurons) if args.neurons else [i for i in ids if i.key in by_key]
    ds = NeuronDataset.load(args.dataset, ids=chosen)
    records = args.records or args.split
    rows = score_explanations(
        [ds.neurons[i] for i in chosen],
        by_key,
        kinds,
        model=args.model,
        records=records,
        n_records=args.n_records,
    )
    print(
        f"{'neuron':28s} {'candidate':12s} {'simulator':10s} "
        f"{'top+rand':>8s} {'random':>8s} {'top':>8s}  status"
    )
    for r in rows:
        note = f": {r.reason}" if r.reason else ""
        print(
            f"{r.neuron:28s} {r.candidate:12s} {r.simulator:10s} {_fmt(r.top_and_random)} "
            f"{_fmt(r.random_only)} {_fmt(r.top_only)}  {r.status}{note}"
        )
    summary = summarize(rows)
    for kind, s in summary.items():
        print(
            f"{kind}: mean top_and_random {_fmt(s['mean_top_and_random']).strip()} over "
            f"{s['ok']} scored; {s['unscored']} unscored, {s['failed']} failed, "
            f"{s['skipped']} skipped, {s['missing']} missing"
        )
    if args.json:
        out = {
            "dataset": str(args.dataset),
            "explanations": str(args.explanations),
            "records": records,
            "simulators": kinds,
            "model": args.model,
            "rows": [r.to_dict() for r in rows],
            "summary": summary,
        }
        print(json.dumps(out))
    return 0
