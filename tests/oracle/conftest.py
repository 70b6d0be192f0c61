"""OpenAI's neuron-explainer (PyPI ``neuron-explainer`` 0.0.1, in the dev extra) as the oracle.

Our explainer prompt, normalization, split dealing and scores are checked against OpenAI's
own functions on the same inputs, instead of against files our code wrote. Two of its
modules have side effects this fixture defuses: ``api_client`` asserts ``OPENAI_API_KEY``
at import (a dummy key is set for the test; no request is ever made), and prompt-length
checks download a tiktoken encoding (tests stub ``PromptBuilder.prompt_length_in_tokens``).
"""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.fixture
def neuron_explainer(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The installed ``neuron_explainer`` package, importable without a key or the network."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-not-a-key")
    return pytest.importorskip(
        "neuron_explainer",
        reason='OpenAI\'s reference is not installed: pip install -e ".[openai-reference]"',
    )


@pytest.fixture
def no_tiktoken(monkeypatch: pytest.MonkeyPatch, neuron_explainer: ModuleType) -> None:
    """OpenAI's prompt builders measure prompts with tiktoken, which downloads an encoding:
    report every prompt as short (0 tokens), so no record is ever omitted for length."""
    from neuron_explainer.explanations.prompt_builder import PromptBuilder

    monkeypatch.setattr(PromptBuilder, "prompt_length_in_tokens", lambda self, fmt: 0)
