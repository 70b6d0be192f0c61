"""Per-neuron suite-v2 scores of the shipped reader simulator (dev and test, 5+5 records,
as the model card and `neuronbench validate --n-records 5`), their figures on decidable
pairs, and paired AUC differences against the other simulators' published test scores.

python results/validity/reader/scores.py OUT_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from neuronbench.groundtruth.suite import generate_suite
from neuronbench.scorers._cli import load_tokenizer
from neuronbench.scorers.simulators import training as TR
from neuronbench.scorers.simulators.reader import load_model
from neuronbench.scorers.validity import beats, decidable_figures

torch.set_num_threads(1)
out = Path(sys.argv[1])
root = Path(__file__).resolve().parents[1]
suite = generate_suite(load_tokenizer("smollm2"), seed=0)  # the published suite v2
model = load_model()
kinds = ("too_broad", "too_narrow", "different", "literal")
published = json.loads((root / "suite_v2_test_scores.json").read_text())


def auc(row):
    return float(np.mean([beats(row["truth"], row[k]) for k in kinds]))


for split in ("dev", "test"):
    held = TR.eval_neurons(suite, split, TR.REPORT_RECORDS)
    scores = TR.candidate_scores(model.predict, held)
    ref = TR.rule_scores(suite, held)
    (out / f"reader_{split}_scores.json").write_text(json.dumps({"simulator:reader": scores}))
    print(split, TR._fmt(TR.validity_figures(scores)))
    print(f"{split} decidable", TR._fmt(decidable_figures(scores, ref, kinds)))
    if split == "test":
        rng = np.random.default_rng(0)
        for other in ("simulator:embedding", "simulator:trained", "simulator:lexical"):
            keys = sorted(set(scores) & set(published[other]))
            d = np.array([auc(scores[k]) - auc(published[other][k]) for k in keys])
            boot = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
            lo, hi = np.percentile(boot, [2.5, 97.5])
            print(
                f"test paired AUC reader - {other}: {d.mean():.3f} [{lo:.3f}, {hi:.3f}] (n={len(d)})"
            )
