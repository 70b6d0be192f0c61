"""Typed neuron records: the one data shape every stage of neuronbench reads.

Field names follow OpenAI's neuron-explainer (``ActivationRecord``, ``NeuronRecord``)
so that their published GPT-2 data and ours interoperate; see ``openai_json`` for the
exact JSON mapping. Validation happens at construction, so a bad record is reported
where it enters the system, naming its neuron and record, not deep inside a scorer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from neuronbench.datasets.errors import DatasetError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """Make ``text`` usable as one path component and inspect sample id."""
    return _SAFE.sub("-", text).strip("-") or "subject"


@dataclass(frozen=True, order=True)
class NeuronId:
    """Which neuron: a subject model, a site kind, a layer and an index within it."""

    subject: str
    """Short name of the subject model, e.g. ``smollm2-135m-instruct``, ``gpt2`` or ``planted``."""
    layer: int
    """Layer index (0-based) of the neuron's site."""
    index: int
    """Neuron index within the layer's site (0-based)."""
    site: str = "mlp"
    """Kind of site: ``mlp`` (MLP post-activation), ``sae:<name>`` (SAE latent) or ``planted``."""

    @property
    def key(self) -> str:
        """Sample id: subject/layer/neuron in one file-name-safe string.

        The site is named unless it is ``mlp`` or the subject's own name (planted neurons:
        ``planted-L0-N0``, not ``planted-planted-L0-N0``)."""
        site = "" if self.site in ("mlp", self.subject) else f"{safe_name(self.site)}-"
        return f"{safe_name(self.subject)}-{site}L{self.layer}-N{self.index}"

    def __str__(self) -> str:
        return f"{self.subject}/{self.layer}/{self.index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "site": self.site,
            "layer": self.layer,
            "index": self.index,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronId:
        return cls(
            subject=str(d["subject"]),
            layer=int(d["layer"]),
            index=int(d["index"]),
            site=str(d.get("site", "mlp")),
        )


