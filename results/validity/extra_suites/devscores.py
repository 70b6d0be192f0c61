"""Per-neuron dev scores of a trained simulator, as the model card's dev row (5+5 records).

python devscores.py shipped|MODEL_DIR OUT.json
"""

import json
import sys

import torch

from neuronbench.groundtruth.suite import generate_suite
from neuronbench.scorers._cli import load_tokenizer
from neuronbench.scorers.simulators import trained as T
from neuronbench.scorers.simulators import training as TR

torch.set_num_threads(1)
path, out = sys.argv[1], sys.argv[2]
ref = generate_suite(load_tokenizer("smollm2"), seed=0)  # the published suite v2
held = TR.eval_neurons(ref, "dev", TR.REPORT_RECORDS)
model = T.load_model(None if path == "shipped" else path)
scores = TR.candidate_scores(model.predict, held)
with open(out, "w") as f:
    json.dump(scores, f)
print(TR.validity_figures(scores))
