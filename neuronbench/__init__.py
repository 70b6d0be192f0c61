"""neuronbench: an open benchmark harness for automated neuron explanation.

Record neuron activations (``neuronbench.subjects``), store them as datasets
(``neuronbench.datasets``), explain them in an inspect-ai eval (``neuronbench.evals``),
score explanations by simulation (``neuronbench.scorers``) and publish leaderboards
(``neuronbench.results``). Importing this package must stay cheap: no torch here.
"""

from neuronbench._version import __version__

__all__ = ["__version__"]
