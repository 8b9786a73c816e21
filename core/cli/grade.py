"""``python -m core grade``: grade a folder of images (forward only) into a CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import CoreError
from ..fundus import IMAGE_SUFFIXES, FundusReadError, read_fundus
from ..model import GRADE_NAMES, N_GRADES, softmax
from ..propagation import forward_scores
from ..weights import load_weights
from .common import add_weights_argument


def add_parser(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("grade", help="grade a folder of images (forward only) into a CSV")
    g.add_argument("folder")
    g.add_argument("--csv", required=True, help="output CSV")
    add_weights_argument(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=run)


def iter_images(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            yield p


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    folder = Path(args.folder)
    if not folder.is_dir():
        raise CoreError(f"{folder}: not a folder")
    model = load_weights(args.weights)
    files = list(iter_images(folder))
    if not files:
        raise CoreError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    failed = 0
    grades = range(N_GRADES)
    with open(args.csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "grade", "grade_name"] + [f"score_{g}" for g in grades] + [f"probability_{g}" for g in grades] + ["warnings", "error"])
        for p in tqdm(files, desc="grading", unit="img", file=sys.stderr, disable=args.quiet):
            rel = p.relative_to(folder).as_posix()
            try:
                fundus = read_fundus(p, name=p.name)
            except FundusReadError as e:
                failed += 1
                w.writerow([rel, "", ""] + [""] * (2 * N_GRADES) + ["", str(e)])
                continue
            s = forward_scores(model.network, model.normalisation.to_tensor(fundus.image))[0].astype(np.float64)
            prob = softmax(s)
            g = int(np.argmax(s))
            w.writerow([rel, g, GRADE_NAMES[g]] + [f"{v:.4f}" for v in s] + [f"{v:.6f}" for v in prob] + ["; ".join(fundus.warnings), ""])
    print(f"graded {len(files) - failed} of {len(files)} images with '{model.name}' -> {args.csv}" + (f"; {failed} unreadable (see the error column)" if failed else ""))
    return 0
