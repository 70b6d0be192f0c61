"""The static neuron viewer: embedded data, escaping, and a real headless-browser check."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import CHROMIUM, DevTools, dump_dom
from conftest import MAIN_SPECS, TOKENS, RowSpec, neuron_key, write_logs

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
    assert dom.count('class="tokens"') == 2  # one aligned row per record
    assert dom.count('class="tok"') == 2 * len(TOKENS) + 1  # + the legend's example token
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
        assert tools.eval("document.querySelectorAll('#explanations tbody').length") == 3
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


def _viewer_cli(*argv: str) -> int:
    import argparse

    from neuronbench.results._cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["viewer", *argv])
    return int(args.func(args))


def test_viewer_cli(main_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _viewer_cli(str(main_logs), "--out", str(tmp_path)) == 0
    assert len(_embedded((tmp_path / "index.html").read_text())["samples"]) == N_SAMPLES
    assert not (tmp_path / "inspect").exists()
    assert "no server needed" in capsys.readouterr().out  # true of the page alone


def test_viewer_cli_bundle_says_how_to_serve_it(
    main_logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    import neuronbench.results.viewer as viewer

    built: list[Path] = []
    monkeypatch.setattr(viewer, "bundle_logs", lambda logs, out: built.append(Path(out)))
    assert _viewer_cli(str(main_logs), "--out", str(tmp_path), "--bundle") == 0
    assert built == [tmp_path / "inspect"]
    out = capsys.readouterr().out
    assert "no server needed" not in out
    assert f"python -m http.server -d {tmp_path} 8000" in out and "http://localhost:8000/" in out


@needs_chromium
def test_bundle_is_blank_from_file_but_renders_over_http(page: Path) -> None:
    """What the CLI tells --bundle users: the bundle needs a server, and http.server will do."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=page.parent))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # the page's text once it lists the evals with their models, or after the given ms
    text_after = """new Promise(done => { const t0 = Date.now(); (function poll() {
      const text = document.body.innerText;
      if (text.includes('mockllm/strong') || Date.now() - t0 > %d) done(text);
      else setTimeout(poll, 100);
    })(); })"""
    tools = DevTools()
    try:
        tools.open((page.parent / "inspect" / "index.html").as_uri())
        assert "mockllm/strong" not in tools.eval(text_after % 2000)  # blank from file://
        tools.open(f"http://127.0.0.1:{server.server_address[1]}/inspect/index.html")
        shown = tools.eval(text_after % 20000)
        assert "explain_neurons" in shown and "mockllm/strong" in shown
    finally:
        tools.close()
        server.shutdown()
        server.server_close()


# --- layout on a laptop and a desktop screen, measured and photographed in Chromium -----

LONG_TOKEN = "data:image/png;base64," + "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ" * 6
"""A 286-character token with no break opportunity: wider than the records pane at 1,920 px."""
PROSE = (
    "In 1987 the committee published its internationalization report , which argued that "
    "multilingual keyboards were a prerequisite for the counterrevolutionary spreadsheets "
    "of the era ; critics called it incomprehensibilities all the way down ."
)
EXPLANATION = (
    "fires on tokens that close a quotation or parenthetical remark , mostly in legal text "
    "and in code comments ; also weakly on the word after"
)


def realistic_tokens(variant: int) -> list[str]:
    """About 90 GPT-2-style tokens: prose, a newline, markup, CJK and one huge token."""
    tokens = ["The"] + [" " + w for w in PROSE.split()]
    tokens[10:10] = [" Supercalifragilisticexpialidocious", "\n", "\n\n", " ", "</script>"]
    tokens[25 + variant : 25 + variant] = [" " + LONG_TOKEN, "日本語の", "テキスト"]
    return tokens * 2


