"""The main job: record -> explain -> score -> leaderboard, resumable at every stage.

Each stage leaves durable output under ``--out`` and is skipped when that output is
already there for the same settings, so an interrupted ``neuronbench run`` picks up
where it stopped: the recorder checkpoints and refuses a mismatched resume, inspect's
``eval_set`` reruns only unfinished evals, and the leaderboard is rebuilt from logs.

Sites: by default the run explains three kinds of unit of SmolLM2 side by side: MLP
neurons, the latents of the shipped TopK SAE on layer 12, and the latents of its
random-init control (``--sites``). Each site is recorded and evaluated on its own; the
leaderboard then compares the explainer · strategy · simulator triples run on several
sites (``neuronbench.results.leaderboard``). SAE sites run a smaller set of strategies and
controls (``sae_strategies``, ``sae_baselines``), a subset of the MLP site's, so every
SAE row has its MLP counterpart and its own shuffled control.

Layout of ``--out``::

    dataset/             the MLP recording (NeuronDataset, with its card)
    logs/llm/            inspect logs of LLM explainers x strategies on it (eval_set)
    logs/baselines/      inspect logs of the non-LLM baseline and the empty/shuffled controls
    dataset-<sae>/       an SAE site's recording (e.g. dataset-smollm2-l12-topk)
    logs/<sae>/llm/, logs/<sae>/baselines/   that site's logs
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
    # the paper's LLM simulator, the trained reader (the offline simulator with the best
    # validity on unseen suite concepts) and the untrained embedding floor beside it
    return ["logprob", "reader", "embedding"]


def _default_sites() -> list[str]:
    from neuronbench.subjects.builtin_sae import RANDOM, TRAINED, site_spec

    return ["mlp", site_spec(TRAINED), site_spec(RANDOM)]


def _default_sae_strategies() -> list[str]:
    return ["token_activation_pairs"]


def _default_sae_baselines() -> list[str]:
    return ["baseline", "shuffled"]


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
    lexical, embedding, reader, trained. Explanations are generated once (inspect's cache)
    and reused."""
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
    sites: list[str] = field(default_factory=_default_sites)
    """What to explain: ``mlp`` (MLP neurons of ``layers``) and SAE sites
    (``sparsify:builtin:NAME``, ``sparsify:PATH``, ``sae:PATH``; an SAE reads its own layer).
    Default: MLP neurons, the shipped trained SAE and its random-init control."""
    sae_strategies: list[str] = field(default_factory=_default_sae_strategies)
    """LLM prompt strategies run on SAE sites (the logprob simulator dominates a site's
    time, so SAE sites run one strategy, not every MLP one)."""
    sae_baselines: list[str] = field(default_factory=_default_sae_baselines)
    """Non-LLM explainers and controls run on SAE sites: the baseline and the shuffled
    control, so each site has its own paired explanation − control difference."""


def _log(msg: str) -> None:
    print(f"[neuronbench run] {msg}", file=sys.stderr, flush=True)


def site_slug(site: str) -> str:
    """File-safe short name of a site: ``mlp``, a built-in SAE's name, or the checkpoint
    directory's name (with its parent's when sparsify named it after the hook point)."""
    import re

    from neuronbench.subjects.builtin_sae import BUILTIN_PREFIX

    if site == "mlp":
        return "mlp"
    _, _, raw = site.partition(":")
    if raw.startswith(BUILTIN_PREFIX):
        name = raw.removeprefix(BUILTIN_PREFIX)
    else:
        path = Path(raw.rstrip("/"))
        name = path.name
        if re.fullmatch(r"(layers|h)\.\d+.*", name) and path.parent.name:
            name = f"{path.parent.name}-{name}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "sae"


def site_paths(out: Path, site: str) -> tuple[Path, Path]:
    """(dataset dir, log dir) of ``site`` under ``out``. The MLP site keeps the layout of
    runs before sites existed (``dataset/``, ``logs/``), so their recordings are reused."""
    if site == "mlp":
        return out / "dataset", out / "logs"
    slug = site_slug(site)
    return out / f"dataset-{slug}", out / "logs" / slug


def _recorded_site(card: Any) -> str:
    """The ``--site`` a card was recorded with (``mlp`` for cards from before SAE sites)."""
    recorder = card.extra.get("recorder")
    spec = recorder.get("site_spec") if isinstance(recorder, dict) else None
    return str(spec) if spec else "mlp"


