"""The README's results table is the one the published run wrote, not a hand edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.update_readme_table import BEGIN, END, first_table, main, readme_block, with_block

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"


def test_readme_table_is_the_published_leaderboard_table() -> None:
    """Fails until ``python scripts/update_readme_table.py`` is run after a new publish."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    published = first_table((RESULTS / "leaderboard.md").read_text(encoding="utf-8"))
    assert readme_block(readme) == published
    # every row the run wrote, none merged
    n_rows = len(published.splitlines()) - 2
    assert n_rows == len(json.loads((RESULTS / "leaderboard.json").read_text())["rows"])


@pytest.mark.skipif(
    not any((RESULTS / "logs").rglob("*.eval")),
    reason="the published run's logs are not committed (results/logs is rebuilt by neuronbench run)",
)
def test_published_leaderboard_is_what_the_code_renders_from_the_logs() -> None:
    from neuronbench.results.leaderboard import build_leaderboard, to_markdown

    rendered = to_markdown(build_leaderboard(RESULTS / "logs"))
    assert rendered == (RESULTS / "leaderboard.md").read_text(encoding="utf-8")


def test_update_rewrites_only_the_block_and_check_reports_drift(tmp_path: Path) -> None:
    board = tmp_path / "leaderboard.md"
    board.write_text(
        "| # | a |\n|---|---|\n| 1 | x |\n| 2 | y |\n\nScore is over ...\n\n| row | d |\n|---|---|\n"
    )
    readme = tmp_path / "README.md"
    before, after = "# Title\n\ntext before\n\n", "\n\n(note)\n\nmore text\n"
    readme.write_text(f"{before}{BEGIN}\n| # | a |\n|---|---|\n| 1–2 | x, y |\n{END}{after}")
    args = ["--leaderboard", str(board), "--readme", str(readme)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    text = readme.read_text()
    assert text == f"{before}{BEGIN}\n\n| # | a |\n|---|---|\n| 1 | x |\n| 2 | y |\n\n{END}{after}"
    assert main([*args, "--check"]) == 0
    assert main(args) == 0 and readme.read_text() == text  # idempotent


def test_missing_or_repeated_markers_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        readme_block("no markers here")
    with pytest.raises(ValueError, match="exactly one"):
        with_block(f"{BEGIN}\n{END}\n{BEGIN}\n", "| a |")
    with pytest.raises(ValueError, match="comes before"):
        readme_block(f"{END}\n{BEGIN}\n")
    with pytest.raises(ValueError, match="no Markdown table"):
        first_table("just prose")
    board = tmp_path / "leaderboard.md"
    board.write_text("| a |\n")
    readme = tmp_path / "README.md"
    readme.write_text("nothing")
    assert main(["--leaderboard", str(board), "--readme", str(readme)]) == 2
