"""Suite-v2 validity figures with bootstrap 95% CIs from per-neuron scores.

Reads the JSON written by validate_capture.py ({scorer: {neuron key: {candidate: score}}})
and prints, per scorer, the README's columns: truth beats all three (too narrow, too broad,
different), each decoy, all four (literal too), AUC (all four kinds, ties 0.5) and mean
|truth - paraphrase|, each with a percentile bootstrap 95% CI over neurons (2,000
resamples, seed 0). ``--neurons FILE`` (a JSON key list) restricts every scorer to the
same neurons, so columns compare on one set.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from neuronbench.scorers.validity import beats

KINDS = ("too_narrow", "too_broad", "different", "literal")
THREE = ("too_narrow", "too_broad", "different")
COLS = ("all_three", *KINDS, "all_four", "auc", "paraphrase_gap")


def per_neuron(row: dict[str, float | None]) -> dict[str, float]:
    win = {k: beats(row["truth"], row[k]) == 1.0 for k in KINDS}
    t, p = row.get("truth"), row.get("paraphrase")
    gap = abs(t - p) if t is not None and p is not None else np.nan
    return {
        "all_three": float(all(win[k] for k in THREE)),
        **{k: float(win[k]) for k in KINDS},
        "all_four": float(all(win.values())),
        "auc": float(np.mean([beats(row["truth"], row[k]) for k in KINDS])),
        "paraphrase_gap": float(gap),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scores", nargs="+")
    ap.add_argument("--neurons", default=None)
    ap.add_argument("--resamples", type=int, default=2000)
    args = ap.parse_args()
    merged: dict[str, dict[str, dict[str, float | None]]] = {}
    for path in args.scores:
        with open(path) as f:
            merged.update(json.load(f))
    keep = None
    if args.neurons:
        with open(args.neurons) as f:
            keep = set(json.load(f))
    print("| scorer | " + " | ".join(COLS) + " | n |")
    print("|---" * (len(COLS) + 2) + "|")
    for scorer, scores in merged.items():
        keys = sorted(k for k in scores if keep is None or k in keep)
        m = np.array([[per_neuron(scores[k])[c] for c in COLS] for k in keys])
        rng = np.random.default_rng(0)
        idx = rng.integers(0, len(keys), size=(args.resamples, len(keys)))
        boot = np.stack([np.nanmean(m[i], axis=0) for i in idx])
        point = np.nanmean(m, axis=0)
        lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
        cells = [f"{p:.2f} [{a:.2f}, {b:.2f}]" for p, a, b in zip(point, lo, hi, strict=True)]
        print(f"| {scorer} | " + " | ".join(cells) + f" | {len(keys)} |")


if __name__ == "__main__":
    main()
