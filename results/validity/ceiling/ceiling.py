"""The rule executor's ceiling and every simulator's figures on decidable pairs, suite v2.

python results/validity/ceiling/ceiling.py OUT_DIR

Test: the per-neuron scores published in results/validity/suite_v2_test_scores.json (not
re-scored). Dev: the shipped trained simulator's dev scores
(results/validity/extra_suites/dev_scores_shipped.json) and lexical + embedding scored here
(5 top + 5 random records, as the model card). The rule executor scores the same records.
"""

import asyncio
import json
import sys
from pathlib import Path

import torch

from neuronbench.groundtruth.suite import generate_suite
from neuronbench.scorers._cli import load_tokenizer
from neuronbench.scorers.registry import make_simulator
from neuronbench.scorers.simulators import training as TR
from neuronbench.scorers.validity import decidable_figures

torch.set_num_threads(1)
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
root = Path(__file__).resolve().parents[1]
suite = generate_suite(load_tokenizer("smollm2"), seed=0)  # the published suite v2
print("suite digest", suite.digest()[:16], file=sys.stderr)
kinds = ("too_broad", "too_narrow", "different", "literal")
result: dict = {"digest": suite.digest()}
for split in ("dev", "test"):
    held = TR.eval_neurons(suite, split, TR.REPORT_RECORDS)
    ref = TR.rule_scores(suite, held)
    if split == "test":
        sims = json.loads((root / "suite_v2_test_scores.json").read_text())
    else:
        sims = {
            "simulator:trained": json.loads(
                (root / "extra_suites/dev_scores_shipped.json").read_text()
            )
        }
        for kind in ("lexical", "embedding"):
            sim = make_simulator(kind, None)

            def predict(text, toks, sim=sim):
                return asyncio.run(sim.simulate(text, toks)).predictions

            sims[f"simulator:{kind}"] = TR.candidate_scores(predict, held)
    rows = {
        "ceiling:rules": {
            "raw": TR.validity_figures(ref),
            "decidable": decidable_figures(ref, ref, kinds),
        }
    }
    for name, sc in sorted(sims.items()):
        sub_ref = {k: v for k, v in ref.items() if k in sc}
        rows[name] = {
            "raw": TR.validity_figures(sc),
            "decidable": decidable_figures(sc, sub_ref, kinds),
            "ceiling_on_same_neurons": TR.validity_figures(sub_ref),
        }
    result[split] = {"rule_scores": ref, "scores": sims if split == "dev" else None, "rows": rows}
    print(split)
    for name, r in rows.items():
        raw, dec = r["raw"], r["decidable"]
        print(
            f"  {name:22s} raw: all3 {raw['all_three']:.2f} narrow {raw['too_narrow']:.2f} broad {raw['too_broad']:.2f}"
            f" diff {raw['different']:.2f} lit {raw['literal']:.2f} auc {raw['auc']:.3f} gap {raw.get('paraphrase_gap', float('nan')):.3f} n {int(raw['n'])}"
        )
        print(
            f"  {'':22s} dec: all3 {dec['all_three']:.2f} narrow {dec['too_narrow']:.2f} broad {dec['too_broad']:.2f}"
            f" diff {dec['different']:.2f} lit {dec['literal']:.2f} auc {dec['auc']:.3f}"
            f" (pairs {int(dec['n_too_broad'])}/{int(dec['n_too_narrow'])}/{int(dec['n_different'])}/{int(dec['n_literal'])})"
        )
(out / "ceiling.json").write_text(json.dumps(result))
