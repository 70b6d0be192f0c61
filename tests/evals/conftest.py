"""Fixtures for evals tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evals._helpers import write_dataset


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    """A saved 2-layer x 3-neuron dataset of unique-token neurons."""
    return write_dataset(tmp_path / "ds")
