"""explain_neurons: how well can a model explain what a neuron in another model does?

Bills et al. 2023, "Language models can explain neurons in language models"
(https://openaipublic.blob.core.windows.net/neuron-explainer/paper/index.html): an
explainer model reads a neuron's top-activating records and writes a one-sentence
explanation; a simulator model predicts the neuron's activations on held-out records
from the explanation alone; the score is the correlation of simulated and real
activations. One sample per neuron of a neuronbench dataset (``neuronbench record``).

Model roles: ``--model`` is the explainer; ``--model-role simulator=...`` the simulator
(required for the ``logprob`` and ``generation`` simulators, never defaulted to the
explainer). The ``lexical`` and ``embedding`` simulators need no model.

Commands::

    # the paper's prompt, scored on the valid split by the local logprob simulator
    inspect eval neuronbench/explain_neurons --model openai/gpt-4o-mini \\
        --model-role simulator=neuronbench/smollm2 -T dataset=runs/smollm2 -T neurons=stratified:50

    # fully offline: SmolLM2 explains and simulates
    inspect eval neuronbench/explain_neurons --model neuronbench/smollm2 \\
        --model-role simulator=neuronbench/smollm2 -T dataset=runs/smollm2 -T neurons=20

    # other strategies and their knobs
    inspect eval neuronbench/explain_neurons --model openai/gpt-4o-mini -T dataset=runs/smollm2 \\
        -T strategy=highlighted -T show_values=true -T simulator=lexical
    inspect eval neuronbench/explain_neurons --model openai/gpt-4o-mini \\
        --model-role simulator=neuronbench/smollm2 -T dataset=runs/smollm2 -T strategy=best_of_k -T k=8

    # floors (no explainer call; any --model, e.g. mockllm/model) and leaderboard runs on test
    inspect eval neuronbench/explain_neurons --model mockllm/model -T dataset=runs/smollm2 \\
        -T strategy=baseline -T simulator=lexical -T split=test
    inspect eval neuronbench/explain_neurons --model mockllm/model -T dataset=runs/smollm2 \\
        -T strategy=from_file -T explanation_file=human.jsonl -T simulator=lexical

From Python: ``inspect_ai.eval(explain_neurons(dataset=..., strategy=...), model=...,
model_roles={"simulator": "neuronbench/smollm2"})`` (or ``eval_set``).
"""

from __future__ import annotations

import os
from inspect import signature
from pathlib import Path
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset
from inspect_ai.model import GenerateConfig
from inspect_ai.solver import Generate, Solver, TaskState, solver

from neuronbench.datasets import NeuronDataset
from neuronbench.evals import _task_args as check
from neuronbench.evals._task_args import TaskArgumentError
from neuronbench.evals.samples import sample_for, select_ids
from neuronbench.evals.strategies import STRATEGIES, StrategyOptions, build_strategy
from neuronbench.evals.strategies._base import skip_unusable
from neuronbench.evals.strategies.best_of_k import simulator_model

DATASET_ENV = "NEURONBENCH_DATASET"
"""Environment variable naming the dataset directory when ``-T dataset=`` is not given."""

SPLITS = ("calibration", "valid", "test")

DEFAULT_DATASET = "results/dataset"
"""The default recording (written by ``neuronbench run``), used when no dataset is named."""

DEFAULT_SIMULATOR_MODEL = "neuronbench/smollm2"
"""The offline simulator bound to the ``simulator`` role unless the caller binds another."""


@solver
def require_simulator(kind: str) -> Solver:
    """Fail before any explainer call when an LLM simulator has no ``simulator`` role model,
    or (``logprob``) one that cannot return prompt logprobs."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        model = simulator_model(kind)
        if kind == "logprob" and model is not None:
            from neuronbench.scorers.simulators.logprob import prompt_logprobs_unsupported

            unsupported = prompt_logprobs_unsupported(model)
            if unsupported is not None:
                raise RuntimeError(unsupported)
        return state

    return solve


def _joined(value: Any) -> Any:
    """The text a list argument was typed as: inspect's ``-T`` parser turns ``a,b`` into
    ``["a", "b"]``, so every text argument accepts a list and a comma-separated string alike."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v).strip() for v in value)
    return value


