"""Benchmark the recorder: its time against a bare forward pass, and its memory as N doubles.

Figures, all measured in this run on the same subject, corpus records and batches:

- ``record_over_forward`` (goal <= 1.15): the recorder's streaming pass (hooks, copying
  activations out, top-k / random / quantile / moment updates, reading and tokenizing
  the corpus stream) over a bare forward pass of the same batches with no hooks. Both
  sides run the base model without the LM head (``model.base_model(input_ids,
  use_cache=False)``), which is what the recorder runs. The forward is timed before and
  after each recording and the faster one kept, so background load on a shared machine
  biases the ratio against the recorder, never for it.
- ``end_to_end_over_forward``: the whole ``record()`` call (quantile-boundary pass over
  ``boundary_records`` records + streaming pass + finalize into a dataset) over the same
  bare forward. The boundary pass is a fixed cost (not proportional to N), so this ratio
  falls toward ``record_over_forward`` on real corpus sizes.
- ``rss_ratio_2x`` (goal ~1.0): peak RSS (``resource.getrusage``) of a fresh subprocess
  recording 2N tokens over one recording N tokens, both end to end.
- ``tokens_per_s``: tokens per second of the streaming pass.

Default settings (a few minutes on 2 shared CPU cores): subject smollm2 (SmolLM2-135M,
fp32), corpus austen, N = 8192 tokens, layers 0,10,20,29, records of 64 tokens, batch 8,
top-k 40, 30 random, 5 quantiles x 5, boundary sample 64 records (the library default is
256; smaller here only to keep the fixed boundary pass short). ``--subject tiny`` runs a
tiny random-init Llama for a quick check. Run::

    python benchmarks/record.py [--subject tiny] [--tokens 8192] [--threads 1]

The last line printed is one JSON object, settings included.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--subject", default="smollm2", help="smollm2, tiny, or any load_subject name"
    )
    parser.add_argument("--corpus", default="austen")
    parser.add_argument(
        "--tokens", type=int, default=8192, help="N (the memory check also runs 2N)"
    )
    parser.add_argument(
        "--layers", default="0,10,20,29", help="layers (tiny: clipped to its layers)"
    )
    parser.add_argument("--record-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--boundary-records", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="recordings timed (best kept)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def load(args: argparse.Namespace) -> Any:
    import torch

    from neuronbench.subjects.recorder import resolve_subject

    if args.threads:
        torch.set_num_threads(args.threads)
    name = "tiny-llama" if args.subject == "tiny" else args.subject
    if name == "tiny-llama":
        from neuronbench.subjects.models import tiny_subject

        return tiny_subject("llama", n_layers=4, d_mlp=256)
    return resolve_subject(name)


def layers_for(args: argparse.Namespace, n_layers: int) -> list[int]:
    return sorted({min(int(x), n_layers - 1) for x in args.layers.split(",")})


def record_once(args: argparse.Namespace, subject: Any, n_tokens: int) -> Any:
    from neuronbench.subjects.recorder import record

    return record(
        subject,
        args.corpus,
        layers_for(args, subject.n_layers),
        n_tokens=n_tokens,
        record_length=args.record_length,
        batch_size=args.batch_size,
        boundary_records=args.boundary_records,
        progress=False,
        checkpoint_every=None,
    )


def bare_forward(args: argparse.Namespace, subject: Any, n_tokens: int) -> float:
    """Seconds for the recorder's batches through the base model, no hooks, ids prebuilt."""
    import torch

    from neuronbench.subjects.corpus import iter_records

    recs = [
        r.token_ids
        for r in iter_records(
            subject.tokenizer, args.corpus, record_length=args.record_length, max_tokens=n_tokens
        )
    ]
    batches = [
        torch.tensor(recs[i : i + args.batch_size]) for i in range(0, len(recs), args.batch_size)
    ]
    base = subject.model.base_model
    with torch.inference_mode():
        t0 = time.perf_counter()
        for ids in batches:
            base(input_ids=ids, use_cache=False)
        return time.perf_counter() - t0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(args: argparse.Namespace) -> None:
    subject = load(args)
    ds = record_once(args, subject, args.tokens)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "n_tokens": ds.card.n_tokens}))


def rss_of(args: argparse.Namespace, n_tokens: int) -> float:
    cmd = [sys.executable, __file__, "--child", "--tokens", str(n_tokens)]
    for flag in ("subject", "corpus", "layers", "record_length", "batch_size", "boundary_records"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"memory run for {n_tokens} tokens failed:\n{proc.stderr[-3000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
        return
    import torch

    subject = load(args)
    n = args.tokens
    bare_forward(args, subject, args.batch_size * args.record_length)  # warm-up
    forwards = [bare_forward(args, subject, n)]
    runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ds = record_once(args, subject, n)
        timings = ds.card.extra["timings"]
        runs.append((timings["record_s"], time.perf_counter() - t0, timings))
        forwards.append(bare_forward(args, subject, n))
    record_s, total_s, timings = min(runs)
    forward_s = min(forwards)
    n_tokens = ds.card.n_tokens
    rss_n, rss_2n = rss_of(args, n), rss_of(args, 2 * n)
    figures = {
        "record_over_forward": round(record_s / forward_s, 3),
        "rss_ratio_2x": round(rss_2n / rss_n, 3),
        "tokens_per_s": round(n_tokens / record_s, 1),
        "end_to_end_over_forward": round(total_s / forward_s, 3),
        "forward_s": round(forward_s, 2),
        "record_s": round(record_s, 2),
        "boundaries_s": round(timings.get("boundaries_s", 0.0), 2),
        "finalize_s": round(timings.get("finalize_s", 0.0), 2),
        "peak_rss_mb_n": round(rss_n, 1),
        "peak_rss_mb_2n": round(rss_2n, 1),
        "settings": {
            "subject": subject.name,
            "corpus": args.corpus,
            "n_tokens": n_tokens,
            "layers": ds.card.layers,
            "d_mlp": subject.d_mlp,
            "record_length": args.record_length,
            "batch_size": args.batch_size,
            "top_k": ds.card.extra["top_k"],
            "n_random": ds.card.extra["n_random"],
            "n_quantiles": ds.card.extra["n_quantiles"],
            "per_quantile": ds.card.extra["per_quantile"],
            "boundary_records": args.boundary_records,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
