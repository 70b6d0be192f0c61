"""Recorder state without a model: every summary against a brute-force recomputation.

Activations are rounded to one decimal so many records tie on their max: the tie rule
(lower position first) must make streaming, any batching and any sharding agree exactly.
The brute force states the sampling plainly: per neuron, top = k best records; random =
the r smallest per-neuron random keys among the rest; each bin = the p smallest quantile
keys among what is neither.
"""

from __future__ import annotations

import json
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
    neuron_key,
    neuron_keys,
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


BOUNDS = [-0.2, 1.0]


def run(
    acts: dict[int, torch.Tensor],
    shard: tuple[int, int] = (0, 1),
    batch: int = 7,
    n_records: int = N_RECORDS,
) -> RecorderState:
    cfg = make_config(shard_index=shard[0], shard_count=shard[1])
    state = new_state(cfg)
    for ls in state.layers.values():
        ls.q_bound = torch.tensor([[b] * N_NEURONS for b in BOUNDS])
    positions = [p for p in range(n_records) if p % shard[1] == shard[0]]
    for i in range(0, len(positions), batch):
        chunk = positions[i : i + batch]
        update(state, chunk, {layer: a[chunk] for layer, a in acts.items()})
        state.consumed += len(chunk)
    state.complete = True
    return state


def run_sorted(acts: dict[int, torch.Tensor], batch: int = 7, **kw: Any) -> RecorderState:
    """A single streamed run with its slots in canonical (output) order."""
    return canonical(run(acts, batch=batch, **kw))


def brute_samples(
    rec_max: torch.Tensor, layer: int, j: int, k: int = 6, r: int = 5, p: int = 2
) -> tuple[list[int], list[int], list[list[int]]]:
    """Neuron j's top, random and per-bin positions, from every record's max (N, n)."""
    n = rec_max.shape[0]
    top = sorted(range(n), key=lambda i: (-rec_max[i, j].item(), i))[:k]
    rest = [i for i in range(n) if i not in top]
    rand = sorted(rest, key=lambda i: neuron_key(7, RANDOM_SALT, layer, j, i))[:r]
    left = [i for i in rest if i not in rand]
    bounds = torch.tensor(BOUNDS)  # float32, as the state compares
    bins = []
    for q in range(len(BOUNDS) + 1):
        members = [i for i in left if int((rec_max[i, j] >= bounds).sum()) == q]
        bins.append(sorted(members, key=lambda i: neuron_key(7, QUANTILE_SALT, layer, j, i))[:p])
    return top, rand, bins


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


@pytest.mark.parametrize("n_records", [N_RECORDS, 13])
def test_samples_per_neuron_are_the_brute_force_cascade(
    acts: dict[int, torch.Tensor], n_records: int
) -> None:
    """13 records < top + random + bins: the later stages get only what is left."""
    state = run_sorted(acts, n_records=n_records)
    for layer in LAYERS:
        ls = state.layers[layer]
        rec_max = acts[layer][:n_records].amax(dim=1)  # (N, n)
        for j in range(N_NEURONS):
            top, rand, bins = brute_samples(rec_max, layer, j)
            assert ls.top_pos[:, j].tolist() == top
            assert torch.equal(ls.top_act[:, j], acts[layer][top][:, :, j])
            assert torch.equal(ls.top_val[:, j], rec_max[top, j])
            assert [p for p in ls.rand_pos[:, j].tolist() if p != EMPTY] == rand, (layer, j)
            for slot, p in enumerate(rand):
                assert torch.equal(ls.rand_act[slot, j], acts[layer][p, :, j])
                assert ls.rand_key[slot, j] == neuron_key(7, RANDOM_SALT, layer, j, p)
            for q, expected in enumerate(bins):
                got = [p for p in ls.q_pos[q, :, j].tolist() if p != EMPTY]
                assert got == expected, (layer, j, q)
                for slot, p in enumerate(got):
                    assert torch.equal(ls.q_act[q, slot, j], acts[layer][p, :, j])
            kept = [*top, *rand, *(p for b in bins for p in b)]
            assert len(set(kept)) == len(kept)  # the three samples are disjoint


def test_random_samples_differ_between_neurons(acts: dict[int, torch.Tensor]) -> None:
    state = run_sorted(acts)
    samples = {
        (layer, j): tuple(state.layers[layer].rand_pos[:, j].tolist())
        for layer in LAYERS
        for j in range(N_NEURONS)
    }
    # 5 of 114 non-top records each: independent samples almost never coincide
    assert len(set(samples.values())) == len(samples)


