"""neuronbench.groundtruth: synthetic neurons with known explanations, for scorer validity.

Generating them reads a corpus and a tokenizer (``subjects/``) and writes an ordinary
neuron dataset (``datasets/``), so this package sits above both in the data flow.
``planted`` holds v1's 25 hand-written neurons; ``suite`` generates v2 (hundreds of
neurons from a WordNet-derived lexicon, six explanations each with an evaluable rule from
``rules``, split into train/dev/test by concept family).
"""
