"""``neuronbench show | export-openai | import-openai | migrate``: look at and convert neuron datasets.

``show`` prints a neuron's records in the terminal with each token's background shaded by
its activation (relative to the neuron's max), so a user can eyeball what a neuron does
before spending LLM calls on explaining it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from neuronbench._progress import say
from neuronbench.datasets.errors import DatasetError
from neuronbench.datasets.schema import ActivationRecord, NeuronRecord
from neuronbench.datasets.splits import SCORING_SPLITS, scoring_records, train_records
from neuronbench.datasets.storage import NeuronDataset, read_card

SHOW_GROUPS = ("train", *SCORING_SPLITS, "top", "random")


def register(sub: Any) -> None:
    """Add the dataset subcommands to the ``neuronbench`` parser."""
    p = sub.add_parser("show", help="print a neuron's top records, shaded by activation")
    p.add_argument("dir", type=Path, help="neuron dataset directory")
    p.add_argument("layer", type=int)
    p.add_argument("neuron", type=int)
    p.add_argument("--n", type=int, default=5, help="records to show per group (default 5)")
    p.add_argument(
        "--split",
        choices=SHOW_GROUPS,
        default="train",
        help="train (what the explainer sees), a scoring split (its top + random records), "
        "or all top / random records (default train)",
    )
    p.add_argument("--site", default=None, help="site, when the dataset has several")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export-openai", help="write a dataset as OpenAI neuron-explainer JSON")
    p.add_argument("dir", type=Path, help="neuron dataset directory")
    p.add_argument("out", type=Path, help="output directory ({layer}/{neuron}.json)")
    p.add_argument(
        "--kurtosis",
        choices=("plain", "excess"),
        default="plain",
        help="convention of OpenAI's kurtosis field (default plain = ours + 3)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import-openai", help="read OpenAI neuron-explainer JSON into a dataset")
    p.add_argument("input", type=Path, help="directory of {layer}/{neuron}.json files")
    p.add_argument("out", type=Path, help="output dataset directory")
    p.add_argument(
        "--subject",
        default=None,
        help="subject model name (required unless IN is a neuronbench export)",
    )
    p.add_argument("--site", default="mlp")
    p.add_argument("--kurtosis", choices=("plain", "excess"), default=None)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "migrate",
        help="convert a dataset to the current storage format (corpus once, compact activations)",
    )
    p.add_argument("old", type=Path, help="dataset directory (any storage format)")
    p.add_argument("new", type=Path, help="new, empty output directory")
    p.add_argument(
        "--exact",
        action="store_true",
        help="keep every activation bit for bit (float64 unless already on the grid) instead of "
        "rounding to the grid the recorder stores (error <= top activation / 512)",
    )
    p.set_defaults(func=cmd_migrate)


# ---------------------------------------------------------------------------- show


def find_neuron(root: Path, layer: int, index: int, site: str | None = None) -> NeuronRecord:
    """Load one neuron from a dataset directory; a miss lists what the dataset holds."""
    card = read_card(root)
    if layer not in card.layers:
        counts = _layer_counts(root, card.layers)
        raise DatasetError(
            f"{root}: no layer {layer}; available layers: "
            + ", ".join(f"{lay} ({counts[lay]} neurons)" for lay in card.layers)
        )
    ds = NeuronDataset.load(root, layers=[layer])
    hits = [
        n for n in ds if n.id.index == index and n.id.layer == layer and site in (None, n.id.site)
    ]
    if not hits:
        indices = sorted({n.id.index for n in ds if n.id.layer == layer})
        span = f"{indices[0]}..{indices[-1]}" if indices else "none"
        raise DatasetError(
            f"{root}: no neuron {index} in layer {layer}"
            + (f" (site {site})" if site else "")
            + f"; layer {layer} has {len(indices)} neurons (indices {span}); layers: {card.layers}"
        )
    if len(hits) > 1:
        sites = sorted({n.id.site for n in hits})
        raise DatasetError(f"{root}: neuron {layer}/{index} exists for sites {sites}; pass --site")
    return hits[0]


def _layer_counts(root: Path, layers: list[int]) -> dict[int, int | str]:
    import pyarrow.parquet as pq

    counts: dict[int, int | str] = {}
    for layer in layers:
        f = root / "data" / f"layer-{layer:03d}.parquet"
        try:
            counts[layer] = pq.ParquetFile(f).metadata.num_rows
        except Exception:  # a listing for an error message must not fail itself
            counts[layer] = "?"
    return counts


def shown_records(
    neuron: NeuronRecord, group: str, n: int
) -> list[tuple[str, int, ActivationRecord]]:
    """(group, index within group, record) for ``--split``: at most ``n`` per group."""
    if group == "train":
        return [("train", i, r) for i, r in enumerate(train_records(neuron, n))]
    if group == "top":
        return [("top", i, r) for i, r in enumerate(neuron.top[:n])]
    if group == "random":
        return [("random", i, r) for i, r in enumerate(neuron.random[:n])]
    s = scoring_records(neuron, group, n)  # type: ignore[arg-type]
    return [(f"{group} top", i, r) for i, r in enumerate(s.top)] + [
        (f"{group} random", i, r) for i, r in enumerate(s.random)
    ]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def show_payload(neuron: NeuronRecord, group: str, n: int) -> dict[str, Any]:
    """The ``--json`` object: summary statistics and the shown records (NaN as null)."""
    summary = {k: (_finite(v) if isinstance(v, float) else v) for k, v in neuron.summary().items()}
    return {
        **summary,
        "quantile_boundaries": list(neuron.quantile_boundaries),
        "n_top": len(neuron.top),
        "n_random": len(neuron.random),
        "split": group,
        "records": [
            {
                "group": g,
                "index": i,
                "position": r.position,
                "max_activation": r.max_activation,
                "tokens": list(r.tokens),
                "activations": list(r.activations),
            }
            for g, i, r in shown_records(neuron, group, n)
        ],
    }


def shade(record: ActivationRecord, max_activation: float) -> Any:
    """A rich ``Text`` of the record, each token's background green ∝ relu(a) / max."""
    from rich.text import Text

    text = Text()
    for tok, a in zip(record.tokens, record.activations, strict=True):
        shown = tok.replace("\n", "↵").replace("\t", "→") or "∅"
        t = max(0.0, a) / max_activation if max_activation > 0 else 0.0
        if t <= 0:
            text.append(shown)
            continue
        t = min(1.0, t)
        fade = int(round(255 * (1 - t)))
        text.append(shown, style=f"black on rgb({fade},255,{fade})")
    return text


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.4g}"


