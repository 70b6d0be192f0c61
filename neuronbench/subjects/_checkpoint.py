"""Recorder state on disk: one safetensors file, tensors plus a JSON header, written atomically.

One file (not tensors + a sidecar) so a crash can never pair new tensors with an old
record count. safetensors holds only tensors and strings: loading runs no pickle.
The same format serves checkpoints (``OUT/.checkpoint/state.safetensors``) and finished
shard states (``DIR/state.safetensors``) that ``neuronbench merge`` combines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neuronbench._atomic import atomic_path
from neuronbench.datasets.errors import DatasetError
from neuronbench.subjects._moments import normalize
from neuronbench.subjects._state import LayerState, RecorderConfig, RecorderState

STATE_FILE = "state.safetensors"
CHECKPOINT_DIR = ".checkpoint"
FORMAT = "neuronbench-recorder-state/4"
"""/4: per-token activations in a compacted pool of rows (``L{layer}.pool``) indexed by
``*_row`` slots; /3 kept dense (slots, n, L) activations; /3 added exact integer power sums
and the batch sizes used; /2 kept float moments (a merge only float-close to one run); /1
shared one random sample."""
_OLD_FORMATS = {
    "neuronbench-recorder-state/1": "one random sample shared by all neurons",
    "neuronbench-recorder-state/2": "float moments that merge only approximately",
    "neuronbench-recorder-state/3": "dense per-token activations for every slot",
}


def save_state(state: RecorderState, path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {}
    for layer, ls in state.layers.items():
        normalize(ls.psum)  # one form per value, so equal states give equal files
        ls.pending = 0
        ls.compact(force=True)  # live rows only, in slot order
        for name in LayerState.STORED:
            tensors[f"L{layer}.{name}"] = getattr(ls, name)
        tensors[f"L{layer}.pool"] = ls.pool[: ls.used].clone()  # not the reserve
    header = {
        "format": FORMAT,
        "config": state.config.to_dict(),
        "n_tokens": state.n_tokens,
        "n_records": state.n_records,
        "consumed": state.consumed,
        "has_boundaries": state.has_boundaries,
        "complete": state.complete,
        "timings": state.timings,
        "batch_sizes": state.batch_sizes,
    }
    with atomic_path(path) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"neuronbench": json.dumps(header)},
        )
    return path


def load_state(path: str | Path) -> RecorderState:
    """Read a state written by :func:`save_state`; errors name the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no recorder state (expected `neuronbench record` output)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise DatasetError(f"{path}: corrupt recorder state ({e})") from None
    try:
        header: dict[str, Any] = json.loads(meta["neuronbench"])
        old = _OLD_FORMATS.get(header.get("format", ""))
        if old is not None:
            raise DatasetError(
                f"{path}: recorder state from an older neuronbench ({old}); record again "
                "(delete it to start over) or finish and merge it with that version"
            )
        if header.get("format") != FORMAT:
            raise DatasetError(f"{path}: unknown state format {header.get('format')!r}")
        config = RecorderConfig.from_dict(header["config"])
        layers = {layer: _layer(tensors, layer) for layer in config.layers}
        return RecorderState(
            config=config,
            layers=layers,
            n_tokens=int(header["n_tokens"]),
            n_records=int(header["n_records"]),
            consumed=int(header["consumed"]),
            has_boundaries=bool(header["has_boundaries"]),
            complete=bool(header["complete"]),
            timings={k: float(v) for k, v in header.get("timings", {}).items()},
            batch_sizes=[int(b) for b in header["batch_sizes"]],
        )
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"{path}: malformed recorder state (missing or bad {e})") from None


def _layer(tensors: dict[str, Any], layer: int) -> LayerState:
    import torch

    pool = tensors[f"L{layer}.pool"]
    ls = LayerState(
        **{n: tensors[f"L{layer}.{n}"] for n in LayerState.STORED},
        pool=pool,
        pool_max=pool.amax(dim=-1) if pool.shape[1] else torch.zeros(len(pool)),
        used=len(pool),
    )
    rows = [getattr(ls, n) for n in LayerState.ROWS]
    if len(pool) < 1 or bool(pool[0].view(torch.int32).any()):
        raise ValueError(f"L{layer}.pool row 0 (must be all zero)")
    if any(bool(((r < 0) | (r >= len(pool))).any()) for r in rows):
        raise ValueError(f"L{layer}.pool rows")
    return ls


def checkpoint_path(out: str | Path) -> Path:
    return Path(out) / CHECKPOINT_DIR / STATE_FILE
