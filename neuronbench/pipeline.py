"""The main job: record -> explain -> score -> leaderboard, resumable at every stage.

Each stage leaves durable output under ``--out`` and is skipped when that output is
already there for the same settings, so an interrupted ``neuronbench run`` picks up
where it stopped: the recorder checkpoints and refuses a mismatched resume, inspect's
``eval_set`` reruns only unfinished evals, and the leaderboard is rebuilt from logs.

Layout of ``--out``::

    dataset/        the neuron recording (NeuronDataset, with its card)
    logs/llm/       inspect logs of LLM explainers x strategies (eval_set)
    logs/baselines/ inspect logs of the non-LLM baseline and the empty/shuffled controls
    leaderboard.{md,csv,json}, plots/*.png, viewer/index.html, run.json
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from neuronbench._atomic import write_json
from neuronbench._version import __version__


def _default_explainers() -> list[str]:
    return ["neuronbench/smollm2"]


def _default_strategies() -> list[str]:
    return ["token_activation_pairs", "highlighted"]


def _default_baselines() -> list[str]:
    return ["baseline", "empty", "shuffled"]


def _default_scorers() -> list[str]:
    return ["simulation"]


def _default_simulators() -> list[str]:
    return ["logprob", "embedding"]


@dataclass
class RunConfig:
    """Every knob of ``neuronbench run``; the defaults are the offline benchmark."""

    out: str = "results"
    """Output directory (dataset, logs, leaderboard, plots, viewer)."""
    subject: str = "smollm2"
    """Subject model: ``smollm2`` (offline default), an HF id or a local path."""
    corpus: str = "austen"
    """Corpus source (``austen`` is embedded in the package)."""
    layers: str = "0-29:4"
    """Layers recorded: ``0-29:4`` = every 4th layer of SmolLM2's 30 (8 layers)."""
    tokens: int = 50_000
    """Corpus tokens recorded (the embedded corpus has ~0.9M); sized for ~10 min on 2 CPU cores."""
    record_length: int = 64
    """Tokens per record (the paper's 64)."""
    batch_size: int = 16
    """Records per forward pass while recording."""
    neurons: int = 16
    """Neurons explained, sampled stratified by layer (seeded)."""
    explainers: list[str] = field(default_factory=_default_explainers)
    """inspect model names of the LLM explainers."""
    strategies: list[str] = field(default_factory=_default_strategies)
    """Prompt strategies run with every LLM explainer."""
    baselines: list[str] = field(default_factory=_default_baselines)
    """Non-LLM explainers and controls, run once (model ``none/none``)."""
    simulators: list[str] = field(default_factory=_default_simulators)
    """Simulator kinds, each scoring every explanation: logprob (the paper's), generation,
    lexical, embedding. Explanations are generated once (inspect's cache) and reused."""
    simulator_model: str = "neuronbench/smollm2"
    """inspect model name bound to the ``simulator`` role (LLM simulators only)."""
    scorers: list[str] = field(default_factory=_default_scorers)
    """Scorers run on every explanation."""
    split: str = "test"
    """Scoring split: ``test`` for published leaderboards, ``valid`` while developing."""
    n_examples: int = 5
    """Train records shown to the explainer."""
    n_score_records: int = 5
    """Held-out records scored per group (top and random, 1:1)."""
    seed: int = 0
    """Seed for recording samples, neuron selection and controls."""
    viewer: bool = True
    """Write the static neuron viewer."""
    bundle: bool = False
    """Also write ``inspect view bundle`` of the logs beside the viewer, which links it
    (off by default: it copies every log into a ~25 MB web app)."""


def _log(msg: str) -> None:
    print(f"[neuronbench run] {msg}", file=sys.stderr, flush=True)


def ensure_recording(cfg: RunConfig, dataset_dir: Path) -> Path:
    """Record the subject unless ``dataset_dir`` already holds this exact recording."""
    from neuronbench.datasets import NeuronDataset, read_card
    from neuronbench.datasets.errors import DatasetError

    wanted = {"corpus": cfg.corpus, "n_tokens_budget": cfg.tokens, "seed": cfg.seed}
    if (dataset_dir / "card.json").exists():
        card = read_card(dataset_dir)
        have = {
            "corpus": card.corpus,
            "n_tokens_budget": card.extra.get("n_tokens_budget"),
            "seed": card.seed,
        }
        if have == wanted and card.extra.get("layers_spec") == cfg.layers:
            NeuronDataset.load(dataset_dir, layers=[])  # verifies the content hash
            _log(
                f"recording: reusing {dataset_dir} ({card.n_tokens:,} tokens, layers {card.layers})"
            )
            return dataset_dir
        raise DatasetError(
            f"{dataset_dir}: holds a different recording ({have}, layers "
            f"{card.extra.get('layers_spec')!r}); use another --out or delete it"
        )
    from neuronbench.subjects.recorder import record

    _log(f"recording {cfg.subject} layers {cfg.layers} over {cfg.tokens:,} tokens of {cfg.corpus}")
    t0 = time.perf_counter()
    ds = record(
        cfg.subject,
        cfg.corpus,
        cfg.layers,
        n_tokens=cfg.tokens,
        record_length=cfg.record_length,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        out=dataset_dir,
        progress=True,
    )
    assert not hasattr(ds, "config"), "unsharded record returns a dataset"
    # Stamp what the run asked for, so a rerun can tell it is the same recording.
    card = read_card(dataset_dir)
    card.extra.update({"n_tokens_budget": cfg.tokens, "layers_spec": cfg.layers})
    write_json(dataset_dir / "card.json", card.to_dict())
    _log(f"recorded in {time.perf_counter() - t0:.0f}s")
    return dataset_dir


