"""Per-neuron simulate() wall time, reader vs embedding: same neurons, records and process.

Each pass starts with empty caches (the shared MiniLM sentence cache and the reader's
record/explanation caches); passes alternate embedding, reader, reader, embedding; per
neuron the median over that simulator's passes. 20 dev neurons of suite v2, truth
explanation, all 10 + 10 valid records. python speed.py
"""

import asyncio
import json
import statistics
import time

import torch

from neuronbench.datasets import scoring_records
from neuronbench.groundtruth.suite import generate_suite
from neuronbench.scorers import _embed
from neuronbench.scorers._cli import load_tokenizer
from neuronbench.scorers.registry import make_simulator
from neuronbench.scorers.simulators import reader as RD

torch.set_num_threads(1)
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
sims = {"embedding": make_simulator("embedding", None), "reader": make_simulator("reader", None)}
for sim in sims.values():
    asyncio.run(sim.simulate("warm up", [["a", "b"]]))
times: dict[str, list[list[float]]] = {k: [[] for _ in work] for k in sims}
for name in ["embedding", "reader", "reader", "embedding"]:
    _embed._cache.clear()
    RD.record_view.cache_clear()
    RD.terms.cache_clear()
    for i, (text, recs) in enumerate(work):
        t = time.perf_counter()
        asyncio.run(sims[name].simulate(text, recs))
        times[name][i].append(time.perf_counter() - t)
per = {k: statistics.mean(statistics.median(x) for x in v) for k, v in times.items()}
print(json.dumps({"per_neuron_s": per, "ratio": per["reader"] / per["embedding"], "n": len(work)}))
