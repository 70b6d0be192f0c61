"""The default run's baseline/empty/shuffled evals with an offline trained simulator
(``trained`` by default, or ``reader``), through the pipeline's own run_evals (same task
args, eval_set options) into a separate log dir.

python results/validity/tools/trained_baselines.py LOG_DIR [SIMULATOR]
"""

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
from neuronbench.pipeline import RunConfig, run_evals  # noqa: E402

simulator = sys.argv[2] if len(sys.argv) > 2 else "trained"
cfg = RunConfig(strategies=[], simulators=[simulator])  # results/run.json config, one simulator
run_evals(cfg, Path("results/dataset"), Path(sys.argv[1]))
