"""The reader's recipe under other training seeds: DEV figures only (5+5 records), no test.

python results/validity/reader/dev_seeds.py SEED OUT.json
Same as `neuronbench train-simulator --arch reader --seed SEED` up to the dev figures (the
suite is seed 0's, as always); nothing is written to the package.
"""

import json
import sys

from neuronbench.groundtruth import suite as S
from neuronbench.scorers._cli import load_tokenizer
from neuronbench.scorers.simulators import reader_training as RT
from neuronbench.scorers.simulators import training as TR
from neuronbench.scorers.validity import decidable_figures

seed, out = int(sys.argv[1]), sys.argv[2]
tokenizer = load_tokenizer("smollm2")
suite = S.generate_suite(tokenizer, seed=TR.SUITE_SEED)
corpus = [t for _, t in S.tokenize_corpus(tokenizer, seed=TR.SUITE_SEED)]
examples = TR.suite_examples(suite, corpus, "train", TR.DataOptions(), seed)
options = RT.ReaderOptions(seed=seed)
dev_select = TR.eval_neurons(suite, "dev", TR.DEV_SELECT_RECORDS)
result = RT.train_reader(
    examples,
    options,
    dev_eval=lambda m: TR.validity_figures(TR.candidate_scores(m.predict, dev_select)),
)
model = RT.ReaderModel(result.net, options.config)
held = TR.eval_neurons(suite, "dev", TR.REPORT_RECORDS)
scores = TR.candidate_scores(model.predict, held)
reference = TR.rule_scores(suite, held)
figures = TR.validity_figures(scores)
decidable = decidable_figures(
    scores, reference, ("too_broad", "too_narrow", "different", "literal")
)
print("DEV", TR._fmt(figures))
print("DEC", TR._fmt(decidable))
with open(out, "w") as f:
    json.dump(
        {"seed": seed, "dev": figures, "dev_decidable": decidable, "selected": result.best}, f
    )
