"""Task arguments as inspect's ``-T`` parser delivers them: ``a,b`` arrives as a list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai._util.config import parse_cli_args
from inspect_ai.log import list_eval_logs, read_eval_log

from neuronbench.evals import explain_neurons

DOCUMENTED = [
    # -T arguments as the README and the task / scorer docstrings write them
    ["neurons=stratified:50", "simulator=lexical"],
    ["neurons=20", "simulator=lexical"],
    ["neurons=5", "strategy=highlighted", "show_values=true", "simulator=lexical"],
    ["strategy=best_of_k", "k=8", "simulator=lexical"],
    ["strategy=baseline", "simulator=lexical", "split=test"],
    ["few_shot=none", "n_examples=10", "simulator=lexical", "calibrate=true"],
    ["neurons=0/1,0/2", "scorer=simulation,detection", "simulator=lexical"],
    ["scorer=simulation,embedding", "simulator=lexical", "neurons=0/1"],
]


def _task(dataset: Path, args: list[str]):  # noqa: ANN202
    parsed = parse_cli_args([f"dataset={dataset}", *args])
    return explain_neurons(**parsed)


def test_cli_lists_and_strings_build_the_same_task(dataset_dir: Path) -> None:
    assert parse_cli_args(["neurons=0/1,0/2"])["neurons"] == ["0/1", "0/2"]  # why this exists
    as_list = _task(dataset_dir, ["neurons=0/1,0/2", "scorer=simulation,embedding"])
    as_text = explain_neurons(
        dataset=str(dataset_dir), neurons="0/1,0/2", scorer="simulation,embedding"
    )
    for task in (as_list, as_text):
        assert [s.id for s in task.dataset] == ["test-subject-L0-N1", "test-subject-L0-N2"]
        assert len(task.scorer or []) == 2
        assert task.metadata is not None
        assert task.metadata["args"]["scorer"] == ["simulation", "embedding"]
        assert task.metadata["args"]["neurons"] == "0/1,0/2"


@pytest.mark.parametrize("args", DOCUMENTED, ids=lambda a: " ".join(a))
def test_documented_task_arguments_build(dataset_dir: Path, args: list[str]) -> None:
    task = _task(dataset_dir, args)
    assert len(task.dataset) >= 1


def test_a_list_for_a_one_value_argument_is_a_clear_error(dataset_dir: Path) -> None:
    with pytest.raises(ValueError, match="simulator='lexical,embedding': use one of"):
        _task(dataset_dir, ["simulator=lexical,embedding"])
    with pytest.raises(ValueError, match=r"neuron '9/9' not in dataset"):
        _task(dataset_dir, ["neurons=0/1,9/9"])


def test_inspect_cli_runs_listed_neurons_and_scorers(dataset_dir: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    cmd = [
        sys.executable,
        "-m",
        "inspect_ai",
        "eval",
        "neuronbench/explain_neurons",
        "--model",
        "mockllm/model",
        "-T",
        f"dataset={dataset_dir}",
        "-T",
        "strategy=baseline",
        "-T",
        "simulator=lexical",
        "-T",
        "neurons=0/1,0/2",
        "-T",
        "scorer=simulation,embedding",
        "--log-dir",
        str(logs),
        "--display",
        "none",
    ]
    env = {**os.environ, "INSPECT_LOG_FORMAT": "json"}
    # run outside the repo: there `neuronbench/explain_neurons` would read as a file path
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (info,) = list_eval_logs(str(logs))
    log = read_eval_log(info)
    assert log.status == "success", log.error
    assert log.samples is not None
    assert sorted(str(s.id) for s in log.samples) == ["test-subject-L0-N1", "test-subject-L0-N2"]
    for s in log.samples:
        assert set(s.scores or {}) == {"simulation", "embedding"}
        assert s.scores["simulation"].metadata["status"] == "ok"
        assert json.dumps(s.scores["embedding"].value)  # a real value, not an error
    assert log.eval.task_args["neurons"] == ["0/1", "0/2"]
