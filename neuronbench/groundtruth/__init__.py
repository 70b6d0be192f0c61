"""neuronbench.groundtruth: synthetic neurons with known explanations, for scorer validity.

Generating them reads a corpus and a tokenizer (``subjects/``) and writes an ordinary
neuron dataset (``datasets/``), so this package sits above both in the data flow.
"""
