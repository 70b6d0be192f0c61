"""One worker of the suite-v2 logprob validity run: scores neurons one at a time with the
project's own validate() (same simulator, split, n_records as the CLI) and appends each
neuron's scores to a JSONL file at once, so a run stopped at a time limit keeps every
neuron it finished. Neurons: ORDER[start::stride] (ORDER = a seeded permutation of the
test-split keys, fixed before any result was seen).

Usage: python logprob_worker.py SUITE ORDER.json START STRIDE OUT.jsonl"""

import json
import sys
import time

import torch

torch.set_num_threads(1)
from neuronbench.datasets import NeuronDataset  # noqa: E402
from neuronbench.scorers.validity import validate  # noqa: E402

dataset, order_file, out = sys.argv[1], sys.argv[2], sys.argv[5]
start, stride = int(sys.argv[3]), int(sys.argv[4])
ds = NeuronDataset.load(dataset)
with open(order_file) as f:
    keys = json.load(f)[start::stride]
for key in keys:
    t0 = time.perf_counter()
    (report,) = validate(
        ds,
        ["logprob"],
        model="neuronbench/smollm2",
        split="valid",
        n_records=5,
        neurons=[key],
        suite_split="test",
    )
    row = {"key": key, "scores": report.scores[key], "seconds": time.perf_counter() - t0}
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{key} {row['seconds']:.0f}s", flush=True)
