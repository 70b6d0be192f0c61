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
    with pytest.raises(ValueError, match="simulator='lexical,embedding': unknown simulator"):
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


# ------------------------------------------------------- bad arguments fail in one line

REPO = Path(__file__).resolve().parents[2]
TASK_SPEC = f"{REPO / 'neuronbench' / 'evals' / 'task.py'}@explain_neurons"


def _corrupt_copy(dataset: Path, into: Path) -> Path:
    import shutil

    shutil.copytree(dataset, into)
    (next(iter(sorted((into / "data").glob("*.parquet"))))).write_bytes(b"garbage")
    return into


def _bad_cases(dataset: Path, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """``-T`` arguments the issue's user typed, each with the text its one line must hold."""
    runnable = [f"dataset={dataset}", "strategy=baseline", "simulator=lexical", "scorer=none"]
    return {
        "missing dataset": ([f"dataset={tmp_path / 'nope'}"], "no such dataset directory"),
        "strategy typo": (
            [f"dataset={dataset}", "strategy=higlighted"],
            "did you mean 'highlighted'?",
        ),
        "no neurons": ([*runnable, "neurons=0"], "need at least 1 neuron"),
        "split typo": ([f"dataset={dataset}", "split=tset"], "did you mean 'test'?"),
        "corrupt parquet": (
            [f"dataset={_corrupt_copy(dataset, tmp_path / 'corrupt')}"],
            "corrupt or truncated parquet file",
        ),
        # every other argument valid: without the check this eval would run and log
        "argument name typo": (
            [*runnable, "nuerons=3"],
            "unknown task argument -T nuerons (did you mean 'neurons'?); valid arguments:",
        ),
    }


def test_inspect_eval_stops_on_bad_arguments_in_one_line(dataset_dir: Path, tmp_path: Path) -> None:
    """Through the real ``inspect eval``: one line, no traceback, non-zero, no log written.

    inspect prints a PrerequisiteError on stdout as its bare message; ``COLUMNS`` stops rich
    hard-wrapping the line at 80 columns on a pipe (a terminal wraps at its own width).
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "1000", "NO_COLOR": "1"}
    runs = {}
    for name, (args, _) in _bad_cases(dataset_dir, tmp_path).items():
        log_dir = tmp_path / "logs" / name.replace(" ", "-")
        cmd = [sys.executable, "-m", "inspect_ai", "eval", TASK_SPEC, "--model", "mockllm/model"]
        cmd += [x for a in args for x in ("-T", a)]
        cmd += ["--log-dir", str(log_dir), "--display", "plain"]
        runs[name] = (
            subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=tmp_path,
            ),
            log_dir,
        )
    expected = {name: text for name, (_, text) in _bad_cases(dataset_dir, tmp_path / "x").items()}
    for name, (proc, log_dir) in runs.items():
        out, err = proc.communicate(timeout=300)
        lines = [line for line in (out + err).splitlines() if line.strip()]
        assert proc.returncode != 0, name
        assert "Traceback" not in out + err, (name, err[-2000:])
        assert len(lines) == 1, (name, lines)
        assert lines[0].startswith("explain_neurons: "), (name, lines)
        assert expected[name] in lines[0], (name, lines)
        assert not log_dir.exists(), f"{name}: an eval started (log dir written)"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["n_examples=abc"], "-T n_examples='abc': expected a whole number"),
        (["show_values=ture"], "-T show_values='ture': expected true or false"),
        (["threshold=1.5"], "-T threshold=1.5: must be between 0.0 and 1.0"),
        (["k=0", "strategy=best_of_k"], "-T k=0: must be at least 1"),
        (["scorer=simulaton"], "did you mean 'simulation'?"),
        (["shuffle_source=fiel"], "did you mean 'file'?"),
        (["neurons=2.5"], "-T neurons=2.5: expected a count"),
        (["dataset=[x]"], "no such dataset directory"),
    ],
)
def test_other_bad_values_are_one_line_prerequisite_errors(
    dataset_dir: Path, args: list[str], expected: str
) -> None:
    """Values inspect's parser hands over as they are: checked before the dataset is read."""
    from inspect_ai._util.error import PrerequisiteError

    with pytest.raises(PrerequisiteError) as e:
        _task(dataset_dir, args) if not args[0].startswith("dataset=") else explain_neurons(
            **parse_cli_args(args)
        )
    assert expected in str(e.value)
    assert "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)  # Python callers catch it as before


def test_markup_in_a_message_stays_literal(tmp_path: Path) -> None:
    """inspect renders the message as rich markup: a path with brackets must print as typed."""
    from rich.console import Console

    from neuronbench.evals._task_args import TaskArgumentError

    with pytest.raises(TaskArgumentError) as e:
        explain_neurons(dataset=str(tmp_path / "[bold]runs"))
    console = Console(width=1000, record=True, color_system=None)
    console.print(e.value.message)
    assert "[bold]runs" in console.export_text()