def test_moments_match_numpy(acts: dict[int, torch.Tensor]) -> None:
    state = run(acts, batch=5)
    for layer in LAYERS:
        x = acts[layer].reshape(-1, N_NEURONS).double().numpy()
        mo = moments(state.layers[layer], state.n_tokens)
        assert state.n_tokens == x.shape[0]
        # exact sums of float64 powers: float64 tolerance
        np.testing.assert_allclose(mo.mean, x.mean(0), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(mo.variance, x.var(0), rtol=1e-13)
        np.testing.assert_allclose(mo.skewness, scipy.stats.skew(x, axis=0), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(
            mo.kurtosis, scipy.stats.kurtosis(x, axis=0), rtol=1e-11, atol=1e-13
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


@pytest.mark.parametrize("n_records", [N_RECORDS, 13])
def test_shard_merge_equals_single_run(acts: dict[int, torch.Tensor], n_records: int) -> None:
    """13 records: shards' top-k are not full, so the merge moves records down the cascade."""
    single = run_sorted(acts, batch=1, n_records=n_records)
    merged = merge(
        [
            run(acts, (2, 3), batch=4, n_records=n_records),
            run(acts, (0, 3), batch=9, n_records=n_records),
            run(acts, (1, 3), n_records=n_records),
        ]
    )
    assert merged.n_tokens == single.n_tokens and merged.n_records == single.n_records
    for layer in LAYERS:
        a, b = single.layers[layer], merged.layers[layer]
        for name in LayerState.TENSORS:
            assert torch.equal(getattr(a, name), getattr(b, name)), name  # moments too
        assert moments(a, single.n_tokens) == moments(b, merged.n_tokens)


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


@pytest.mark.parametrize("version", [1, 2])
def test_states_of_older_formats_are_refused(tmp_path: Path, version: int) -> None:
    """A /1 state holds one random sample for all neurons, a /2 state float moments: resuming
    or merging either would mix two methods, so it is refused with what to do."""
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    header = {"format": f"neuronbench-recorder-state/{version}", "config": make_config().to_dict()}
    save_file({"rand_pos": torch.zeros(5, dtype=torch.int64)}, str(path),
              metadata={"neuronbench": json.dumps(header)})  # fmt: skip
    with pytest.raises(DatasetError, match=r"old.safetensors: .*older neuronbench .*record again"):
        load_state(path)


def test_hash_keys_are_distinct_and_seed_dependent() -> None:
    keys = [record_key(0, RANDOM_SALT, p) for p in range(5000)]
    assert len(set(keys)) == 5000
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert keys[:10] != [record_key(1, RANDOM_SALT, p) for p in range(10)]
    assert keys[:10] != [record_key(0, QUANTILE_SALT, p) for p in range(10)]


def test_neuron_keys_match_the_scalar_reference_and_differ_per_neuron() -> None:
    pos = torch.tensor([0, 1, 2, 7, 2**40, 2**62, EMPTY])
    neurons = torch.tensor([0, 1, 5, 1535, 2**20])
    got = neuron_keys(3, RANDOM_SALT, 29, pos[:, None], neurons)  # (7, 5)
    for i, p in enumerate(pos.tolist()):
        for c, j in enumerate(neurons.tolist()):
            want = EMPTY if p == EMPTY else neuron_key(3, RANDOM_SALT, 29, j, p)
            assert got[i, c].item() == want
    per_neuron = [[neuron_key(0, RANDOM_SALT, 1, j, p) for p in range(3000)] for j in range(3)]
    assert all(len(set(keys)) == 3000 for keys in per_neuron)  # no ties to break
    # independent streams: per neuron, per layer, per salt, per seed
    orders = {
        tuple(sorted(range(50), key=lambda p: neuron_key(*args, p))[:5])
        for args in [(0, 0, 1, 0), (0, 0, 1, 1), (0, 0, 2, 0), (0, 1, 1, 0), (1, 0, 1, 0)]
    }
    assert len(orders) == 5


def test_quantiles_match_numpy_linear_interpolation() -> None:
    x = torch.randn(37, 4, generator=torch.Generator().manual_seed(1))
    qs = [0.2, 0.4, 0.6, 0.8]
    expected = np.quantile(x.double().numpy(), qs, axis=0)
    np.testing.assert_allclose(quantiles(x, qs).numpy(), expected, rtol=1e-6)


def test_exact_moment_sums_do_not_depend_on_order_or_batching() -> None:
    """Values across float32's range (1e-30 next to 1e30, negatives, subnormals) summed in
    any grouping give the same limbs, and the integers equal Python's exact sum."""
    from fractions import Fraction

    from neuronbench.subjects._moments import (
        BASE,
        accumulate,
        exact_sums,
        new_psum,
        record_sums,
    )

    g = torch.Generator().manual_seed(1)
    scale = 10.0 ** torch.randint(-30, 31, (40, 5, 3), generator=g).float()
    x = (torch.randn(40, 5, 3, generator=g) * scale).float()
    x[0, 0, 0] = torch.finfo(torch.float32).smallest_normal / 8  # subnormal
    x[1, :, 1] = -3e38
    one = new_psum(3)
    accumulate(one, record_sums(x))
    perm = torch.randperm(40, generator=g).tolist()
    again = new_psum(3)
    for i in range(0, 40, 3):
        accumulate(again, record_sums(x[perm[i : i + 3]]))
    assert torch.equal(one, again)
    per_record = record_sums(x).tolist()  # (4, B, n): each record's float64 power sums
    sums = exact_sums(one)
    for k in range(4):
        for j in range(3):
            expected = sum(Fraction(v) for v in (per_record[k][b][j] for b in range(40)))
            assert Fraction(sums[k][j]) * Fraction(2) ** BASE[k] == expected, (k, j)


def sparse_acts(n_records: int = N_RECORDS) -> dict[int, torch.Tensor]:
    """SAE-like latents: each fires on a few records (rates from 0 to ~1/3 of records),
    zero elsewhere; one latent's quiet records are -0.0, which must keep its sign."""
    g = torch.Generator().manual_seed(3)
    out = {}
    for layer in LAYERS:
        x = torch.randn(n_records, LENGTH, N_NEURONS, generator=g).round(decimals=1).abs()
        rate = torch.linspace(0.0, 0.35, N_NEURONS)
        fires = torch.rand(n_records, 1, N_NEURONS, generator=g) < rate
        tokens = torch.rand(n_records, LENGTH, N_NEURONS, generator=g) < 0.2
        x = torch.where(fires & tokens, x, 0.0)
        x[:, :, 5] = torch.where(x[:, :, 5] == 0, -0.0, x[:, :, 5])
        out[layer] = x
    return out


@pytest.mark.parametrize("n_records", [N_RECORDS, 13])
def test_sparse_latents_are_the_brute_force_cascade_and_merge_exactly(
    n_records: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mostly all-zero records: they share the pool's zero row, garbage rows are compacted
    away while streaming (slack 0 here, so it happens), and the dense view is still every
    sample exactly, bit for bit (-0.0 included), in a single run and a 3-shard merge."""
    monkeypatch.setattr("neuronbench.subjects._state.COMPACT_SLACK", 0)
    acts = sparse_acts()
    single = run_sorted(acts, batch=3, n_records=n_records)
    for layer in LAYERS:
        ls = single.layers[layer]
        rec_max = acts[layer][:n_records].amax(dim=1)
        for j in range(N_NEURONS):
            top, rand, bins = brute_samples(rec_max, layer, j)
            assert ls.top_pos[:, j].tolist() == top
            want = acts[layer][top][:, :, j]
            assert torch.equal(ls.top_act[:, j].view(torch.int32), want.view(torch.int32))
            assert [p for p in ls.rand_pos[:, j].tolist() if p != EMPTY] == rand, (layer, j)
            for slot, p in enumerate(rand):
                want = acts[layer][p, :, j].view(torch.int32)
                assert torch.equal(ls.rand_act[slot, j].view(torch.int32), want)
            for q, expected in enumerate(bins):
                assert [p for p in ls.q_pos[q, :, j].tolist() if p != EMPTY] == expected
        # only non-zero records hold a row; compaction kept garbage <= live rows (+1 batch)
        kept = torch.cat([ls.top_act.flatten(0, 1), ls.rand_act.flatten(0, 1),
                          ls.q_act.flatten(0, 2)])  # fmt: skip
        nonzero = int((kept.view(torch.int32) != 0).any(dim=-1).sum())
        assert ls.live_rows() == nonzero
        assert nonzero < kept.shape[0]  # zero records share row 0
        assert ls.used - 1 <= 2 * nonzero + 3 * N_NEURONS
    merged = merge(
        [
            run(sparse_acts(), (2, 3), batch=4, n_records=n_records),
            run(sparse_acts(), (0, 3), batch=9, n_records=n_records),
            run(sparse_acts(), (1, 3), n_records=n_records),
        ]
    )
    for layer in LAYERS:
        a, b = single.layers[layer], merged.layers[layer]
        for name in LayerState.TENSORS:
            x, y = getattr(a, name), getattr(b, name)
            assert torch.equal(x.view(torch.int32) if x.dtype == torch.float32 else x,
                               y.view(torch.int32) if y.dtype == torch.float32 else y), name  # fmt: skip
        assert b.used - 1 == b.live_rows()  # a merge drops every row no sample kept


def test_rarely_firing_latents_take_rows_for_what_they_hold(tmp_path: Path) -> None:
    """2,000 latents, 3 of which ever fire: the pool holds their non-zero records only,
    not 2,000 x (top + random + bins) records, and a checkpoint stores just those."""
    n, cfg = 2000, make_config(layers=[0], d_mlp=2000)
    state = new_state(cfg)
    state.layers[0].q_bound = torch.tensor([[b] * n for b in BOUNDS])
    g = torch.Generator().manual_seed(0)
    for i in range(0, 60, 6):
        x = torch.zeros(6, LENGTH, n)
        x[:, :, [7, 800, 1999]] = torch.rand(6, LENGTH, 3, generator=g)
        update(state, list(range(i, i + 6)), {0: x})
    ls = state.layers[0]
    slots = 6 + 5 + 2  # maxima in [0, 1): one bin (of 3) gets records
    assert ls.live_rows() == 3 * slots  # 60 records fill every such slot of the 3 latents
    assert ls.used - 1 <= 2 * 3 * slots + 1024
    back = load_state(save_state(state, tmp_path / "s.safetensors")).layers[0]
    assert back.pool.shape == (1 + 3 * slots, LENGTH)
    assert torch.equal(back.top_act, ls.top_act) and torch.equal(back.q_act, ls.q_act)
    fired = ls.top_act[:, [7, 800, 1999]]
    assert bool((fired != 0).any(dim=-1).all())
