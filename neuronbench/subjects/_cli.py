"""``neuronbench record`` and ``neuronbench merge``: thin flags over ``subjects.recorder``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from neuronbench.errors import UsageError


def _shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n (e.g. 0/4), got {text!r}") from None
    if not sep or not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n, got {text!r}")
    return i, n


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "record",
        help="record neuron activations of a subject model over a corpus",
        description=(
            "Stream the corpus through the subject and keep, per neuron of the chosen layers, "
            "the top-k records, a random sample, quantile samples, moments and firing rate. "
            "Memory is bounded whatever the corpus length; rerunning the same command resumes "
            "from OUT/.checkpoint. With --shard i/n the output is a shard state for "
            "`neuronbench merge`."
        ),
    )
    p.add_argument(
        "--subject",
        default="smollm2",
        help="smollm2 (offline default), an HF id or path, tiny-llama, tiny-gpt2",
    )
    p.add_argument(
        "--corpus",
        default="austen",
        help="austen (embedded), tiny, a .txt/.jsonl path, or hf:NAME[:CONFIG]",
    )
    p.add_argument(
        "--layers",
        default=None,
        help="layers to record: 0,5,10 or 0-29:5 or all (an SAE site: its own layer)",
    )
    p.add_argument(
        "--site",
        default="mlp",
        help=(
            "what to record: mlp (MLP neurons); sae:PATH (a directory saved by SAELens); "
            "sae-lens:RELEASE:SAE_ID (a SAELens pretrained release, e.g. "
            "sae-lens:gpt2-small-res-jb:blocks.8.hook_resid_pre: downloaded once into the "
            "Hugging Face cache, from the cache only with HF_HUB_OFFLINE=1); sparsify:PATH "
            "(an EleutherAI sparsify SAE or transcoder directory); or sparsify:builtin:NAME "
            "(an SAE that comes with neuronbench, offline: smollm2-l12-topk, trained on "
            "SmolLM2 layer 12, or smollm2-l12-random, its random-init control). A PATH is "
            "always a local directory. The SAE's config names its hook point and layer "
            "(needs the sae extra: pip install -e '.[sae]')"
        ),
    )
    p.add_argument(
        "--tokens",
        type=int,
        default=None,
        help="corpus tokens to record over all shards (default: the whole corpus)",
    )
    p.add_argument(
        "--record-length", type=int, default=64, help="tokens per record (default: %(default)s)"
    )
    p.add_argument(
        "--top-k", type=int, default=40, help="top records kept per neuron (default: %(default)s)"
    )
    p.add_argument(
        "--random",
        type=int,
        default=30,
        help="random records per neuron, never among its top records (default: %(default)s)",
    )
    p.add_argument(
        "--quantiles",
        type=int,
        default=5,
        help="quantile bins per neuron; 0 skips quantile sampling (default: %(default)s)",
    )
    p.add_argument(
        "--per-quantile",
        type=int,
        default=5,
        help="records kept per bin and neuron (default: %(default)s)",
    )
    p.add_argument(
        "--boundary-records",
        type=int,
        default=None,
        help="hash-sampled records that set the bin boundaries (default: 256)",
    )
    p.add_argument(
        "--batch-size", type=int, default=8, help="records per forward pass (default: %(default)s)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="corpus order and sampling seed (default: %(default)s)"
    )
    p.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        help="record shard i of n (default: 0/1 = everything)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help=(
            "record the shards as Ray tasks (one GPU each where the cluster has GPUs) and merge "
            "them into OUT; rerunning resumes. No ADDRESS starts a local Ray instance; 'auto' "
            "or ray://HOST:PORT joins a cluster (needs the scale extra: pip install -e '.[scale]')"
        ),
    )
    p.add_argument(
        "--shards",
        type=int,
        default=None,
        help="shards with --ray (default: the cluster's GPUs, else its CPUs)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=float,
        default=300.0,
        help="seconds between checkpoints (default: %(default)s)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output directory: the dataset, or the shard state with --shard",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    p.set_defaults(func=_record)

    m = sub.add_parser(
        "merge",
        help="merge shard states from `record --shard` into one dataset",
        description=(
            "Merge the states of all shards exactly (same result as one unsharded run) and "
            "finalize the dataset; reads the corpus and the subject's tokenizer named in the states."
        ),
    )
    m.add_argument("dirs", nargs="+", help="shard output directories (one per shard)")
    m.add_argument("--out", required=True, help="dataset directory to write")
    m.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    m.set_defaults(func=_merge)


def _record_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The recording settings plain ``record`` and ``record --ray`` share, from the flags:
    one place, so a shard recorded by Ray is configured exactly as a local one."""
    from neuronbench.subjects.recorder import DEFAULT_BOUNDARY_RECORDS

    return {
        "n_tokens": args.tokens,
        "record_length": args.record_length,
        "top_k": args.top_k,
        "n_random": args.random,
        "n_quantiles": args.quantiles,
        "per_quantile": args.per_quantile,
        "boundary_records": args.boundary_records or DEFAULT_BOUNDARY_RECORDS,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "checkpoint_every": args.checkpoint_every,
        "progress": not args.quiet,
    }


