"""Benchmark the logprob simulator: forward passes per record, and time against a bare forward.

Scores ``--neurons`` synthetic neurons, each with ``--records`` records of
``--record-length`` corpus tokens (the paper's 20 x 64 for one neuron's test split),
with the local provider and no cache. Two figures, both measured in this run:

- ``passes_per_record``: model forward passes the simulator ran, per scored record
  (goal: 1 or fewer), against ``one_at_a_time_passes_per_record``: the paper's
  "one at a time" method, which needs one forward pass per token;
- ``simulate_over_forward``: the simulator's wall time (prompt building, alignment,
  the inspect ``generate()`` round trip, expected values) over a bare
  ``model(input_ids, logits_to_keep=1)`` forward over exactly the same prompts (goal <= 1.3).
  Time is process CPU time (all threads), best of ``--repeats`` interleaved runs: on a
  shared machine wall time mostly measures the neighbours; wall times are printed too.

Run: ``python benchmarks/simulate.py [--model neuronbench/smollm2]``. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

EXPLANATIONS = [
    "words about marriage, family and relations between people.",
    "punctuation at the end of sentences.",
    "names of people and places.",
    "verbs in the past tense.",
]


def corpus_records(tokenizer, n_records: int, length: int) -> list[list[str]]:
    from neuronbench.subjects.corpus import iter_records, token_strings

    records = []
    for rec in iter_records(
        tokenizer, "austen", record_length=length, max_tokens=n_records * length * 4
    ):
        records.append(token_strings(tokenizer, rec.token_ids))
        if len(records) == n_records:
            break
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="neuronbench/smollm2")
    parser.add_argument("--neurons", type=int, default=2)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--record-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch
    from inspect_ai.model import get_model

    import neuronbench.models.provider  # noqa: F401  (registers neuronbench/)
    from neuronbench.scorers.simulators.logprob import LogprobSimulator, build_prompt

    torch.set_grad_enabled(False)
    model = get_model(args.model)
    local = model.api.local
    sim = LogprobSimulator(model, cache=False)
    all_records = corpus_records(local.tokenizer, args.neurons * args.records, args.record_length)
    neurons = [
        (
            EXPLANATIONS[i % len(EXPLANATIONS)],
            all_records[i * args.records : (i + 1) * args.records],
        )
        for i in range(args.neurons)
    ]
    prompts = [
        local.tokenizer(build_prompt(sim.few_shot, expl, recs[s:e]).text, return_tensors="pt")[
            "input_ids"
        ]
        for expl, recs in neurons
        for s, e in sim.chunks(expl, recs)
    ]

    async def simulate_all() -> None:
        for expl, recs in neurons:
            result = await sim.simulate(expl, recs)
            if result.failed:
                raise SystemExit(f"simulation failed: {result.error}")

    def bare_forward() -> None:
        with torch.inference_mode():
            for ids in prompts:
                local.model(input_ids=ids.to(local.device), logits_to_keep=1)

    with torch.inference_mode():  # warm-up: first-call allocations, lazy imports
        local.model(input_ids=prompts[0][:, :256].to(local.device), logits_to_keep=1)
    sim_times, bare_times, sim_wall, bare_wall = [], [], [], []
    passes = 0
    for _ in range(args.repeats):
        before = local.forward_passes
        w0, t0 = time.perf_counter(), time.process_time()
        asyncio.run(simulate_all())
        sim_times.append(time.process_time() - t0)
        sim_wall.append(time.perf_counter() - w0)
        passes = local.forward_passes - before
        w0, t0 = time.perf_counter(), time.process_time()
        bare_forward()
        bare_times.append(time.process_time() - t0)
        bare_wall.append(time.perf_counter() - w0)

    n_records = sum(len(recs) for _, recs in neurons)
    n_tokens = sum(len(r) for _, recs in neurons for r in recs)
    figures = {
        "model": args.model,
        "device": local.device,
        "neurons": args.neurons,
        "records": n_records,
        "prompt_tokens": [int(p.shape[1]) for p in prompts],
        "simulate_cpu_s": min(sim_times),
        "bare_forward_cpu_s": min(bare_times),
        "simulate_wall_s": min(sim_wall),
        "bare_forward_wall_s": min(bare_wall),
    }
    print(json.dumps(figures))
    print(
        json.dumps(
            {
                "passes_per_record": passes / n_records,
                "one_at_a_time_passes_per_record": n_tokens / n_records,
                "simulate_over_forward": min(sim_times) / min(bare_times),
            }
        )
    )


if __name__ == "__main__":
    main()
