"""Embedding baseline simulator: each token scored by its similarity to the explanation.

Needs no LLM (all-MiniLM-L6-v2, bundled offline; see ``neuronbench.scorers._embed``).
It catches paraphrase the lexical baseline misses ("fires on city names" → ``Paris``),
so together they are the floor an LLM simulator should beat.

Each token gets the mean of two cosine similarities to the explanation: the token
alone (what it is) and the window of ``window`` tokens either side (what it means
here, e.g. ``bank`` by a river). Whitespace-only tokens have no meaning alone and take
0 for that half. The similarity is mapped to the 0-10 scale as ``10 * max(0, cos)``:
any monotone map gives the same correlation; this one keeps predictions on the scale
every other simulator uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neuronbench.scorers.simulators.base import Simulation


def token_windows(tokens: Sequence[str], window: int) -> list[str]:
    """Text of tokens ``i - window .. i + window`` (clipped at the record's ends) for each ``i``."""
    n = len(tokens)
    return ["".join(tokens[max(0, i - window) : min(n, i + window + 1)]).strip() for i in range(n)]


def similarity_predictions(
    explanation: str, records: Sequence[Sequence[str]], window: int
) -> list[list[float]]:
    """Predictions (0-10) for every token; blocking (embeds), so async callers use a thread."""
    from neuronbench.scorers._embed import embed

    target = embed([explanation])[0]  # (384,)
    out: list[list[float]] = []
    for rec in records:
        alone = [t.strip() for t in rec]
        sim_alone = embed(alone) @ target  # (n_tokens,)
        sim_alone[[not t for t in alone]] = 0.0
        if window > 0:
            sim = 0.5 * (sim_alone + embed(token_windows(rec, window)) @ target)
        else:
            sim = sim_alone
        out.append([float(v) for v in 10.0 * np.clip(sim, 0.0, 1.0)])
    return out


@dataclass
class EmbeddingSimulator:
    """Predicts activations as sentence-embedding similarity of each token to the explanation."""

    window: int = 2
    """Context tokens either side of a token in its window embedding (0 = token alone)."""
    name: str = "embedding"
    """Identifier recorded in scores."""

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        import anyio

        if not explanation.strip():
            return Simulation(
                predictions=[[0.0] * len(r) for r in records], details={"empty_explanation": True}
            )
        predictions = await anyio.to_thread.run_sync(
            similarity_predictions, explanation, [list(r) for r in records], self.window
        )
        return Simulation(predictions=predictions, details={"window": self.window})
