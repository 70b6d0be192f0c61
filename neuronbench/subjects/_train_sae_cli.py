"""``neuronbench train-sae``: thin flags over ``subjects.train_sae``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train-sae",
        help="train a small TopK SAE on one layer's residual stream (or write a random one)",
        description=(
            "Train a TopK sparse autoencoder on the residual stream after one block of the "
            "subject, over a local corpus, with EleutherAI's sparsify trainer (seeded), then "
            "report its fraction of variance unexplained and dead latents on held-out tokens. "
            "--random writes the untrained SAE of the same shape (the control). Both are saved "
            "as sparsify saves them: record their latents with `neuronbench record --site "
            "sparsify:OUT`. Needs the sae extra: pip install -e '.[sae]'."
        ),
    )
    p.add_argument(
        "--subject", default="smollm2", help="smollm2 (default), an HF id or path, tiny-llama"
    )
    p.add_argument("--corpus", default="austen", help="austen (embedded), tiny, a .txt/.jsonl path")
    p.add_argument(
        "--layer", type=int, default=12, help="block whose output is read (default: %(default)s)"
    )
    p.add_argument(
        "--expansion",
        type=int,
        default=8,
        help="latents per residual dimension (default: %(default)s; SmolLM2: 4,608 latents)",
    )
    p.add_argument(
        "--k", type=int, default=32, help="active latents per token (default: %(default)s)"
    )
    p.add_argument(
        "--tokens",
        type=int,
        default=200_000,
        help="training tokens (default: %(default)s; SmolLM2: ~13 min on one busy core)",
    )
    p.add_argument(
        "--eval-tokens",
        type=int,
        default=16_384,
        help="held-out tokens for FVU and dead latents (default: %(default)s)",
    )
    p.add_argument(
        "--context", type=int, default=256, help="tokens per sequence (default: %(default)s)"
    )
    p.add_argument(
        "--batch-size", type=int, default=4, help="sequences per step (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="corpus order and init seed (default: 0)")
    p.add_argument(
        "--random", action="store_true", help="write the random-init SAE of the same shape"
    )
    p.add_argument("--out", required=True, type=Path, help="directory for the SAE")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from neuronbench.subjects.recorder import resolve_subject
    from neuronbench.subjects.train_sae import TrainSettings, train_sae

    settings = TrainSettings(
        layer=args.layer,
        expansion=args.expansion,
        k=args.k,
        n_tokens=args.tokens,
        eval_tokens=args.eval_tokens,
        context=args.context,
        batch_size=args.batch_size,
        seed=args.seed,
        random=args.random,
    )
    subject = resolve_subject(args.subject)
    figures = train_sae(subject, settings, args.out, args.corpus, progress=not args.quiet)
    if args.json:
        print(json.dumps(figures))
    else:
        print("\n".join(summary_lines(figures)))
    return 0


def summary_lines(f: dict[str, Any]) -> list[str]:
    """What a person reads after ``train-sae``."""
    what = "random-init" if f["random"] else "trained"
    over = "" if f["random"] else f" over {f['n_train_tokens']:,} tokens of {f['corpus']}"
    return [
        f"{what} TopK SAE: {f['n_latents']:,} latents (k={f['k']}) on {f['subject']} "
        f"{f['hookpoint']}{over} in {f['train_s']:.1f} s ({f['torch_threads']} threads)",
        f"held-out {f['n_eval_tokens']:,} tokens: FVU {f['fvu']:.3f}, "
        f"{f['dead_latents']:,} dead latents ({100 * f['dead_fraction']:.1f}%)",
        f"written to {f['site'].removeprefix('sparsify:')} ({f['weights_bytes'] / 1e6:.1f} MB)",
        f"next: neuronbench record --subject {f['subject']} --site {f['site']} --out DATASET",
    ]