def make_realistic(data: dict[str, Any]) -> None:
    """Give every sample a long explanation and every record ~90 long-ish tokens, in place.

    The synthetic logs hold short explanations and eight short tokens, which would fit any
    layout; real explainers write sentences with URLs and real corpora hold huge tokens.
    """
    words = EXPLANATION.split()
    for k, s in enumerate(data["samples"]):
        n = 20 + (7 * k) % 45
        text = " ".join(words[(k + j) % len(words)] for j in range(n))
        if k % 4 == 0:  # an unbreakable URL in the middle of the explanation
            text += " (see https://example.org/" + "very-long-path-segment/" * 6 + ")"
        s["explanation"] = text
        for v, r in enumerate(s["records"]):
            toks = realistic_tokens(v)
            j = np.arange(len(toks))
            r["tokens"] = toks
            r["activations"] = (4 * np.maximum(0, np.sin(0.7 * j + v))).round(3).tolist()
            r["predictions"] = (10 * np.maximum(0, np.sin(0.7 * j + v + 0.6))).round(2).tolist()


EXTRA_SPECS = [
    RowSpec("strong", "token_activation_pairs", mu=0.5, neurons=6, seed=4, simulator="embedding"),
    RowSpec("weak", "highlighted", mu=0.4, neurons=6, failed=[1], seed=5, simulator="lexical"),
]
"""The same explainer scored by a second simulator, and a third simulator: list labels must
tell the rows apart."""


