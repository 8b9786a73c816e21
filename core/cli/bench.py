"""``python -m core bench``: speed and memory of the explanation, printed (not asserted)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bench import DEFAULT_IMAGE, grade_report, grade_speed, report, run
from ..serialise import dumps
from .common import add_device_argument


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="time the explanation against a forward pass and Captum")
    b.add_argument("--weights", default="paper")
    add_device_argument(b)
    b.add_argument("--image", default=str(DEFAULT_IMAGE))
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument("--no-captum", action="store_true", help="skip the Captum comparison")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.add_argument("--grade", metavar="FOLDER", help="instead: images per second of grade on this folder's photographs")
    b.add_argument("--limit", type=int, help="with --grade: the first N photographs (default: all)")
    b.add_argument("--pattern", default="*", help="with --grade: file names to take, e.g. 'IDRiD_*.jpg' (default: every image)")
    b.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.grade:
        g = grade_speed(args.weights, Path(args.grade), limit=args.limit, pattern=args.pattern, device=args.device)
        print(dumps(g, indent=2) if args.json else grade_report(g))
        return 0
    r = run(args.weights, Path(args.image), repeats=args.repeats, captum=not args.no_captum, device=args.device)
    print(dumps(r, indent=2) if args.json else report(r))
    sys.stdout.flush()
    return 0
