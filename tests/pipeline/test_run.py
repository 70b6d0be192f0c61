"""``neuronbench run`` end to end on a tiny subject, and the README / CI contract.

The LLM strategies are covered with mockllm in tests/evals; here the pipeline runs the
non-LLM baseline and controls with the lexical simulator, so the whole record -> explain
-> score -> leaderboard path runs offline in seconds, and a rerun must resume, not redo.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from neuronbench.pipeline import RunConfig, run

ROOT = Path(__file__).resolve().parents[2]


def _config(out: Path) -> RunConfig:
    return RunConfig(
        out=str(out),
        subject="tiny-llama",
        corpus="austen",
        layers="all",
        # 64 records: 40 top per neuron, so each neuron's random sample (disjoint from
        # its top records) still has records to draw from
        tokens=4096,
        batch_size=8,
        neurons=4,
        strategies=[],
        baselines=["baseline", "empty", "shuffled"],
        simulators=["lexical"],
        n_score_records=2,
        viewer=False,
        sites=["mlp"],
    )


def test_run_writes_leaderboard_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run(_config(out))
    lb = json.loads((out / "leaderboard.json").read_text())
    strategies = sorted(r["strategy"] for r in lb["rows"])
    assert strategies == ["baseline", "empty", "shuffled"]
    empty = next(r for r in lb["rows"] if r["strategy"] == "empty")
    # the empty explanation is simulated: lexically a constant 0, scored 0 and counted
    assert empty["n_scored"] == 4 and empty["unscored"] == 0
    assert empty["constant_simulation"] == 4 and empty["mean"] == 0.0
    assert (out / "leaderboard.md").read_text().count("\n| ") >= 4
    assert sorted(p.name for p in (out / "plots").glob("*.png"))
    assert summary["rows"] == 3 and (out / "run.json").exists()

    card = (out / "dataset" / "card.json").read_text()
    logs = sorted(p.name for p in (out / "logs").rglob("*.eval"))
    run(_config(out))  # resumes: same recording, no new eval logs
    assert (out / "dataset" / "card.json").read_text() == card
    assert sorted(p.name for p in (out / "logs").rglob("*.eval")) == logs


def test_run_refuses_a_different_recording_in_the_same_out(tmp_path: Path) -> None:
    from neuronbench.datasets import DatasetError

    out = tmp_path / "out"
    cfg = _config(out)
    cfg.baselines, cfg.simulators = ["empty"], ["lexical"]
    run(cfg)
    cfg.tokens = 2048
    with pytest.raises(DatasetError, match="different recording"):
        run(cfg)


def _readme_block(after: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(after)
    match = re.search(r"```bash\n(.*?)\n```", text[start:], re.S)
    assert match, f"no bash block after {after!r} in README.md"
    return match.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_cmd = _readme_block("**2. Install and run the tests**")
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines(), "README's test command and .ci/run have drifted apart"
    assert "set -euo pipefail" in ci  # pytest's exit code 5 (no tests) fails the run
    main_cmd = _readme_block("**1. Install and run the main job**")
    assert main_cmd.endswith("neuronbench run")
    installs = [part.strip() for part in main_cmd.split("&&")[:2]]
    assert installs == [part.strip() for part in test_cmd.split("&&")[2:4]]


def test_cli_lists_every_command_and_reports_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from neuronbench.cli import build_parser, main

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {
        "run",
        "record",
        "merge",
        "show",
        "export-openai",
        "import-openai",
        "plant",
        "validate",
        "recovery",
        "leaderboard",
        "viewer",
    } <= set(commands)
    rc = main(["show", str(tmp_path / "missing"), "0", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "missing" in err and "Traceback" not in err
