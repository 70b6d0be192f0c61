"""The trained simulator: its network is MiniLM, it loads offline, matches its card, trains end to end."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neuronbench.scorers.simulators import trained as T  # noqa: E402
from neuronbench.scorers.simulators import training as TR  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the trained simulator tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_untrained_network_is_minilm() -> None:
    """Bottom + fused layers on one sequence reproduce all-MiniLM-L6-v2's hidden states."""
    from transformers import AutoModel

    cfg = T.ModelConfig(fused_layers=2)
    net = T.build_network(cfg)
    net.load_state_dict(T.base_state_dict(cfg), strict=False)
    net.eval()
    hf = AutoModel.from_pretrained(T.base_model_dir()).eval()
    ids = torch.tensor([T.Tokenizer().explanation("family relations, such as mother", 64).ids])
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        x = net.encode(ids, mask)
        for layer in net.fused:
            x = layer(x, mask)
        ref = hf(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    assert torch.allclose(x, ref, atol=1e-4)


TOKENS = ["The", "Ġfather", "Ġsaid", ",", 'Ġ"', "quick", "ly", '!"', "Ċ", "Ċ", "ĠHe", " ", "Ġwent"]


@pytest.mark.parametrize("limit", [200, 6, 3])
def test_tokens_map_onto_wordpieces(limit: int) -> None:
    """Every subject token gets one pooled state, in order, whatever the chunk size."""
    chunks = T.Tokenizer().record(TOKENS, limit)
    assert sum(len(c.blank) for c in chunks) == len(TOKENS)  # type: ignore[arg-type]
    for c in chunks:
        assert c.pool is not None and c.blank is not None
        assert len(c.ids) <= max(limit, 3) or c.pool.shape[0] == 1  # one long token may overflow
        np.testing.assert_allclose(c.pool.sum(axis=1), 1.0, rtol=1e-6)
        assert c.ids[0] == T.Tokenizer().cls and c.ids[-1] == T.Tokenizer().sep
    blank = np.concatenate([c.blank for c in chunks])  # type: ignore[misc]
    case = np.concatenate([c.case[1:-1] for c in chunks])  # type: ignore[index]
    assert case.tolist()[:3] == [1, 0, 0]  # "The" capitalised: MiniLM is uncased, the input is not
    assert blank.tolist() == [float(t == " ") for t in TOKENS]  # only the bare space has no piece
    if limit == 200:  # "quick" and "ly" share the wordpiece "quickly"; newlines are readable
        pool = chunks[0].pool
        assert pool is not None
        assert np.array_equal(pool[5], pool[6])
        assert T.Tokenizer().cls not in [chunks[0].ids[int(np.argmax(pool[8]))]]


def test_match_features_spell_out_what_the_explanation_names() -> None:
    """Words, quoted strings (punctuation too), -suffixes and stems, per overlapping token."""
    terms = T.ExplanationTerms.of('words ending in "-hes"; the words "sister", \'door\' and ";"')
    assert terms.suffixes == ("hes",) and {"sister", "door", ";"} <= terms.quoted
    tokens = ["The", "Ġspee", "ches", "Ġof", "Ġsisters", ";", "Ġdoor", "Ġhes"]
    f = T.match_features(terms, tokens)
    col = {name: f[:, i].tolist() for i, name in enumerate(T.MATCHES)}
    assert col["word"] == [1, 0, 0, 0, 0, 0, 1, 1]  # "the", "door", "hes" are words of it
    assert col["quoted"] == [0, 0, 0, 0, 0, 1, 1, 0]
    assert col["suffix"] == [0, 1, 1, 0, 0, 0, 0, 0]  # both tokens of "speeches"; not "hes" itself
    assert col["stem"] == [0, 0, 0, 0, 1, 0, 1, 0]  # "sisters" ~ "sister", "door" ~ "door"


def _tiny_examples() -> list[TR.Example]:
    """Two explanations with exact targets on a handful of records."""
    rng = np.random.default_rng(0)
    vocab = ["Ġthe", "Ġmother", "Ġfather", "Ġhouse", "Ġdoor", "Ġwalked", ",", "Ġand", "Ċ"]
    family = {"Ġmother", "Ġfather"}
    out = []
    for i in range(12):
        toks = tuple(str(t) for t in rng.choice(vocab, size=10))
        fam = np.array([float(t in family) for t in toks], dtype=np.float32)
        door = np.array([float(t == "Ġdoor") for t in toks], dtype=np.float32)
        out.append(TR.Example("family relations such as mother and father", toks, fam, f"n{i}"))
        out.append(TR.Example('the word "door"', toks, door, f"n{i}"))
    return out


def test_tiny_training_run_saves_a_loadable_deterministic_simulator(tmp_path: Path) -> None:
    examples = _tiny_examples()
    opts = TR.TrainOptions(
        steps=3, batch=4, evals=1, threads=1, config=T.ModelConfig(fused_layers=1)
    )
    result = TR.train(examples, opts)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["loss"])
    out = T.save_model(result.net, opts.config, tmp_path / "sim", {"recipe": result.recipe()})
    assert (out / T.WEIGHTS_FILE).stat().st_size < 20_000_000  # fused layer + head in fp16 only
    sim = T.TrainedSimulator(path=str(out))
    records = [list(e.tokens) for e in examples[::2][:4]] + [TOKENS]
    first = asyncio.run(sim.simulate("family relations", records))
    again = asyncio.run(T.TrainedSimulator(path=str(out)).simulate("family relations", records))
    assert first.predictions is not None and again.predictions is not None
    assert [len(p) for p in first.predictions] == [len(r) for r in records]
    assert all(0.0 <= v <= 10.0 for p in first.predictions for v in p)
    assert first.predictions == again.predictions  # deterministic, and the cache changes nothing
    # the saved fp16 weights give what the trained network gives (up to fp16 rounding)
    direct = T.TrainedModel(result.net, opts.config).predict("family relations", records)
    np.testing.assert_allclose(np.concatenate(direct), np.concatenate(first.predictions), atol=0.05)
    # one record at a time gives what the batch gives (padding does not leak)
    alone = sim.model().predict("family relations", [records[-1]])
    np.testing.assert_allclose(alone[0], first.predictions[-1], atol=1e-4)


