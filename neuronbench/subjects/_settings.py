"""Recorder settings: which subject, which layers, and validation into a ``RecorderConfig``.

Errors here are one clear line before any model runs: ``SubjectError`` for the subject
and its layers, ``DatasetError`` for recording settings.
"""

from __future__ import annotations

from collections.abc import Sequence

from neuronbench.datasets import DatasetError
from neuronbench.subjects._state import RecorderConfig
from neuronbench.subjects.models import Subject, SubjectError

DEFAULT_BOUNDARY_RECORDS = 256
"""Records whose maxima set the quantile boundaries: ~2.5% rank error on a 20% quantile."""
TINY_SUBJECTS = {"tiny-gpt2": "gpt2", "tiny-llama": "llama", "tiny": "llama"}
"""Subject names that build ``tiny_subject(arch)`` (defaults), for quick checks and tests."""


def resolve_subject(subject: Subject | str) -> Subject:
    """A loaded subject: ``Subject`` as is, ``tiny-gpt2``/``tiny-llama``, else ``load_subject``."""
    from neuronbench.subjects.models import load_subject, tiny_subject

    if isinstance(subject, Subject):
        return subject
    if subject in TINY_SUBJECTS:
        return tiny_subject(TINY_SUBJECTS[subject])  # type: ignore[arg-type]
    return load_subject(subject)


def parse_layers(spec: str | Sequence[int], n_layers: int) -> list[int]:
    """``"all"``, ``"0,5,10"``, ``"0-29:5"`` (inclusive range, step) or a list -> sorted layers."""
    if isinstance(spec, str):
        layers: list[int] = []
        text = spec.strip()
        if text == "all":
            return list(range(n_layers))
        for part in filter(None, (p.strip() for p in text.split(","))):
            try:
                if "-" in part:
                    span, _, step = part.partition(":")
                    lo, _, hi = span.partition("-")
                    layers += range(int(lo), int(hi) + 1, int(step or 1))
                else:
                    layers.append(int(part))
            except ValueError:
                raise SubjectError(
                    f"layers {spec!r}: expected 'all', '0,5,10' or '0-29:5'"
                ) from None
    else:
        layers = [int(x) for x in spec]
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad or not layers:
        raise SubjectError(
            f"layers {spec!r}: the subject has layers 0..{n_layers - 1}"
            + (f"; no layer {bad[0]}" if bad else "; none requested")
        )
    return sorted(set(layers))


def make_config(
    subject: Subject,
    subject_spec: str,
    corpus: str,
    layers: str | Sequence[int],
    *,
    n_tokens: int | None,
    record_length: int,
    top_k: int,
    n_random: int,
    n_quantiles: int,
    per_quantile: int,
    boundary_records: int,
    seed: int,
    shard: tuple[int, int],
) -> RecorderConfig:
    """Validate the settings into a :class:`RecorderConfig` (errors are one clear line)."""
    checks = [
        (record_length >= 1, f"record_length must be >= 1, got {record_length}"),
        (top_k >= 1, f"top_k must be >= 1, got {top_k}"),
        (n_random >= 0, f"n_random must be >= 0, got {n_random}"),
        (n_quantiles >= 0, f"n_quantiles must be >= 0, got {n_quantiles}"),
        (n_quantiles == 0 or per_quantile >= 1, "per_quantile must be >= 1 with quantiles"),
        (n_quantiles == 0 or boundary_records >= 1, "boundary_records must be >= 1"),
        (n_tokens is None or n_tokens >= record_length, f"tokens {n_tokens} < one record"),
        (shard[1] >= 1 and 0 <= shard[0] < shard[1], f"shard must be i/n with 0 <= i < n: {shard}"),
    ]
    for ok, message in checks:
        if not ok:
            raise DatasetError(f"record: {message}")
    return RecorderConfig(
        subject=subject_spec,
        subject_name=subject.name,
        revision=subject.revision,
        corpus=corpus,
        layers=parse_layers(layers, subject.n_layers),
        d_mlp=subject.d_mlp,
        max_tokens=n_tokens,
        record_length=record_length,
        top_k=top_k,
        n_random=n_random,
        n_quantiles=n_quantiles,
        per_quantile=per_quantile,
        boundary_records=boundary_records if n_quantiles else 0,
        seed=seed,
        shard_index=shard[0],
        shard_count=shard[1],
    )
