"""neuronbench.evals: the inspect task, explainer strategies and explanation extraction.

Public surface (no torch is imported here; heavy libraries load inside the functions
that need them):

- :func:`explain_neurons`, the ``@task`` (``inspect eval neuronbench/explain_neurons``).
- :data:`STRATEGIES` / :func:`build_strategy` / :class:`StrategyOptions`: explainer solvers.
- :func:`extract_explanation` / :class:`Extraction`: raw completion -> explanation + flags.
- :func:`select_neurons`, :func:`sample_for`: which neurons, and what each sample carries.
"""

from neuronbench.evals.extraction import FLAGS, Extraction, extract_explanation
from neuronbench.evals.samples import sample_for, select_neurons
from neuronbench.evals.strategies import NO_MODEL, STRATEGIES, StrategyOptions, build_strategy
from neuronbench.evals.task import explain_neurons

__all__ = [
    "FLAGS",
    "NO_MODEL",
    "STRATEGIES",
    "Extraction",
    "StrategyOptions",
    "build_strategy",
    "explain_neurons",
    "extract_explanation",
    "sample_for",
    "select_neurons",
]
