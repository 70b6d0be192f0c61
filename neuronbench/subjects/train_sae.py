"""An offline default SAE: a small TopK SAE on one layer's residual stream, trained by
EleutherAI's sparsify trainer over a local corpus, and its random-init control.

Both are written as sparsify writes them (``OUT/<hookpoint>/{cfg.json, sae.safetensors}``),
so ``neuronbench record --site sparsify:OUT`` records their latents, plus ``OUT/train.json``
with what was trained on and how well it reconstructs held-out tokens:

- ``fvu``: fraction of variance unexplained, sum ||x - x_hat||^2 / sum ||x - mean(x)||^2
  over the held-out tokens (the trainer's own loss, on data it never saw);
- ``dead_latents``: latents never among a token's active (positive top-k) latents on the
  held-out tokens.

The random control is the library's own initialisation of the same shape, untrained:
work on automated interpretability finds random SAEs' latents score close to trained
ones, so a benchmark that cannot tell them apart measures the explainer, not the SAE.

Python::

    figures = train_sae(load_subject("smollm2"), layer=12, out=Path("saes/smollm2-L12"))
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuronbench._atomic import write_json
from neuronbench._progress import Progress, say
from neuronbench.subjects.models import Subject, SubjectError

if TYPE_CHECKING:
    import torch

TRAIN_FILE = "train.json"


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a trained SAE (with the subject and corpus)."""

    layer: int
    """Block whose output (the residual stream after it) the SAE reads."""
    expansion: int = 8
    """Latents per residual dimension (SmolLM2-135M: 576 x 8 = 4,608 latents)."""
    k: int = 32
    """Active latents per token (TopK)."""
    n_tokens: int = 200_000
    """Training tokens (rounded down to whole batches). SmolLM2 layer 12: 13 min on one
    busy core, held-out FVU 0.16, 26% of latents dead on 16k held-out tokens."""
    eval_tokens: int = 16_384
    """Held-out tokens (the corpus records after the training ones) for FVU and dead latents."""
    context: int = 256
    """Tokens per training sequence."""
    batch_size: int = 4
    """Sequences per optimizer step (small: a short run needs steps more than big batches)."""
    seed: int = 0
    """Seeds the corpus order and the SAE's initialisation."""
    random: bool = False
    """Write the untrained (random-init) SAE of the same shape instead: the control."""


def train_sae(
    subject: Subject,
    settings: TrainSettings,
    out: Path,
    corpus: str = "austen",
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or, with ``settings.random``, initialise) the SAE into ``out``; returns the
    figures also written to ``out/train.json``."""
    import torch

    try:
        with contextlib.redirect_stdout(sys.stderr):  # it announces Triton on import
            from sparsify import SaeConfig, SparseCoder
    except ImportError:
        raise SubjectError("train-sae needs eai-sparsify: pip install -e '.[sae]'") from None
    from neuronbench.subjects.sae import truncated

    _check(subject, settings)
    hookpoint = f"{'layers' if subject.arch == 'llama' else 'h'}.{settings.layer}"
    desc = f"train-sae {subject.name} {hookpoint}"
    train, held_out = _sequences(subject, corpus, settings)
    sae_cfg = SaeConfig(expansion_factor=settings.expansion, k=settings.k)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        if settings.random:
            d_in = int(subject.model.config.hidden_size)
            SparseCoder(d_in, sae_cfg).save_to_disk(out / hookpoint)
        else:
            _fit(subject, train, sae_cfg, settings, out, hookpoint, desc, progress)
    train_s = time.perf_counter() - t0
    coder = SparseCoder.load_from_disk(out / hookpoint)
    if progress:
        say(desc, f"evaluating on {held_out.numel():,} held-out tokens")
    with truncated(subject, settings.layer):
        fvu, dead = _evaluate(subject, coder, hookpoint, held_out)
    weights = out / hookpoint / "sae.safetensors"
    figures = {
        "subject": subject.name,
        "revision": subject.revision,
        "corpus": corpus,
        "hookpoint": hookpoint,
        "site": f"sparsify:{out / hookpoint}",
        "n_latents": int(coder.num_latents),
        "d_in": int(coder.d_in),
        **asdict(settings),
        "n_train_tokens": 0 if settings.random else int(train.numel()),
        "n_eval_tokens": int(held_out.numel()),
        "fvu": round(fvu, 4),
        "dead_latents": dead,
        "dead_fraction": round(dead / int(coder.num_latents), 4),
        "train_s": round(train_s, 1),
        "torch_threads": torch.get_num_threads(),
        "weights_bytes": weights.stat().st_size,
        "sparsify_version": _version("eai-sparsify"),
    }
    write_json(out / TRAIN_FILE, figures)
    return figures


def _check(subject: Subject, s: TrainSettings) -> None:
    checks = [
        (0 <= s.layer < subject.n_layers, f"layer {s.layer}: the subject has 0..{subject.n_layers - 1}"),
        (s.expansion >= 1, f"expansion must be >= 1, got {s.expansion}"),
        (s.k >= 1, f"k must be >= 1, got {s.k}"),
        (s.context >= 2, f"context must be >= 2, got {s.context}"),
        (s.batch_size >= 1, f"batch_size must be >= 1, got {s.batch_size}"),
        (s.n_tokens >= s.context * s.batch_size, f"tokens {s.n_tokens} < one batch ({s.context * s.batch_size})"),
        (s.eval_tokens >= s.context, f"eval_tokens {s.eval_tokens} < one sequence ({s.context})"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise SubjectError(f"train-sae: {message}")
    n_latents = int(subject.model.config.hidden_size) * s.expansion
    if s.k > n_latents:
        raise SubjectError(f"train-sae: k {s.k} > {n_latents} latents")


def _sequences(
    subject: Subject, corpus: str, s: TrainSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) token id tensors ``(n, context)``: the corpus's first records."""
    import torch

    from neuronbench.subjects.corpus import iter_records

    # whole batches only: sparsify sizes its schedule (and bar) by len // batch_size
    n_train = s.n_tokens // s.context // s.batch_size * s.batch_size
    n_eval = s.eval_tokens // s.context
    recs = iter_records(
        subject.tokenizer,
        corpus,
        record_length=s.context,
        max_tokens=(n_train + n_eval) * s.context,
        seed=s.seed,
    )
    ids = [r.token_ids for r in recs]
    if len(ids) < n_train + n_eval:
        raise SubjectError(
            f"train-sae: corpus {corpus!r} has {len(ids) * s.context:,} tokens in records of "
            f"{s.context}; {s.n_tokens:,} training + {s.eval_tokens:,} held-out asked"
        )
    t = torch.tensor(ids, dtype=torch.int64)
    return t[:n_train], t[n_train:]


