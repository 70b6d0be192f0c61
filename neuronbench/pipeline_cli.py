"""``neuronbench run``: the main job's flags. The work itself lives in :mod:`neuronbench.pipeline`."""

from __future__ import annotations

import argparse

from neuronbench.pipeline import RunConfig


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = RunConfig()
    p = sub.add_parser(
        "run",
        help="record -> explain -> score -> leaderboard, offline by default",
        description=(
            "The main job. Records the subject over the corpus (resumable) at each site (MLP "
            "neurons, a trained SAE's and a random SAE's latents by default), samples neurons "
            "stratified by layer, runs every explainer x strategy (plus the non-LLM baseline and "
            "the empty/shuffled controls) as inspect evals with eval_set (reruns resume), scores "
            "them with the simulator, and writes the leaderboard, plots and viewer to --out."
        ),
    )
    p.add_argument("--out", default=str(d.out), help="output directory (default: %(default)s)")
    p.add_argument(
        "--subject",
        default=d.subject,
        help="subject model: smollm2 (offline default), an HF id or a path",
    )
    p.add_argument(
        "--corpus", default=d.corpus, help="austen (embedded), tiny, a .txt/.jsonl path, or hf:NAME"
    )
    p.add_argument(
        "--layers", default=d.layers, help="layers to record, e.g. 0,10,20 or 0-29:5 or all"
    )
    p.add_argument("--tokens", type=int, default=d.tokens, help="corpus tokens to record")
    p.add_argument("--record-length", type=int, default=d.record_length)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument(
        "--neurons", type=int, default=d.neurons, help="neurons to explain, stratified by layer"
    )
    p.add_argument(
        "--explainers", type=_csv, default=d.explainers, help="comma-separated inspect model names"
    )
    p.add_argument("--strategies", type=_csv, default=d.strategies, help="LLM prompt strategies")
    p.add_argument(
        "--baselines", type=_csv, default=d.baselines, help="non-LLM explainers and controls"
    )
    p.add_argument(
        "--simulators",
        type=_csv,
        default=d.simulators,
        help="comma-separated simulator kinds: logprob, generation, lexical, embedding, reader, trained",
    )
    p.add_argument(
        "--simulator-model", default=d.simulator_model, help="inspect model for LLM simulators"
    )
    p.add_argument(
        "--scorers", type=_csv, default=d.scorers, help="simulation,detection,fuzzing,embedding"
    )
    p.add_argument("--split", default=d.split, choices=["valid", "test"])
    p.add_argument(
        "--n-examples", type=int, default=d.n_examples, help="train records shown to the explainer"
    )
    p.add_argument(
        "--n-score-records",
        type=int,
        default=d.n_score_records,
        help="scored records per group (top, random)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--sites",
        type=_csv,
        default=d.sites,
        help="comma-separated units to explain: mlp, sparsify:builtin:NAME (built-ins: "
        "smollm2-l12-topk, the shipped trained SAE; smollm2-l12-random, its random-init "
        "control), sparsify:PATH or sae:PATH (default: %(default)s)",
    )
    p.add_argument(
        "--sae-strategies",
        type=_csv,
        default=d.sae_strategies,
        help="LLM prompt strategies on SAE sites; those also in --strategies are compared "
        "across sites (default: %(default)s)",
    )
    p.add_argument(
        "--sae-baselines",
        type=_csv,
        default=d.sae_baselines,
        help="non-LLM explainers and controls on SAE sites (default: %(default)s)",
    )
    p.add_argument("--no-viewer", action="store_true", help="skip the static neuron viewer")
    p.add_argument(
        "--bundle", action="store_true", help="also bundle inspect's log viewer (~25 MB)"
    )
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    from neuronbench.pipeline import run

    cfg = RunConfig(
        out=args.out,
        subject=args.subject,
        corpus=args.corpus,
        layers=args.layers,
        tokens=args.tokens,
        record_length=args.record_length,
        batch_size=args.batch_size,
        neurons=args.neurons,
        explainers=args.explainers,
        strategies=args.strategies,
        baselines=args.baselines,
        simulators=args.simulators,
        simulator_model=args.simulator_model,
        scorers=args.scorers,
        split=args.split,
        n_examples=args.n_examples,
        n_score_records=args.n_score_records,
        seed=args.seed,
        viewer=not args.no_viewer,
        bundle=args.bundle,
        sites=args.sites,
        sae_strategies=args.sae_strategies,
        sae_baselines=args.sae_baselines,
    )
    summary = run(cfg)
    if args.json:
        print(json.dumps(summary))
    return 0
