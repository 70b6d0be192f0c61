"""The order in which the slow logprob simulator scores the suite's test neurons: a seeded
permutation (numpy default_rng(0)) of the sorted test-split keys, so any prefix stopped at
a time limit is a random sample of the test split, chosen before any score was seen.

Usage: python make_test_order.py SUITE OUT.json"""

import json
import sys

import numpy as np

from neuronbench.datasets import NeuronDataset
from neuronbench.groundtruth.suite import suite_from_dataset

suite = suite_from_dataset(NeuronDataset.load(sys.argv[1]))
test = sorted(n.key for n in suite.neurons if n.split == "test")
order = [test[i] for i in np.random.default_rng(0).permutation(len(test))]
with open(sys.argv[2], "w") as f:
    json.dump(order, f)
