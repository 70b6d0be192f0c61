"""Shared test builders: small, valid neuron data with defaults, for every test area.

Stable API (other areas' tests use it; extend it only additively):

- ``make_record(**overrides) -> ActivationRecord``: a 64-token record with activations
  drawn from a seeded RNG. ``max_activation=x`` rescales it so its max is exactly ``x``.
- ``make_neuron(**overrides) -> NeuronRecord``: 40 top records (sorted, maxima 40..1),
  30 random records (maxima < 1), 5 quantile bins with 4 boundaries (OpenAI's shape),
  moments and firing rate; positions are unique corpus indices (top 0.., random 1000..).
- ``seed`` fixture (autouse): seeds ``random`` and numpy's global RNG to 0 before each test.

Import them as ``from tests.conftest import make_neuron, make_record`` (pyproject puts the
repo root on pytest's ``pythonpath``); a bare ``from conftest import ...`` breaks as soon as
another test area adds its own ``conftest.py``.

Builders draw from their own ``numpy.random.default_rng(seed)`` (``seed`` is an override
too), so the same call always returns the same data, whatever ran before.
Imports only ``neuronbench.datasets`` so any test area can use it without heavy deps.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from neuronbench.datasets import ActivationRecord, NeuronId, NeuronRecord

RECORD_LENGTH = 64
"""Tokens per record in built records (the paper's length)."""


@pytest.fixture(autouse=True)
def seed() -> int:
    """Seed the global RNGs so tests that use them directly are reproducible."""
    random.seed(0)
    np.random.seed(0)
    return 0


@pytest.fixture(autouse=True)
def _isolated_inspect_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give every test its own inspect generate cache.

    Explainers and simulators cache model calls (so reruns are free); tests script
    different mock outputs for identical prompts, and must neither read each other's
    cached answers nor write into the user's ~/.cache.
    """
    monkeypatch.setenv("INSPECT_CACHE_DIR", str(tmp_path_factory.mktemp("inspect-cache")))


def make_record(**overrides: Any) -> ActivationRecord:
    """A valid ``ActivationRecord``; any field may be overridden.

    Extra overrides: ``n_tokens`` (default 64), ``seed`` (default 0), ``max_activation``
    (rescale activations so their max is exactly this value; the argmax token is chosen by
    the RNG), ``word`` (token text prefix, default ``"tok"``).
    """
    n = int(overrides.pop("n_tokens", RECORD_LENGTH))
    rng = np.random.default_rng(overrides.pop("seed", 0))
    max_activation = overrides.pop("max_activation", None)
    word = overrides.pop("word", "tok")
    acts = rng.gamma(0.5, 1.0, size=n) * (rng.random(n) < 0.3)  # sparse, non-negative
    if max_activation is not None:
        acts = np.zeros(n)
        acts[int(rng.integers(n))] = 1.0
        acts += rng.random(n) * 0.5 * (rng.random(n) < 0.2)
        acts = acts / acts.max() * float(max_activation)
    fields: dict[str, Any] = {
        "tokens": [f" {word}{i}" for i in range(n)],
        "activations": [float(a) for a in acts],
        "position": 0,
    }
    fields.update(overrides)
    return ActivationRecord(**fields)


def make_neuron(**overrides: Any) -> NeuronRecord:
    """A valid ``NeuronRecord``; any field may be overridden.

    Extra overrides: ``n_top`` (40), ``n_random`` (30), ``n_tokens_per_record`` (64),
    ``seed`` (0), ``layer`` (0), ``index`` (0), ``subject`` (``"test-subject"``).
    Top record ``i`` has max activation ``n_top - i`` and position ``i``; random record
    ``j`` has max < 1 and position ``1000 + j``, so top and random never share a position.
    """
    seed = int(overrides.pop("seed", 0))
    n_top = int(overrides.pop("n_top", 40))
    n_random = int(overrides.pop("n_random", 30))
    length = int(overrides.pop("n_tokens_per_record", RECORD_LENGTH))
    nid = NeuronId(
        subject=overrides.pop("subject", "test-subject"),
        layer=int(overrides.pop("layer", 0)),
        index=int(overrides.pop("index", 0)),
    )
    rng = np.random.default_rng(seed)

    def rec(max_act: float, position: int) -> ActivationRecord:
        return make_record(
            max_activation=max_act,
            position=position,
            n_tokens=length,
            seed=int(rng.integers(2**31)),
        )

    top = [rec(float(n_top - i), i) for i in range(n_top)]
    rand = [rec(float(rng.uniform(0.1, 0.9)), 1000 + j) for j in range(n_random)]
    boundaries = [0.2, 0.4, 0.6, 0.8]
    quantile = [
        [rec(float(b + 0.1), 2000 + 10 * q + k) for k in range(2)]
        for q, b in enumerate([0.0, *boundaries])
    ]
    all_acts = np.concatenate([np.asarray(r.activations) for r in [*top, *rand]])
    centred = all_acts - all_acts.mean()
    var = float(np.mean(centred**2))
    fields: dict[str, Any] = {
        "id": nid,
        "top": top,
        "random": rand,
        "quantile": quantile,
        "quantile_boundaries": boundaries,
        "mean": float(all_acts.mean()),
        "variance": var,
        "skewness": float(np.mean(centred**3) / var**1.5),
        "kurtosis": float(np.mean(centred**4) / var**2 - 3.0),
        "firing_rate": float(np.mean(all_acts > 0)),
        "n_tokens": int(all_acts.size),
    }
    fields.update(overrides)
    return NeuronRecord(**fields)
