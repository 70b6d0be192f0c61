"""``neuronbench leaderboard`` and ``neuronbench viewer``: thin wrappers over results."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _leaderboard(args: argparse.Namespace) -> int:
    from neuronbench.results.leaderboard import build_leaderboard, to_markdown, write_leaderboard
    from neuronbench.results.plots import make_plots, plots_dir

    try:
        lb = build_leaderboard(
            args.log_dir, baseline=args.baseline, epochs=args.epochs, seed=args.seed
        )
    except ValueError as e:
        print(f"neuronbench leaderboard: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.log_dir) / "results"
    paths = write_leaderboard(lb, out)
    if not args.no_plots:
        paths |= make_plots(lb, plots_dir(out))
    print(to_markdown(lb))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    if args.json:
        print(json.dumps(lb.to_dict()))
    return 0


def _viewer(args: argparse.Namespace) -> int:
    from neuronbench.results.viewer import BUNDLE_DIR, write_viewer

    page = write_viewer(args.log_dir, args.out, bundle=args.bundle)
    if not args.bundle:
        print(f"wrote {page} (open it in a browser; no server needed)")
        return 0
    # inspect's bundle loads its logs with fetch(), which browsers refuse from file://
    print(
        f"wrote {page} and the inspect bundle in {page.parent / BUNDLE_DIR}; the bundle is blank "
        f"from file://, so serve the folder: python -m http.server -d {page.parent} 8000, "
        "then open http://localhost:8000/"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``leaderboard`` and ``viewer`` subcommands."""
    p = sub.add_parser(
        "leaderboard",
        help="leaderboard (md/csv/json + plots) from explain_neurons inspect logs",
        description="One row per explainer × strategy × simulator. Rows are compared only "
        "with rows of the same simulator, dataset and split, and only on the neurons every "
        "such row scored (the 'compared' column; a row that scored no neuron is left out of "
        "that set): mean score with bootstrap 95% CI, fraction ≥ 0.8, random-only score, "
        "rank, and paired bootstrap differences against a baseline row are all over those "
        "neurons. Coverage is its own column: neurons scored, and samples failed (explainer "
        "or simulation failure), unscored (constant real activations), skipped (the neuron's "
        "records cannot fill the split); 'const. sim' counts samples scored 0 because the "
        "simulation was constant. 'own mean' is each row's mean over its own scored "
        "neurons (not comparable across rows). Also tokens and cost per neuron.",
    )
    p.add_argument("log_dir", help="directory of inspect logs")
    p.add_argument(
        "--out",
        help="results directory (default LOG_DIR/results): leaderboard.{md,csv,json} go "
        "there and the plots into OUT/plots/*.png, the layout `neuronbench run` writes under "
        "its --out",
    )
    p.add_argument(
        "--baseline",
        help="row to compare the other rows of its simulator with: a rank or full label, or "
        "a substring matched per simulator (e.g. 'shuffled': each simulator's rows are "
        "compared with that simulator's shuffled row); default per simulator the best "
        "non-control row",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="explanations were sampled N times per neuron: use epochs 1..N (error if fewer) "
        "and report test-retest agreement (reported whenever logs hold ≥ 2 epochs)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (OUT/plots)")
    p.add_argument(
        "--json", action="store_true", help="print the leaderboard as one JSON object last"
    )
    p.set_defaults(func=_leaderboard)

    v = sub.add_parser("viewer", help="static HTML neuron viewer for explain_neurons inspect logs")
    v.add_argument("log_dir", help="directory of inspect logs")
    v.add_argument("--out", required=True, help="output directory (index.html is written there)")
    v.add_argument(
        "--bundle",
        action="store_true",
        help="also run `inspect view bundle` into OUT/inspect and link it from the page "
        "(the bundle needs a web server: python -m http.server -d OUT)",
    )
    v.set_defaults(func=_viewer)