def _scorer_names(scorer: str | list[str] | None) -> list[str]:
    if scorer is None:
        return []
    text = str(_joined(scorer))
    return [s.strip() for s in text.split(",") if s.strip() and s.strip().lower() != "none"]


@task
def explain_neurons(
    dataset: str | None = None,
    split: str = "valid",
    strategy: str = "token_activation_pairs",
    n_examples: int = 5,
    neurons: str | int | list[str] | None = None,
    seed: int = 0,
    scorer: str | list[str] = "simulation",
    simulator: str = "logprob",
    n_score_records: int | None = None,
    explanation_file: str | None = None,
    k: int = 4,
    temperature: float = 1.0,
    show_values: bool = False,
    threshold: float = 0.3,
    n_tokens: int = 20,
    n_negatives: int = 2,
    shuffle_source: str = "baseline",
    few_shot: str = "default",
    max_prompt_tokens: int = 4000,
    max_tokens: int | None = None,
    simulator_model: str | None = DEFAULT_SIMULATOR_MODEL,
    calibrate: bool = False,
    simulator_examples: str = "default",
    **unknown: Any,
) -> Task:
    """Explain each selected neuron with ``strategy`` and score the explanation by simulation.

    A neuron whose records cannot fill the train or the scoring split is skipped, not
    fatal: its sample carries
    ``metadata["skip"]`` (the reason), no model is called for it, and scorers leave it
    unscored. Text arguments accept lists too (inspect's ``-T a,b`` is a list).

    Args:
        dataset: NeuronDataset directory (default: ``$NEURONBENCH_DATASET``).
        split: Scoring split: ``valid`` (development), ``test`` (leaderboards) or ``calibration``.
        strategy: Explainer strategy, one of ``neuronbench.evals.STRATEGIES``.
        n_examples: Train records shown to the explainer (trimmed to fit ``max_prompt_tokens``).
        neurons: All (default), a count N, ``stratified:N`` (seeded, spread over layers) or
            neuron keys, comma-separated or a list (``-T neurons=0/1,0/2``).
        seed: Seed for neuron sampling and the ``shuffled`` control.
        scorer: Scorer names, comma-separated or a list (``simulation``, ``detection``,
            ``fuzzing``, ``embedding``); ``""`` or ``none`` for no scorer (explanations only).
        simulator: Simulator kind for scoring and ``best_of_k``: ``logprob``, ``generation``,
            ``lexical``, ``embedding``.
        n_score_records: Scored records per group (top, random); default all in the split.
        explanation_file: Explanations to read (``from_file``; ``shuffled`` with shuffle_source=file).
        k: ``best_of_k``: candidates sampled.
        temperature: ``best_of_k``: sampling temperature.
        show_values: ``highlighted``: list the 0-10 value of each marked token.
        threshold: ``highlighted``: mark tokens above this fraction of the max activation.
        n_tokens: ``top_tokens``: tokens listed (``baseline`` names at most 5).
        n_negatives: ``with_negatives``: silent contrast records shown.
        shuffle_source: ``shuffled``: ``baseline`` or ``file`` explanations are dealt out.
        few_shot: Few-shot set: ``default``, ``test`` or a JSON file path.
        max_prompt_tokens: Prompt budget in tokens; records are dropped whole to fit.
        max_tokens: Explainer output budget (default: 400 for ``chain_of_thought``, else 80).
            An explanation is one sentence; small local models otherwise ramble to the
            provider's limit, which costs minutes per neuron on a CPU.
        simulator_model: The explicit default model for the ``simulator`` role when an LLM
            simulator is used and no ``--model-role simulator=...`` is given: the offline
            SmolLM2 (never the explainer under evaluation). ``none`` turns the default off,
            making a missing role an error.
        calibrate: Also report r² and absolute deviation explained after a linear calibration
            fitted on the calibration split (one more simulation per explanation).
        simulator_examples: ``logprob`` simulator's few-shot examples (scoring and
            ``best_of_k``): ``default`` (neuronbench's own), ``openai`` (OpenAI's original
            set, loaded from the optional ``neuron-explainer`` package: exactly the paper's
            prompt) or a JSON file path.
        **unknown: Collected only to be refused: inspect merely warns about a mistyped
            ``-T`` name and would then run every neuron with the defaults.

    Raises:
        TaskArgumentError: A bad argument, dataset or explanation file, as one line
            (inspect prints it without a traceback), before any model call.
    """
    check.reject_unknown(unknown, ARGUMENTS)
    given = {name: value for name, value in locals().items() if name in ARGUMENTS}
    try:
        return _build(**given)
    except TaskArgumentError:
        raise
    except (ValueError, FileNotFoundError) as e:  # DatasetError, strategy and scorer checks
        raise TaskArgumentError(e) from e


