"""Every ``neuronbench run`` option checked before anything is recorded.

Recording takes minutes and the evals come after it, so a misspelt strategy or simulator
found by the eval would waste the whole recording. Each check here is cheap (no model,
no corpus read, no network unless a hub subject needs it) and fails with one line.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from neuronbench.errors import UsageError, check_choice, did_you_mean

if TYPE_CHECKING:
    from neuronbench.pipeline import RunConfig


def check_run_config(cfg: RunConfig) -> None:
    """Raise :class:`UsageError` (or ``SubjectError`` / ``DatasetError``) on a bad option."""
    from neuronbench.evals.strategies import NO_MODEL, STRATEGIES
    from neuronbench.scorers.registry import SCORERS, SIMULATORS, simulator_needs_model

    for flag, value in (
        ("--tokens", cfg.tokens),
        ("--record-length", cfg.record_length),
        ("--batch-size", cfg.batch_size),
        ("--neurons", cfg.neurons),
        ("--n-examples", cfg.n_examples),
        ("--n-score-records", cfg.n_score_records),
    ):
        if value < 1:
            raise UsageError(f"{flag} {value}: must be at least 1")
    if cfg.tokens < cfg.record_length:
        raise UsageError(
            f"--tokens {cfg.tokens} is less than one record (--record-length {cfg.record_length})"
        )
    check_choice("split", cfg.split, ("valid", "test"), "--split")
    for name in cfg.strategies:
        check_choice("strategy", name, STRATEGIES, "--strategies")
    controls = sorted(NO_MODEL - {"from_file"})
    for name in cfg.baselines:
        check_choice("baseline", name, controls, "--baselines")
    _check_sites(cfg, controls)
    if "from_file" in cfg.strategies:
        raise UsageError(
            "--strategies from_file needs an explanation file, which `run` does not take; "
            "use `inspect eval ... -T strategy=from_file -T explanation_file=PATH`"
        )
    if not cfg.simulators:
        raise UsageError(f"--simulators: name at least one of {', '.join(SIMULATORS)}")
    for name in cfg.simulators:
        check_choice("simulator", name, SIMULATORS, "--simulators")
    for name in cfg.scorers:
        check_choice("scorer", name, SCORERS, "--scorers")
    if cfg.strategies and not cfg.explainers:
        raise UsageError("--explainers: name at least one model for --strategies")
    for model in cfg.explainers if cfg.strategies else []:
        check_model("--explainers", model)
    llm_scorer = any(s in ("detection", "fuzzing") for s in cfg.scorers)
    if llm_scorer or any(simulator_needs_model(s) for s in cfg.simulators):
        check_model("--simulator-model", cfg.simulator_model)
    _check_layers(cfg.layers)
    _check_corpus(cfg.corpus)
    from neuronbench.pipeline import site_paths

    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {cfg.out}: exists and is not a directory")
    if not all(  # reused recordings need no subject
        (site_paths(out, site)[0] / "card.json").exists() for site in cfg.sites
    ):
        from neuronbench.subjects.models import (
            SMOLLM2_ALIASES,
            check_subject_source,
            smollm2_gguf_path,
        )

        if cfg.subject in SMOLLM2_ALIASES:
            smollm2_gguf_path()  # the package that ships its weights is installed
        else:
            check_subject_source(cfg.subject)


def _check_sites(cfg: RunConfig, controls: list[str]) -> None:
    """``--sites`` and the SAE sites' strategies: names resolve (built-ins offline, paths
    exist, the SAE library is installed) without loading a model or an SAE."""
    from neuronbench.evals.strategies import STRATEGIES
    from neuronbench.pipeline import site_paths
    from neuronbench.subjects.builtin_sae import builtin_names, check_builtin, is_builtin
    from neuronbench.subjects.sae import INSTALL_HINT, is_sae_site

    if not cfg.sites:
        raise UsageError("--sites: name at least one of mlp, sparsify:builtin:NAME, sae:PATH")
    if len(set(cfg.sites)) != len(cfg.sites):
        raise UsageError(f"--sites {','.join(cfg.sites)}: a site is named twice")
    dirs: dict[Path, str] = {}
    builtins = ", ".join(f"sparsify:builtin:{n}" for n in builtin_names())
    for site in cfg.sites:
        if site != "mlp" and not is_sae_site(site):
            raise UsageError(
                f"--sites {site!r}: expected mlp, sparsify:builtin:NAME ({builtins}), "
                "sparsify:PATH or sae:PATH"
            )
        prefix, _, raw = site.partition(":")
        if prefix == "sparsify" and is_builtin(raw):
            check_builtin(site, raw)
        elif site != "mlp" and not Path(raw).expanduser().is_dir():
            raise UsageError(f"--sites {site!r}: no directory {raw} (built-ins: {builtins})")
        if prefix == "sparsify" and importlib.util.find_spec("sparsify") is None:
            raise UsageError(f"--sites {site!r} needs eai-sparsify: {INSTALL_HINT}")
        dataset_dir = site_paths(Path(cfg.out), site)[0]
        if dataset_dir in dirs:
            raise UsageError(
                f"--sites {dirs[dataset_dir]!r} and {site!r} would share {dataset_dir}"
            )
        dirs[dataset_dir] = site
    if any(site != "mlp" for site in cfg.sites):
        for name in cfg.sae_strategies:
            check_choice("strategy", name, STRATEGIES, "--sae-strategies")
        for name in cfg.sae_baselines:
            check_choice("baseline", name, controls, "--sae-baselines")
        if "from_file" in cfg.sae_strategies:
            raise UsageError("--sae-strategies from_file needs an explanation file")
        if cfg.sae_strategies and not cfg.explainers:
            raise UsageError("--explainers: name at least one model for --sae-strategies")


def check_model(flag: str, model: str) -> None:
    """``provider/name`` with a provider inspect knows, so the eval does not fail after recording."""
    from inspect_ai._util.entrypoints import ensure_entry_points
    from inspect_ai._util.registry import registry_find, registry_unqualified_name

    provider, _, name = model.partition("/")
    if not provider or not name:
        raise UsageError(f"{flag} {model!r}: expected an inspect model name, provider/model")
    ensure_entry_points()
    known = sorted(
        {
            registry_unqualified_name(obj)
            for obj in registry_find(lambda info: info.type == "modelapi")
        }
    )
    if provider not in known:
        raise UsageError(
            f"{flag} {model!r}: unknown model provider {provider!r}"
            f"{did_you_mean(provider, known)}; inspect knows {', '.join(known)}"
        )


def _check_layers(spec: str) -> None:
    """The syntax of ``--layers`` (the subject's layer count is checked when it loads)."""
    from neuronbench.subjects._settings import parse_layers

    if spec.strip() != "all":
        parse_layers(spec, n_layers=1 << 30)


def _check_corpus(source: str) -> None:
    from neuronbench.datasets.errors import DatasetError
    from neuronbench.subjects.corpus import parse_hf_source

    if source.startswith("hf:"):
        parse_hf_source(source)
        return
    path = Path(source)
    if source in ("austen", "tiny") or path.is_dir():
        return
    if path.is_file():
        if path.suffix in (".txt", ".jsonl"):
            return
        raise DatasetError(f"--corpus {source!r}: expected a .txt or .jsonl file")
    raise DatasetError(
        f"--corpus {source!r} not found{did_you_mean(source, ('austen', 'tiny'))}: expected "
        "'austen', 'tiny', a .txt/.jsonl file, a directory of .txt files or "
        "'hf:<dataset>[:<config>]'"
    )
