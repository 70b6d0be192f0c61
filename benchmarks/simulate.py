"""Benchmark the logprob simulator: passes per record, time against a bare forward, exactness.

Scores ``--neurons`` synthetic neurons, each with ``--records`` records of
``--record-length`` corpus tokens, with the local provider and no cache. Measured in this run:

- ``passes_per_record``: sequences the model ran per scored record in a warm run (the
  shared few-shot prefix is computed once per model and example set, then cached):
  goal exactly 1 for the all-at-once simulator, batched. The paper's "one at a time"
  method needs one pass per token (``one_at_a_time_passes_per_record``);
- ``simulate_over_forward``: the simulator's process CPU time (prompt building,
  alignment, the inspect ``generate()`` round trip, the batched pass with the "10"
  branch tokens, expected values) over a bare ``model(input_ids, logits_to_keep=1)``
  forward over exactly the same per-record prompts (goal <= 1.3). Best of ``--repeats``
  interleaved runs; CPU time because on a shared machine wall time measures the neighbours;
- ``ten_max_abs_error``: on digit-splitting tokenizers, the largest difference between
  the batched tree-attention ``P("0" | ... TAB "1")`` and a separate forward over the text
  up to each tab plus "1" (the exact one-token-at-a-time computation), over
  ``--check-positions`` value positions, and the resulting largest difference in expected value;
- ``value_mass_median``: median raw probability of the value tokens 0-10 at the read
  positions, for our examples, OpenAI's (if ``neuron-explainer`` is installed) and the
  packed layout.

Run: ``python benchmarks/simulate.py [--model neuronbench/smollm2]``. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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


def ten_error(sim, neurons, n_positions: int) -> dict[str, float] | None:
    """Batched tree-attention reads against separate forwards, one per value position."""
    import math

    import torch

    from neuronbench.models.local import batched_logprobs
    from neuronbench.scorers.simulators.logprob import value_spellings

    local = sim._local.local
    tok = local.tokenizer
    spellings = value_spellings(tok)
    if len(spellings[10]) == 1:
        return None  # "10" is one token: read directly, nothing to compare
    one, zero = spellings[1][0], spellings[0][0]
    digits = [s[0] for s in spellings[:10]]
    worst_p = worst_ev = 0.0
    checked = 0
    for explanation, records in neurons:
        result = asyncio.run(sim.simulate(explanation, records))
        for r, record in enumerate(records):
            prompt = sim.prompts(explanation, [record])[0]
            offsets = prompt.value_offsets[0]
            batched = batched_logprobs(
                local, prompt.prefix, [prompt.suffix], [offsets], [zero], branch_token=one
            ).branch_logprobs[0]
            for j, c in enumerate(offsets):
                if checked == n_positions:
                    return {"positions": checked, "p_zero": worst_p, "expected_value": worst_ev}
                before = tok(prompt.text[:c])["input_ids"]
                with torch.inference_mode():
                    logits = local.model(input_ids=torch.tensor([[*before, one]])).logits[0]
                lp = torch.log_softmax(logits.float(), dim=-1)  # (seq, vocab)
                p = [float(lp[-2, d].exp()) for d in digits]
                p_zero = float(lp[-1, zero].exp())
                exact = [*p, p[1] * p_zero]
                exact[1] *= 1 - p_zero
                ev = sum(v * q for v, q in enumerate(exact)) / sum(exact)
                worst_ev = max(worst_ev, abs(ev - result.predictions[r][j]))
                worst_p = max(worst_p, abs(math.exp(batched[j][0]) - p_zero))
                checked += 1
    return {"positions": checked, "p_zero": worst_p, "expected_value": worst_ev}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="neuronbench/smollm2")
    parser.add_argument("--neurons", type=int, default=2)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--record-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--check-positions", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch
    from inspect_ai.model import get_model

    import neuronbench.models.provider  # noqa: F401  (registers neuronbench/)
    from neuronbench.scorers.simulators.logprob import LogprobSimulator

    if args.threads:
        torch.set_num_threads(args.threads)
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
        local.tokenizer(p.text, return_tensors="pt")["input_ids"]
        for expl, recs in neurons
        for p in sim.prompts(expl, recs)
    ]

    def simulate_all(simulator) -> list:
        results = [asyncio.run(simulator.simulate(e, r)) for e, r in neurons]
        failed = [r.error for r in results if r.failed]
        if failed:
            raise SystemExit(f"simulation failed: {failed[0]}")
        return results

    def bare_forward() -> None:
        with torch.inference_mode():
            for ids in prompts:
                local.model(input_ids=ids.to(local.device), logits_to_keep=1)

    simulate_all(sim)  # warm-up: first-call allocations, lazy imports, the prefix cache
    sim_times, bare_times, sim_wall, bare_wall = [], [], [], []
    passes = 0
    results: list = []
    for _ in range(args.repeats):
        before = local.forward_passes
        w0, t0 = time.perf_counter(), time.process_time()
        results = simulate_all(sim)
        sim_times.append(time.process_time() - t0)
        sim_wall.append(time.perf_counter() - w0)
        passes = local.forward_passes - before
        w0, t0 = time.perf_counter(), time.process_time()
        bare_forward()
        bare_times.append(time.process_time() - t0)
        bare_wall.append(time.perf_counter() - w0)

    masses = {"default": [r.details["value_mass"]["median"] for r in results]}
    variants = {"packed": LogprobSimulator(model, cache=False, layout="packed")}
    try:
        variants["openai"] = LogprobSimulator(model, cache=False, few_shot="openai")
    except ValueError as ex:
        print(f"openai examples skipped: {ex}")
    for name, other in variants.items():
        masses[name] = [r.details["value_mass"]["median"] for r in simulate_all(other)]
    error = ten_error(sim, neurons, args.check_positions)

    n_records = sum(len(recs) for _, recs in neurons)
    n_tokens = sum(len(r) for _, recs in neurons for r in recs)
    figures = {
        "model": args.model,
        "device": local.device,
        "threads": torch.get_num_threads(),
        "neurons": args.neurons,
        "records": n_records,
        "prompt_tokens_median": statistics.median(int(p.shape[1]) for p in prompts),
        "simulate_cpu_s": min(sim_times),
        "bare_forward_cpu_s": min(bare_times),
        "simulate_wall_s": min(sim_wall),
        "bare_forward_wall_s": min(bare_wall),
        "value_mass_per_neuron": masses,
    }
    print(json.dumps(figures))
    print(
        json.dumps(
            {
                "passes_per_record": passes / n_records,
                "one_at_a_time_passes_per_record": n_tokens / n_records,
                "simulate_over_forward": min(sim_times) / min(bare_times),
                "ten_max_abs_error": error,
                "value_mass_median": {k: statistics.median(v) for k, v in masses.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