def _dataset_path(dataset: str | None) -> str:
    path = dataset or os.environ.get(DATASET_ENV)
    if not path and (Path(DEFAULT_DATASET) / "card.json").exists():
        path = DEFAULT_DATASET  # the default recording that `neuronbench run` writes
    if not path:
        raise TaskArgumentError(
            f"needs a dataset: pass -T dataset=PATH (a directory written by "
            f"`neuronbench record`), set ${DATASET_ENV}, or run `neuronbench run` first "
            f"(it records {DEFAULT_DATASET})"
        )
    if not Path(path).is_dir():
        where = "-T dataset" if dataset else f"${DATASET_ENV}"
        raise TaskArgumentError(
            f"{where}={path!r}: no such dataset directory (write one with `neuronbench record`)"
        )
    return str(path)


def _build(
    dataset: Any,
    split: Any,
    strategy: Any,
    n_examples: Any,
    neurons: Any,
    seed: Any,
    scorer: Any,
    simulator: Any,
    n_score_records: Any,
    explanation_file: Any,
    k: Any,
    temperature: Any,
    show_values: Any,
    threshold: Any,
    n_tokens: Any,
    n_negatives: Any,
    shuffle_source: Any,
    few_shot: Any,
    max_prompt_tokens: Any,
    max_tokens: Any,
    simulator_model: Any,
    calibrate: Any,
    simulator_examples: Any,
) -> Task:
    """Check every argument (cheap ones first, the dataset last), then build the task."""
    dataset, split, strategy, simulator, neurons = (
        _joined(v) for v in (dataset, split, strategy, simulator, neurons)
    )
    explanation_file, few_shot, shuffle_source, simulator_model = (
        _joined(v) for v in (explanation_file, few_shot, shuffle_source, simulator_model)
    )
    simulator_examples = _joined(simulator_examples)
    from neuronbench.scorers.registry import SCORERS, SIMULATORS, simulator_needs_model

    split = check.choice("split", split, SPLITS)  # train is what the explainer sees
    strategy = check.choice("strategy", strategy, STRATEGIES)
    simulator = check.choice("simulator", simulator, SIMULATORS)
    shuffle_source = check.choice("shuffle_source", shuffle_source, ("baseline", "file"))
    for name in _scorer_names(scorer):
        check.choice("scorer", name, SCORERS)
    n_examples = check.integer("n_examples", n_examples, minimum=1)
    seed = check.integer("seed", seed)
    n_score_records = check.optional_integer("n_score_records", n_score_records, minimum=1)
    k = check.integer("k", k, minimum=1)
    temperature = check.number("temperature", temperature, low=0.0)
    show_values = check.flag("show_values", show_values)
    threshold = check.number("threshold", threshold, low=0.0, high=1.0)
    n_tokens = check.integer("n_tokens", n_tokens, minimum=1)
    n_negatives = check.integer("n_negatives", n_negatives, minimum=0)
    max_prompt_tokens = check.integer("max_prompt_tokens", max_prompt_tokens, minimum=1)
    max_tokens = check.optional_integer("max_tokens", max_tokens, minimum=1)
    calibrate = check.flag("calibrate", calibrate)
    if isinstance(neurons, bool) or not isinstance(neurons, (str, int, type(None))):
        raise TaskArgumentError(f"-T neurons={neurons!r}: expected a count, stratified:N or keys")
    if simulator == "logprob" and simulator_examples != "default":
        from neuronbench.scorers.simulators.logprob import load_few_shot as simulator_few_shot

        simulator_few_shot(simulator_examples)  # a missing package or file fails here, early
    path = _dataset_path(dataset)

    chosen = select_ids(NeuronDataset.ids(path), neurons, seed)
    ds = NeuronDataset.load(Path(path), ids=chosen)  # only the selected neurons' rows
    selected = [ds.neurons[i] for i in chosen]
    if not selected:
        raise TaskArgumentError(f"no neurons selected from {path} (neurons={neurons!r})")
    samples = [sample_for(n, split, n_negatives) for n in selected]
    skipped = {str(s.id) for s in samples if s.metadata and "skip" in s.metadata}

    opts = StrategyOptions(
        name=strategy,
        split=split,
        n_examples=n_examples,
        max_prompt_tokens=max_prompt_tokens,
        seed=seed,
        few_shot=few_shot,
        show_values=show_values,
        threshold=threshold,
        n_tokens=n_tokens,
        n_negatives=n_negatives,
        k=k,
        temperature=temperature,
        simulator=simulator,
        simulator_examples=simulator_examples,
        explanation_file=explanation_file,
        shuffle_source=shuffle_source,
        neurons={n.id.key: n for n in selected if n.id.key not in skipped},
    )
    explainer = build_strategy(opts)

    names = _scorer_names(scorer)
    scorers = None
    if names:
        from neuronbench.scorers.registry import build_scorers

        scorers = build_scorers(
            names,
            simulator=simulator,
            split=split,
            n_records=n_score_records,
            calibrate=calibrate,
            simulator_examples=simulator_examples,
        )
    needs_simulator = simulator_needs_model(simulator) and (bool(names) or strategy == "best_of_k")

    args = {
        "dataset": str(path),
        "split": split,
        "strategy": strategy,
        "n_examples": n_examples,
        "neurons": neurons,
        "seed": seed,
        "scorer": names,
        "simulator": simulator,
        "n_score_records": n_score_records,
        "explanation_file": explanation_file,
        "k": k,
        "temperature": temperature,
        "show_values": show_values,
        "threshold": threshold,
        "n_tokens": n_tokens,
        "n_negatives": n_negatives,
        "shuffle_source": shuffle_source,
        "few_shot": few_shot,
        "max_prompt_tokens": max_prompt_tokens,
        "max_tokens": max_tokens,
        "simulator_model": simulator_model,
        "calibrate": calibrate,
        "simulator_examples": simulator_examples,
    }
    if max_tokens is None:
        max_tokens = 400 if strategy == "chain_of_thought" else 80
    default_role = simulator_model not in (None, "", "none")
    roles = {"simulator": str(simulator_model)} if needs_simulator and default_role else None
    return Task(
        dataset=MemoryDataset(samples, name=f"{ds.card.subject}:{split}"),
        setup=require_simulator(simulator) if needs_simulator else None,
        solver=[skip_unusable(strategy), explainer],
        scorer=scorers,
        config=GenerateConfig(max_tokens=max_tokens),
        model_roles=roles,
        metadata={
            "dataset": ds.card.to_dict(),
            "dataset_path": str(Path(path).resolve()),
            "content_hash": ds.card.content_hash,
            "strategy": strategy,
            "split": split,
            "n_neurons": len(samples),
            "args": args,
        },
    )


ARGUMENTS = tuple(name for name in signature(explain_neurons).parameters if name != "unknown")
"""The task's argument names, for the unknown-argument error."""
