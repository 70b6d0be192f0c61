"""The default run's baseline/empty/shuffled evals with simulator=trained, through the
pipeline's own run_evals (same task args, eval_set options) into a separate log dir."""

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
from neuronbench.pipeline import RunConfig, run_evals  # noqa: E402

cfg = RunConfig(strategies=[], simulators=["trained"])  # results/run.json config, trained only
run_evals(cfg, Path("results/dataset"), Path(sys.argv[1]))
