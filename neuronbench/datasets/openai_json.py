"""OpenAI neuron-explainer JSON: import and export, field for field as their loader reads it.

OpenAI publishes one file per neuron, ``{layer}/{neuron}.json`` (``load_neuron`` in
``neuron_explainer/activations/activations.py``; ``neuron_exists`` also looks under
``neurons/{layer}/``). Each file is a ``NeuronRecord`` serialized by their
``fast_dataclasses``: every object is tagged with ``dataclass_name`` (``NeuronRecord``,
``NeuronId``, ``ActivationRecord``) and rebuilt with ``cls(**fields)``, which raises
``TypeError`` on any field it does not know. So the export writes exactly their fields and
nothing else, and what only neuronbench records (corpus positions, firing rate, token
count, subject, site, the dataset card) goes to a sidecar ``neuronbench.json`` at the
export root, which their loader never opens. Importing our own export reads the sidecar
back, so ours -> OpenAI -> ours loses nothing; importing OpenAI's data gives positions -1,
firing rate NaN and token count 0 (unknown).

Two mappings are not one-to-one:

- NaN moments are written as ``null``, as their ``orjson``-based ``dumps`` does (their
  fields are ``Optional[float]``; strict JSON readers such as their JS viewer reject NaN).
- Kurtosis: our ``NeuronRecord.kurtosis`` is *excess* kurtosis (normal = 0, scipy's
  default). OpenAI's code declares the field but not how it was computed; this module
  treats their value as *plain* kurtosis (normal = 3), as the schema documents, i.e.
  ``openai = ours + 3``. Pass ``kurtosis="excess"`` to either direction to map 1:1
  instead. The convention used is recorded in the sidecar and in the imported card.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from neuronbench._atomic import write_json, write_text
from neuronbench._progress import Progress, say, si
from neuronbench.datasets.errors import DatasetError
from neuronbench.datasets.schema import ActivationRecord, DatasetCard, NeuronId, NeuronRecord
from neuronbench.datasets.storage import NeuronDataset, save_layers

KurtosisConvention = Literal["plain", "excess"]
OPENAI_KURTOSIS: KurtosisConvention = "plain"
"""How OpenAI's ``kurtosis`` field is read and written by default (see module docstring)."""
SIDECAR = "neuronbench.json"
SIDECAR_FORMAT = "neuronbench.openai-sidecar"

_NEURON_FIELDS = frozenset(
    {
        "neuron_id",
        "random_sample",
        "random_sample_by_quantile",
        "quantile_boundaries",
        "mean",
        "variance",
        "skewness",
        "kurtosis",
        "most_positive_activation_records",
    }
)
_ID_FIELDS = frozenset({"layer_index", "neuron_index"})
_RECORD_FIELDS = frozenset({"tokens", "activations"})


def _kurtosis_offset(convention: KurtosisConvention) -> float:
    if convention not in ("plain", "excess"):
        raise ValueError(f"kurtosis convention must be 'plain' or 'excess', not {convention!r}")
    return 3.0 if convention == "plain" else 0.0