def _fit(
    subject: Subject,
    train: torch.Tensor,
    sae_cfg: Any,
    s: TrainSettings,
    out: Path,
    hookpoint: str,
    desc: str,
    progress: bool,
) -> None:
    """The sparsify trainer (its defaults: signum + schedule-free, FVU loss) on ``train``;
    its checkpoint dir is scratch, only the coder is kept."""
    import torch
    from datasets import Dataset
    from sparsify import TrainConfig, Trainer

    from neuronbench.subjects.sae import truncated

    data = Dataset.from_dict({"input_ids": train.tolist()}).with_format("torch")
    scratch = out / ".train"
    cfg = TrainConfig(
        sae_cfg,
        batch_size=s.batch_size,
        layers=[s.layer],
        init_seeds=[s.seed],
        log_to_wandb=False,
        save_every=10**9,  # one save, at the end
        save_dir=str(scratch),
        run_name="run",
    )
    precision = torch.get_float32_matmul_precision()  # fit() sets "high" process-wide
    try:
        # sparsify prints its set-up on stdout, which `--json` keeps for the figures.
        with (
            contextlib.redirect_stdout(sys.stderr),
            _progress_bar(desc, progress),
            truncated(subject, s.layer),
        ):
            Trainer(cfg, data, subject.model).fit()
    finally:
        torch.set_float32_matmul_precision(precision)
    target = out / hookpoint
    if target.exists():
        shutil.rmtree(target)
    (scratch / "run" / hookpoint).rename(target)
    shutil.rmtree(scratch)


@contextlib.contextmanager
def _progress_bar(desc: str, enabled: bool) -> Iterator[None]:
    """sparsify's tqdm bar -> ``neuronbench._progress`` (plain lines when redirected, like
    every other long step)."""
    import sparsify.trainer as st

    def bar(*, desc: str = desc, disable: bool = False, initial: int = 0, total: int = 0) -> Any:
        return Progress(desc, total, unit="batch", initial=initial, enabled=enabled and not disable)

    original = st.tqdm  # type: ignore[attr-defined]
    st.tqdm = lambda **kw: bar(desc=desc, **{k: v for k, v in kw.items() if k != "desc"})  # type: ignore[attr-defined]
    try:
        yield
    finally:
        st.tqdm = original  # type: ignore[attr-defined]


def _evaluate(
    subject: Subject, coder: Any, hookpoint: str, held_out: torch.Tensor
) -> tuple[float, int]:
    """FVU and dead latents of ``coder`` on the held-out sequences (the library's encode and
    decode)."""
    import torch

    from neuronbench.subjects.sae import _sparsify_hook, hooked_activations

    hook = _sparsify_hook(f"sparsify:{hookpoint}", subject, hookpoint, transcoder=False)
    fired = torch.zeros(int(coder.num_latents), dtype=torch.bool)
    sq_err, n = 0.0, 0
    s1 = s2 = torch.zeros(int(coder.d_in), dtype=torch.float64)
    with torch.inference_mode():
        for seq in held_out.split(4):
            x = hooked_activations(subject, hook, seq).flatten(0, 1)  # (n, d)
            enc = coder.encode(x)
            x_hat = coder.decode(enc.top_acts, enc.top_indices)
            sq_err += float((x - x_hat).double().pow(2).sum())
            fired[enc.top_indices[enc.top_acts > 0]] = True
            xd = x.double()
            s1, s2, n = s1 + xd.sum(0), s2 + xd.pow(2).sum(0), n + x.shape[0]
    total = float((s2 - s1.pow(2) / n).sum())  # sum ||x - mean||^2
    return sq_err / total, int((~fired).sum())


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def read_figures(out: Path) -> dict[str, Any]:
    """``out/train.json`` of an earlier ``train_sae``."""
    return dict(json.loads((out / TRAIN_FILE).read_text()))
