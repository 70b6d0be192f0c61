"""inspect_ai entry point: makes ``neuronbench/explain_neurons`` and ``neuronbench/<model>`` resolvable.

Imported by inspect when it looks up registry names; keep it free of torch imports.
"""

from neuronbench.evals.task import explain_neurons  # noqa: F401
from neuronbench.models.provider import local_provider  # noqa: F401
