"""`neuronbench plant --suite v2` then `neuronbench validate --suite-split` on a small slice."""

from __future__ import annotations

import argparse
import json

from neuronbench.groundtruth.suite import DECOY_KINDS, load_suite
from neuronbench.scorers._cli import register


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_plant_v2_then_validate_per_split(tmp_path, capsys) -> None:
    out = tmp_path / "suite"
    assert run(["plant", "--suite", "v2", "--subject", "tiny", "--tokens", "8000", "--neurons",
                "24", "--top-k", "8", "--random", "6", "--out", str(out), "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    suite = load_suite(out)
    assert summary["neurons"] == len(suite.neurons) > 0
    assert summary["digest"] == suite.digest()
    split = max(summary["splits"], key=summary["splits"].get)
    assert run(["validate", str(out), "--simulator", "lexical", "--suite-split", split,
                "--json"]) == 0  # fmt: skip
    captured = capsys.readouterr().out
    last = json.loads(captured.strip().splitlines()[-1])
    report = last["scorers"]["simulator:lexical"]
    assert report["n_neurons"] == summary["splits"][split]
    assert set(report["per_kind"]) == set(DECOY_KINDS)
    assert set(report["per_split"]) == {split}
    assert report["paraphrase_gap"] is None or report["paraphrase_gap"] >= 0.0
    # the rule executor comes first: it wins exactly the pairs it can decide
    assert list(last["scorers"])[0] == "ceiling:rules"
    ceiling = last["scorers"]["ceiling:rules"]["decidable"]
    for kind in DECOY_KINDS:
        n = ceiling[f"n_{kind}"]
        assert n == report["decidable"][f"n_{kind}"]
        if n:
            assert ceiling[kind] == 1.0
    assert 0 < ceiling["n_pairs"] <= report["n_neurons"] * len(DECOY_KINDS)
    assert "on decidable pairs" in captured


def test_validate_notes_that_a_trained_simulator_is_not_held_out_on_train(tmp_path, capsys) -> None:
    out = tmp_path / "suite"
    assert run(["plant", "--suite", "v2", "--subject", "tiny", "--tokens", "8000", "--neurons",
                "12", "--top-k", "6", "--random", "4", "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    assert run(["validate", str(out), "--simulator", "lexical,reader", "--suite-split", "train",
                "--n-records", "2"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "reader were trained on the suite's train split" in err
