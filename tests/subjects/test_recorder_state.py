"""Recorder state without a model: every summary against a brute-force recomputation.

Activations are rounded to one decimal so many records tie on their max: the tie rule
(lower position first) must make streaming, any batching and any sharding agree exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch

from neuronbench.datasets import DatasetError
from neuronbench.subjects._boundaries import quantiles
from neuronbench.subjects._checkpoint import load_state, save_state
from neuronbench.subjects._merge import canonical, merge, moments
from neuronbench.subjects._state import (
    EMPTY,
    QUANTILE_SALT,
    RANDOM_SALT,
    LayerState,
    RecorderConfig,
    RecorderState,
    new_state,
    record_key,
)
from neuronbench.subjects._stream import update

N_RECORDS, LENGTH, N_NEURONS = 120, 8, 12
LAYERS = [0, 3]


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Small tensors: intra-op threads only add sync cost on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_config(**overrides: object) -> RecorderConfig:
    fields: dict[str, object] = {
        "subject": "test",
        "subject_name": "test",
        "revision": "r0",
        "corpus": "synthetic",
        "layers": LAYERS,
        "d_mlp": N_NEURONS,
        "max_tokens": None,
        "record_length": LENGTH,
        "top_k": 6,
        "n_random": 5,
        "n_quantiles": 3,
        "per_quantile": 2,
        "boundary_records": 40,
        "seed": 7,
    }
    fields.update(overrides)
    return RecorderConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def acts() -> dict[int, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        layer: torch.randn(N_RECORDS, LENGTH, N_NEURONS, generator=g).round(decimals=1)
        for layer in LAYERS
    }


def run(
    acts: dict[int, torch.Tensor], shard: tuple[int, int] = (0, 1), batch: int = 7
) -> RecorderState:
    cfg = make_config(shard_index=shard[0], shard_count=shard[1])
    state = new_state(cfg)
    for ls in state.layers.values():
        ls.q_bound = torch.tensor([[-0.2] * N_NEURONS, [1.0] * N_NEURONS])
    positions = [p for p in range(N_RECORDS) if p % shard[1] == shard[0]]
    for i in range(0, len(positions), batch):
        chunk = positions[i : i + batch]
        update(state, chunk, {layer: a[chunk] for layer, a in acts.items()})
        state.consumed += len(chunk)
    state.complete = True
    return state


def run_sorted(acts: dict[int, torch.Tensor], batch: int = 7) -> RecorderState:
    """A single streamed run with its slots in canonical (output) order."""
    return canonical(run(acts, batch=batch))


def test_top_k_is_exact_with_ties_broken_by_position(acts: dict[int, torch.Tensor]) -> None:
    state = run_sorted(acts)
    for layer in LAYERS:
        rec_max = acts[layer].amax(dim=1)  # (N, n)
        ls = state.layers[layer]
        for j in range(N_NEURONS):
            expected = sorted(range(N_RECORDS), key=lambda p: (-rec_max[p, j].item(), p))[:6]
            assert ls.top_pos[:, j].tolist() == expected
            assert torch.equal(ls.top_act[:, j], acts[layer][expected][:, :, j])
            assert torch.equal(ls.top_val[:, j], rec_max[expected, j])


def test_random_sample_is_bottom_k_by_hash_shared_by_neurons(
    acts: dict[int, torch.Tensor],
) -> None:
    state = run_sorted(acts)
    expected = sorted(range(N_RECORDS), key=lambda p: record_key(7, RANDOM_SALT, p))[:5]
    assert state.rand_pos.tolist() == expected
    for layer in LAYERS:
        # (r, n, L) activations of the same records for every neuron
        assert torch.equal(state.layers[layer].rand_act, acts[layer][expected].transpose(1, 2))


def test_quantile_samples_are_bottom_k_by_hash_within_each_bin(
    acts: dict[int, torch.Tensor],
) -> None:
    state = run_sorted(acts)
    for layer in LAYERS:
        ls = state.layers[layer]
        rec_max = acts[layer].amax(dim=1)
        for j in range(N_NEURONS):
            for q in range(3):
                members = [
                    p
                    for p in range(N_RECORDS)
                    if int((rec_max[p, j] >= ls.q_bound[:, j]).sum()) == q
                ]
                expected = sorted(members, key=lambda p: record_key(7, QUANTILE_SALT, p))[:2]
                got = [p for p in ls.q_pos[q, :, j].tolist() if p != EMPTY]
                assert got == expected
                for slot, p in enumerate(got):
                    assert torch.equal(ls.q_act[q, slot, j], acts[layer][p, :, j])


def test_moments_match_numpy(acts: dict[int, torch.Tensor]) -> None:
    state = run(acts, batch=5)
    for layer in LAYERS:
        x = acts[layer].reshape(-1, N_NEURONS).double().numpy()
        mo = moments(state.layers[layer], state.n_tokens)
        assert state.n_tokens == x.shape[0]
        # batch sums are float32 (see _update_moments): float32 tolerance
        np.testing.assert_allclose(mo.mean, x.mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(mo.variance, x.var(0), rtol=1e-5)
        np.testing.assert_allclose(mo.skewness, scipy.stats.skew(x, axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            mo.kurtosis, scipy.stats.kurtosis(x, axis=0), rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(mo.firing_rate, (x > 0).mean(0))


def test_constant_neuron_has_no_skewness_or_kurtosis() -> None:
    cfg = make_config(layers=[0], n_quantiles=0)
    state = new_state(cfg)
    update(state, [0, 1], {0: torch.full((2, LENGTH, N_NEURONS), 0.5)})
    mo = moments(state.layers[0], state.n_tokens)
    assert mo.variance == [0.0] * N_NEURONS
    assert all(np.isnan(mo.skewness)) and all(np.isnan(mo.kurtosis))
    assert mo.firing_rate == [1.0] * N_NEURONS


def test_shard_merge_equals_single_run(acts: dict[int, torch.Tensor]) -> None:
    single = run_sorted(acts, batch=1)
    merged = merge([run(acts, (2, 3), batch=4), run(acts, (0, 3), batch=9), run(acts, (1, 3))])
    assert merged.n_tokens == single.n_tokens and merged.n_records == single.n_records
    assert torch.equal(merged.rand_pos, single.rand_pos)
    for layer in LAYERS:
        a, b = single.layers[layer], merged.layers[layer]
        for name in LayerState.TENSORS:
            x, y = getattr(a, name), getattr(b, name)
            if name in ("mean", "m2", "m3", "m4"):
                torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
            else:
                assert torch.equal(x, y), name


def test_merge_refuses_mismatched_or_missing_shards(acts: dict[int, torch.Tensor]) -> None:
    s0, s1 = run(acts, (0, 2)), run(acts, (1, 2))
    with pytest.raises(DatasetError, match=r"shards 0\.\.1 exactly once, got \[0\]"):
        merge([s0])
    other = run(acts, (1, 2))
    other.config.seed = 8
    with pytest.raises(DatasetError, match="seed: 7 != 8"):
        merge([s0, other])
    s1.complete = False
    with pytest.raises(DatasetError, match="incomplete"):
        merge([s0, s1])


def test_non_finite_activation_names_layer_and_records() -> None:
    state = new_state(make_config(layers=[3], n_quantiles=0))
    bad = torch.zeros(2, LENGTH, N_NEURONS)
    bad[1, 2, 5] = float("nan")
    with pytest.raises(DatasetError, match=r"layer 3: non-finite .* positions \[10, 11\]"):
        update(state, [10, 11], {3: bad})


def test_state_file_round_trip_and_corruption(
    acts: dict[int, torch.Tensor], tmp_path: Path
) -> None:
    state = run(acts)
    path = save_state(state, tmp_path / "state.safetensors")
    back = load_state(path)
    assert back.config == state.config
    assert (back.n_tokens, back.consumed, back.complete) == (state.n_tokens, N_RECORDS, True)
    for layer in LAYERS:
        for name in LayerState.TENSORS:
            assert torch.equal(
                getattr(back.layers[layer], name), getattr(state.layers[layer], name)
            )
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match="corrupt recorder state"):
        load_state(path)


def test_hash_keys_are_distinct_and_seed_dependent() -> None:
    keys = [record_key(0, RANDOM_SALT, p) for p in range(5000)]
    assert len(set(keys)) == 5000
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert keys[:10] != [record_key(1, RANDOM_SALT, p) for p in range(10)]
    assert keys[:10] != [record_key(0, QUANTILE_SALT, p) for p in range(10)]


def test_quantiles_match_numpy_linear_interpolation() -> None:
    x = torch.randn(37, 4, generator=torch.Generator().manual_seed(1))
    qs = [0.2, 0.4, 0.6, 0.8]
    expected = np.quantile(x.double().numpy(), qs, axis=0)
    np.testing.assert_allclose(quantiles(x, qs).numpy(), expected, rtol=1e-6)
