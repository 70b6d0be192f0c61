"""Merge per-neuron logprob scores (validate_capture.py JSON and logprob_worker.py JSONL)
into one ``{"simulator:logprob": {key: {candidate: score}}}`` JSON, and print the
validate figures of the merged neurons with the project's own ``summarize``.

Usage: python merge_scores.py SUITE OUT.json FILE..."""

import json
import sys

from neuronbench.datasets import NeuronDataset
from neuronbench.groundtruth.suite import DECOY_KINDS, suite_from_dataset
from neuronbench.scorers.validity import summarize

members = {n.key: n for n in suite_from_dataset(NeuronDataset.load(sys.argv[1])).neurons}
scores: dict[str, dict[str, float | None]] = {}
for path in sys.argv[3:]:
    with open(path) as f:
        if path.endswith(".jsonl"):
            for line in f:
                row = json.loads(line)
                scores[row["key"]] = row["scores"]
        else:
            scores.update(json.load(f)["simulator:logprob"])
with open(sys.argv[2], "w") as f:
    json.dump({"simulator:logprob": scores}, f, indent=0, sort_keys=True)
r = summarize(
    "simulator:logprob",
    scores,
    {k: members[k].family for k in scores},
    {k: members[k].split for k in scores},
    DECOY_KINDS,
)
print(f"simulator:logprob n={r.n_neurons} unscored={r.n_unscored}")
print(f"  beats all four {r.truth_beats_decoys:.2f}  auc {r.auc:.3f}  per kind {r.per_kind}")
print(f"  mean |truth - paraphrase| {r.paraphrase_gap:.3f}")
for fam, rates in r.per_family.items():
    print(f"  {fam:16s} " + " ".join(f"{k} {v:.2f}" for k, v in rates.items()))