def _record(args: argparse.Namespace) -> int:
    from neuronbench.datasets import NeuronDataset
    from neuronbench.subjects.models import SubjectError
    from neuronbench.subjects.recorder import record

    _check_site(args.site)
    if args.ray is not None:
        return _record_ray(args)
    if args.shards is not None:
        raise UsageError("--shards needs --ray (or record one shard with --shard i/n)")
    if args.layers is None and args.site == "mlp":
        raise UsageError("--layers is required (e.g. --layers 0,5,10 or --layers all)")
    try:
        result = record(
            args.subject,
            args.corpus,
            args.layers or "all",
            shard=args.shard,
            out=args.out,
            site=args.site,
            **_record_settings(args),
        )
    except SubjectError as e:
        return _fail("record", e)
    if isinstance(result, NeuronDataset):
        figures = _dataset_figures(result)
    else:
        record_s = result.timings.get("record_s", 0.0)
        cfg = result.config
        figures = {
            "state": str(args.out),
            "shard": f"{args.shard[0]}/{args.shard[1]}",
            "subject": cfg.subject,
            "layers": list(cfg.layers),
            "n_neurons": cfg.d_mlp * len(cfg.layers),
            "n_tokens": result.n_tokens,
            "n_records": result.n_records,
            "tokens_per_s": round(result.n_tokens / record_s, 1) if record_s else None,
            "timings": result.timings,
        }
    _report(figures, args.json, "recorded")
    return 0


def _check_site(site: str) -> None:
    """An unknown ``--site`` spelling, in one line that lists every spelling."""
    from neuronbench.subjects.sae import SITE_SPELLINGS, is_sae_site

    if site != "mlp" and not is_sae_site(site):
        raise UsageError(f"--site {site!r}: expected {SITE_SPELLINGS}")


def _record_ray(args: argparse.Namespace) -> int:
    from neuronbench.subjects._ray import record_on_ray

    if args.shard != (0, 1):
        raise UsageError("--ray records every shard itself: give --shards N, not --shard i/n")
    if args.layers is None and args.site == "mlp":
        raise UsageError("--layers is required (e.g. --layers 0,5,10 or --layers all)")
    ds = record_on_ray(
        args.subject,
        args.corpus,
        args.layers or "all",
        out=args.out,
        shards=args.shards,
        address=None if args.ray == "local" else args.ray,
        site=args.site,
        **_record_settings(args),
    )
    _report(_dataset_figures(ds), args.json, "recorded")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from neuronbench.subjects.models import SubjectError
    from neuronbench.subjects.recorder import merge

    try:
        ds = merge(args.dirs, args.out)
    except SubjectError as e:
        return _fail("merge", e)
    _report(_dataset_figures(ds), args.json, "merged")
    return 0


def _dataset_figures(ds: Any) -> dict[str, Any]:
    from neuronbench.datasets import NeuronDataset

    card = ds.card
    return {
        "dataset": str(ds.path),
        "subject": card.subject,
        "layers": card.layers,
        # Count from the id columns: len(ds) would load every record of a lazy dataset.
        "n_neurons": len(NeuronDataset.ids(ds.path)) if ds.path else len(ds),
        "n_tokens": card.n_tokens,
        "n_records": card.extra.get("n_records"),
        "tokens_per_s": card.extra.get("tokens_per_s"),
        "timings": card.extra.get("timings", {}),
        **_latent_figures(card),
    }


def _latent_figures(card: Any) -> dict[str, Any]:
    """An SAE recording's site and latent counts (nothing for MLP neurons)."""
    latents = card.extra.get("latents")
    if not latents:
        return {}
    return {
        "site": card.site,
        "n_latents": latents["n_latents"] * len(card.layers),
        "n_dead": latents["n_dead"],
        "n_few_records": latents["n_few_records"],
        "min_active_records": latents["min_active_records"],
    }


def _report(figures: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        print(json.dumps(figures))
        return
    print("\n".join(summary_lines(figures, verb)))


def summary_lines(figures: dict[str, Any], verb: str) -> list[str]:
    """What a person reads after ``record``/``merge``: what was recorded, how long it took,
    where it went and what to run next (``--json`` keeps the raw figures for scripts)."""
    layers = ", ".join(str(x) for x in figures["layers"])
    n_records = figures.get("n_records")
    records = f"{n_records:,} records, " if n_records is not None else ""
    timings = figures.get("timings") or {}
    total = sum(timings.values())
    rate = figures.get("tokens_per_s")
    phases = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in timings.items())
    lines = [
        f"{verb} {figures['n_neurons']:,} neurons of {figures['subject']} (layers {layers}) "
        f"over {records}{figures['n_tokens']:,} tokens",
        f"time: {total:.1f} s"
        + (f" ({phases})" if phases else "")
        + (f", {rate:,.0f} tokens/s" if rate else ""),
    ]
    if "n_latents" in figures:
        lines.append(
            f"site {figures['site']}: {figures['n_latents']:,} latents, {figures['n_dead']:,} "
            f"dead (never active: not stored), {figures['n_few_records']:,} with fewer than "
            f"{figures['min_active_records']} activating records (stored, flagged in the card)"
        )
    if "state" in figures:
        lines += [
            f"shard {figures['shard']} state written to {figures['state']}",
            "next: record the other shards, then `neuronbench merge` all shard directories",
        ]
    else:
        lines.append(f"dataset written to {figures['dataset']}")
    return lines


def _fail(command: str, error: Exception) -> int:
    """SubjectError is an expected failure (bad model or layer): one line, not a traceback."""
    print(f"neuronbench {command}: error: {error}", file=sys.stderr)
    return 2
