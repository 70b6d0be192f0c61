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

``--case sae`` records the latents of a random-init sparsify TopK SAE (k=32, built here,
seeded: the library's own init) at one SmolLM2 layer instead, over ``--tokens`` (default
200,000) tokens of the default corpus with the library's default settings (top 40, 30
random, 5x5 quantile, 256 boundary records, batch 8). Figures:

- ``sae_record_over_forward`` (goal <= 1.3): the streaming pass over the bare forward +
  SAE encode of the same batches (the recorder's own truncated forward and the library's
  encode, no state update), timed once before the recording (a 200k-token pass takes
  ~15 min on a busy core). ``_interleaved``: the streaming pass over its own forward +
  encode time, measured batch by batch inside it (``timings.forward_s``), so machine load
  that drifts between the two passes cancels.
- ``sae_rss_growth`` (goal <= 1.5): peak RSS of a fresh subprocess recording
  ``--latents`` (16,384) latents end to end (record + finalize to disk) over one recording
  ``--small-latents`` (4,096), same tokens (``--rss-tokens``, default ``--tokens``); the two
  run at the same time. ``load_rss_mb_*``: each child's peak once the subject was loaded,
  before recording (a peak equal to it means the recording never rose above it).
- ``sae_bytes_per_neuron_format1`` / ``_format2`` and their ratio: the same recording's
  stored (non-dead) latents written as storage format 1 wrote them (float64 records, one
  zstd parquet file per layer) and as the recorder writes them now.
- ``boundaries_s``: the quantile pre-pass.
- with ``--dense-src DIR`` (a checkout of the dense recorder, e.g. ``git worktree``), the
  RSS children also run on that code: ``peak_rss_mb_dense_*``, the before figures.

