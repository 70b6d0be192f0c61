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

_COMMAND_MODULES = (
    "neuronbench.pipeline_cli",
    "neuronbench.subjects._cli",
    "neuronbench.datasets._cli",
    "neuronbench.scorers._cli",
    "neuronbench.results._cli",
    "neuronbench._plan_cli",
)


def build_parser() -> argparse.ArgumentParser:
    from neuronbench import __version__

    parser = argparse.ArgumentParser(
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
        from neuronbench.datasets.errors import DatasetError
        from neuronbench.subjects.models import SubjectError

        if isinstance(e, (DatasetError, SubjectError, FileNotFoundError)):
            print(f"neuronbench {args.command}: error: {e}", file=sys.stderr)
            return 2
        raise
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
