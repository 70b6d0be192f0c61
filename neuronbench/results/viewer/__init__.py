"""Static neuron viewer: one self-contained HTML page for a directory of logs.

The OpenAI neuron-viewer idea for any explainer: a sortable list of neurons with their
explanations and scores, and for a chosen neuron its scored records: each token one box,
its text shaded by the real activation over a bar shaded by the simulated one, so the two
are compared token by token. All data is embedded in the page as JSON
(``<script type="application/json">``) and rendered by plain JS, because browsers block
``fetch`` of local files: the page must open from ``file://`` with no server. (The
optional ``inspect view bundle`` beside it does fetch its logs, so it needs one.)
``template.html``, ``viewer.js`` and ``viewer.css`` beside this module are the page; this
module only fills them in.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from neuronbench._atomic import write_text
from neuronbench.results.logs import load_samples

BUNDLE_DIR = "inspect"
"""Sub-folder of the viewer's output holding ``inspect view bundle`` output."""


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf → None (``JSON.parse`` rejects NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item"):  # numpy / pandas scalars
        return _clean(obj.item())
    return obj


def _records(log_files: list[str]) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """(log, sample id, epoch) → the headline score's records, from full logs.

    Sample summaries drop score metadata over 1 kB, so the records come from the full
    samples, streamed one at a time without messages and events.
    """
    from inspect_ai.log import read_eval_log_samples

    from neuronbench.results.logs import PRIMARY_SCORER

    out: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    skip = {"messages", "events", "store", "attachments"}
    for log in log_files:
        for sample in read_eval_log_samples(log, all_samples_required=False, exclude_fields=skip):
            scores = sample.scores or {}
            score = scores.get(PRIMARY_SCORER) or next(
                (
                    s
                    for s in scores.values()
                    if isinstance(s.value, dict) and "top_and_random" in s.value
                ),
                None,
            )
            records = ((score.metadata or {}).get("records") if score else None) or []
            out[(log, str(sample.id), int(sample.epoch))] = [
                {
                    "group": r.get("group"),
                    "position": r.get("position"),
                    "tokens": [str(t) for t in r.get("tokens", [])],
                    "activations": r.get("activations"),
                    "predictions": r.get("predictions"),
                }
                for r in records
            ]
    return out


def viewer_data(log_dir: str | os.PathLike[str], *, bundle: str | None = None) -> dict[str, Any]:
    """The JSON the page renders: runs (leaderboard rows) and one entry per sample."""
    samples = load_samples(log_dir)
    records = _records(sorted(samples["log"].unique()))
    runs: list[dict[str, Any]] = []
    run_index: dict[tuple[str, str, str, str], int] = {}
    for key, group in samples.groupby(["site", "dataset", "split", "row"], sort=True):
        first = group.iloc[0]
        run_index[key] = len(runs)
        runs.append(
            {
                "label": first["row"],
                "explainer": first["explainer"],
                "strategy": first["strategy"],
                "simulator": first["simulator"],
                "dataset": first["dataset"],
                "site": first["site"],
                "split": first["split"],
                "control": bool(first["control"]),
            }
        )
    entries = []
    for s in samples.sort_values(["neuron", "row", "epoch"]).to_dict("records"):
        entries.append(
            {
                "neuron": s["neuron"],
                "run": run_index[(s["site"], s["dataset"], s["split"], s["row"])],
                "site": s["site"],
                "epoch": s["epoch"],
                "layer": s["layer"],
                "index": s["index"],
                "firing_rate": s["firing_rate"],
                "max_activation": s["max_activation"],
                "explanation": s["explanation"],
                "status": s["status"],
                "reason": s["reason"],
                "score": s["score"],
                "random_only": s["random_only"],
                "top_only": s["top_only"],
                "records": records.get((s["log"], s["neuron"], int(s["epoch"])), []),
            }
        )
    return _clean({"log_dir": str(log_dir), "bundle": bundle, "runs": runs, "samples": entries})


def render_html(data: dict[str, Any]) -> str:
    """The page with CSS, JS and ``data`` inlined.

    ``<``, ``>`` and ``&`` in the JSON are written as ``\\u003c`` etc., so a token such as
    ``</script>`` cannot end the data block early (JSON.parse reads them back).
    """
    here = resources.files(__name__)
    template = (here / "template.html").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, allow_nan=False)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (
        template.replace("/*NB-STYLE*/", (here / "viewer.css").read_text(encoding="utf-8"))
        .replace("/*NB-SCRIPT*/", (here / "viewer.js").read_text(encoding="utf-8"))
        .replace("/*NB-DATA*/", payload)
    )


def bundle_logs(log_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Run ``inspect view bundle`` for ``log_dir`` into ``out_dir`` (overwriting)."""
    cmd = [
        sys.executable, "-m", "inspect_ai", "view", "bundle",
        "--log-dir", str(log_dir), "--output-dir", str(out_dir), "--overwrite",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"inspect view bundle failed for {log_dir}: {result.stderr.strip()[-2000:]}"
        )
    return Path(out_dir)


def write_viewer(
    log_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, bundle: bool = False
) -> Path:
    """Write ``out_dir/index.html`` for the logs in ``log_dir``; returns its path.

    Args:
        log_dir: Directory of ``explain_neurons`` inspect logs.
        out_dir: Output folder (created).
        bundle: Also build ``inspect view bundle`` output in ``out_dir/inspect`` and
            link it from the page (full transcripts of every explainer and simulator call).
    """
    out = Path(out_dir)
    link = None
    if bundle:
        bundle_logs(log_dir, out / BUNDLE_DIR)
        link = f"{BUNDLE_DIR}/index.html"
    page = out / "index.html"
    write_text(page, render_html(viewer_data(log_dir, bundle=link)))
    page.chmod(0o644)  # a page to publish: the atomic temp file is created owner-only
    return page