def ensure_recording(cfg: RunConfig, dataset_dir: Path, site: str = "mlp") -> Path:
    """Record ``site`` of the subject unless ``dataset_dir`` already holds this exact recording."""
    from neuronbench.datasets import NeuronDataset, read_card
    from neuronbench.datasets.errors import DatasetError

    layers = cfg.layers if site == "mlp" else "all"  # an SAE reads its own layer
    wanted = {"corpus": cfg.corpus, "n_tokens_budget": cfg.tokens, "seed": cfg.seed, "site": site}
    if (dataset_dir / "card.json").exists():
        card = read_card(dataset_dir)
        have = {
            "corpus": card.corpus,
            "n_tokens_budget": card.extra.get("n_tokens_budget"),
            "seed": card.seed,
            "site": _recorded_site(card),
        }
        if have == wanted and card.extra.get("layers_spec") == layers:
            NeuronDataset.load(dataset_dir, layers=[])  # verifies the content hash
            _log(
                f"recording: reusing {dataset_dir} ({card.n_tokens:,} tokens, site {card.site}, "
                f"layers {card.layers})"
            )
            return dataset_dir
        raise DatasetError(
            f"{dataset_dir}: holds a different recording ({have}, layers "
            f"{card.extra.get('layers_spec')!r}); use another --out or delete it"
        )
    from neuronbench.subjects.recorder import record

    _log(
        f"recording {cfg.subject} site {site} layers {layers} over {cfg.tokens:,} tokens "
        f"of {cfg.corpus}"
    )
    t0 = time.perf_counter()
    ds = record(
        cfg.subject,
        cfg.corpus,
        layers,
        n_tokens=cfg.tokens,
        record_length=cfg.record_length,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        out=dataset_dir,
        progress=True,
        site=site,
    )
    assert not hasattr(ds, "config"), "unsharded record returns a dataset"
    # Stamp what the run asked for, so a rerun can tell it is the same recording.
    card = read_card(dataset_dir)
    card.extra.update({"n_tokens_budget": cfg.tokens, "layers_spec": layers})
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


def site_plan(cfg: RunConfig, site: str) -> tuple[list[str], list[str]]:
    """(strategies, baselines) run on ``site``: all of them on MLP neurons, the smaller
    SAE set on SAE sites."""
    if site == "mlp":
        return list(cfg.strategies), list(cfg.baselines)
    return list(cfg.sae_strategies), list(cfg.sae_baselines)


def run_evals(
    cfg: RunConfig,
    dataset_dir: Path,
    log_dir: Path,
    strategies: list[str] | None = None,
    baselines: list[str] | None = None,
) -> list[Any]:
    """LLM explainers x strategies, then the non-LLM baselines; eval_set resumes both.
    ``strategies`` / ``baselines`` default to ``cfg``'s (the MLP site's)."""
    from inspect_ai import eval_set

    from neuronbench.evals.task import explain_neurons
    from neuronbench.scorers.registry import simulator_needs_model

    roles: dict[str, str] = {}
    llm_scorer = any(s in ("detection", "fuzzing") for s in cfg.scorers)
    if llm_scorer or any(simulator_needs_model(s) for s in cfg.simulators):
        roles["simulator"] = cfg.simulator_model
    logs: list[Any] = []
    groups = [
        ("llm", cfg.strategies if strategies is None else strategies, cfg.explainers),
        ("baselines", cfg.baselines if baselines is None else baselines, ["none/none"]),
    ]
    for name, names, models in groups:
        if not names or not models:
            continue
        tasks = [
            explain_neurons(**_task_args(cfg, dataset_dir, strategy, simulator))
            for strategy in names
            for simulator in cfg.simulators
        ]
        _log(
            f"evals ({name}): {len(names)} strategies x {len(cfg.simulators)} simulators "
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
    seconds: dict[str, dict[str, float]] = {}
    datasets: dict[str, Path] = {}
    for site in cfg.sites:  # every recording first: a bad SAE fails before hours of evals
        t = time.perf_counter()
        datasets[site] = ensure_recording(cfg, site_paths(out, site)[0], site)
        seconds[site] = {"record": round(time.perf_counter() - t, 1)}
    t_record = time.perf_counter() - t0
    for site in cfg.sites:
        t = time.perf_counter()
        strategies, baselines = site_plan(cfg, site)
        _log(f"site {site}: {datasets[site]}")
        run_evals(cfg, datasets[site], site_paths(out, site)[1], strategies, baselines)
        seconds[site]["evals"] = round(time.perf_counter() - t, 1)
    t_evals = time.perf_counter() - t0 - t_record
    log_dir = out / "logs"  # every site's logs: one leaderboard compares them
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
            "sites": seconds,
        },
        **published,
    }
    write_json(out / "run.json", summary)
    _log(f"done in {summary['seconds']['total']:.0f}s: {out / 'leaderboard.md'}")
    print((out / "leaderboard.md").read_text(encoding="utf-8"))
    return summary
