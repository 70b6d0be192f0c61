"""Checks for ``explain_neurons``'s task arguments, raised while the task is built.

``inspect eval`` prints a :class:`TaskArgumentError` as its one-line message (it is
inspect's ``PrerequisiteError``, which inspect's exception hook prints without a
traceback, unwrapping the ExceptionGroup a task build raises inside), before any model is
called or any log is written. It is also a ``ValueError`` (via :class:`UsageError`), so
Python callers and ``neuronbench run`` catch it as one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from inspect_ai._util.error import PrerequisiteError
from rich.markup import escape

from neuronbench.errors import UsageError, did_you_mean, one_line

TASK = "explain_neurons"


class TaskArgumentError(UsageError, PrerequisiteError):
    """A bad ``-T`` argument of ``explain_neurons``; inspect prints it as one line."""

    def __init__(self, message: object) -> None:
        text = f"{TASK}: {one_line(message)}"
        UsageError.__init__(self, text)
        # inspect renders ``message`` as rich markup: brackets in paths must stay literal.
        self.message = escape(text)


def reject_unknown(given: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Stop on a mistyped argument name: inspect only warns and runs with the defaults."""
    if not given:
        return
    names = sorted(valid)
    parts = [f"-T {name}{did_you_mean(name, names)}" for name in sorted(given)]
    raise TaskArgumentError(
        f"unknown task argument {', '.join(parts)}; valid arguments: {', '.join(names)}"
    )


def choice(name: str, value: Any, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options``, else an error suggesting the nearest."""
    names = list(options)
    if isinstance(value, str) and value in names:
        return value
    raise TaskArgumentError(
        f"-T {name}={value!r}: unknown {name}{did_you_mean(value, names)}; "
        f"choose one of: {', '.join(names)}"
    )


def integer(name: str, value: Any, minimum: int | None = None) -> int:
    """An int (``"5"`` too), at least ``minimum``; ``True``, ``2.5`` and ``"abc"`` are errors."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    if number is None:
        raise TaskArgumentError(f"-T {name}={value!r}: expected a whole number")
    if minimum is not None and number < minimum:
        raise TaskArgumentError(f"-T {name}={value!r}: must be at least {minimum}")
    return number


def optional_integer(name: str, value: Any, minimum: int) -> int | None:
    """``None`` (the default) or an int of at least ``minimum``."""
    return None if value is None else integer(name, value, minimum)


def number(name: str, value: Any, low: float, high: float | None = None) -> float:
    """A float within ``[low, high]`` (an int or a numeric string too)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        out = float(value)
    except (TypeError, ValueError):
        raise TaskArgumentError(f"-T {name}={value!r}: expected a number") from None
    if out != out or out < low or (high is not None and out > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise TaskArgumentError(f"-T {name}={value!r}: must be {bounds}")
    return out


_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


def flag(name: str, value: Any) -> bool:
    """A bool from ``true``/``false`` (and yes/no, 1/0, on/off); anything else is an error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TaskArgumentError(f"-T {name}={value!r}: expected true or false")
