"""EleutherAI-style explainer: each record as running text with activating tokens marked ``<<...>>``.

A token is marked when its activation exceeds ``threshold`` x the max over the records
shown; consecutive marked tokens share one pair of delimiters. With ``show_values`` each
example is followed by the 0-10 value of every marked token. Text lives in
``prompts/highlighted.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspect_ai.model import (
    ChatMessage,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.datasets import ActivationRecord
from neuronbench.datasets.normalize import normalize
from neuronbench.evals.strategies._base import (
    FewShotExample,
    StrategyOptions,
    explain_once,
    few_shot_chat,
    load_data,
    load_few_shot,
    max_over,
)


def highlight(record: ActivationRecord, cutoff: float) -> str:
    """The record's text with runs of tokens whose activation is > ``cutoff`` wrapped in ``<<>>``."""
    out: list[str] = []
    inside = False
    for tok, a in zip(record.tokens, record.activations, strict=True):
        on = a > cutoff
        if on and not inside:
            out.append("<<")
        elif inside and not on:
            out.append(">>")
        out.append(tok)
        inside = on
    if inside:
        out.append(">>")
    return "".join(out)


def _neuron(
    p: dict[str, str],
    index: int,
    records: Sequence[ActivationRecord],
    threshold: float,
    values: bool,
) -> str:
    top = max_over(records)
    cutoff = threshold * top
    text = p["neuron"].format(index=index)
    for j, r in enumerate(records, start=1):
        text += p["example"].format(number=j, text=highlight(r, cutoff))
        if values:
            marked = [
                (t, v)
                for t, a, v in zip(
                    r.tokens, r.activations, normalize(r.activations, top), strict=True
                )
                if a > cutoff
            ]
            text += p["values"].format(pairs=", ".join(f"({t!r}, {v})" for t, v in marked))
    return text + p["ask"].format(index=index)


def build_messages(
    records: Sequence[ActivationRecord],
    few_shot: Sequence[FewShotExample],
    *,
    threshold: float = 0.3,
    show_values: bool = False,
) -> list[ChatMessage]:
    """The highlighted-text prompt for ``records`` after the ``few_shot`` examples."""
    p = load_data("highlighted.json")
    system = p["system"] + (p["system_values"] if show_values else "")
    return few_shot_chat(
        system,
        p["answer"],
        few_shot,
        lambda i, recs, _neg: _neuron(p, i, recs, threshold, show_values),
        records,
    )


@solver
def highlighted(
    n_examples: int = 5,
    show_values: bool = False,
    threshold: float = 0.3,
    max_prompt_tokens: int = 4000,
    few_shot: str = "default",
) -> Solver:
    """Explain from train records shown as text with activating tokens marked ``<<like this>>``.

    Args:
        n_examples: Train records shown (fewer if the prompt must be trimmed to fit).
        show_values: Also list each marked token's 0-10 activation.
        threshold: Fraction of the max activation above which a token is marked.
        max_prompt_tokens: Context budget; whole records are dropped from the end to fit.
        few_shot: Few-shot set, ``default``, ``test`` or a JSON path.
    """
    shots = load_few_shot(few_shot)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        return await explain_once(
            state,
            generate,
            lambda recs, k: build_messages(
                recs, shots[:k], threshold=threshold, show_values=show_values
            ),
            strategy="highlighted",
            n_examples=n_examples,
            n_few_shot=len(shots),
            max_prompt_tokens=max_prompt_tokens,
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    return highlighted(
        n_examples=opts.n_examples,
        show_values=opts.show_values,
        threshold=opts.threshold,
        max_prompt_tokens=opts.max_prompt_tokens,
        few_shot=opts.few_shot,
    )
