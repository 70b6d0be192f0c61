"""neuronbench.models: in-process transformers models as an inspect model provider.

Both the explainers (``evals/``) and the simulators (``scorers/``) call models through
inspect; this package is where the local ``neuronbench/<model>`` provider lives, below
both of them, so neither imports the other to reach a model.
"""
