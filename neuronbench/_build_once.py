"""Derived directories (a converted model) built once across processes, keyed by content.

A cache keyed by a source file's path and mtime is rebuilt whenever the file is
reinstalled, copied or seen from another environment, though its bytes are the same;
and two processes that find it missing both build it, the second one replacing the
first's result under a reader's feet. Here the key is the source's sha256 (memoised by
path, size and mtime in a small side file, so the hash is read once per file version),
the build runs under an exclusive lock on a file beside the directory, and the result
appears only by renaming a complete temporary directory onto its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from neuronbench._atomic import write_json


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path, memo: Path) -> str:
    """The sha256 of ``path``'s bytes, reused from ``memo`` while its size and mtime hold.

    The memo only saves reading the file: a changed mtime (a reinstall, ``touch``)
    re-hashes it, and the same bytes give the same digest, so nothing keyed by it changes.
    Concurrent writers of the memo may drop each other's entries; that costs a re-hash.
    """
    stat = path.stat()
    key = str(path.resolve())
    entries: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(memo.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            entries = loaded
    entry = entries.get(key)
    if (
        isinstance(entry, dict)
        and entry.get("size") == stat.st_size
        and entry.get("mtime_ns") == stat.st_mtime_ns
        and isinstance(entry.get("sha256"), str)
    ):
        return str(entry["sha256"])
    sha = _hash_file(path)
    entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
    with contextlib.suppress(OSError):  # a read-only cache still works, it just re-hashes
        write_json(memo, entries)
    return sha


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) across processes and threads.

    ``flock`` locks belong to the open file, so two threads that each open the file
    exclude each other too (``lockf`` locks would not: they are per process). The lock
    goes with the process if it dies, so a crashed build never blocks the next one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: filelock (a dependency of torch and huggingface_hub)
        from filelock import FileLock

        with FileLock(str(path)):
            yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def build_once(target: Path, fresh: Callable[[Path], bool], build: Callable[[Path], None]) -> bool:
    """Make ``target`` a complete directory that satisfies ``fresh``; build it at most once.

    ``fresh(target)`` says whether the directory there is usable (e.g. its metadata
    names the wanted source digest and format). If not, ``build(tmp)`` writes the
    directory into an empty temporary directory beside ``target``, under a lock, and the
    result is renamed onto ``target``: readers see the old directory, no directory, or
    the whole new one, never a partial one. A process that waited on the lock re-checks
    ``fresh`` and uses the winner's directory. Leftovers of a crashed build are removed.

    Returns:
        True if this call built the directory, False if a fresh one was there.
    """
    if fresh(target):
        return False
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(parent / f".{target.name}.lock"):
        if fresh(target):
            return False
        # Holding the lock, no other build is running: any temporary directory is a leftover.
        for leftover in parent.glob(f".{target.name}.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
        try:
            build(tmp)
            # mkdtemp (and some writers) make owner-only files; a cache is ordinary data.
            tmp.chmod(0o755)
            for f in tmp.rglob("*"):
                f.chmod(0o755 if f.is_dir() else 0o644)
            if target.exists():
                # A stale directory: rename it aside (atomic) so the rename below can land.
                stale = parent / f".{target.name}.stale.tmp"
                shutil.rmtree(stale, ignore_errors=True)
                os.replace(target, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return True
