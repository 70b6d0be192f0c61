"""Explanations written elsewhere (people, other tools, OpenAI's published GPT-2 files), scored like any other.

Accepted files (``explanation_file``):

- ``.jsonl``: one object per line, either ``{"neuron": KEY, "explanation": TEXT}`` (``key``
  or ``neuron_id`` also name the neuron) or OpenAI's ``NeuronSimulationResults``
  (``{"neuron_id": {"layer_index": L, "neuron_index": N}, "scored_explanations":
  [{"explanation": TEXT, ...}, ...]}``; the first scored explanation is used, as in
  their published files, which hold one).
- a directory in OpenAI's published layout, ``DIR/{layer}/{neuron}.jsonl``.
- ``.json``: ``{KEY: TEXT}`` (or ``{KEY: {"explanation": TEXT}}``), or a list of line objects.
- ``.csv``: a header with ``explanation`` and either ``neuron`` / ``key`` or ``layer`` + ``index``.

KEY is our sample id (``NeuronId.key``), ``subject/layer/index`` or ``layer/index``.
A neuron missing from the file gets flag ``missing`` (and an empty explanation): it is
never silently scored as if it had been explained. No model is called.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.datasets import DatasetError, NeuronId
from neuronbench.evals.extraction import Extraction, extract_explanation
from neuronbench.evals.strategies._base import StrategyOptions, finish, neuron_of, no_trim


def _openai_key(neuron_id: dict[str, Any]) -> str:
    return f"{int(neuron_id['layer_index'])}/{int(neuron_id['neuron_index'])}"


def _from_object(obj: Any, where: str) -> tuple[str, str]:
    """(key, explanation) from one of our line objects or an OpenAI NeuronSimulationResults."""
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "scored_explanations" in obj:
        scored = obj["scored_explanations"]
        if not scored:
            raise DatasetError(f"{where}: NeuronSimulationResults without scored_explanations")
        return _openai_key(obj["neuron_id"]), str(scored[0]["explanation"])
    key = next((obj[k] for k in ("neuron", "key", "neuron_id") if k in obj), None)
    if key is None and "layer" in obj and "index" in obj:
        key = f"{int(obj['layer'])}/{int(obj['index'])}"
    if key is None or "explanation" not in obj:
        raise DatasetError(
            f"{where}: needs 'explanation' and a neuron ('neuron', 'key', or layer+index)"
        )
    if isinstance(key, dict):
        key = _openai_key(key) if "layer_index" in key else NeuronId.from_dict(key).key
    return str(key), str(obj["explanation"])


def _jsonl(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{i}: not JSON ({e})") from None
            key, text = _from_object(obj, f"{path}:{i}")
            out[key] = text
    return out


def load_explanations(path: str | Path) -> dict[str, str]:
    """Explanations by neuron key from ``path`` (see the module docstring for formats)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: explanation file not found")
    if p.is_dir():
        out: dict[str, str] = {}
        for f in sorted(p.glob("*/*.jsonl")):
            out.update(_jsonl(f))
        if not out:
            raise DatasetError(f"{p}: no {{layer}}/{{neuron}}.jsonl explanation files inside")
        return out
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl(p)
    if suffix == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DatasetError(f"{p}: not JSON ({e})") from None
        if isinstance(data, list):
            return dict(_from_object(obj, f"{p}[{i}]") for i, obj in enumerate(data))
        if isinstance(data, dict):
            return {
                str(k): str(v["explanation"] if isinstance(v, dict) else v) for k, v in data.items()
            }
        raise DatasetError(f"{p}: expected an object or a list")
    if suffix == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return dict(_from_object(row, f"{p}:{i + 2}") for i, row in enumerate(rows))
    raise DatasetError(
        f"{p}: unknown explanation file type {suffix!r} (use .jsonl, .json, .csv or a directory)"
    )


def lookup(explanations: dict[str, str], nid: NeuronId) -> str | None:
    """The explanation for ``nid`` under any accepted key form, or None."""
    for key in (nid.key, str(nid), f"{nid.layer}/{nid.index}"):
        if key in explanations:
            return explanations[key]
    return None


def explanation_for(explanations: dict[str, str], nid: NeuronId) -> Extraction:
    """Cleaned and flagged explanation for ``nid``; flag ``missing`` if the file has none."""
    text = lookup(explanations, nid)
    if text is None:
        return Extraction(explanation="", flags=["missing"])
    return extract_explanation(text)


@solver
def from_file(explanation_file: str) -> Solver:
    """Read each neuron's explanation from ``explanation_file``; no model call.

    Args:
        explanation_file: Path to a .jsonl / .json / .csv file or OpenAI explanation directory.
    """
    explanations = load_explanations(explanation_file)  # at build time: a bad file fails early

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        neuron = neuron_of(state)
        return finish(
            state,
            explanation_for(explanations, neuron.id),
            strategy="from_file",
            trimmed=no_trim(),
            explanation_source=str(explanation_file),
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    if not opts.explanation_file:
        raise ValueError("strategy=from_file needs -T explanation_file=PATH")
    return from_file(explanation_file=opts.explanation_file)
