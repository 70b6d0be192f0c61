"""The reader simulator (``-T simulator=reader``): concept-agnostic token features, weighed
by what the explanation says.

The cross-encoder (``trained``) learned to map a train concept's words to the tokens it
covers, and the more it fitted that, the worse it read unseen concepts. The reader cannot
memorise concepts: its token side sees only how a word *relates* to the explanation
(named in it, quoted, ending in a named suffix, its MiniLM similarity to the explanation
and to the explanation's words, the same for its neighbours) and its form and place in the
text (inside quotes, capitalised, sentence start, repeated, punctuation, function word).
The explanation side (its MiniLM sentence embedding, through a 32-wide code) decides how to
combine them: a literal word list is read by exact match, "words like X" by similarity,
"-ing words" by spelling, "words after X" by context, "only inside quoted speech" by the
quote flag. What it learns is how explanations are phrased, which carries over to concepts
it never saw; what it cannot do is know category members MiniLM's similarity does not.

Text conventions (quotes, sentence starts, words) come from ``neuronbench.groundtruth.rules``
so "inside quoted speech" means one thing everywhere in the project.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from neuronbench.scorers.simulators.base import ModelCache, Simulation, simulate_offline

MODEL_DIR = Path(__file__).with_name("reader_model")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
EMBED_DIM = 384
"""Width of all-MiniLM-L6-v2 sentence embeddings (``neuronbench.scorers._embed``)."""

FEATURES = (
    "word", "quoted", "suffix", "quoted_suffix", "stem", "sim_explanation", "sim_word",
    "prev_named", "next_named", "in_quotes", "capitalised", "upper", "sentence_start",
    "punctuation", "repeated", "prev_sim", "function_word", "first_piece",
)  # fmt: skip
"""Per-token features, in order (see :func:`features`)."""
K = len(FEATURES)
STEM = 4
"""Shared leading letters that count as the same stem (sister / sisters)."""

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_QUOTED = re.compile(r"\"([^\"]+)\"|\u201c([^\u201d]+)\u201d|(?<![A-Za-z])'([^']+)'(?![A-Za-z])")
_SUFFIX = re.compile(r"(?<![A-Za-z])-([A-Za-z]+)")
_ALNUM = re.compile(r"[A-Za-z0-9]")


# ---------------------------------------------------------------- features


@dataclass(frozen=True)
class Terms:
    """What an explanation names: content words, quoted strings, ``-suffix`` endings."""

    content: tuple[str, ...]
    """Lowercase words other than function words and explanation boilerplate."""
    quoted: frozenset[str]
    suffixes: tuple[str, ...]
    quoted_alpha: tuple[str, ...]
    """Quoted strings of letters only (``ends with "tion"``)."""


@lru_cache(maxsize=50_000)
def terms(explanation: str) -> Terms:
    from neuronbench.scorers.simulators.lexical import stopwords

    stop = stopwords()
    quoted = {next(g for g in m if g).strip().lower() for m in _QUOTED.findall(explanation)}
    words = [w.lower() for w in _WORD.findall(explanation)]
    return Terms(
        content=tuple(dict.fromkeys(w for w in words if w not in stop and len(w) > 1)),
        quoted=frozenset(q for q in quoted if q),
        suffixes=tuple(sorted({m.lower() for m in _SUFFIX.findall(explanation)})),
        quoted_alpha=tuple(sorted(q for q in quoted if q.isalpha())),
    )


@dataclass(frozen=True)
class RecordView:
    """A record's words and its explanation-independent token flags."""

    words: tuple[str, ...]
    """Lowercase words, in order."""
    owner: np.ndarray
    """Per token: index of the word it is part of (-1: none, e.g. punctuation)."""
    flags: np.ndarray
    """(n_tokens, 7): in_quotes, capitalised, upper, sentence_start, punctuation, repeated,
    first_piece."""
    stripped: tuple[str, ...]
    """Per token: its text stripped and lowercased (quoted punctuation is matched on it)."""


