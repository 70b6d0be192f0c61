"""Shared fixtures for subject tests: tiny random-init models, offline hub settings."""

from __future__ import annotations

import pytest

from neuronbench.subjects import Subject, tiny_subject


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_llama() -> Subject:
    return tiny_subject("llama", n_layers=3, d_mlp=48)


@pytest.fixture(scope="module")
def tiny_gpt2() -> Subject:
    return tiny_subject("gpt2", n_layers=3, d_mlp=48)
