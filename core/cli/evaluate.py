"""``python -m core evaluate``: the options of an evaluation, then ``core.training.evaluate``."""

from __future__ import annotations

import argparse

from ..device import resolve as resolve_device
from ..serialise import dumps
from ..training import evaluate as evaluate_module
from ..training.evaluate import evaluate, format_report, labelled_dataset
from .common import add_weights_argument
from .data_options import add_data_arguments


def run(args: argparse.Namespace) -> int:
    dataset, desc = labelled_dataset(args)
    report = evaluate(args.weights, dataset, desc, device=resolve_device(args.device), batch_size=args.batch_size,
                      workers=args.workers, n_boot=args.bootstrap, seed=args.bootstrap_seed,
                      progress=not args.quiet and not args.json)
    if args.json:
        print(dumps(report))
    else:
        print(format_report(report))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="kappa, confusion matrix, sensitivity/specificity of weights on a labelled set",
                       description=evaluate_module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_weights_argument(p)
    add_data_arguments(p)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the kappa interval (default 2000)")
    p.add_argument("--bootstrap-seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
