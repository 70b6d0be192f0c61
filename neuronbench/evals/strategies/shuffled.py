"""Control ``shuffled``: each neuron gets another neuron's explanation.

How it works, exactly:

1. A *source* explanation is fixed for every selected neuron: the ``baseline`` explainer's
   (its top activating train tokens) or, with ``shuffle_source="file"``, the one in
   ``explanation_file`` (neurons missing there have none).
2. The selected neurons' keys are sorted and permuted by Sattolo's algorithm seeded with
   ``seed``: the result is a single cycle through all neurons, so no neuron is its own donor.
3. A neuron takes the source explanation of the next neuron along the cycle that has one
   *and* whose text differs from the neuron's own source text (identical texts, e.g.
   two neurons both explained as ``the tokens "the"``, would otherwise hand a neuron its
   own explanation back).
4. If no such donor exists (one neuron selected, or all texts identical) the explanation
   is empty and flagged ``no_donor``.

The donor's key is recorded in ``shuffled_from``. No model call.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.datasets import train_records
from neuronbench.evals.extraction import Extraction, extract_explanation
from neuronbench.evals.strategies._base import StrategyOptions, finish, no_trim
from neuronbench.evals.strategies.baseline import baseline_explanation
from neuronbench.evals.strategies.from_file import load_explanations, lookup


def cycle(keys: Sequence[str], seed: int) -> list[str]:
    """Sorted ``keys`` in the order of one seeded random cycle (Sattolo): ``c[i] -> c[i+1]``."""
    order = sorted(keys)
    perm = list(range(len(order)))
    rng = random.Random(seed)
    for i in range(len(perm) - 1, 0, -1):
        j = rng.randrange(i)  # j < i (not <= i): this is what makes the permutation one cycle
        perm[i], perm[j] = perm[j], perm[i]
    if not order:
        return []
    out, at = [], 0
    for _ in order:
        out.append(order[at])
        at = perm[at]
    return out


def assign(
    explanations: dict[str, str], keys: Sequence[str], seed: int
) -> dict[str, tuple[str | None, str]]:
    """For each key, (donor key, donor explanation), or (None, "") when there is no valid donor."""
    ring = cycle(keys, seed)
    n = len(ring)
    out: dict[str, tuple[str | None, str]] = {}
    for i, key in enumerate(ring):
        own = explanations.get(key)
        out[key] = (None, "")
        for step in range(1, n):
            donor = ring[(i + step) % n]
            text = explanations.get(donor)
            if text is not None and text != own:
                out[key] = (donor, text)
                break
    return out


@solver
def shuffled(
    explanations: dict[str, str], keys: list[str], seed: int = 0, source: str = "baseline"
) -> Solver:
    """Give each neuron another selected neuron's source explanation (see module docstring).

    Args:
        explanations: Source explanation by neuron key (the neurons that have one).
        keys: All selected neuron keys (the cycle runs over these).
        seed: Seed of the derangement.
        source: Where ``explanations`` came from (``baseline`` or the file path), for the record.
    """
    assignment = assign(explanations, keys, seed)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        donor, text = assignment.get(str(state.sample_id), (None, ""))
        extraction = extract_explanation(text) if donor else Extraction("", ["no_donor"])
        return finish(
            state,
            extraction,
            strategy="shuffled",
            trimmed=no_trim(),
            control=True,
            shuffled_from=donor,
            shuffle_source=source,
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    keys = sorted(opts.neurons)
    if opts.shuffle_source == "baseline":
        explanations = {
            k: baseline_explanation(train_records(n, opts.n_examples)).explanation
            for k, n in opts.neurons.items()
        }
        explanations = {k: v for k, v in explanations.items() if v}
        source = "baseline"
    elif opts.shuffle_source == "file":
        if not opts.explanation_file:
            raise ValueError("shuffle_source=file needs -T explanation_file=PATH")
        table = load_explanations(opts.explanation_file)
        found = {k: lookup(table, n.id) for k, n in opts.neurons.items()}
        explanations = {k: v for k, v in found.items() if v is not None}
        source = opts.explanation_file
    else:
        raise ValueError(
            f"shuffle_source must be 'baseline' or 'file' (got {opts.shuffle_source!r})"
        )
    return shuffled(explanations=explanations, keys=keys, seed=opts.seed, source=source)
