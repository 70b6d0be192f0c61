"""Progress of long steps: periodic plain lines when redirected, a bar on a terminal, and
the CLI commands (record, export-openai, import-openai, validate) reporting on stderr."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from neuronbench._progress import Progress, duration, is_terminal, si
from neuronbench.cli import main
from neuronbench.datasets import DatasetCard, NeuronDataset
from neuronbench.datasets.openai_json import estimate_export_bytes
from tests.conftest import make_neuron


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_plain_lines_periodic_with_rate_eta_and_total() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = Progress("job", 1000, unit="neurons", stream=out, tty=False, clock=clock)
    assert lines(out) == ["[job] starting: 1,000 neurons"]
    for _ in range(50):  # 50 neurons in 6.25 s: below a tenth and the 30 s interval
        clock.t += 0.125
        bar.update()
    assert len(lines(out)) == 1
    clock.t += 23.75  # 30 s since the start line: the interval fires at the next update
    bar.update(10)
    assert lines(out)[-1] == ("[job] 60/1,000 neurons (6%) · 2 neurons/s · ETA 7m50s · elapsed 30s")
    clock.t += 5.0  # crosses 10% with more than min_gap since the last line
    bar.update(40)
    assert lines(out)[-1] == (
        "[job] 100/1,000 neurons (10%) · 2.86 neurons/s · ETA 5m15s · elapsed 35s"
    )
    clock.t += 1.0  # 20% crossed, but only 1 s after the last line: held back
    bar.update(100)
    assert len(lines(out)) == 3
    clock.t += 1.5
    bar.update(1)
    assert lines(out)[-1].startswith("[job] 201/1,000 neurons (20%) · ")
    clock.t += 10.0
    bar.update(799)
    bar.close()
    bar.close()  # idempotent
    assert lines(out)[-1] == "[job] done 1,000/1,000 neurons (100%) in 48s (21.1 neurons/s)"
    assert len(lines(out)) == 6


def test_updates_between_lines_print_nothing() -> None:
    """A long step with steady progress prints ~every interval, not once per update."""
    clock, out = FakeClock(), io.StringIO()
    bar = Progress("rec", None, unit="tok", unit_scale=True, stream=out, tty=False, clock=clock)
    for _ in range(2400):  # one batch of 512 tokens every 0.125 s for 300 s
        clock.t += 0.125
        bar.update(512)
    printed = lines(out)
    assert printed[0] == "[rec] starting"
    assert len(printed) == 1 + 10  # start + one line per 30 s
    assert printed[1] == "[rec] 123k tok · 4.1k tok/s · elapsed 30s"  # no total: no ETA


def test_resumed_rate_counts_only_this_run_and_early_stop_says_so() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = Progress(
        "rec", 100_000, unit="tok", unit_scale=True, initial=40_000, stream=out, tty=False,
        clock=clock,
    )  # fmt: skip
    clock.t += 30.0
    bar.update(3_000)
    assert lines(out)[0] == "[rec] resuming at 40k/100k tok (40%)"
    assert lines(out)[1] == "[rec] 43k/100k tok (43%) · 100 tok/s · ETA 9m30s · elapsed 30s"
    clock.t += 10.0
    bar.close()
    assert lines(out)[-1] == "[rec] stopped at 43k/100k tok (43%) in 40s (75 tok/s)"
    # a corpus that ends before its token budget finishes short of the total: "done"
    done = Progress("rec", 10, stream=(out := io.StringIO()), tty=False, clock=clock)
    done.update(4)
    done.close(finished=True)
    assert lines(out)[-1].startswith("[rec] done 4/10 it (40%)")


def test_disabled_prints_nothing() -> None:
    out = io.StringIO()
    with Progress("quiet", 5, stream=out, tty=False, enabled=False) as bar:
        bar.update(5)
        bar.note("phase")
    assert out.getvalue() == ""


def test_terminal_renders_a_bar_with_rate_and_total() -> None:
    out = io.StringIO()
    with Progress("record tiny", 2048, unit="tok", unit_scale=True, stream=out, tty=True) as bar:
        bar.update(1024)
        bar.note("a phase")
        bar.update(1024)
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    final = text.split("\r")[-1]
    assert final.startswith("record tiny: 100%")
    assert "2.05k/2.05k" in final and "tok/s" in final
    assert "[record tiny] a phase" in text
    assert not text.startswith("[record tiny] starting")  # no log lines on a terminal


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_terminal_needs_a_width() -> None:
    """A pseudo-terminal without a size gets log lines: tqdm would draw blank lines."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as tty:
        for cols, expected in ((0, False), (100, True)):
            fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
            assert is_terminal(tty) is expected
    os.close(leader)
    assert not is_terminal(io.StringIO())


