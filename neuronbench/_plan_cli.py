"""``neuronbench plan``: tokens, dollars and hours of an explain-and-score run, before running it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "plan",
        help="tokens, dollars and hours of a run, measured from its real prompts",
        description=(
            "Builds the prompts the explainer strategy and the simulator would send for a "
            "sample of neurons (from --dataset, or planted neurons shaped like a recording "
            "when only --neurons is given), tokenizes them, and scales to the run: tokens per "
            "neuron and in total, dollars from a dated price table, hours at --concurrency."
        ),
    )
    src = p.add_argument_group("neurons (at least one)")
    src.add_argument("--dataset", help="a recording (neuronbench record): its neurons' shapes")
    src.add_argument("--neurons", type=int, help="neurons to plan for (default: all of --dataset)")
    src.add_argument(
        "--top-k", type=int, default=40, help="without --dataset: top records per neuron (40)"
    )
    src.add_argument(
        "--random", type=int, default=30, help="without --dataset: random records per neuron (30)"
    )
    src.add_argument(
        "--record-length", type=int, default=64, help="without --dataset: tokens per record (64)"
    )
    src.add_argument(
        "--sample", type=int, default=20, help="neurons whose prompts are built (default 20)"
    )
    run = p.add_argument_group("the run (explain_neurons task arguments)")
    run.add_argument("--explainer", required=True, help="inspect model name, e.g. openai/gpt-4o")
    run.add_argument("--strategy", default="token_activation_pairs")
    run.add_argument(
        "--simulator",
        default="logprob",
        help="logprob, generation, lexical, embedding, reader, trained",
    )
    run.add_argument("--simulator-model", default="neuronbench/smollm2")
    run.add_argument("--split", default="valid", choices=["valid", "test", "calibration"])
    run.add_argument("--n-examples", type=int, default=5)
    run.add_argument("--n-score-records", type=int, default=None)
    run.add_argument("--max-prompt-tokens", type=int, default=4000)
    run.add_argument("--max-tokens", type=int, default=None)
    run.add_argument("--k", type=int, default=4, help="best_of_k candidates")
    run.add_argument("--few-shot", default="default")
    run.add_argument("--simulator-examples", default="default")
    run.add_argument("--calibrate", action="store_true")
    run.add_argument("--seed", type=int, default=0)
    cost = p.add_argument_group("cost and time")
    cost.add_argument("--concurrency", type=int, default=10, help="calls in flight per model")
    cost.add_argument("--prices", help="JSON price table merged over the shipped one")
    cost.add_argument(
        "--tokenizer",
        default="auto",
        choices=["auto", "chars"],
        help="auto: the model's own, tiktoken, SmolLM2's, else chars/2.5; chars: chars/2.5 only",
    )
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object last")
    p.set_defaults(func=_plan)


def _error(msg: str) -> int:
    print(f"neuronbench plan: error: {msg}", file=sys.stderr)
    return 2


def _neurons(args: argparse.Namespace) -> tuple[list[Any], int, str]:
    """The sampled neurons, how many the plan is for, and where they came from."""
    from neuronbench import planning

    if args.sample < 1:
        raise planning.PlanError(f"--sample {args.sample}: must be >= 1")
    if args.dataset:
        from neuronbench.datasets import NeuronDataset
        from neuronbench.evals.samples import select_ids

        ids = NeuronDataset.ids(args.dataset)
        chosen = select_ids(ids, f"stratified:{args.sample}", args.seed)
        ds = NeuronDataset.load(args.dataset, ids=chosen)
        neurons = [ds.neurons[i] for i in chosen]
        return neurons, args.neurons or len(ids), f"shapes from {args.dataset}"
    for flag in ("top_k", "random", "record_length"):
        if getattr(args, flag) < 1:
            raise planning.PlanError(f"--{flag.replace('_', '-')} must be >= 1")
    sample = min(args.sample, args.neurons)
    neurons = planning.synthetic_neurons(
        sample,
        top_k=args.top_k,
        n_random=args.random,
        record_length=args.record_length,
        seed=args.seed,
    )
    how = f"planted, {args.top_k} top + {args.random} random records of {args.record_length} tokens"
    return neurons, args.neurons, how


def _plan(args: argparse.Namespace) -> int:
    from neuronbench import planning
    from neuronbench.datasets.errors import DatasetError

    if not args.dataset and args.neurons is None:
        return _error("give --dataset DIR or --neurons N (or both)")
    if args.neurons is not None and args.neurons < 1:
        return _error(f"--neurons {args.neurons}: must be >= 1")
    try:
        prices = planning.load_prices(args.prices)
        neurons, n, source = _neurons(args)
        cfg = planning.PlanConfig(
            explainer=args.explainer,
            strategy=args.strategy,
            simulator=args.simulator,
            simulator_model=args.simulator_model,
            split=args.split,
            n_examples=args.n_examples,
            n_score_records=args.n_score_records,
            max_prompt_tokens=args.max_prompt_tokens,
            max_tokens=args.max_tokens,
            few_shot=args.few_shot,
            simulator_examples=args.simulator_examples,
            k=args.k,
            calibrate=args.calibrate,
        )
        plan = planning.make_plan(
            cfg,
            neurons,
            n,
            concurrency=args.concurrency,
            prices=prices,
            tokenizer=args.tokenizer,
            neurons_from=source,
        )
    except (planning.PlanError, DatasetError, ValueError, FileNotFoundError) as e:
        return _error(str(e))
    print(planning.format_plan(plan))
    if args.json:
        print(json.dumps(plan.to_dict()))
    return 0
