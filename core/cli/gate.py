"""``python -m core gate``: measure the gradability gate on data (``core.study.gate``).

Prints the share of the IDRiD training photographs that the gate lets through (with the
reasons for any it refuses), the share of a generated corpus of ungradable pictures
that it refuses (per category), and the degradation table: per kind of damage, where
the gate closes and where the model's grade first moves. The data folder is an option
(no machine paths in code), e.g. ``--data ../shared/data``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import OptionError
from ..serialise import dumps
from ..study.gate import CURVE_PHOTOGRAPHS, PER_CATEGORY, report, run_gate
from ..weights import load_weights
from .common import add_weights_argument


def add_parser(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("gate", help="measure the gradability gate: IDRiD gradable rate, ungradable corpus, degradation curves",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("--data", required=True, metavar="DIR",
                   help="folder holding idrid-segmentation-train/ and idrid-grading-train/ (e.g. ../shared/data)")
    add_weights_argument(g)
    g.add_argument("--n", type=int, metavar="N", help="use N of the IDRiD photographs, evenly spaced (default: all)")
    g.add_argument("--curves", type=int, default=CURVE_PHOTOGRAPHS, metavar="N",
                   help=f"degradation curves on N of those, evenly spaced; 0: none (default {CURVE_PHOTOGRAPHS})")
    g.add_argument("--per-category", type=int, default=PER_CATEGORY, metavar="N",
                   help=f"pictures per category of the generated corpus (default {PER_CATEGORY})")
    g.add_argument("--width", type=int, default=1024, help="width of the generated scenes in pixels (default %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed of the corpus and of the noise steps (default %(default)s)")
    g.add_argument("--json", action="store_true", help="print the figures as JSON")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if (args.n is not None and args.n < 1) or args.curves < 0 or args.per_category < 1 or args.width < 64:
        raise OptionError("--n and --per-category must be >= 1, --curves >= 0 and --width >= 64")
    model = load_weights(args.weights)  # fails early, with one line, on missing weights
    with tqdm(desc="gate", unit="pic", file=sys.stderr, disable=args.quiet) as bar:
        doc = run_gate(Path(args.data), model, model.name, n=args.n, curves_n=args.curves, per_category=args.per_category,
                       width=args.width, seed=args.seed, progress=lambda _: bar.update())
    print(dumps(doc, indent=2) if args.json else report(doc))
    sys.stdout.flush()
    return 0
