"""Per-neuron simulate() wall time, trained vs embedding: same neurons, records and process.

Each pass starts with empty text caches (the shared MiniLM sentence cache and the trained
model's state cache); passes alternate embedding, trained, trained, embedding; per neuron the
median over that simulator's passes. python speed.py [MODEL_DIR]
"""

import asyncio
import json
import statistics
import sys
import time

import torch

from neuronbench.datasets import scoring_records
from neuronbench.groundtruth.suite import generate_suite
from neuronbench.scorers import _embed
from neuronbench.scorers._cli import load_tokenizer
from neuronbench.scorers.registry import make_simulator
from neuronbench.scorers.simulators import trained as T

torch.set_num_threads(1)
path = sys.argv[1] if len(sys.argv) > 1 else None
ref = generate_suite(load_tokenizer("smollm2"), seed=0)  # the published suite v2
dev = ref.split("dev")
neurons = dev[:: max(1, len(dev) // 20)][:20]
work = [
    (
        n.explanations["truth"].text,
        [list(r.tokens) for r in scoring_records(ref.dataset[n.id], "valid", None).all],
    )
    for n in neurons
]
emb = make_simulator("embedding", None)
tr = T.TrainedSimulator(path=path) if path else make_simulator("trained", None)
for sim in (emb, tr):
    asyncio.run(sim.simulate("warm up", [["a", "b"]]))
times: dict[str, list[list[float]]] = {
    "embedding": [[] for _ in work],
    "trained": [[] for _ in work],
}
for name in ["embedding", "trained", "trained", "embedding"]:
    sim = emb if name == "embedding" else tr
    _embed._cache.clear()
    if name == "trained":
        tr.model()._cache.clear()
    for i, (text, recs) in enumerate(work):
        t = time.perf_counter()
        asyncio.run(sim.simulate(text, recs))
        times[name][i].append(time.perf_counter() - t)
per = {k: statistics.mean(statistics.median(x) for x in v) for k, v in times.items()}
print(json.dumps({"per_neuron_s": per, "ratio": per["trained"] / per["embedding"], "n": len(work)}))
