"""The ``neuronbench`` command: a thin layer over the subpackages.

Each subpackage registers its own subcommands (``register(subparsers)`` in its
``_cli`` module), so this file only assembles them. Heavy imports (torch,
transformers, inspect) happen inside the command functions, keeping ``--help`` fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

_COMMAND_MODULES = (
    "neuronbench.pipeline_cli",
    "neuronbench.subjects._cli",
    "neuronbench.subjects._train_sae_cli",
    "neuronbench.datasets._cli",
    "neuronbench.scorers._cli",
    "neuronbench.results._cli",
    "neuronbench._plan_cli",
)


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error form of every other user error (rc 2 as before).

    argparse's own form prints the whole usage first, which for ``run`` is a dozen lines
    before the one that says what is wrong; ``--help`` still shows it.
    """

    def error(self, message: str) -> NoReturn:
        _fail(self.prog, message)
        sys.exit(2)


def _fail(prog: str, message: object) -> int:
    from neuronbench.errors import one_line

    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    from neuronbench import __version__

    parser = _Parser(
        prog="neuronbench",
        description="Record neurons, explain them with LLMs, score the explanations, publish leaderboards.",
    )
    parser.add_argument("--version", action="version", version=f"neuronbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one clear line for expected failures; traceback for bugs
        if _is_user_error(e):
            return _fail(f"neuronbench {args.command}", _message(e))
        raise
    return int(rc or 0)


def _is_user_error(e: Exception) -> bool:
    from neuronbench.datasets.errors import DatasetError
    from neuronbench.errors import UsageError
    from neuronbench.subjects.models import SubjectError

    if isinstance(e, (UsageError, DatasetError, SubjectError, FileNotFoundError)):
        return True
    # inspect's own prerequisite failures (a missing API key, an unknown provider)
    error_module = sys.modules.get("inspect_ai._util.error")
    return error_module is not None and isinstance(e, error_module.PrerequisiteError)


def _message(e: Exception) -> str:
    """The text of ``e``; inspect's errors carry rich markup, which a plain line drops."""
    message = getattr(e, "message", None)
    if message is None:
        return str(e)
    from rich.text import Text

    return Text.from_markup(str(message)).plain


if __name__ == "__main__":
    sys.exit(main())
