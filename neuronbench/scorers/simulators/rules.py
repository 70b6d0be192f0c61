"""The rule executor: the ceiling of any simulator on the ground-truth suite.

Every explanation of a suite neuron (truth, paraphrase, decoys) was generated from a rule,
so the suite knows exactly which tokens each explanation means. Executing that rule on
the scored records is what a perfect reader of the explanation would predict. Its scores
answer two questions no learned simulator can:

- the ceiling: how often even a perfect simulator sees the truth beat a decoy on the few
  scored records (a too-broad decoy whose extra words never occur there scores exactly
  like the truth: no simulator can, or should, separate them);
- which (neuron, decoy) pairs are *decidable* on the scored records, so a simulator's win
  rate can be read where the evidence allows a win at all
  (:func:`neuronbench.scorers.validity.decidable_figures`).

It is not a simulator for real neurons: it only reads explanations whose rule it was given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neuronbench.scorers.simulators.base import Simulation

SCALE = 10.0
"""Predictions on the 0-10 scale of every simulator (a rule's level 1 is 10)."""


@dataclass
class RuleSimulator:
    """Predicts ``SCALE * level`` of the explanation's own rule on every token."""

    rules: Mapping[str, Mapping[str, Any]]
    """Explanation text → its rule (``neuronbench.groundtruth.rules``)."""
    name: str = field(default="rules", init=False)

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        return self.predict(explanation, records)

    def predict(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        from neuronbench.groundtruth import rules as R

        rule = self.rules.get(explanation)
        if rule is None:
            return Simulation(
                None, error=f"rules simulator: no rule for explanation {explanation!r}"
            )
        levels = R.evaluate_records(dict(rule), [list(r) for r in records])
        return Simulation([[SCALE * float(v) for v in lv] for lv in levels])


def suite_rules(suite: Any) -> dict[str, dict[str, Any]]:
    """Explanation text → rule over every neuron of a suite.

    Raises ValueError naming both neurons if one text carries two different rules (the
    executor would then have to guess which one an explanation means).
    """
    out: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for n in suite.neurons:
        for kind, e in n.explanations.items():
            seen = out.setdefault(e.text, e.rule)
            if seen != e.rule:
                raise ValueError(
                    f"suite: explanation {e.text!r} has two rules "
                    f"({owner[e.text]} and {n.key}/{kind})"
                )
            owner.setdefault(e.text, f"{n.key}/{kind}")
    return out
