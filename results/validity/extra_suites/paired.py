"""Paired bootstrap over neurons (2000 draws, seed 0) of B - A for all_three and AUC.

python paired.py A.json B.json
"""

import json
import sys

import numpy as np

from neuronbench.scorers.simulators.training import validity_figures

with open(sys.argv[1]) as f:
    a = json.load(f)
with open(sys.argv[2]) as f:
    b = json.load(f)
keys = sorted(a)
assert keys == sorted(b)
rng = np.random.default_rng(0)
fa, fb = validity_figures(a), validity_figures(b)
out = {}
for m in ("all_three", "auc"):
    d = []
    for _ in range(2000):
        ks = [keys[i] for i in rng.integers(len(keys), size=len(keys))]
        ra = {f"{k}#{j}": a[k] for j, k in enumerate(ks)}  # a drawn twice stays twice
        rb = {f"{k}#{j}": b[k] for j, k in enumerate(ks)}
        d.append(validity_figures(rb)[m] - validity_figures(ra)[m])
    out[m] = (fb[m] - fa[m], float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)))
print(json.dumps(out))
