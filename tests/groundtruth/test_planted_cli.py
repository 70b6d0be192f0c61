"""`neuronbench plant` and `neuronbench validate --json` on the tiny corpus and tokenizer."""

from __future__ import annotations

import argparse
import json

from neuronbench.datasets import NeuronDataset
from neuronbench.groundtruth.planted import load_planted
from neuronbench.scorers._cli import register


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_plant_then_validate_json(tmp_path, capsys) -> None:
    out = tmp_path / "planted"
    assert run(["plant", "--corpus", "tiny", "--subject", "tiny", "--tokens", "1024",
                "--record-length", "32", "--top-k", "8", "--random", "6", "--out", str(out)]) == 0  # fmt: skip
    ds = NeuronDataset.load(out)
    assert ds.card.subject == "planted" and len(ds) == len(load_planted(ds)) >= 20
    capsys.readouterr()
    assert run(["validate", str(out), "--simulator", "lexical", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last["truth_beats_decoys"]) == {"simulator:lexical"}
    assert 0.0 <= last["auc"]["simulator:lexical"] <= 1.0
    assert set(last["scorers"]["simulator:lexical"]["per_kind"]) == {
        "too_broad",
        "too_narrow",
        "different",
    }
