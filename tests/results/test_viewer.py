"""The static neuron viewer: embedded data, escaping, and a real headless-browser check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser import CHROMIUM, DevTools, dump_dom
from conftest import MAIN_SPECS, TOKENS, neuron_key

from neuronbench.results.viewer import render_html, viewer_data, write_viewer

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install chromium)"
)
N_SAMPLES = sum(s.neurons for s in MAIN_SPECS)
KEY = neuron_key(4)


@pytest.fixture(scope="module")
def page(main_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_viewer(main_logs, tmp_path_factory.mktemp("viewer"), bundle=True)


def _embedded(html: str) -> dict:  # type: ignore[type-arg]
    block = re.search(r'<script type="application/json" id="nb-data">(.*?)</script>', html, re.S)
    assert block is not None
    return json.loads(block.group(1))


def test_page_embeds_every_sample_with_records_and_escapes_html(page: Path) -> None:
    html = page.read_text()
    assert '</script>"' not in html and "<b>sat" not in html  # tokens cannot break the page
    data = _embedded(html)
    assert len(data["samples"]) == N_SAMPLES and len(data["runs"]) == 3
    by_key = {
        (s["neuron"], data["runs"][s["run"]]["explainer"], data["runs"][s["run"]]["strategy"]): s
        for s in data["samples"]
    }
    ok = by_key[(KEY, "mockllm/strong", "token_activation_pairs")]
    assert ok["status"] == "ok" and ok["explanation"] == "strong says for neuron 4"
    assert [r["group"] for r in ok["records"]] == ["top", "random"]
    assert ok["records"][0]["tokens"] == TOKENS
    failed = by_key[(neuron_key(0), "mockllm/weak", "token_activation_pairs")]
    assert failed["status"] == "failed" and failed["score"] is None and failed["records"] == []
    assert (page.parent / "inspect" / "index.html").exists()
    assert data["bundle"] == "inspect/index.html"
    assert "fetch(" not in html and "http://" not in html.split("nb-data")[0]  # no network


def test_nan_never_reaches_the_page(main_logs: Path) -> None:
    data = viewer_data(main_logs)
    block = re.search(r'id="nb-data">(.*?)</script>', render_html(data), re.S)
    assert block is not None and "NaN" not in block.group(1)
    assert json.loads(block.group(1)) == data  # strict JSON round trip


@needs_chromium
def test_headless_dump_lists_neurons_and_shows_records(page: Path) -> None:
    dom, log = dump_dom(page.as_uri() + f"#neuron={KEY}")
    assert 'data-ready="1"' in dom
    assert len(re.findall(r'<tr data-neuron="', dom)) == N_SAMPLES
    assert f'<h2 id="detail-title">{KEY}</h2>' in dom
    assert len(re.findall(r'class="record"', dom)) == 2
    assert dom.count('class="tokens real"') == 2 and dom.count('class="tokens simulated"') == 2
    assert "&lt;/script&gt;" in dom  # a token rendered as text, not markup
    assert re.search(r'<div id="errors" role="alert"></div>', dom)
    console = [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == []


@needs_chromium
def test_headless_click_sort_and_no_console_errors(page: Path) -> None:
    tools = DevTools()
    try:
        tools.open(page.as_uri())
        assert tools.eval("document.querySelectorAll('#neurons tbody tr').length") == N_SAMPLES
        title, n_records, hash_ = tools.eval(
            f"""new Promise(done => {{
              document.querySelector('#neurons tbody tr[data-neuron="{KEY}"]').click();
              setTimeout(() => done([document.getElementById('detail-title').textContent,
                document.querySelectorAll('#records .record').length, location.hash]), 200);
            }})"""
        )
        assert title == KEY and n_records == 2 and hash_.startswith(f"#neuron={KEY}")
        # every explanation of the neuron is listed with its score
        assert tools.eval("document.querySelectorAll('#explanations tbody tr').length") == 3
        # sort by firing rate ascending, then by score: first row has the lowest rate / best score
        rates = tools.eval(
            """(() => { document.querySelector('th[data-sort="firing_rate"]').click();
              return [...document.querySelectorAll('#neurons tbody tr td:nth-child(3)')].map(td => +td.textContent); })()"""
        )
        assert rates == sorted(rates)
        tools.eval(
            "document.getElementById('run-filter').value = '0'; document.getElementById('run-filter').dispatchEvent(new Event('change'))"
        )
        assert tools.eval("document.querySelectorAll('#neurons tbody tr').length") < N_SAMPLES
        assert tools.eval("document.getElementById('errors').textContent") == ""
        assert tools.console_errors() == []
    finally:
        tools.close()


def test_viewer_cli(main_logs: Path, tmp_path: Path) -> None:
    import argparse

    from neuronbench.results._cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["viewer", str(main_logs), "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert len(_embedded((tmp_path / "index.html").read_text())["samples"]) == N_SAMPLES
    assert not (tmp_path / "inspect").exists()