@lru_cache(maxsize=20_000)
def record_view(tokens: tuple[str, ...]) -> RecordView:
    """Words and flags of one record, by the suite's own text analysis."""
    from neuronbench.groundtruth import rules as R

    a = R.analyze([list(tokens)])
    n = len(tokens)
    owner = np.full(n, -1)
    flags = np.zeros((n, 7), dtype=np.float32)
    flags[:, 0] = a.quoted_any
    for j, w in enumerate(a.word):
        lo, hi = int(a.w_first[j]), int(a.w_last[j]) + 1
        owner[lo:hi] = j
        flags[lo:hi, 1] = w[0].isupper()
        flags[lo:hi, 2] = len(w) > 1 and w.isupper()
        flags[lo:hi, 3] = a.sentence_start[j]
        flags[lo:hi, 5] = a.repeat[j]
        flags[lo, 6] = 1.0
    texts = a.texts[0]
    flags[:, 4] = [bool(t.strip()) and _ALNUM.search(t) is None for t in texts]
    return RecordView(tuple(a.lower), owner, flags, tuple(t.strip().lower() for t in texts))


def features(explanation: str, tokens: Sequence[str]) -> np.ndarray:
    """(n_tokens, K) features of every token of a record under ``explanation``.

    Word-level features (matches, similarities) are computed per word and shared by the
    word's tokens, so a word split into subword tokens reads as one word.
    """
    from neuronbench.scorers._embed import embed
    from neuronbench.scorers.simulators.lexical import stopwords

    tm = terms(explanation)
    rv = record_view(tuple(tokens))
    nw = len(rv.words)
    wf = np.zeros((nw + 1, 8), dtype=np.float32)  # row nw: tokens outside any word
    if nw:
        uniq = list(dict.fromkeys(rv.words))
        at = {w: i for i, w in enumerate(uniq)}
        vecs = embed(uniq)
        sim_e = vecs @ embed([explanation])[0]
        sim_w = (
            (vecs @ embed(list(tm.content)).T).max(1)
            if tm.content
            else np.zeros(len(uniq), dtype=np.float32)
        )
        content = set(tm.content)
        stems = {w[:STEM] for w in content if len(w) >= STEM and w.isalpha()}
        stop = stopwords()
        for j, w in enumerate(rv.words):
            wf[j] = (
                w in content,
                w in tm.quoted,
                any(w.endswith(x) and len(w) > len(x) for x in tm.suffixes),
                any(w.endswith(x) and len(w) > len(x) for x in tm.quoted_alpha),
                len(w) >= STEM and w[:STEM] in stems,
                sim_e[at[w]],
                sim_w[at[w]],
                w in stop,
            )
    named = np.maximum(wf[:, 0], wf[:, 1])
    prev_named, next_named, prev_sim = (np.zeros(nw + 1, dtype=np.float32) for _ in range(3))
    if nw > 1:
        prev_named[1:nw] = named[: nw - 1]
        next_named[: nw - 1] = named[1:nw]
        prev_sim[1:nw] = wf[: nw - 1, 5]
    o = np.where(rv.owner < 0, nw, rv.owner)
    quoted_tok = np.array([t in tm.quoted for t in rv.stripped], dtype=np.float32)
    f = rv.flags
    return np.stack(
        [
            wf[o, 0], np.maximum(wf[o, 1], quoted_tok), wf[o, 2], wf[o, 3], wf[o, 4], wf[o, 5],
            wf[o, 6], prev_named[o], next_named[o], f[:, 0], f[:, 1], f[:, 2], f[:, 3], f[:, 4],
            f[:, 5], prev_sim[o], wf[o, 7], f[:, 6],
        ],
        axis=1,
    ).astype(np.float32)  # fmt: skip


# ---------------------------------------------------------------- network


