"""Read ``explain_neurons`` inspect logs into one tidy per-sample table.

The table is built with ``inspect_ai.analysis`` (``evals_df`` for how each eval was
run, ``samples_df`` for the samples), reading sample *summaries* only: scalar sample
metadata, score values, score status and token usage all survive inspect's summary
thinning, so a leaderboard over thousands of neurons never loads records or
transcripts. The viewer, which needs records, reads full logs itself.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from inspect_ai.log import EvalSampleSummary

TASK_NAME = "explain_neurons"
"""The inspect task whose logs make a leaderboard."""

PRIMARY_SCORER = "simulation"
"""Score name of the headline scorer (its value dict holds ``top_and_random``)."""

CONTROL_STRATEGIES = frozenset({"empty", "shuffled", "random", "random_explanation", "control"})
"""Strategies that are controls (floor references), not explainers; labelled as such."""


def _statuses(sample: EvalSampleSummary) -> str:
    """JSON ``{score name: {"status", "reason", "constant_simulation"}}`` from score metadata.

    Scalars, so they survive inspect's thinning of summaries.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, score in (sample.scores or {}).items():
        meta = score.metadata or {}
        out[name] = {
            "status": meta.get("status"),
            "reason": meta.get("reason"),
            "constant_simulation": meta.get("constant_simulation") is True,
        }
    return json.dumps(out)


def _loads(value: Any) -> Any:
    """Parse a JSON column cell (``samples_df`` stores dicts as JSON strings)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas missing values
        return None
    if isinstance(value, str):
        return json.loads(value) if value else None
    return value


def _num(value: Any) -> float:
    """A finite float, or NaN for anything missing or non-numeric."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    return float(value) if math.isfinite(value) else float("nan")


def _usage(model_usage: Any, role_usage: Any) -> tuple[float, float, float]:
    """(total tokens, explainer tokens, cost) of one sample; cost NaN when unpriced.

    Explainer tokens are everything not recorded under a model role: the eval's own
    model has no role, the simulator runs under role ``simulator``.
    """
    usage = _loads(model_usage) or {}
    roles = _loads(role_usage) or {}
    total = float(sum(u.get("total_tokens", 0) for u in usage.values()))
    role_tokens = float(sum(u.get("total_tokens", 0) for u in roles.values()))
    costs = [u["total_cost"] for u in usage.values() if u.get("total_cost") is not None]
    return total, total - role_tokens, float(sum(costs)) if costs else float("nan")


def _part(value: Any, key: str, status: str) -> float:
    """One component of the headline score dict; NaN unless the sample was scored."""
    return _num(value.get(key)) if status == "ok" and isinstance(value, dict) else float("nan")


def _simulator_label(kind: Any, roles: Any) -> str:
    """``kind (model)`` from the task arg ``simulator`` and the ``simulator`` role."""
    role = (_loads(roles) or {}).get("simulator") or {}
    model = role.get("model") if isinstance(role, dict) else None
    kind = kind if isinstance(kind, str) and kind else None
    if kind:
        from neuronbench.scorers.registry import SIMULATORS, simulator_needs_model

        if kind in SIMULATORS and not simulator_needs_model(kind):
            return kind  # model-free simulator: the role model played no part
    if kind and model:
        return f"{kind} ({model})"
    return kind or model or "-"