@dataclass
class ActivationRecord:
    """One text excerpt (64 tokens by default) with a neuron's activation on each token."""

    tokens: list[str]
    """Tokens in the text sequence, represented as strings (as the subject's tokenizer decodes them)."""
    activations: list[float]
    """Raw activation value of the neuron on each token (same length as ``tokens``)."""
    position: int = -1
    """Index of the record in the recorded corpus (-1 when unknown, e.g. imported data).

    Lets tests and splits prove that a scored record was never shown to the explainer.
    """

    def validate(self, where: str = "") -> None:
        """Raise :class:`DatasetError` naming ``where`` if the record is malformed."""
        if len(self.tokens) == 0:
            raise DatasetError(f"{where}: empty record (no tokens)")
        if len(self.tokens) != len(self.activations):
            raise DatasetError(
                f"{where}: {len(self.tokens)} tokens but {len(self.activations)} activations"
            )
        for i, a in enumerate(self.activations):
            if not math.isfinite(a):
                raise DatasetError(f"{where}: activation {a!r} at token {i} is not finite")

    @property
    def max_activation(self) -> float:
        return max(self.activations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": list(self.tokens),
            "activations": [float(a) for a in self.activations],
            "position": self.position,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActivationRecord:
        return cls(
            tokens=[str(t) for t in d["tokens"]],
            activations=[float(a) for a in d["activations"]],
            position=int(d.get("position", -1) if d.get("position") is not None else -1),
        )


@dataclass
class NeuronRecord:
    """Everything recorded about one neuron: its top, random and quantile records, and moments."""

    id: NeuronId
    """The neuron these records belong to."""
    top: list[ActivationRecord]
    """Records with the highest max activation, sorted descending (OpenAI: ``most_positive_activation_records``)."""
    random: list[ActivationRecord]
    """The neuron's own uniform random sample of corpus records (OpenAI: ``random_sample``).

    neuronbench's recorder draws it per neuron and never includes the neuron's top records
    (card ``extra["sampling"] == "per-neuron/disjoint"``); older recordings shared one sample."""
    quantile: list[list[ActivationRecord]] = field(default_factory=list)
    """Records sampled within each bin of per-record max activation (OpenAI: ``random_sample_by_quantile``)."""
    quantile_boundaries: list[float] = field(default_factory=list)
    """Bin edges of ``quantile`` over per-record max activation, ascending (OpenAI: ``quantile_boundaries``)."""
    mean: float = math.nan
    """Mean activation over all recorded tokens."""
    variance: float = math.nan
    """Population variance of the activation over all recorded tokens."""
    skewness: float = math.nan
    """Skewness of the activation over all recorded tokens."""
    kurtosis: float = math.nan
    """Excess kurtosis of the activation over all recorded tokens (OpenAI stores plain kurtosis; see openai_json)."""
    firing_rate: float = math.nan
    """Fraction of recorded tokens where the activation is > 0 (rare neurons are hard to explain)."""
    n_tokens: int = 0
    """Number of corpus tokens the statistics were computed over."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, source: str = "") -> None:
        """Raise :class:`DatasetError` naming the file (``source``), neuron and record."""
        prefix = f"{source}: " if source else ""
        for group, records in (("top", self.top), ("random", self.random)):
            for i, r in enumerate(records):
                r.validate(f"{prefix}neuron {self.id} {group}[{i}]")
        for q, records in enumerate(self.quantile):
            for i, r in enumerate(records):
                r.validate(f"{prefix}neuron {self.id} quantile[{q}][{i}]")
        maxes = [r.max_activation for r in self.top]
        for i, (a, b) in enumerate(zip(maxes[:-1], maxes[1:], strict=True)):
            if a < b:
                raise DatasetError(
                    f"{prefix}neuron {self.id} top[{i + 1}]: top records are not sorted by max "
                    f"activation (top[{i}] max {a!r} < top[{i + 1}] max {b!r})"
                )

    @property
    def max_activation(self) -> float:
        """Largest activation seen for this neuron (the normalizer for 0-10 scaling)."""
        return self.top[0].max_activation if self.top else 0.0

    def summary(self) -> dict[str, Any]:
        """Scalar statistics for sample metadata and leaderboards (no records)."""
        return {
            **self.id.to_dict(),
            "neuron_id": self.id.key,
            "max_activation": self.max_activation,
            "mean": self.mean,
            "variance": self.variance,
            "skewness": self.skewness,
            "kurtosis": self.kurtosis,
            "firing_rate": self.firing_rate,
            "n_tokens": self.n_tokens,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id.to_dict(),
            "top": [r.to_dict() for r in self.top],
            "random": [r.to_dict() for r in self.random],
            "quantile": [[r.to_dict() for r in q] for q in self.quantile],
            "quantile_boundaries": [float(b) for b in self.quantile_boundaries],
            "mean": self.mean,
            "variance": self.variance,
            "skewness": self.skewness,
            "kurtosis": self.kurtosis,
            "firing_rate": self.firing_rate,
            "n_tokens": self.n_tokens,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeuronRecord:
        def recs(xs: Sequence[dict[str, Any]] | None) -> list[ActivationRecord]:
            return [ActivationRecord.from_dict(x) for x in (xs or [])]

        def num(x: Any) -> float:
            return math.nan if x is None else float(x)

        return cls(
            id=NeuronId.from_dict(d["id"]),
            top=recs(d.get("top")),
            random=recs(d.get("random")),
            quantile=[recs(q) for q in (d.get("quantile") or [])],
            quantile_boundaries=[float(b) for b in (d.get("quantile_boundaries") or [])],
            mean=num(d.get("mean")),
            variance=num(d.get("variance")),
            skewness=num(d.get("skewness")),
            kurtosis=num(d.get("kurtosis")),
            firing_rate=num(d.get("firing_rate")),
            n_tokens=int(d.get("n_tokens") or 0),
        )


@dataclass
class DatasetCard:
    """Provenance of a neuron dataset: enough to name exactly which data a result used."""

    subject: str
    """Subject model name or path as given to the recorder (or ``planted``)."""
    revision: str = ""
    """Model revision / weights hash, when known."""
    corpus: str = ""
    """Corpus name or path."""
    n_tokens: int = 0
    """Number of corpus tokens recorded."""
    record_length: int = 64
    """Tokens per record."""
    seed: int = 0
    """Seed for random and quantile sampling and corpus shuffling."""
    layers: list[int] = field(default_factory=list)
    """Layers recorded."""
    site: str = "mlp"
    """Kind of neuron site."""
    code_version: str = ""
    """neuronbench version that wrote the dataset."""
    content_hash: str = ""
    """sha256 over the stored neuron data; changes iff the data changes."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else the producer wants recorded (top_k, sample sizes, timings...)."""
    file_hashes: dict[str, str] = field(default_factory=dict)
    """sha256 of each stored data file by name, so a mismatch names the file that changed."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "revision": self.revision,
            "corpus": self.corpus,
            "n_tokens": self.n_tokens,
            "record_length": self.record_length,
            "seed": self.seed,
            "layers": list(self.layers),
            "site": self.site,
            "code_version": self.code_version,
            "content_hash": self.content_hash,
            "extra": dict(self.extra),
            "file_hashes": dict(self.file_hashes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetCard:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)