def test_si_and_duration() -> None:
    assert [si(x) for x in (7, 999, 1000, 51_200, 2_100_000_000, 1.5)] == [
        "7", "999", "1k", "51.2k", "2.1G", "1.5",
    ]  # fmt: skip
    assert [duration(s) for s in (0.4, 59, 61, 3600, 7325)] == [
        "0s", "59s", "1m01s", "1h00m", "2h02m",
    ]  # fmt: skip


# ---------------------------------------------------------------------------- CLI


def varied_dataset(root: Path, n: int = 40) -> Path:
    """Neurons of very different sizes (so a size estimate from a sample can miss)."""
    ds = NeuronDataset(card=DatasetCard(subject="test-subject"))
    ds.add(
        make_neuron(layer=i % 3, index=i, n_top=4 + i % 7, n_random=3 + i % 5,
                    n_tokens_per_record=4 + (i * 7) % 40, seed=i)
        for i in range(n)
    )  # fmt: skip
    return ds.save(root)


def tree_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def from_si(text: str) -> float:
    scale = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}
    m = re.fullmatch(r"([\d.]+)([kMG]?)", text)
    assert m, text
    return float(m.group(1)) * scale[m.group(2)]


def test_export_states_size_before_writing_then_import_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import neuronbench.datasets.openai_json as oj

    src = varied_dataset(tmp_path / "ds")
    seen_before_first_write: list[str] = []
    real_write = oj.write_text

    def spy(path: Any, text: str) -> None:
        if not seen_before_first_write:
            seen_before_first_write.append(capsys.readouterr().err)
        real_write(path, text)

    monkeypatch.setattr(oj, "write_text", spy)
    out = tmp_path / "oa"
    assert main(["export-openai", str(src), str(out)]) == 0
    before = seen_before_first_write[0]
    m = re.search(
        r"will write 40 neuron files \+ neuronbench.json to .*: about ([\d.]+[kMG]?)B", before
    )
    assert m, before
    estimate, real = from_si(m.group(1)), tree_bytes(out)
    assert real / 2 <= estimate <= real * 2, (estimate, real)
    err = capsys.readouterr().err
    assert "[export-openai] done 40/40 neurons (100%)" in err and "neurons/s" in err

    assert main(["import-openai", str(out), str(tmp_path / "back")]) == 0
    err = capsys.readouterr().err
    assert "[import-openai] starting: 40 neurons" in err
    assert re.search(r"\[import-openai\] done 40/40 neurons \(100%\) in \d+s", err)
    assert "[import-openai] writing 40 neurons to" in err


def test_size_estimate_within_2x_of_the_written_export(tmp_path: Path) -> None:
    from neuronbench.datasets.openai_json import export_openai

    ds = NeuronDataset.load(varied_dataset(tmp_path / "ds", 100))
    est = estimate_export_bytes(list(ds), sample=8)
    real = tree_bytes(export_openai(ds, tmp_path / "oa"))
    assert real / 2 <= est <= real * 2, (est, real)
    assert estimate_export_bytes([]) == 0


def test_validate_reports_neurons_per_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "planted"
    assert main(["plant", "--corpus", "tiny", "--subject", "tiny", "--tokens", "1024",
                 "--record-length", "32", "--top-k", "8", "--random", "6",
                 "--out", str(out)]) == 0  # fmt: skip
    n = len(NeuronDataset.ids(out))
    capsys.readouterr()
    assert main(["validate", str(out), "--simulator", "lexical"]) == 0
    err = capsys.readouterr().err
    assert f"[validate simulator:lexical] starting: {n} neurons" in err
    assert f"[validate simulator:lexical] done {n}/{n} neurons (100%)" in err


def test_record_redirected_prints_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user's case, ``neuronbench record ... > log 2>&1``: stderr is not a terminal
    (pytest's capture, like a file), so the plain lines must appear, with no bar."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(["record", "--subject", "tiny-llama", "--corpus", "tiny", "--layers", "0",
                   "--tokens", "512", "--record-length", "16", "--boundary-records", "8",
                   "--out", str(tmp_path / "ds")])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert rc == 0, err
    assert not sys.stderr.isatty()
    assert "[record tiny-llama] pre-pass: quantile boundaries from 8 records" in err
    assert "[record tiny-llama] starting: 512 tok" in err
    assert re.search(
        r"\[record tiny-llama\] done 512/512 tok \(100%\) in \d+s \([\d.]+k? tok/s\)", err
    )
    assert "[record tiny-llama] finalizing 64 neurons" in err
    assert "\r" not in err  # no bar redraws in a log
    capsys.readouterr()
    assert main(["record", "--subject", "tiny-llama", "--corpus", "tiny", "--layers", "0",
                 "--tokens", "512", "--record-length", "16", "--boundary-records", "8",
                 "--out", str(tmp_path / "q"), "--quiet"]) == 0  # fmt: skip
    assert "[record" not in capsys.readouterr().err
