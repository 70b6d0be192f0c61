"""User errors: input the user can fix, reported in one line with no traceback.

The ``neuronbench`` command prints these as ``neuronbench <command>: error: <message>`` and
exits 2 (argparse's code for bad usage), so every subcommand fails the same way; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UsageError(ValueError):
    """A bad option or argument value. A ``ValueError``, so Python callers catch it as one."""


def did_you_mean(value: object, options: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for a near miss among ``options``, else ``""``.

    A misspelt name is the commonest bad input; naming the intended one saves the user a
    trip to ``--help``. ``cutoff`` is difflib's similarity ratio (0-1).
    """
    close = difflib.get_close_matches(str(value), list(options), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(what: str, value: object, options: Iterable[str], flag: str = "") -> str:
    """``value`` if it is one of ``options``; else a :class:`UsageError` listing them.

    ``flag`` (e.g. ``--strategies``) prefixes the message, naming the option to fix.
    """
    names = list(options)
    if value in names:
        return str(value)
    raise UsageError(
        f"{flag + ': ' if flag else ''}unknown {what} {value!r}{did_you_mean(value, names)}; "
        f"choose from {', '.join(names)}"
    )


def one_line(message: object) -> str:
    """``message`` with its line breaks folded, so a report stays one line."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())
