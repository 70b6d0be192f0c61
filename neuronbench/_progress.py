"""Progress of long steps (recording, OpenAI export/import, validate), on stderr.

On a terminal a live tqdm bar shows count/total, rate and ETA. Redirected (``> log 2>&1``,
CI) a bar is useless (one ``\\r``-joined line that appears at the end, if ever), so the
same facts go out as plain lines instead: one when the step starts, then one every
``interval`` seconds or at each further tenth of the total (whichever comes first, at
most one per ``min_gap`` seconds), and one when it ends. A user tailing a log therefore
sees the total at once and a rate and ETA within ``interval`` seconds.

``update`` is called once per batch or per neuron, so it does one clock read and a few
comparisons; all formatting happens only when a line is due.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

DEFAULT_INTERVAL = 30.0
"""Seconds between plain log lines when nothing else triggers one."""
DEFAULT_MIN_GAP = 2.0
"""Least seconds between plain log lines: a fast step prints its start and end, not ten tenths."""


def si(x: float) -> str:
    """``51200 -> '51.2k'``: short counts for tokens and bytes."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g}{suffix}"
    return f"{x:.3g}" if x != int(x) else f"{int(x)}"


def duration(seconds: float) -> str:
    """``125 -> '2m05s'``; hours when needed, whole seconds below a minute."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def is_terminal(stream: Any) -> bool:
    """A terminal a bar can be drawn on: a tty with a width (a pseudo-terminal of width 0,
    as under ``script`` or ``docker -t`` without a size, would show tqdm as blank lines)."""
    try:
        return bool(stream.isatty()) and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):
        return False


def say(desc: str, message: str, stream: TextIO | None = None) -> None:
    """One plain line ``[desc] message`` on stderr (a phase of a step, a size statement)."""
    out = stream if stream is not None else sys.stderr
    print(f"[{desc}] {message}", file=out, flush=True)


class Progress:
    """Count of a long step; a tqdm bar on a terminal, periodic plain lines otherwise.

    Use as a context manager (or call ``close``) so the final line, with the total time
    and mean rate, is printed even when the step stops early.
    """

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        *,
        unit: str = "it",
        unit_scale: bool = False,
        initial: int = 0,
        enabled: bool = True,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float = DEFAULT_INTERVAL,
        min_gap: float = DEFAULT_MIN_GAP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        Args:
            desc: what is counted, e.g. ``record tiny-llama``; prefixes every line.
            total: the count at completion; None when unknown (no percentage or ETA).
            unit / unit_scale: unit name; ``unit_scale`` writes 51.2k instead of 51,200.
            initial: count already done (a resumed recording); the rate counts only
                what this run does.
            enabled: False prints nothing (``--quiet``).
            stream: where to write (default: ``sys.stderr`` at construction).
            tty: force the terminal (True) or log-line (False) form; default
                :func:`is_terminal`.
            interval / min_gap: log-line timing (see module docstring).
            clock: monotonic seconds; tests pass a fake one.
        """
        self.desc, self.total, self.unit, self.unit_scale = desc, total, unit, unit_scale
        self.n = self.initial = initial
        self.enabled = enabled
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.interval, self.min_gap, self.clock = interval, min_gap, clock
        self.start = self.last = clock()
        self.closed = False
        self._bar: Any = None
        self._next_tenth = 0
        if not enabled:
            return
        if tty is None:
            tty = is_terminal(self.stream)
        if tty:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit=unit,
                unit_scale=unit_scale,
                file=self.stream,
                dynamic_ncols=True,
            )
        else:
            self._next_tenth = self._tenth(initial) + 1
            if initial:
                self._line(f"resuming at {self._count()}")
            else:
                self._line(f"starting: {self._fmt(total)} {unit}" if total else "starting")

    # ------------------------------------------------------------------ counting

    def update(self, n: int = 1) -> None:
        """Add ``n`` done; prints a log line only when one is due."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if not self.enabled:
            return
        now = self.clock()
        gap = now - self.last
        if gap >= self.interval or (
            gap >= self.min_gap and self.total and self.n * 10 >= self._next_tenth * self.total
        ):
            self._report(now)

    def note(self, message: str) -> None:
        """A one-off line (a phase) that does not garble the bar on a terminal."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(f"[{self.desc}] {message}", file=self.stream)
        else:
            self._line(message)

    def close(self, finished: bool | None = None) -> None:
        """Final line: count, time and mean rate.

        ``finished``: whether the step completed; default: the count reached the total. A
        recording whose corpus ends before its token budget passes True (``done``, not
        ``stopped at``).
        """
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
            return
        if not self.enabled:
            return
        elapsed = self.clock() - self.start
        if finished is None:
            finished = self.total is None or self.n >= self.total
        head = "done" if finished else "stopped at"
        self._line(
            f"{head} {self._count()} in {duration(elapsed)}"
            + (f" ({self._rate(elapsed)})" if elapsed > 0 and self.n > self.initial else "")
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ lines

    def _tenth(self, n: int) -> int:
        return (n * 10) // self.total if self.total else 0

    def _report(self, now: float) -> None:
        self.last = now
        if self.total:
            self._next_tenth = self._tenth(self.n) + 1
        elapsed = now - self.start
        parts = [self._count()]
        if elapsed > 0 and self.n > self.initial:
            speed = (self.n - self.initial) / elapsed
            parts.append(self._rate(elapsed))
            if self.total and speed > 0:
                parts.append(f"ETA {duration(max(0, self.total - self.n) / speed)}")
        parts.append(f"elapsed {duration(elapsed)}")
        self._line(" · ".join(parts))

    def _fmt(self, x: float) -> str:
        return si(x) if self.unit_scale else f"{int(x):,}"

    def _count(self) -> str:
        if not self.total:
            return f"{self._fmt(self.n)} {self.unit}"
        pct = 100.0 * self.n / self.total
        return f"{self._fmt(self.n)}/{self._fmt(self.total)} {self.unit} ({pct:.0f}%)"

    def _rate(self, elapsed: float) -> str:
        speed = (self.n - self.initial) / elapsed
        shown = si(speed) if self.unit_scale or speed >= 1000 else f"{speed:.3g}"
        return f"{shown} {self.unit}/s"

    def _line(self, message: str) -> None:
        say(self.desc, message, self.stream)