def test_missing_weights_is_one_clear_error(tmp_path: Path) -> None:
    from neuronbench.datasets.errors import DatasetError

    (tmp_path / T.CONFIG_FILE).write_text(json.dumps({"config": {}}))
    with pytest.raises(DatasetError, match="train-simulator"):
        T.load_model(tmp_path)


def test_registry_builds_the_trained_simulator() -> None:
    from neuronbench.scorers.registry import make_simulator, simulator_needs_model

    assert not simulator_needs_model("trained")
    assert isinstance(make_simulator("trained", None), T.TrainedSimulator)


def test_shipped_model_loads_offline_and_reproduces_its_card(no_network: None) -> None:
    """The figures recorded at training time on a fixed dev subset come out again."""
    card = json.loads((T.MODEL_DIR / T.CONFIG_FILE).read_text())
    check = card["dev_check"]
    neurons = TR.load_check_set(T.MODEL_DIR / check["file"])
    model = T.load_model()
    scores = TR.candidate_scores(model.predict, neurons)
    for key, row in check["scores"].items():  # every correlation, to within thread-count noise
        for kind, value in row.items():
            assert scores[key][kind] == pytest.approx(value, abs=5e-3), (key, kind)
    # the card's figures, allowing one near-tie of the subset to flip
    assert TR.validity_figures(scores) == pytest.approx(check["figures"], abs=0.09)
    assert (T.MODEL_DIR / "MODEL_CARD.md").is_file()
    total = sum(f.stat().st_size for f in T.MODEL_DIR.iterdir())
    assert total <= 50 * 2**20


def test_cli_has_train_simulator() -> None:
    from neuronbench.cli import build_parser

    args = build_parser().parse_args(
        ["train-simulator", "--out", "x", "--steps", "3", "--seed", "1"]
    )
    assert (args.out, args.steps, args.seed, args.threads) == ("x", 3, 1, 2)
    assert args.extra_suite_seeds == [] and args.extra_suite_neurons is None
    args = build_parser().parse_args(
        ["train-simulator", "--extra-suite-seeds", "1", "2", "--extra-suite-tokens", "300000"]
    )
    assert (args.extra_suite_seeds, args.extra_suite_tokens) == ([1, 2], 300_000)


# ---------------------------------------------------------------- extra training suites: no leakage