@pytest.fixture(scope="module")
def realistic(main_logs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    logs = tmp_path_factory.mktemp("realistic-logs")
    for f in main_logs.iterdir():
        if f.is_file():
            shutil.copy(f, logs)
    write_logs(logs, EXTRA_SPECS)
    data = viewer_data(logs)
    make_realistic(data)
    page = tmp_path_factory.mktemp("realistic-viewer") / "index.html"
    page.write_text(render_html(data), encoding="utf-8")
    return page, data


MEASURE = """(() => {
  const box = e => e.getBoundingClientRect();
  const doc = document.documentElement, list = document.getElementById('list'),
    detail = document.getElementById('detail');
  const score = box(document.querySelector('#neurons th[data-sort=score]'));
  const first = document.querySelector('#records .tokens');
  return {
    doc: [doc.scrollWidth, doc.clientWidth],
    list: [list.scrollWidth, list.clientWidth],
    detail: [detail.scrollWidth, detail.clientWidth],
    listLeft: box(list).left,
    listInnerRight: box(list).left + list.clientLeft + list.clientWidth,
    detailRight: box(detail).right,
    mainTop: box(document.querySelector('main')).top,
    score: [score.left, score.top, score.right, score.bottom],
    scoreCells: [...document.querySelectorAll('#neurons tbody td:nth-child(6)')].map(td => box(td).right),
    overflowingCells: [...document.querySelectorAll('#neurons td, #neurons th, #explanations td')]
      .filter(td => td.scrollWidth > td.clientWidth + 1).map(td => td.textContent.slice(0, 40)),
    labels: [...document.querySelectorAll('#neurons tbody td:nth-child(4)')].map(td => td.textContent),
    wrappedNumbers: [...document.querySelectorAll('td.num')].filter(td => {
      const range = document.createRange();
      range.selectNodeContents(td);
      return range.getClientRects().length > 1;
    }).map(td => td.textContent),
    lineHeight: parseFloat(getComputedStyle(first).lineHeight),
    rows: [...document.querySelectorAll('#records .tokens')].map(row => {
      const b = box(row);
      return [...row.querySelectorAll('.tok')].map(t => {
        const real = t.querySelector('.real'), sim = t.querySelector('.sim');
        const a = box(real), s = box(sim), text = document.createRange();
        text.selectNodeContents(real);
        const lines = [...text.getClientRects()];
        const firstLine = lines.filter(l => l.top === lines[0].top).reduce((w, l) => w + l.width, 0);
        return { text: real.textContent, firstLine: firstLine / b.width, inLeft: a.left - b.left, inRight: b.right - a.right,
          top: a.top, height: a.height, overflow: real.scrollWidth - real.clientWidth,
          dLeft: s.left - a.left, dRight: s.right - a.right, gap: s.top - a.bottom,
          simHeight: s.height };
      });
    }),
  };
})()"""


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


@needs_chromium
@pytest.mark.parametrize("width", [1280, 1920])
def test_layout_fits_the_window_and_tokens_wrap_whole(
    realistic: tuple[Path, dict],  # type: ignore[type-arg]
    width: int,
    tmp_path: Path,
) -> None:
    page, data = realistic
    height = 900
    tools = DevTools()
    try:
        tools.open(page.as_uri() + f"#neuron={KEY}", (width, height))
        m = tools.eval(MEASURE)
        shots = {"top": tools.screenshot()}
        tools.eval("document.getElementById('records').scrollIntoView()")
        shots["records"] = tools.screenshot()
        assert tools.console_errors() == []
    finally:
        tools.close()
    keep = Path(os.environ.get("NB_VIEWER_SCREENSHOTS") or tmp_path)  # to look at them
    keep.mkdir(parents=True, exist_ok=True)
    for name, png in shots.items():
        (keep / f"viewer-{name}-{width}.png").write_bytes(png)
    top, records = _png(shots["top"]), _png(shots["records"])
    # no horizontal scrolling anywhere: page, list, detail, any table cell
    for pane in ("doc", "list", "detail"):
        assert m[pane][0] <= m[pane][1], (pane, m[pane])
    assert m["overflowingCells"] == []
    assert m["wrappedNumbers"] == []  # numeric columns are wide enough for their numbers
    # the score column (header and every cell) lies inside the list pane and the window
    assert m["score"][2] <= m["listInnerRight"] + 0.5 <= m["doc"][1]
    assert len(m["scoreCells"]) == len(data["samples"])
    assert max(m["scoreCells"]) <= m["listInnerRight"] + 0.5
    # list labels name the simulator: every run is told apart, embedding from generation
    runs = data["runs"]
    assert {label.removesuffix(" (control)") for label in m["labels"]} == {r["label"] for r in runs}
    assert len({r["label"] for r in runs}) == len(runs) == 5
    assert all(r["simulator"] in r["label"] for r in runs)
    # tokens: one aligned box per token (text shaded real, bar shaded simulated), inside the row
    chosen = max(
        (s for s in data["samples"] if s["neuron"] == KEY and s["records"]),
        key=lambda s: s["score"],
    )
    assert [[t["text"] for t in row] for row in m["rows"]] == [
        [t.replace("\n", "↵") for t in r["tokens"]] for r in chosen["records"]
    ]
    line = m["lineHeight"]
    for row in m["rows"]:
        assert len({t["top"] for t in row}) >= 3  # the row wraps onto several lines
        for t in row:
            assert t["inLeft"] >= -0.5 and t["inRight"] >= -0.5 and t["overflow"] <= 0, t
            assert abs(t["dLeft"]) < 0.5 and abs(t["dRight"]) < 0.5 and abs(t["gap"]) < 0.5, t
            assert t["simHeight"] >= 5
            if LONG_TOKEN in t["text"]:
                assert t["height"] > 1.5 * line  # only a token wider than the pane breaks
                assert t["firstLine"] > 0.9  # and fills its lines (no line holding one space)
            else:
                assert t["height"] < 1.5 * line, t  # every other token stays whole on one line
    # screenshots: the right size, not blank, margins clear, score header drawn, shading shown
    assert top.shape == records.shape == (height, width, 3)
    assert (top.sum(axis=2) < 600).mean() > 0.02  # ≥ 2% of pixels are not near-white
    ys = slice(int(m["mainTop"]) + 1, height)
    right_margin = top[ys, int(m["detailRight"]) + 2 : m["doc"][1] - 2]
    left_margin = top[ys, 2 : int(m["listLeft"]) - 2]
    assert right_margin.size and (right_margin == 255).all(), "something covers the right margin"
    assert left_margin.size and (left_margin == 255).all(), "something covers the left margin"
    x0, y0, x1, y1 = (int(v) for v in m["score"])
    assert top[y0:y1, x0:x1].sum(axis=2).min() < 300  # the "score" header text is on screen
    r, g, b = records[..., 0], records[..., 1], records[..., 2]
    assert ((g - r > 60) & (g - b > 40)).sum() > 200  # real-activation green
    assert ((b - r > 60) & (b - g > 30)).sum() > 200  # simulated-activation blue
