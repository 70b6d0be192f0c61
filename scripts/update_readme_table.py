"""Copy the results table that ``neuronbench run`` wrote into README.md.

The README's "Results" table is not written by hand: ``neuronbench run`` (and
``neuronbench leaderboard LOGDIR --out results``) render ``results/leaderboard.md`` from
the logs, and this script replaces the block between the two markers in README.md with
that file's first table, so the README shows exactly the rows and columns the run
printed. After publishing a new run::

    python scripts/update_readme_table.py          # rewrite the block
    python scripts/update_readme_table.py --check  # exit 1 if the README is out of date

``tests/results/test_readme_table.py`` fails while the README and the file disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = (
    "<!-- results-table:begin (generated from results/leaderboard.md by "
    "scripts/update_readme_table.py; do not edit by hand) -->"
)
END = "<!-- results-table:end -->"


def first_table(markdown: str) -> str:
    """The first Markdown table of ``markdown``: its consecutive ``|`` lines.

    Raises:
        ValueError: there is no table.
    """
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        raise ValueError("no Markdown table found")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end])


def readme_block(readme: str) -> str:
    """The text between the markers (without them and the newlines beside them).

    Raises:
        ValueError: the markers are missing, repeated or out of order.
    """
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise ValueError(f"README needs exactly one {BEGIN!r} and one {END!r} line")
    head, rest = readme.split(BEGIN)
    if END not in rest:
        raise ValueError(f"{END!r} comes before {BEGIN!r}")
    block, _ = rest.split(END)
    return block.strip("\n")


def with_block(readme: str, table: str) -> str:
    """``readme`` with the block between the markers replaced by ``table``."""
    readme_block(readme)  # validates the markers
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    # blank lines around the table: a Markdown table must not touch an HTML block
    return f"{head}{BEGIN}\n\n{table.strip()}\n\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaderboard", type=Path, default=ROOT / "results" / "leaderboard.md")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if the README differs"
    )
    args = parser.parse_args(argv)
    try:
        table = first_table(args.leaderboard.read_text(encoding="utf-8"))
        readme = args.readme.read_text(encoding="utf-8")
        updated = with_block(readme, table)
    except (OSError, ValueError) as e:
        print(f"update_readme_table: error: {e}", file=sys.stderr)
        return 2
    if args.check:
        if updated != readme:
            print(f"{args.readme}: results table differs from {args.leaderboard}", file=sys.stderr)
            return 1
        return 0
    if updated != readme:
        args.readme.write_text(updated, encoding="utf-8")
        print(f"updated {args.readme} from {args.leaderboard}")
    else:
        print(f"{args.readme} already matches {args.leaderboard}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
