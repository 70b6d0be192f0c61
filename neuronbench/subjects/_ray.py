"""``neuronbench record --ray``: the ``--shard i/n`` recordings as Ray tasks, merged exactly.

A recording splits into shards that share nothing but their settings (``_state``), so a
cluster needs no coordination beyond running one ``record(..., shard=(i, n))`` per task
and handing the states to the exact merge (``_merge``): the dataset is the one a single
process would write. Ray only schedules; the recorder, its checkpoints and the merge are
the same code as the manual ``--shard``/``merge`` path.

Each shard records into ``OUT/.shards/{i}-of-{n}`` and checkpoints there, so a rerun of
the same command skips the shards whose state is complete and resumes the others. On a
cluster without a shared filesystem a task cannot write where the driver reads: it then
returns its state file's bytes (through Ray's object store) and the driver stores them.
Resuming a half-done shard needs the task to land where its checkpoint is (a shared
filesystem, or the same node).

The driver loads the subject once, as ``neuronbench merge`` does: to check the settings in
one line before any task starts and to get the tokenizer for the final dataset. Every node
needs neuronbench installed (same version) and the subject reachable by the same name.

An SAE site (``sae:PATH``, ``sae-lens:RELEASE:SAE_ID``, ``sparsify:PATH``) is loaded by every
task as ``record`` loads it, and once by the driver for the settings check; the SAE's weights
hash is in every shard's config, so a node that finds other weights under the same path is
refused like one with other model weights. A path must name the same checkpoint on every
node (a local instance's tasks share the driver's working directory).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuronbench._atomic import write_text
from neuronbench._progress import duration, say, si
from neuronbench.datasets import DatasetError, NeuronDataset
from neuronbench.errors import UsageError
from neuronbench.subjects._checkpoint import STATE_FILE
from neuronbench.subjects._settings import make_config, resolve_subject
from neuronbench.subjects._state import RecorderConfig, RecorderState
from neuronbench.subjects.models import Subject, SubjectError

if TYPE_CHECKING:
    from neuronbench.subjects.sae import SaeSite

INSTALL_HINT = 'Ray is not installed; install the scale extra: pip install -e ".[scale]"'
SHARDS_DIR = ".shards"
SUMMARY_FILE = "recording.json"
"""Written by ``record`` after a shard's state: its presence with matching settings = done."""
_TOKEN_FILE = "driver-token"
"""A random token the driver writes under ``OUT/.shards``; a task that reads it back shares
the driver's filesystem, so its state is already where the merge looks."""
_SETTINGS = (
    "n_tokens",
    "record_length",
    "top_k",
    "n_random",
    "n_quantiles",
    "per_quantile",
    "boundary_records",
    "seed",
)
"""Keyword settings of ``record`` that enter the recorder's config."""
_SHARD = ("shard_index", "shard_count")


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`UsageError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--ray: {INSTALL_HINT}") from None
    return ray


def shard_dir(out: Path, index: int, count: int) -> Path:
    """Where shard ``index`` of ``count`` records (a new count gets fresh directories)."""
    return out / SHARDS_DIR / f"{index}-of-{count}"


def record_on_ray(
    subject: str,
    corpus: str,
    layers: str,
    *,
    out: str | Path,
    shards: int | None = None,
    address: str | None = None,
    batch_size: int = 8,
    checkpoint_every: float | None = 300.0,
    progress: bool = True,
    site: str = "mlp",
    **settings: Any,
) -> NeuronDataset:
    """Record ``shards`` shards of ``corpus`` as Ray tasks and merge them into ``out``.

    Args:
        subject / corpus / layers: as for ``recorder.record``; every node must resolve
            ``subject`` to the same weights (the merge refuses another revision).
        out: the dataset directory; shard states go to ``out/.shards`` and are removed
            once the dataset is written.
        shards: number of shards (tasks); default: the cluster's GPUs, else its CPUs.
        address: None starts a local Ray instance for this call; ``auto`` or
            ``ray://host:port`` connects to a running cluster.
        batch_size / checkpoint_every / progress: as for ``record`` (per task; tasks
            never draw bars, the driver prints one line per finished shard).
        site: as for ``record``: ``mlp`` or an SAE's latents (``layers`` then ``"all"`` or
            the SAE's own layer).
        settings: the other keyword settings of ``record`` (``n_tokens``, ``top_k``...).
    """
    unknown = set(settings) - set(_SETTINGS)
    if unknown:
        raise TypeError(f"record_on_ray: unknown settings {sorted(unknown)}")
    if shards is not None and shards < 1:
        raise UsageError(f"--shards must be >= 1, got {shards}")
    ray = import_ray()
    if address is None:  # a cluster's tasks read their own filesystem: only they can tell
        from neuronbench._run_checks import _check_corpus

        _check_corpus(corpus)
    out_path = Path(out)
    subj = resolve_subject(subject)  # settings errors here, in one line, before Ray starts
    cfg, sae = site_config(subj, subject, corpus, layers, site, (0, 1), settings)
    tokenizer = subj.tokenizer
    del subj, sae
    from neuronbench.subjects.recorder import _already_recorded

    done = _already_recorded(out_path, None, cfg)
    if isinstance(done, NeuronDataset):
        if progress:
            say(_desc(cfg), f"already recorded in {out_path}")
        return done
    started = _connect(ray, address, shards)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        n = shards or gpus or int(resources.get("CPU", 1))
        dirs = [shard_dir(out_path, i, n) for i in range(n)]
        _run_shards(ray, cfg, dirs, gpus, progress, subject, corpus, layers, batch_size,
                    checkpoint_every, {**settings, "site": site})  # fmt: skip
    finally:
        if started:
            ray.shutdown()
    from neuronbench.subjects.recorder import merge

    if progress:
        say(_desc(cfg), f"merging {n} shards into {out_path}")
    ds = merge(dirs, out_path, tokenizer=tokenizer)
    shutil.rmtree(out_path / SHARDS_DIR, ignore_errors=True)
    return ds


def _defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """``record``'s defaults for the settings not given, so the driver's config is the
    one every task builds."""
    import inspect

    from neuronbench.subjects.recorder import record

    params = inspect.signature(record).parameters
    return {k: settings.get(k, params[k].default) for k in _SETTINGS}


def site_config(
    subj: Subject,
    subject: str,
    corpus: str,
    layers: str,
    site: str,
    shard: tuple[int, int],
    settings: dict[str, Any],
) -> tuple[RecorderConfig, SaeSite | None]:
    """The config ``record`` builds for ``site`` (an SAE's layer, latent count, site name and
    weights hash), and the loaded SAE: driver and tasks build the same one, so a shard's
    config differs from the driver's only where a node differs."""
    from neuronbench.subjects.recorder import _load_sae, with_site

    sae = _load_sae(site, subj, layers)
    cfg = make_config(subj, subject, corpus, [sae.hook.layer] if sae else layers,
                      shard=shard, **_defaults(settings))  # fmt: skip
    return with_site(cfg, sae, site), sae


def _desc(cfg: RecorderConfig) -> str:
    return f"record {cfg.subject_name} on Ray"


def _connect(ray: Any, address: str | None, shards: int | None) -> bool:
    """Connect to ``address`` or start a local instance; True when this call started it.

    A local instance gets as many CPUs as shards (at most this machine's), GPUs as Ray
    detects them; an instance already initialised in this process is used as it is.
    """
    if ray.is_initialized():
        return False
    if address is not None:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as e:
            raise UsageError(f"--ray {address}: cannot connect to a Ray cluster: {e}") from None
        return True
    cpus = os.cpu_count() or 1
    ray.init(
        num_cpus=min(shards, cpus) if shards else cpus,
        include_dashboard=False,
        logging_level=logging.ERROR,  # a private instance: its cluster warnings are noise
        log_to_driver=False,  # tasks record quietly; their logs stay in Ray's session dir
    )
    return True


def _run_shards(
    ray: Any,
    cfg: RecorderConfig,
    dirs: list[Path],
    gpus: int,
    progress: bool,
    subject: str,
    corpus: str,
    layers: str,
    batch_size: int,
    checkpoint_every: float | None,
    settings: dict[str, Any],
) -> None:
    """Run every shard not already complete as a task; store states that come back as bytes.
    ``settings`` are the tasks' keyword settings, ``site`` included."""
    n = len(dirs)
    todo = [i for i in range(n) if not _complete(dirs[i], cfg, i, n)]
    desc = _desc(cfg)
    if progress:
        where = f"{gpus} GPUs" if gpus else "CPUs"
        skipped = f"; {n - len(todo)} already complete" if len(todo) < n else ""
        say(desc, f"{n} shards as Ray tasks on {where}{skipped}")
    if not todo:
        return
    root = dirs[0].parent
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    write_text(root / _TOKEN_FILE, token)
    options: dict[str, Any] = {"num_gpus": 1} if gpus else {"num_cpus": 1}
    task = ray.remote(_record_shard).options(**options)
    kwargs = {"batch_size": batch_size, "checkpoint_every": checkpoint_every, **settings}
    pending = {
        task.remote(subject, corpus, layers, i, n, str(dirs[i]), token, kwargs): i for i in todo
    }
    failures: list[tuple[int, BaseException]] = []
    finished, t0 = n - len(todo), time.monotonic()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except Exception as e:  # wait for the other shards: their work is kept for a rerun
            failures.append((i, e))
            continue
        diff = cfg.differences(RecorderConfig.from_dict(result["config"]), ignore=_SHARD)
        if diff:  # e.g. a node whose copy of the weights differs from the driver's
            failures.append((i, DatasetError(
                f"shard {i}/{n} ran on {result['device']} with other settings than this "
                f"machine: {'; '.join(diff)}"
            )))  # fmt: skip
            continue
        if result["files"]:
            _store(dirs[i], result["files"])
        finished += 1
        if progress:
            rate = result["n_tokens"] / result["record_s"] if result["record_s"] else 0.0
            say(
                desc,
                f"shard {i}/{n} done on {result['device']}: {si(result['n_tokens'])} tokens at "
                f"{si(rate)} tok/s ({finished}/{n} shards after "
                f"{duration(time.monotonic() - t0)})",
            )
    if failures:
        _raise_first(failures, n)


def _complete(directory: Path, cfg: RecorderConfig, index: int, count: int) -> bool:
    """Whether ``directory`` holds the finished state of this shard with these settings."""
    import json

    summary = directory / SUMMARY_FILE
    if not (summary.exists() and (directory / STATE_FILE).exists()):
        return False
    try:
        recorded = json.loads(summary.read_text())["config"]
    except (OSError, ValueError, KeyError):
        return False
    expected = {**cfg.to_dict(), "shard_index": index, "shard_count": count}
    return bool(recorded == expected)


def _store(directory: Path, files: dict[str, bytes]) -> None:
    """Write a remote shard's files where the merge reads them (the state before the
    summary, as ``record`` does, so a summary never vouches for a missing state)."""
    from neuronbench._atomic import atomic_path

    directory.mkdir(parents=True, exist_ok=True)
    for name in (STATE_FILE, SUMMARY_FILE):
        with atomic_path(directory / name) as tmp:
            tmp.write_bytes(files[name])


def _raise_first(failures: list[tuple[int, BaseException]], n: int) -> None:
    """A user error inside a task (bad corpus, layer...) as the same one-line error;
    anything else keeps Ray's remote traceback."""
    i, error = min(failures, key=lambda f: f[0])
    cause = getattr(error, "cause", None)
    if isinstance(cause, (UsageError, DatasetError, SubjectError)):
        others = f" ({len(failures) - 1} more shards failed)" if len(failures) > 1 else ""
        raise type(cause)(f"shard {i}/{n}: {cause}{others}") from None
    raise error


def _record_shard(
    subject: str,
    corpus: str,
    layers: str,
    index: int,
    count: int,
    directory: str,
    token: str,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The Ray task: record one shard into ``directory`` (resuming its checkpoint).

    Runs on the task's GPU when Ray gave it one (``CUDA_VISIBLE_DEVICES`` names only that
    one), else on CPU with as many threads as CPUs the task holds. Returns figures for the
    driver's log, plus the state and summary bytes when ``directory`` is not the driver's.
    """
    import torch

    from neuronbench._atomic import write_json
    from neuronbench.subjects._checkpoint import save_state
    from neuronbench.subjects.recorder import (
        _already_recorded,
        _drop_checkpoint,
        _summary,
        record_state,
    )

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    settings = dict(kwargs)
    batch_size, every = settings.pop("batch_size", 8), settings.pop("checkpoint_every", 300.0)
    site = settings.pop("site", "mlp")
    subj = resolve_subject(subject)
    subj.model.to(device)
    cfg, sae = site_config(subj, subject, corpus, layers, site, (index, count), settings)
    if sae is not None:
        sae.to(device)
    # What ``record`` does for a shard, but always a state: one shard (count 1) included.
    path = Path(directory)
    final = path / STATE_FILE
    state = _already_recorded(path, final, cfg)
    if not isinstance(state, RecorderState):
        state = record_state(subj, cfg, batch_size=batch_size, out=path,
                             checkpoint_every=every, progress=False, sae=sae)  # fmt: skip
        save_state(state, final)
        write_json(path / SUMMARY_FILE, _summary(state, batch_size))
        _drop_checkpoint(path)
    shared = _read(path.parent / _TOKEN_FILE) == token
    files = {} if shared else {n: (path / n).read_bytes() for n in (STATE_FILE, SUMMARY_FILE)}
    return {
        "n_tokens": state.n_tokens,
        "record_s": state.timings.get("record_s", 0.0),
        "config": state.config.to_dict(),
        "device": f"{os.uname().nodename}/{device}",
        "files": files,
    }


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