def _task_args(cfg: RunConfig, dataset_dir: Path, strategy: str, simulator: str) -> dict[str, Any]:
    return {
        "dataset": str(dataset_dir),
        "split": cfg.split,
        "strategy": strategy,
        "n_examples": cfg.n_examples,
        "neurons": f"stratified:{cfg.neurons}",
        "seed": cfg.seed,
        "scorer": ",".join(cfg.scorers),
        "simulator": simulator,
        "n_score_records": cfg.n_score_records,
    }


def run_evals(cfg: RunConfig, dataset_dir: Path, log_dir: Path) -> list[Any]:
    """LLM explainers x strategies, then the non-LLM baselines; eval_set resumes both."""
    from inspect_ai import eval_set

    from neuronbench.evals.task import explain_neurons
    from neuronbench.scorers.registry import simulator_needs_model

    roles: dict[str, str] = {}
    llm_scorer = any(s in ("detection", "fuzzing") for s in cfg.scorers)
    if llm_scorer or any(simulator_needs_model(s) for s in cfg.simulators):
        roles["simulator"] = cfg.simulator_model
    logs: list[Any] = []
    groups = [
        ("llm", cfg.strategies, cfg.explainers),
        ("baselines", cfg.baselines, ["none/none"]),
    ]
    for name, strategies, models in groups:
        if not strategies or not models:
            continue
        tasks = [
            explain_neurons(**_task_args(cfg, dataset_dir, strategy, simulator))
            for strategy in strategies
            for simulator in cfg.simulators
        ]
        _log(
            f"evals ({name}): {len(strategies)} strategies x {len(cfg.simulators)} simulators "
            f"x {len(models)} models -> {log_dir / name}"
        )
        ok, group_logs = eval_set(
            tasks=tasks,
            model=models,
            model_roles=roles or None,  # type: ignore[arg-type]
            log_dir=str(log_dir / name),
            max_tasks=1,
            max_samples=4,
            retry_attempts=2,
            retry_wait=1,
            display="plain" if not sys.stderr.isatty() else "full",
        )
        logs.extend(group_logs)
        if not ok:
            raise RuntimeError(
                f"eval_set ({name}) did not finish; rerun `neuronbench run` to resume"
            )
    return logs


def publish(cfg: RunConfig, out: Path, log_dir: Path) -> dict[str, Any]:
    """Leaderboard (md/csv/json), plots and the viewer from the logs."""
    from neuronbench.results import build_leaderboard, make_plots, write_leaderboard
    from neuronbench.results.plots import plots_dir

    lb = build_leaderboard(log_dir)
    paths = write_leaderboard(lb, out)
    make_plots(lb, plots_dir(out))
    if cfg.viewer:
        from neuronbench.results import write_viewer

        write_viewer(log_dir, out / "viewer", bundle=cfg.bundle)
    return {"leaderboard": {k: str(v) for k, v in paths.items()}, "rows": len(lb.rows)}


def run(cfg: RunConfig) -> dict[str, Any]:
    """Run the whole benchmark and return a summary (also written to ``OUT/run.json``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from neuronbench._run_checks import check_run_config

    check_run_config(cfg)  # every option, before minutes of recording
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    dataset_dir = ensure_recording(cfg, out / "dataset")
    t_record = time.perf_counter() - t0
    log_dir = out / "logs"
    run_evals(cfg, dataset_dir, log_dir)
    t_evals = time.perf_counter() - t0 - t_record
    published = publish(cfg, out, log_dir)
    summary = {
        "command": "neuronbench " + " ".join(sys.argv[1:])
        if sys.argv[0].endswith("neuronbench")
        else None,
        "config": asdict(cfg),
        "neuronbench_version": __version__,
        "started_utc": started.isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "python": platform.python_version(),
        "seconds": {
            "record": round(t_record, 1),
            "evals": round(t_evals, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
        **published,
    }
    write_json(out / "run.json", summary)
    _log(f"done in {summary['seconds']['total']:.0f}s: {out / 'leaderboard.md'}")
    print((out / "leaderboard.md").read_text(encoding="utf-8"))
    return summary
