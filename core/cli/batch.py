"""``python -m core batch``: explain a folder, manifest or glob on Ray Data into Parquet.

Ray and pyarrow are optional: without them the command says in one line how to install
them. Everything else follows the CLI's rules (one line and exit status 2 on a user error).
"""

from __future__ import annotations

import argparse

from ..errors import CoreError
from ..weights import load_weights
from .common import add_weights_argument

INSTALL_HINT = "batch needs Ray Data and pyarrow: python -m pip install -r requirements-batch.txt"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("batch", help="explain a folder, manifest or glob on Ray Data into Parquet (resumable)")
    b.add_argument("source", help="a folder, a CSV or text manifest of paths (optionally with labels), a glob, or a URL")
    b.add_argument("--out", required=True, help="output folder (or URL): Parquet rows under OUT/rows, maps under OUT/maps")
    add_weights_argument(b)
    b.add_argument("--maps", choices=["none", "masks", "all"], default="none",
                   help="none: rows only; masks: also the k-sigma mask PNG of each grade given; all: also explanation.npz")
    b.add_argument("--k", type=float, default=2.0, help="threshold in standard deviations for the mask (default 2)")
    b.add_argument("--ray-address", help="an existing Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray")
    b.add_argument("--num-gpus", type=int, default=0, help="explain on N GPUs, one actor each")
    b.add_argument("--limit", type=_positive, help="explain at most N photographs that have no row yet")
    b.add_argument("--actors", type=_positive, help="explain actors (default: one per GPU, else one per 4 CPUs)")
    b.add_argument("--threads", type=_positive, help="torch threads per actor (default: the CPUs shared among the actors)")
    b.add_argument("--quiet", action="store_true", help="no progress reporting")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import pyarrow  # noqa: F401
        import ray  # noqa: F401
    except ImportError:
        raise CoreError(INSTALL_HINT) from None
    from ..batch import Options, resolve, run_batch

    if args.num_gpus < 0:
        raise CoreError("--num-gpus must be 0 or more")
    items = resolve(args.source)
    model = load_weights(args.weights)
    opts = Options(out=args.out, maps=args.maps, k=args.k, ray_address=args.ray_address, num_gpus=args.num_gpus,
                   limit=args.limit, actors=args.actors, threads=args.threads, quiet=args.quiet)
    summary = run_batch(items, model, opts)
    print(f"batch with '{model.name}' (sha256 {model.sha256[:12]}): {summary.line()}")
    return 0