@dataclass(frozen=True)
class ReaderConfig:
    """Shape of the reader (saved beside the weights)."""

    code: int = 32
    """Width of the explanation's code (what kind of rule it states)."""
    hidden: int = 64
    """Width of the per-token MLP's hidden layers."""
    features: tuple[str, ...] = FEATURES
    """Feature names the weights were trained with (checked on load)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReaderConfig:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        if "features" in kw:
            kw["features"] = tuple(kw["features"])
        return cls(**kw)


def build_network(config: ReaderConfig) -> Any:
    """An untrained reader: explanation embedding → code; (features, code, their products) → logit."""
    import torch
    from torch import nn

    class Reader(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.explanation = nn.Sequential(
                nn.Linear(EMBED_DIM, 128), nn.GELU(), nn.Linear(128, config.code)
            )
            self.token = nn.Sequential(
                nn.Linear(K + config.code + K * config.code, config.hidden),
                nn.GELU(),
                nn.Linear(config.hidden, config.hidden),
                nn.GELU(),
                nn.Linear(config.hidden, 1),
            )

        def forward(self, e: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
            """``e`` (b, 384) explanation embeddings, ``f`` (b, t, K) features → logits (b, t)."""
            c = self.explanation(e)[:, None, :].expand(-1, f.shape[1], -1)
            inter = (f[..., :, None] * c[..., None, :]).flatten(-2)
            return self.token(torch.cat([f, c, inter], dim=-1)).squeeze(-1)

    return Reader()


@dataclass
class ReaderModel:
    """A loaded reader and the record it was built with."""

    net: Any
    config: ReaderConfig
    meta: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def predict(self, explanation: str, records: Sequence[Sequence[str]]) -> list[list[float]]:
        """Predicted activation (0-10) of every token of every record, all records in one batch."""
        import torch

        from neuronbench.scorers._embed import embed

        if not records:
            return []
        feats = [features(explanation, list(r)) for r in records]
        t = max(len(f) for f in feats)
        x = np.zeros((len(feats), t, K), dtype=np.float32)
        for i, f in enumerate(feats):
            x[i, : len(f)] = f
        e = torch.from_numpy(np.repeat(embed([explanation]), len(feats), axis=0))
        with self._lock, torch.inference_mode():
            logits = self.net(e, torch.from_numpy(x)).double().numpy()
        return [
            [float(v) for v in 10.0 / (1.0 + np.exp(-logits[i, : len(f)]))]
            for i, f in enumerate(feats)
        ]


def save_model(net: Any, config: ReaderConfig, out: str | Path, meta: dict[str, Any]) -> Path:
    """Write the weights (fp32; the whole net is ~0.2 MB) and config + ``meta``, atomically."""
    import os

    from safetensors.torch import save_file

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    tmp = path / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, path / WEIGHTS_FILE)
    doc = {"config": {**asdict(config), "features": list(config.features)}, **meta}
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, path / CONFIG_FILE)
    return path


def read_model(path: str | Path) -> ReaderModel:
    """Load a reader from ``path`` (uncached); one clear error for a missing or stale model."""
    from safetensors.torch import load_file

    from neuronbench.datasets.errors import DatasetError

    where = Path(path)
    try:
        doc = json.loads((where / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(
            f"{where / CONFIG_FILE}: cannot read the reader simulator ({e}); "
            "rebuild it with `neuronbench train-simulator --arch reader --out DIR`"
        ) from None
    config = ReaderConfig.from_dict(doc.get("config", {}))
    if config.features != FEATURES:
        raise DatasetError(
            f"{where}: weights were trained on features {list(config.features)}, "
            f"this code computes {list(FEATURES)}; retrain with `neuronbench train-simulator`"
        )
    try:
        state = load_file(str(where / WEIGHTS_FILE))
    except (OSError, RuntimeError) as e:
        raise DatasetError(f"{where / WEIGHTS_FILE}: cannot read ({e})") from None
    net = build_network(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise DatasetError(f"{where / WEIGHTS_FILE}: does not match the config ({e})") from None
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return ReaderModel(net, config, doc)


_models = ModelCache(read_model)


def load_model(path: str | Path | None = None) -> ReaderModel:
    """The reader in ``path`` (default: the shipped one), loaded once per process."""
    return _models.get(Path(path) if path is not None else MODEL_DIR)


@dataclass
class ReaderSimulator:
    """Predicts activations with the trained reader (no LLM, no network)."""

    path: str | None = None
    """Model directory (default: the shipped ``reader_model/``)."""
    name: str = "reader"
    """Identifier recorded in scores."""
    _model: ReaderModel | None = field(default=None, repr=False)

    def model(self) -> ReaderModel:
        if self._model is None:
            self._model = load_model(self.path)
        return self._model

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        return await simulate_offline(
            self.model,
            explanation,
            records,
            "reader simulator",
            {"model": str(self.path or MODEL_DIR)},
        )