def _num_or_null(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# ---------------------------------------------------------------------------- export


def _record_to_openai(r: ActivationRecord) -> dict[str, Any]:
    return {
        "tokens": list(r.tokens),
        "activations": [float(a) for a in r.activations],
        "dataclass_name": "ActivationRecord",
    }


def neuron_to_openai(
    neuron: NeuronRecord, *, kurtosis: KurtosisConvention = OPENAI_KURTOSIS
) -> dict[str, Any]:
    """One neuron as OpenAI's ``NeuronRecord`` JSON object: their fields only, in their order.

    Key order matches their files: ``orjson`` serializes a dataclass's ``__dict__``, where
    ``dataclass_name`` (set in ``__post_init__``) comes last. Written compactly like orjson;
    only float spelling may differ (``1e-05`` vs ``0.00001``), never a value.
    """
    bounds = [float(b) for b in neuron.quantile_boundaries]
    if not all(math.isfinite(b) for b in bounds):
        raise DatasetError(f"neuron {neuron.id}: quantile_boundaries {bounds} are not all finite")
    return {
        "neuron_id": {
            "layer_index": neuron.id.layer,
            "neuron_index": neuron.id.index,
            "dataclass_name": "NeuronId",
        },
        "random_sample": [_record_to_openai(r) for r in neuron.random],
        "random_sample_by_quantile": (
            [[_record_to_openai(r) for r in q] for q in neuron.quantile]
            if neuron.quantile
            else None
        ),
        "quantile_boundaries": bounds if bounds else None,
        "mean": _num_or_null(neuron.mean),
        "variance": _num_or_null(neuron.variance),
        "skewness": _num_or_null(neuron.skewness),
        "kurtosis": _num_or_null(neuron.kurtosis + _kurtosis_offset(kurtosis)),
        "most_positive_activation_records": [_record_to_openai(r) for r in neuron.top],
        "dataclass_name": "NeuronRecord",
    }


def _sidecar_entry(n: NeuronRecord) -> dict[str, Any]:
    return {
        "subject": n.id.subject,
        "site": n.id.site,
        "firing_rate": _num_or_null(n.firing_rate),
        "n_tokens": n.n_tokens,
        "top_positions": [r.position for r in n.top],
        "random_positions": [r.position for r in n.random],
        "quantile_positions": [[r.position for r in q] for q in n.quantile],
    }


def _neuron_files(root: Path) -> dict[tuple[int, int], Path]:
    """``{layer}/{neuron}.json`` files under ``root`` (or ``root/neurons``), by (layer, neuron)."""
    found: dict[tuple[int, int], Path] = {}
    for base in (root, root / "neurons"):
        if not base.is_dir():
            continue
        for f in base.glob("*/*.json"):
            if f.parent.name.isdigit() and f.stem.isdigit():
                found.setdefault((int(f.parent.name), int(f.stem)), f)
    return found


def _neuron_json(n: NeuronRecord, kurtosis: KurtosisConvention) -> str:
    return json.dumps(
        neuron_to_openai(n, kurtosis=kurtosis),
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
    )


def estimate_export_bytes(
    neurons: list[NeuronRecord],
    kurtosis: KurtosisConvention = OPENAI_KURTOSIS,
    sample: int = 32,
) -> int:
    """Bytes an export of ``neurons`` will write (neuron files and sidecar), from
    ``sample`` neurons spread evenly over the list, serialized exactly as the export does."""
    if not neurons:
        return 0
    step = max(1, len(neurons) // sample)
    picked = neurons[::step][:sample]
    per_neuron = sum(
        len(_neuron_json(n, kurtosis).encode())
        # nested as in the sidecar, where indent=2 puts every position on its own line
        + len(json.dumps({"neurons": {"0/0": _sidecar_entry(n)}}, indent=2).encode())
        for n in picked
    )
    return round(per_neuron * len(neurons) / len(picked))


def export_openai(
    dataset: NeuronDataset,
    out_dir: str | Path,
    *,
    kurtosis: KurtosisConvention = OPENAI_KURTOSIS,
    progress: bool = False,
) -> Path:
    """Write ``out_dir/{layer}/{neuron}.json`` per neuron plus the ``neuronbench.json`` sidecar.

    Every file is written atomically and the sidecar last, so an interrupted export has no
    sidecar. Refuses a non-empty directory that is not an earlier export (no sidecar), so
    foreign neuron files are never mixed in or overwritten. Returns ``out_dir``.

    ``progress``: before writing anything, state on stderr how many files and about how
    many bytes the export will write (a whole model is ~10^4 files and GBs), then report
    neurons written.
    """
    _kurtosis_offset(kurtosis)
    out = Path(out_dir)
    sidecar = out / SIDECAR
    if out.exists() and any(out.iterdir()) and not sidecar.exists():
        raise DatasetError(
            f"{out}: not empty and has no {SIDECAR}; refusing to export OpenAI JSON into it"
        )
    by_key: dict[tuple[int, int], NeuronRecord] = {}
    for n in dataset:
        key = (n.id.layer, n.id.index)
        if key in by_key:
            raise DatasetError(
                f"neurons {by_key[key].id} and {n.id} both map to OpenAI file {key[0]}/{key[1]}.json "
                "(OpenAI ids have no subject or site): export them separately"
            )
        by_key[key] = n
    if progress:
        size = estimate_export_bytes(list(by_key.values()), kurtosis)
        say(
            "export-openai",
            f"will write {len(by_key):,} neuron files + {SIDECAR} to {out}: "
            f"about {si(size)}B (estimated from {min(len(by_key), 32)} neurons)",
        )
    out.mkdir(parents=True, exist_ok=True)
    if sidecar.exists():
        sidecar.unlink()  # the export is incomplete until the new sidecar lands
    for key, f in _neuron_files(out).items():
        if key not in by_key and f.parent.parent == out:
            f.unlink()  # stale neuron from an earlier export of another dataset
    with Progress("export-openai", len(by_key), unit="neurons", enabled=progress) as bar:
        for (layer, index), n in by_key.items():
            write_text(out / str(layer) / f"{index}.json", _neuron_json(n, kurtosis))
            bar.update()
    write_json(
        sidecar,
        {
            "format": SIDECAR_FORMAT,
            "version": 1,
            "kurtosis": kurtosis,
            "card": dataset.card.to_dict(),
            "neurons": {f"{k[0]}/{k[1]}": _sidecar_entry(n) for k, n in by_key.items()},
        },
    )
    return out


# ---------------------------------------------------------------------------- import


def _tagged(obj: Any, name: str, fields: frozenset[str], where: str) -> dict[str, Any]:
    """Check an object as ``fast_dataclasses.loads`` would before calling ``cls(**fields)``."""
    if not isinstance(obj, dict):
        raise DatasetError(f"{where}: expected a {name} object, got {type(obj).__name__}")
    tag = obj.get("dataclass_name", name)
    if tag != name:
        raise DatasetError(f"{where}: dataclass_name is {tag!r}, expected {name!r}")
    keys = set(obj) - {"dataclass_name"}
    if unknown := sorted(keys - fields):
        raise DatasetError(
            f"{where}: unknown {name} field(s) {unknown} (OpenAI's loader rejects them)"
        )
    return obj


def _record_from_openai(obj: Any, where: str) -> ActivationRecord:
    d = _tagged(obj, "ActivationRecord", _RECORD_FIELDS, where)
    if missing := sorted(_RECORD_FIELDS - set(d)):
        raise DatasetError(f"{where}: ActivationRecord is missing {missing}")
    tokens, acts = d["tokens"], d["activations"]
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise DatasetError(f"{where}: tokens must be a list of strings")
    if not isinstance(acts, list):
        raise DatasetError(f"{where}: activations must be a list of numbers")
    for i, a in enumerate(acts):
        if isinstance(a, bool) or not isinstance(a, (int, float)):
            raise DatasetError(f"{where}: activation {a!r} at token {i} is not a number")
    rec = ActivationRecord(tokens=tokens, activations=[float(a) for a in acts])
    rec.validate(where)
    return rec


def _records(obj: Any, field: str, where: str) -> list[ActivationRecord]:
    if obj is None:
        return []
    if not isinstance(obj, list):
        raise DatasetError(f"{where} {field}: expected a list of ActivationRecord")
    return [_record_from_openai(r, f"{where} {field}[{i}]") for i, r in enumerate(obj)]


def _moment(d: dict[str, Any], field: str, where: str) -> float:
    x = d.get(field, math.nan)
    if x is None:
        return math.nan
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise DatasetError(f"{where}: {field} {x!r} is not a number")
    return float(x)


def neuron_from_openai(
    obj: Any,
    *,
    subject: str,
    site: str = "mlp",
    source: str = "",
    kurtosis: KurtosisConvention = OPENAI_KURTOSIS,
) -> NeuronRecord:
    """Parse one OpenAI ``NeuronRecord`` JSON object; errors name ``source``, neuron and record.

    Positions are -1, firing rate NaN and token count 0: OpenAI's files do not record them.
    """
    offset = _kurtosis_offset(kurtosis)
    where = source or "<openai json>"
    d = _tagged(obj, "NeuronRecord", _NEURON_FIELDS, where)
    if "neuron_id" not in d:
        raise DatasetError(f"{where}: NeuronRecord has no neuron_id")
    nid = _tagged(d["neuron_id"], "NeuronId", _ID_FIELDS, f"{where} neuron_id")
    layer, index = nid.get("layer_index"), nid.get("neuron_index")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (layer, index)):
        raise DatasetError(
            f"{where}: neuron_id needs non-negative integer layer_index and neuron_index, got {nid}"
        )
    assert isinstance(layer, int) and isinstance(index, int)
    where = f"{where}: neuron {layer}/{index}"
    quantile = d.get("random_sample_by_quantile")
    if quantile is not None and not isinstance(quantile, list):
        raise DatasetError(f"{where} random_sample_by_quantile: expected a list of lists")
    bounds = d.get("quantile_boundaries") or []
    if not isinstance(bounds, list) or not all(
        isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds
    ):
        raise DatasetError(f"{where}: quantile_boundaries must be a list of numbers")
    try:
        return NeuronRecord(
            id=NeuronId(subject=subject, layer=layer, index=index, site=site),
            top=_records(
                d.get("most_positive_activation_records"), "most_positive_activation_records", where
            ),
            random=_records(d.get("random_sample"), "random_sample", where),
            quantile=[
                _records(q, f"random_sample_by_quantile[{i}]", where)
                for i, q in enumerate(quantile or [])
            ],
            quantile_boundaries=[float(b) for b in bounds],
            mean=_moment(d, "mean", where),
            variance=_moment(d, "variance", where),
            skewness=_moment(d, "skewness", where),
            kurtosis=_moment(d, "kurtosis", where) - offset,
        )
    except DatasetError as e:
        if source and str(e).startswith(source):
            raise
        raise DatasetError(f"{source}: {e}" if source else str(e)) from None


def _read_json(f: Path) -> Any:
    try:
        # json.loads, like OpenAI's loader: it also accepts NaN/Infinity literals.
        return json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{f}: not valid JSON ({e})") from None


def _apply_sidecar(
    n: NeuronRecord, entry: dict[str, Any], subject: str | None, where: str
) -> NeuronRecord:
    """Restore what OpenAI's format cannot hold from our sidecar entry for this neuron."""
    try:
        groups = [
            ("top", n.top, entry["top_positions"]),
            ("random", n.random, entry["random_positions"]),
        ]
        groups += [
            (f"quantile[{q}]", recs, pos)
            for q, (recs, pos) in enumerate(
                zip(n.quantile, entry["quantile_positions"], strict=True)
            )
        ]
        for name, recs, pos in groups:
            if len(recs) != len(pos):
                raise DatasetError(f"{where}: {len(pos)} {name} positions for {len(recs)} records")
            for r, p in zip(recs, pos, strict=True):
                r.position = int(p)
        n.id = NeuronId(
            subject=subject or str(entry["subject"]),
            layer=n.id.layer,
            index=n.id.index,
            site=str(entry["site"]),
        )
        fr = entry.get("firing_rate")
        n.firing_rate = math.nan if fr is None else float(fr)
        n.n_tokens = int(entry.get("n_tokens") or 0)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"{where}: malformed or stale sidecar entry ({e!r})") from None
    return n