Run::

    python benchmarks/record.py --case sae --threads 1 [--tokens 200000] [--dense-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--subject", default="smollm2", help="smollm2, tiny, or any load_subject name"
    )
    parser.add_argument("--corpus", default="austen")
    parser.add_argument("--case", choices=("mlp", "sae"), default="mlp")
    parser.add_argument(
        "--tokens",
        type=int,
        default=None,
        help="N (mlp: 8192, the memory check also runs 2N; sae: 200000)",
    )
    parser.add_argument("--latents", type=int, default=16384, help="sae: latents")
    parser.add_argument("--small-latents", type=int, default=4096, help="sae: RSS baseline")
    parser.add_argument("--sae-layer", type=int, default=12, help="sae: block it reads")
    parser.add_argument("--sae-path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dense-src", default=None, help="sae: dense recorder checkout")
    parser.add_argument(
        "--rss-tokens", type=int, default=None, help="sae: tokens of the RSS runs (--tokens)"
    )
    parser.add_argument("--rss-only", action="store_true", help="sae: only the RSS runs")
    parser.add_argument(
        "--layers", default="0,10,20,29", help="layers (tiny: clipped to its layers)"
    )
    parser.add_argument("--record-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--boundary-records", type=int, default=None, help="mlp: 64, sae: library default"
    )
    parser.add_argument("--repeats", type=int, default=1, help="recordings timed (best kept)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tokens is None:
        args.tokens = 8192 if args.case == "mlp" else 200_000
    if args.boundary_records is None:
        args.boundary_records = 64 if args.case == "mlp" else 256
    return args


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
    """This process's peak resident memory (MiB): Linux's VmHWM, which is per address space.
    ``ru_maxrss`` is not: a child started by ``subprocess`` inherits the parent's peak at
    fork (a 3.7 GB benchmark parent made every child report 3.7 GB)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(args: argparse.Namespace) -> None:
    subject = load(args)
    loaded = peak_rss_mb()  # the subject (and torch) alone: the floor of every peak
    if args.case == "sae":
        import tempfile

        from neuronbench.subjects.recorder import record

        with tempfile.TemporaryDirectory() as tmp:
            ds = record(
                subject,
                args.corpus,
                n_tokens=args.tokens,
                record_length=args.record_length,
                batch_size=args.batch_size,
                boundary_records=args.boundary_records,
                progress=False,
                checkpoint_every=None,
                site=f"sparsify:{args.sae_path}",
                out=Path(tmp) / "ds",
            )
            n_tokens = ds.card.n_tokens
    else:
        n_tokens = record_once(args, subject, args.tokens).card.n_tokens
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "load_rss_mb": loaded, "n_tokens": n_tokens}))


def rss_of(args: argparse.Namespace, n_tokens: int) -> float:
    """Peak RSS (MiB) of a fresh process recording ``n_tokens`` end to end."""
    return rss_parallel([child_cmd(args, n_tokens)], [None])[0][0]


def child_cmd(args: argparse.Namespace, n_tokens: int, sae_path: Path | None = None) -> list[str]:
    cmd = [sys.executable, __file__, "--child", "--tokens", str(n_tokens), "--case", args.case]
    for flag in ("subject", "corpus", "layers", "record_length", "batch_size", "boundary_records"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if sae_path is not None:
        cmd += ["--sae-path", str(sae_path)]
    return cmd


def rss_parallel(cmds: list[list[str]], srcs: list[str | None]) -> list[tuple[float, float]]:
    """Peak RSS (MiB) of each child command and its peak once the subject was loaded, run
    at the same time (each its own process: their peaks do not add up; on a busy machine
    it halves the wall time)."""
    procs = [
        subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": src} if src else None,
        )
        for cmd, src in zip(cmds, srcs, strict=True)
    ]
    out = []
    for cmd, proc in zip(cmds, procs, strict=True):
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"memory run {' '.join(cmd[2:])} failed:\n{stderr[-3000:]}")
        got = json.loads(stdout.strip().splitlines()[-1])
        out.append((float(got["peak_rss_mb"]), float(got["load_rss_mb"])))
    return out


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
        return
    if args.case == "sae":
        sae_case(args)
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


def make_sae(subject: Any, layer: int, n_latents: int, root: Path, seed: int = 0) -> Path:
    """A random-init sparsify TopK SAE (k=32) reading block ``layer``'s output, saved as
    sparsify saves one (what ``neuronbench train-sae --random`` writes, at any width)."""
    import torch
    from sparsify import SparseCoder, SparseCoderConfig

    hookpoint = f"{'layers' if subject.arch == 'llama' else 'h'}.{layer}"
    path = root / f"sae-{n_latents}" / hookpoint
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        d_in = int(subject.model.config.hidden_size)
        SparseCoder(d_in, SparseCoderConfig(num_latents=n_latents, k=32)).save_to_disk(path)
    return path


def forward_encode(args: argparse.Namespace, subject: Any, sae: Any) -> float:
    """Seconds for the recorder's batches through its own truncated forward + the SAE's
    encode (what ``record`` runs), with no state update; ids prebuilt."""
    import torch

    from neuronbench.subjects.corpus import iter_records
    from neuronbench.subjects.recorder import _forward

    recs = [
        r.token_ids
        for r in iter_records(
            subject.tokenizer, args.corpus, record_length=args.record_length, max_tokens=args.tokens
        )
    ]
    batches = [
        torch.tensor(recs[i : i + args.batch_size]) for i in range(0, len(recs), args.batch_size)
    ]
    with torch.inference_mode(), _forward(subject, [sae.hook.layer], sae) as forward:
        t0 = time.perf_counter()
        for ids in batches:
            forward(ids)
        return time.perf_counter() - t0


def format1_bytes(state: Any, tokenizer: Any, root: Path) -> int:
    """Bytes of ``state``'s records written as storage format 1 wrote them: float64 records,
    one zstd parquet file per layer (built from arrow chunks, not a layer of Python rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from neuronbench.datasets.storage import _row, _schema
    from neuronbench.subjects._finalize import fetch_tokens, layer_records

    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for layer, recs in layer_records(state, fetch_tokens(tokenizer, state)):
        chunks, rows = [], []
        for r in recs:
            rows.append(_row(r))
            if len(rows) == 128:
                chunks.append(pa.Table.from_pylist(rows, schema=_schema()))
                rows = []
        chunks.append(pa.Table.from_pylist(rows, schema=_schema()))
        f = root / f"layer-{layer:03d}.parquet"
        pq.write_table(pa.concat_tables(chunks).combine_chunks(), f, compression="zstd")
        total += f.stat().st_size
        del chunks
    return total


def sae_rss(args: argparse.Namespace, small: Path, big: Path) -> dict[str, float]:
    """RSS figures of fresh children recording each SAE end to end, all at the same time
    (with ``--dense-src``, also on the dense recorder)."""
    tokens = args.rss_tokens or args.tokens
    cmds = [child_cmd(args, tokens, small), child_cmd(args, tokens, big)]
    srcs: list[str | None] = [None, None]
    if args.dense_src:
        cmds, srcs = cmds * 2, [None, None, args.dense_src, args.dense_src]
    got = rss_parallel(cmds, srcs)
    (rss_small, load_small), (rss_big, load_big) = got[:2]
    out = {
        "sae_rss_growth": round(rss_big / rss_small, 3),
        "peak_rss_mb_small": round(rss_small, 1),
        "peak_rss_mb_big": round(rss_big, 1),
        "load_rss_mb_small": round(load_small, 1),
        "load_rss_mb_big": round(load_big, 1),
    }
    if args.dense_src:
        (small_d, _), (big_d, _) = got[2:]
        out["peak_rss_mb_dense_small"] = round(small_d, 1)
        out["peak_rss_mb_dense_big"] = round(big_d, 1)
        out["sae_rss_growth_dense"] = round(big_d / small_d, 3)
    return out


def sae_case(args: argparse.Namespace) -> None:
    import tempfile
    from dataclasses import replace

    import torch

    from neuronbench.datasets.storage import _data_files
    from neuronbench.subjects._settings import make_config
    from neuronbench.subjects.recorder import finalize, record_state
    from neuronbench.subjects.sae import load_site

    subject = load(args)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        big = make_sae(subject, args.sae_layer, args.latents, tmp)
        small = make_sae(subject, args.sae_layer, args.small_latents, tmp)
        if args.rss_only:
            del subject  # the children load their own
            rss = sae_rss(args, small, big)
            rss["rss_tokens"] = args.rss_tokens or args.tokens
            print(
                f"peak RSS {args.latents} / {args.small_latents} latents = {rss['sae_rss_growth']}"
            )
            print(json.dumps(rss))
            return
        sae = load_site(f"sparsify:{big}", subject)
        cfg = make_config(
            subject,
            subject.name,
            args.corpus,
            [sae.hook.layer],
            n_tokens=args.tokens,
            record_length=args.record_length,
            top_k=40,
            n_random=30,
            n_quantiles=5,
            per_quantile=5,
            boundary_records=args.boundary_records,
            seed=0,
            shard=(0, 1),
        )
        cfg = replace(
            cfg,
            d_mlp=sae.n_latents,
            site=sae.site,
            site_spec=f"sparsify:{big}",
            site_revision=sae.revision,
        )
        forwards = [forward_encode(args, subject, sae)]
        t0 = time.perf_counter()
        state = record_state(
            subject, cfg, batch_size=args.batch_size, checkpoint_every=None, progress=False, sae=sae
        )
        ds = finalize(state, subject.tokenizer, tmp / "ds")
        total_s = time.perf_counter() - t0
        forward_s = min(forwards)
        timings = ds.card.extra["timings"]
        latents = ds.card.extra["latents"]
        n_kept = args.latents - latents["n_dead"]
        n_tokens = ds.card.n_tokens
        format2 = sum(f.stat().st_size for f in _data_files(tmp / "ds"))
        format1 = format1_bytes(state, subject.tokenizer, tmp / "v1")
        del state, ds
        rss = sae_rss(args, small, big)
    record_s = timings["record_s"]
    figures = {
        "sae_record_over_forward": round(record_s / forward_s, 3),
        "sae_record_over_forward_interleaved": round(record_s / timings["forward_s"], 3),
        "sae_rss_growth": rss["sae_rss_growth"],
        "sae_bytes_per_neuron_ratio": round(format1 / format2, 2),
        "sae_bytes_per_neuron_format1": round(format1 / n_kept, 1),
        "sae_bytes_per_neuron_format2": round(format2 / n_kept, 1),
        "end_to_end_over_forward": round(total_s / forward_s, 3),
        "forward_encode_s": round(forward_s, 2),
        "record_s": round(record_s, 2),
        "boundaries_s": round(timings.get("boundaries_s", 0.0), 2),
        "finalize_s": round(timings.get("finalize_s", 0.0), 2),
        "tokens_per_s": round(n_tokens / record_s, 1),
        "forward_in_record_s": round(timings["forward_s"], 2),
        **rss,
        "n_dead": latents["n_dead"],
        "n_few_records": latents["n_few_records"],
        "settings": {
            "subject": subject.name,
            "corpus": args.corpus,
            "n_tokens": n_tokens,
            "rss_tokens": args.rss_tokens or args.tokens,
            "layer": args.sae_layer,
            "latents": args.latents,
            "small_latents": args.small_latents,
            "sae": "sparsify TopK k=32, random init (seed 0)",
            "record_length": args.record_length,
            "batch_size": args.batch_size,
            "boundary_records": args.boundary_records,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
    }
    print(
        f"record / (forward + encode) = {figures['sae_record_over_forward']} (goal <= 1.3); "
        f"peak RSS {args.latents} / {args.small_latents} latents = "
        f"{figures['sae_rss_growth']} (goal <= 1.5); bytes per latent format 1 / format 2 = "
        f"{figures['sae_bytes_per_neuron_ratio']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