def _eval_info(evals: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """eval_id → how the eval was run (explainer, strategy, simulator, dataset, split)."""

    def arg(row: Any, name: str) -> Any:
        value = row.get(f"task_arg_{name}")
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    info: dict[str, dict[str, Any]] = {}
    for _, row in evals.iterrows():
        dataset = arg(row, "dataset")
        info[row["eval_id"]] = {
            "site": _eval_site(row.get("metadata"), dataset),
            "created": str(row["created"]),
            "explainer": row["model"],
            "strategy": arg(row, "strategy"),
            "simulator": _simulator_label(arg(row, "simulator"), row.get("model_roles")),
            "dataset": os.path.basename(str(dataset).rstrip("/")) if dataset else "-",
            "split": arg(row, "split") or "-",
            "eval_epochs": int(row["epochs"]) if row.get("epochs") == row.get("epochs") else 1,
        }
    return info


def _eval_site(metadata: Any, dataset: Any) -> str | None:
    """The recorded site (``mlp``, ``sae:<name>``) of an eval's dataset: from the dataset
    card the task copies into the eval's metadata, else from the card on disk; None when
    neither is there (the site is then read off each neuron key)."""
    meta = _loads(metadata) if isinstance(metadata, str) else metadata
    card = meta.get("dataset") if isinstance(meta, dict) else None
    if isinstance(card, dict) and isinstance(card.get("site"), str):
        return str(card["site"])
    if isinstance(dataset, str) and dataset:
        try:
            with open(os.path.join(dataset, "card.json"), encoding="utf-8") as f:
                site = json.load(f).get("site")
        except (OSError, ValueError, AttributeError):
            return None
        return str(site) if isinstance(site, str) else None
    return None


def site_from_key(key: str, subject: Any) -> str:
    """A neuron key's site: ``mlp`` for ``<subject>-L<l>-N<i>``, else the part between the
    subject and the layer (``NeuronId.key`` writes the site file-safe: ``sae-<name>``)."""
    import re

    from neuronbench.datasets.schema import safe_name

    prefix = f"{safe_name(str(subject))}-" if isinstance(subject, str) and subject else ""
    rest = key[len(prefix) :] if prefix and key.startswith(prefix) else key
    m = re.fullmatch(r"(?:(.+)-)?L\d+-N\d+", rest)
    if m is None:
        return "-"
    return m.group(1) or "mlp"


def _primary(values: dict[str, Any]) -> str | None:
    """The headline scorer's name: ``simulation``, else any with ``top_and_random``."""
    if PRIMARY_SCORER in values:
        return PRIMARY_SCORER
    for name, value in values.items():
        if isinstance(value, dict) and "top_and_random" in value:
            return name
    return None


def load_samples(log_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per (eval, neuron, epoch) of every ``explain_neurons`` log under ``log_dir``.

    Columns: ``row`` (explainer · strategy · simulator), ``explainer``, ``strategy``,
    ``simulator``, ``dataset``, ``split``, ``control``, ``site`` (``mlp``, ``sae:<name>``:
    the dataset card's, else read off the neuron key), ``neuron``, ``epoch``, ``layer``,
    ``index``, ``subject``, ``firing_rate``, ``max_activation``, ``explanation``,
    ``status`` (the headline score's metadata status: ok / failed / unscored / skipped, or
    error / missing when the sample has no headline score), ``reason``,
    ``constant_simulation`` (scored 0 because the simulation was constant), ``score``
    (top_and_random), ``random_only``, ``top_only``, ``tokens``, ``explainer_tokens``,
    ``cost``, ``log``, and ``extra`` (other scorers' numeric values, flattened).
    When the same neuron and epoch of the same row appears in several logs (a rerun),
    the newest log wins.

    Raises:
        FileNotFoundError: ``log_dir`` does not exist or holds no ``explain_neurons`` log.
    """
    import pandas as pd
    from inspect_ai.analysis import SampleColumn, SampleSummary, evals_df, samples_df

    if not os.path.exists(log_dir):
        raise FileNotFoundError(f"log directory not found: {log_dir}")
    evals = evals_df(str(log_dir), quiet=True)
    if evals.empty or "task_name" not in evals:
        raise FileNotFoundError(f"no inspect logs in {log_dir}")
    evals = evals[evals["task_name"] == TASK_NAME]
    if evals.empty:
        raise FileNotFoundError(f"no {TASK_NAME} logs in {log_dir}")
    info = _eval_info(evals)
    columns = [
        *SampleSummary,
        SampleColumn("score_status", path=_statuses),
        SampleColumn("role_usage", path="role_usage"),
    ]
    samples = samples_df(list(evals["log"]), columns=columns, quiet=True)

    rows: list[dict[str, Any]] = []
    for rec in samples.to_dict("records"):
        ev = info[rec["eval_id"]]
        values = {
            k.removeprefix("score_"): _loads(v)
            for k, v in rec.items()
            if k.startswith("score_") and k != "score_status" and v is not None
        }
        values = {k: v for k, v in values.items() if v is not None}
        statuses = _loads(rec.get("score_status")) or {}
        primary = _primary(values)
        value = values.get(primary, {}) if primary else {}
        constant = False
        if primary is None:
            status = "error" if rec.get("error") else "missing"
            reason = rec.get("error") or "no simulation score"
        else:
            status = statuses.get(primary, {}).get("status") or "ok"
            reason = statuses.get(primary, {}).get("reason")
            constant = statuses.get(primary, {}).get("constant_simulation") is True
        score = _num(value.get("top_and_random")) if isinstance(value, dict) else _num(value)
        if status == "ok" and math.isnan(score):
            status, reason = "failed", reason or "status ok but no finite score"
        extra: dict[str, float] = {}
        for name, val in values.items():
            if name == primary:
                continue
            if isinstance(val, dict):
                extra.update({f"{name}.{k}": _num(v) for k, v in val.items()})
            else:
                extra[name] = _num(val)
        strategy = ev["strategy"] or rec.get("metadata_strategy") or "-"
        tokens, explainer_tokens, cost = _usage(rec.get("model_usage"), rec.get("role_usage"))
        rows.append(
            {
                **{k: ev[k] for k in ("explainer", "simulator", "dataset", "split", "created")},
                "strategy": strategy,
                "row": f"{ev['explainer']} · {strategy} · {ev['simulator']}",
                "control": strategy in CONTROL_STRATEGIES,
                "site": ev["site"] or site_from_key(str(rec["id"]), rec.get("metadata_subject")),
                "neuron": str(rec["id"]),
                "epoch": int(rec["epoch"]),
                "layer": rec.get("metadata_layer"),
                "index": rec.get("metadata_index"),
                "subject": rec.get("metadata_subject"),
                "firing_rate": _num(rec.get("metadata_firing_rate")),
                "max_activation": _num(rec.get("metadata_max_activation")),
                "explanation": rec.get("metadata_explanation") or "",
                "status": status,
                "reason": reason,
                "constant_simulation": constant and status == "ok",
                "score": score if status == "ok" else float("nan"),
                "random_only": _part(value, "random_only", status),
                "top_only": _part(value, "top_only", status),
                "tokens": tokens,
                "explainer_tokens": explainer_tokens,
                "cost": cost,
                "log": rec["log"],
                "extra": extra,
            }
        )
    df = pd.DataFrame(rows)
    if df.empty:
        raise FileNotFoundError(f"{TASK_NAME} logs in {log_dir} hold no samples")
    df = df.sort_values("created").drop_duplicates(
        subset=["dataset", "split", "row", "neuron", "epoch"], keep="last"
    )
    return df.reset_index(drop=True)