def import_openai(
    in_dir: str | Path,
    *,
    subject: str | None = None,
    out_dataset_dir: str | Path | None = None,
    site: str = "mlp",
    kurtosis: KurtosisConvention | None = None,
    progress: bool = False,
) -> NeuronDataset:
    """Read OpenAI neuron files under ``in_dir`` into a dataset (saved to ``out_dataset_dir``).

    ``subject`` names the subject model (OpenAI's ids have none); it may be omitted when
    ``in_dir`` is a neuronbench export, whose sidecar restores subject, site, positions,
    firing rate, token count and the dataset card. ``kurtosis`` defaults to the sidecar's
    convention, else :data:`OPENAI_KURTOSIS`. ``progress``: report files read on stderr.
    """
    root = Path(in_dir)
    files = _neuron_files(root)
    if not files:
        raise DatasetError(
            f"{root}: no OpenAI neuron files ({{layer}}/{{neuron}}.json or neurons/{{layer}}/{{neuron}}.json)"
        )
    side: dict[str, Any] = {}
    if (root / SIDECAR).exists():
        side = _read_json(root / SIDECAR)
        if not isinstance(side, dict) or side.get("format") != SIDECAR_FORMAT:
            raise DatasetError(f"{root / SIDECAR}: not a neuronbench OpenAI-export sidecar")
    if subject is None and not side:
        raise DatasetError(f"{root}: OpenAI files do not name their subject model; pass subject=")
    convention: KurtosisConvention = kurtosis or side.get("kurtosis", OPENAI_KURTOSIS)
    entries: dict[str, Any] = side.get("neurons", {})
    try:
        card = DatasetCard.from_dict(side["card"]) if side else None
    except (KeyError, TypeError, AttributeError) as e:
        raise DatasetError(f"{root / SIDECAR}: malformed dataset card ({e!r})") from None
    default_subject = subject or (card.subject if card else "openai")
    lengths = [0]

    def read(layer: int, index: int, f: Path) -> NeuronRecord:
        n = neuron_from_openai(
            _read_json(f),
            subject=default_subject,
            site=site,
            source=str(f),
            kurtosis=convention,
        )
        if (n.id.layer, n.id.index) != (layer, index):
            raise DatasetError(
                f"{f}: file is named for neuron {layer}/{index} but holds neuron {n.id.layer}/{n.id.index}"
            )
        # popped: a whole model's sidecar entries are ~10^6 Python objects
        if (entry := entries.pop(f"{layer}/{index}", None)) is not None:
            n = _apply_sidecar(n, entry, subject, f"{root / SIDECAR}: neuron {layer}/{index}")
        lengths[0] = max([lengths[0], *(len(r.tokens) for r in n.top)])
        return n

    if card is not None:
        if subject is not None:
            card.subject = subject
    else:
        card = DatasetCard(
            subject=str(subject),
            site=site,
            extra={
                "source": "openai-neuron-explainer",
                "imported_from": str(root),
                "openai_kurtosis": convention,
            },
        )
    card.content_hash, card.file_hashes = "", {}
    imported_card = card
    bar = Progress("import-openai", len(files), unit="neurons", enabled=progress)

    def fill_card(layers: list[int]) -> None:
        imported_card.layers = layers
        if side:
            return
        imported_card.record_length = lengths[0] or 64

    if out_dataset_dir is None:
        with bar:
            neurons: dict[NeuronId, NeuronRecord] = {}
            for (layer, index), f in sorted(files.items()):
                n = read(layer, index, f)
                neurons[n.id] = n
                bar.update()
        fill_card(sorted({n.layer for n in neurons}))
        return NeuronDataset(card=card, neurons=neurons)

    def layer_neurons(layer: int, keys: list[tuple[int, int]]) -> Iterator[NeuronRecord]:
        for key in keys:
            yield read(layer, key[1], files[key])
            bar.update()

    def layers() -> Iterator[tuple[int, Iterator[NeuronRecord]]]:
        by_layer: dict[int, list[tuple[int, int]]] = {}
        for key in sorted(files):
            by_layer.setdefault(key[0], []).append(key)
        for layer, keys in by_layer.items():
            yield layer, layer_neurons(layer, keys)
        fill_card(sorted(by_layer))  # before save_layers writes the card, which it does last

    # neurons stream from the JSON files to the layer files in row groups: importing a
    # whole model's export holds one row group of records, not every record (~GBs)
    if progress:
        say("import-openai", f"writing {len(files):,} neurons to {out_dataset_dir}")
    with bar:
        save_layers(out_dataset_dir, card, layers())
    return NeuronDataset.lazy(out_dataset_dir)
