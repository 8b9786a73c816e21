"""``python -m core explain``: grade images and write every layer's score maps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..explanation import explain
from ..export import write_explanation
from ..fundus import FundusReadError, read_fundus
from ..weights import load_weights
from .common import EXIT_USER_ERROR, add_device_argument, add_weights_argument, fail, unique_stem


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("explain", help="grade images and write every layer's score maps")
    e.add_argument("images", nargs="+", help="fundus photographs")
    add_weights_argument(e)
    add_device_argument(e)
    e.add_argument("--out", default="out", help="output folder (one subfolder per image)")
    e.add_argument("--k", type=float, default=2.0, help="threshold in standard deviations for the mask (default 2)")
    e.add_argument("--precision", choices=["float32", "float64"], default="float32",
                   help="float64: slow reference arithmetic (README, Precision)")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_weights(args.weights, device=args.device)
    status = 0
    used: set[str] = set()
    for path in args.images:
        try:
            fundus = read_fundus(path, name=Path(path).name)
        except FundusReadError as e:
            fail(f"{path}: {e}")
            status = EXIT_USER_ERROR
            continue
        exp = explain(model, fundus, precision=args.precision)
        stem = unique_stem(Path(path).stem, used)
        out = Path(args.out) / stem
        write_explanation(exp, out, args.k)
        cons = exp.conservation()
        for w in fundus.warnings:
            print(f"warning: {path}: {w}", file=sys.stderr)
        verdict = (f"grade {exp.grade} ({exp.grade_name})" if exp.gradable
                   else f"UNGRADABLE, retake the photograph ({'; '.join(exp.quality.reasons)}); the model's output")
        print(
            f"{path}: {verdict}; scores "
            + " ".join(f"{s:+.1f}" for s in exp.scores)
            + f"; conservation error {cons['max_relative_error']:.1e}; wrote {out}"
        )
    return status