def render_show(neuron: NeuronRecord, group: str, n: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    stats = Table(title=f"neuron {neuron.id} ({neuron.id.site})", show_header=False)
    stats.add_row("max activation", _fmt(neuron.max_activation))
    stats.add_row("mean", _fmt(neuron.mean))
    stats.add_row("variance", _fmt(neuron.variance))
    stats.add_row(
        "skewness / excess kurtosis", f"{_fmt(neuron.skewness)} / {_fmt(neuron.kurtosis)}"
    )
    rate = neuron.firing_rate
    stats.add_row("firing rate", "n/a" if not math.isfinite(rate) else f"{rate:.2%}")
    stats.add_row("tokens recorded", f"{neuron.n_tokens:,}")
    stats.add_row(
        "quantile boundaries", ", ".join(_fmt(b) for b in neuron.quantile_boundaries) or "none"
    )
    stats.add_row("records", f"{len(neuron.top)} top, {len(neuron.random)} random")
    console.print(stats)
    scale = neuron.max_activation
    for g, i, r in shown_records(neuron, group, n):
        pos = "" if r.position < 0 else f" position {r.position}"
        console.print(f"[bold]{g}[{i}][/bold]{pos}  max {_fmt(r.max_activation)}")
        console.print(shade(r, scale))
        console.print()


def cmd_show(args: argparse.Namespace) -> int:
    neuron = find_neuron(args.dir, args.layer, args.neuron, args.site)
    if args.json:
        print(json.dumps(show_payload(neuron, args.split, args.n), ensure_ascii=False))
    else:
        render_show(neuron, args.split, args.n)
    return 0


# ---------------------------------------------------------------------------- convert


def cmd_export(args: argparse.Namespace) -> int:
    from neuronbench.datasets.openai_json import export_openai

    say("export-openai", f"reading {args.dir}")
    ds = NeuronDataset.load(args.dir)
    out = export_openai(ds, args.out, kurtosis=args.kurtosis, progress=True)
    print(f"wrote {len(ds)} neurons as OpenAI JSON to {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from neuronbench.datasets.openai_json import import_openai

    ds = import_openai(
        args.input,
        subject=args.subject,
        out_dataset_dir=args.out,
        site=args.site,
        kurtosis=args.kurtosis,
        progress=True,
    )
    n = len(NeuronDataset.ids(args.out))  # ds is lazy: counting must not load every record
    print(f"imported {n} neurons (layers {ds.card.layers}) into {args.out}")
    return 0


def _bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*.parquet"))


def cmd_migrate(args: argparse.Namespace) -> int:
    from neuronbench.datasets.storage import migrate, storage_format

    say("migrate", f"reading {args.old} (storage format {storage_format(args.old)})")
    out = migrate(args.old, args.new, quantize=not args.exact)
    n = len(NeuronDataset.ids(out))
    before, after = _bytes(args.old), _bytes(out)
    print(
        f"migrated {n} neurons to {out}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB "
        f"({before / max(n, 1):,.0f} -> {after / max(n, 1):,.0f} bytes per neuron)"
    )
    return 0
