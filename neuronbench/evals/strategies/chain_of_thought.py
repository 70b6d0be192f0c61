"""Reason first, answer last: the explanation is the line marked ``EXPLANATION:``.

Records are shown in the paper's token<TAB>activation format, without few-shot examples
(worked reasoning would cost more context than the records it displaces). Output with
no marked line is flagged ``no_marked_line``. Text lives in ``prompts/chain_of_thought.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.datasets import ActivationRecord
from neuronbench.evals.extraction import COT_MARKER
from neuronbench.evals.strategies._base import (
    StrategyOptions,
    explain_once,
    load_data,
)
from neuronbench.evals.strategies.token_activation_pairs import neuron_block


def build_messages(records: Sequence[ActivationRecord]) -> list[ChatMessage]:
    """System instructions, then the neuron's records and the request to reason and mark the answer."""
    p = load_data("chain_of_thought.json")
    return [
        ChatMessageSystem(content=p["system"]),
        ChatMessageUser(content=neuron_block(p, 1, records) + p["ask"]),
    ]


@solver
def chain_of_thought(n_examples: int = 5, max_prompt_tokens: int = 4000) -> Solver:
    """Explain after step-by-step reasoning; the answer is the final ``EXPLANATION:`` line.

    Args:
        n_examples: Train records shown (fewer if the prompt must be trimmed to fit).
        max_prompt_tokens: Context budget; whole records are dropped from the end to fit.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        return await explain_once(
            state,
            generate,
            lambda recs, _k: build_messages(recs),
            strategy="chain_of_thought",
            n_examples=n_examples,
            n_few_shot=0,
            max_prompt_tokens=max_prompt_tokens,
            marker=COT_MARKER,
        )

    return solve


def build(opts: StrategyOptions) -> Solver:
    return chain_of_thought(n_examples=opts.n_examples, max_prompt_tokens=opts.max_prompt_tokens)
