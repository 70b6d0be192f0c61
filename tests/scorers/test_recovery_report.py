"""Recovery report: planted-dataset logs give one row per explainer run with score and closeness."""

from __future__ import annotations

import math
from pathlib import Path

from inspect_ai import eval

from neuronbench.evals.task import explain_neurons
from neuronbench.groundtruth.planted import PlantOptions, plant_corpus
from neuronbench.scorers.recovery_report import recovery_report, to_markdown
from neuronbench.subjects.models import tiny_tokenizer


def test_report_from_planted_logs(tmp_path: Path) -> None:
    ds = plant_corpus(
        tiny_tokenizer(), "tiny", n_tokens=1500, options=PlantOptions(top_k=8, n_random=6)
    )
    ds.save(tmp_path / "planted")
    logs = tmp_path / "logs"
    task = explain_neurons(
        dataset=str(tmp_path / "planted"),
        strategy="baseline",
        simulator="lexical",
        split="valid",
        neurons="stratified:5",
    )
    [log] = eval(task, model="none/none", log_dir=str(logs), display="none")
    assert log.status == "success", log.error

    [row] = recovery_report(logs)
    assert "baseline" in row.label and "lexical" in row.label
    explained = [s for s in log.samples if not s.metadata["explanation_flags"]]
    assert row.n_neurons == len(explained) > 0
    assert -1.0 <= row.truth_similarity <= 1.0 and 0.0 <= row.closer_to_truth <= 1.0
    assert math.isnan(row.word_check) or 0.0 <= row.word_check <= 1.0
    assert "| none/none · baseline · lexical |" in to_markdown([row])
