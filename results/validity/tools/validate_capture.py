"""Run `neuronbench validate ARGS...` unchanged (same stdout) and also write every
per-neuron score (ValidityReport.scores) to the JSON file named by the first argument."""

import json
import sys
from typing import Any

import torch

torch.set_num_threads(1)
import neuronbench.scorers.validity as validity  # noqa: E402
from neuronbench.cli import main  # noqa: E402

captured: list[validity.ValidityReport] = []
_orig = validity.validate


def _capture(*a: Any, **k: Any) -> list[validity.ValidityReport]:
    reports = _orig(*a, **k)
    captured.extend(reports)
    return reports


validity.validate = _capture  # type: ignore[assignment]
rc = main(["validate", *sys.argv[2:]])
with open(sys.argv[1], "w") as f:
    json.dump({r.scorer: r.scores for r in captured}, f, indent=0, sort_keys=True)
sys.exit(rc)