@pytest.fixture(scope="module")
def slices() -> tuple[list, list]:  # type: ignore[type-arg]
    """Two small corpus slices (document orders 0 and 1) of the tiny tokenizer."""
    from neuronbench.groundtruth.suite import tokenize_corpus
    from neuronbench.subjects.models import tiny_tokenizer

    return tuple(  # type: ignore[return-value]
        tokenize_corpus(tiny_tokenizer(), "austen", n_tokens=6_000, seed=s) for s in (0, 1)
    )


def _gen(records: list, seed: int, splits: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
    from neuronbench.groundtruth.suite import generate

    return generate(records, seed=seed, n_neurons=50, min_firing=8, splits=splits)


def test_extra_suite_keeps_the_reference_splits_and_adds_no_held_out_concept(slices) -> None:  # type: ignore[no-untyped-def]
    from neuronbench.groundtruth.suite import UNASSIGNED

    ref = _gen(slices[0], 0)
    # its own split map changes nothing: the override is the identity on the reference
    assert _gen(slices[0], 0, ref.info["splits"]).digest() == ref.digest()
    free = _gen(slices[1], 1)
    extra = _gen(slices[1], 1, ref.info["splits"])
    known = ref.info["splits"]
    for n in extra.neurons:
        assert n.split == known.get(n.group, UNASSIGNED)
    # without the fixed map, the other slice's greedy fill would move groups between splits
    moved = {g for g, s in free.info["splits"].items() if known.get(g, s) != s}
    groups, concepts = TR.held_out(ref)
    TR.check_no_leak(ref, extra)  # passes
    train = extra.split("train")
    assert train and not any(n.group in groups or n.concept in concepts for n in train)
    # ... and its train split would name held-out concepts, which the check refuses
    assert moved and any(n.group in groups for n in free.split("train"))
    with pytest.raises(ValueError, match="held-out"):
        TR.check_no_leak(ref, free)


def test_leak_check_catches_a_held_out_concept_or_group(slices) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from neuronbench.errors import UsageError

    ref = _gen(slices[0], 0)
    extra = _gen(slices[1], 1, ref.info["splits"])
    held = next(n for n in ref.neurons if n.split != "train")
    victim = extra.split("train")[0]
    # a decoy naming a dev/test concept
    ex = dict(victim.explanations)
    ex["different"] = dataclasses.replace(ex["different"], concepts=(held.concept,))
    bad = dataclasses.replace(victim, explanations=ex)
    with pytest.raises(ValueError, match=f"{victim.key}.*{held.concept}"):
        TR.check_no_leak(ref, dataclasses.replace(extra, neurons=[bad]))
    # a neuron whose group is a dev/test group
    bad = dataclasses.replace(victim, group=held.group)
    with pytest.raises(ValueError, match="held-out"):
        TR.check_no_leak(ref, dataclasses.replace(extra, neurons=[bad]))
    # a group the reference never assigned
    bad = dataclasses.replace(victim, group="no-such-group")
    with pytest.raises(ValueError, match="no-such-group"):
        TR.check_no_leak(ref, dataclasses.replace(extra, neurons=[bad]))
    with pytest.raises(UsageError, match="seed 0"):
        TR.extra_suites(None, ref, [0], {}, print)


def test_model_card_shows_the_ceiling_and_decidable_rows() -> None:
    """A card built from a run's record prints the rule executor's row and the decidable table."""
    meta = json.loads((T.MODEL_DIR / T.CONFIG_FILE).read_text())
    config = T.ModelConfig.from_dict(meta["config"])
    ceiling = {"all_three": 0.62, "too_broad": 0.62, "n": 89.0}
    decidable = {"all_three": 0.55, "too_broad": 0.81, "n_too_broad": 55.0, "n_pairs": 300.0}
    card = TR.model_card(
        {**meta, "ceiling": {"dev": ceiling}, "decidable": {"dev": decidable}}, config
    )
    assert "| dev: ceiling (rule executor) | 0.62 | – | 0.62 |" in card
    assert "| dev | 0.55 | – | 0.81 |" in card
    assert "dev: n_too_broad 55, n_pairs 300" in card
    # a record without them (older runs) still renders, with no ceiling row
    older = TR.model_card(meta, config)
    assert "ceiling (rule executor) |" not in older and "decidable" not in older
