"""Content-keyed, build-once directories (the converted smollm2 cache): one build across
threads and processes, never a partial directory, digests memoised by path and mtime."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from neuronbench import _build_once
from neuronbench._build_once import build_once, file_sha256

FILES = [f"part-{i}.bin" for i in range(5)]


def _complete(directory: Path) -> bool:
    """What a reader needs: every part and the meta file written last."""
    return (directory / "meta.json").is_file() and all((directory / f).is_file() for f in FILES)


def _slow_build(counter: Path, delay: float):  # type: ignore[no-untyped-def]
    def build(out: Path) -> None:
        with open(counter, "a") as f:
            f.write(f"{os.getpid()} {threading.get_ident()}\n")
        for name in FILES:  # written one by one: a visible partial directory would show
            (out / name).write_bytes(os.urandom(1024))
            time.sleep(delay)
        (out / "meta.json").write_text("{}")

    return build


def test_file_sha256_is_memoised_by_stat_and_keyed_by_bytes(tmp_path, monkeypatch):
    src = tmp_path / "model.gguf"
    src.write_bytes(b"weights" * 1000)
    memo = tmp_path / "cache" / "digests.json"
    hashed: list[Path] = []
    real = _build_once._hash_file
    monkeypatch.setattr(_build_once, "_hash_file", lambda p: hashed.append(p) or real(p))
    expected = hashlib.sha256(src.read_bytes()).hexdigest()
    assert file_sha256(src, memo) == expected
    assert file_sha256(src, memo) == expected
    assert len(hashed) == 1  # the second call read the memo, not the file
    assert json.loads(memo.read_text())[str(src.resolve())]["sha256"] == expected
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    assert file_sha256(src, memo) == expected  # touched: re-hashed, same digest
    assert len(hashed) == 2
    src.write_bytes(b"other" * 1000)
    assert file_sha256(src, memo) == hashlib.sha256(src.read_bytes()).hexdigest() != expected
    memo.write_text("not json")  # a corrupt memo costs a re-hash, not an error
    assert file_sha256(src, memo) == hashlib.sha256(src.read_bytes()).hexdigest()


def test_threads_build_once_and_never_see_a_partial_directory(tmp_path):
    target = tmp_path / "cache" / "model"
    counter = tmp_path / "builds.txt"
    seen_partial: list[list[str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if target.exists() and not _complete(target):
                seen_partial.append(sorted(p.name for p in target.iterdir()))

    watcher = threading.Thread(target=watch)
    watcher.start()
    built: list[bool] = []
    workers = [
        threading.Thread(
            target=lambda: built.append(build_once(target, _complete, _slow_build(counter, 0.05)))
        )
        for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    watcher.join()
    assert sorted(built) == [False, False, False, True]
    assert len(counter.read_text().splitlines()) == 1
    assert _complete(target) and seen_partial == []
    assert not [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_two_processes_build_once(tmp_path):
    target = tmp_path / "cache" / "model"
    counter = tmp_path / "builds.txt"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from neuronbench._build_once import build_once
        target, counter = Path({str(target)!r}), Path({str(counter)!r})
        files = {FILES!r}
        def complete(d):
            return (d / "meta.json").is_file() and all((d / f).is_file() for f in files)
        def build(out):
            with open(counter, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
            for name in files:
                (out / name).write_bytes(b"x" * 1024)
                time.sleep(0.1)
            (out / "meta.json").write_text("{{}}")
        # start together: wait for the go file
        while not Path({str(tmp_path / "go")!r}).exists():
            time.sleep(0.01)
        print(build_once(target, complete, build))
        """
    )
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    time.sleep(0.5)
    (tmp_path / "go").touch()
    partial = []
    while any(p.poll() is None for p in procs):
        if target.exists() and not _complete(target):
            partial.append(sorted(x.name for x in target.iterdir()))
        time.sleep(0.005)
    outputs = sorted(p.communicate()[0].strip() for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == ["False", "True"]
    assert len(counter.read_text().splitlines()) == 1
    assert _complete(target) and partial == []


def test_failed_build_leaves_nothing_and_the_next_call_builds(tmp_path):
    target = tmp_path / "cache" / "model"
    counter = tmp_path / "builds.txt"

    def broken(out: Path) -> None:
        (out / FILES[0]).write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(target, _complete, broken)
    assert not target.exists()
    assert list(target.parent.iterdir()) == [target.parent / ".model.lock"]
    # a leftover of a killed build (no cleanup ran) is removed by the next build
    (target.parent / ".model.abc123.tmp").mkdir()
    assert build_once(target, _complete, _slow_build(counter, 0))
    assert _complete(target)
    assert sorted(p.name for p in target.parent.iterdir()) == [".model.lock", "model"]
    # a stale directory (fresh() says no) is replaced whole
    (target / "meta.json").unlink()
    assert build_once(target, _complete, _slow_build(counter, 0))
    assert _complete(target) and len(counter.read_text().splitlines()) == 2
