"""``python -m core grade``: grade a folder of images (forward only) into a CSV.

A photograph that the quality assessment refuses gets no grade (the grade column says
"ungradable: retake the photograph"); its scores are kept for research, and the quality
column says which check failed, with its measured value and threshold.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..card import headline
from ..errors import CoreError, OptionError
from ..fundus import IMAGE_SUFFIXES
from ..grading import grade_paths
from ..model import GRADE_NAMES, N_GRADES, softmax
from ..weights import load_weights
from .common import add_device_argument, add_weights_argument

if TYPE_CHECKING:  # the annotation only
    from ..fundus import Assessment


def add_parser(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("grade", help="grade a folder of images (forward only) into a CSV")
    g.add_argument("folder")
    g.add_argument("--csv", required=True, help="output CSV")
    add_weights_argument(g)
    g.add_argument("--workers", type=int, default=0,
                   help="processes that read photographs ahead while this one grades (default 0: read here; on 2 cores "
                        "they gain nothing, see python -m core bench --grade)")
    g.add_argument("--batch", type=int, default=1, help="photographs per forward pass (default %(default)s: on a CPU a "
                                                        "batch is not faster per photograph)")
    add_device_argument(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=run)


def iter_images(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            yield p


def quality_cell(quality: Assessment | None) -> str:
    """Every check as ``name value (threshold, ok|FAILED)``; the failed ones first."""
    if quality is None:
        return ""
    checks = sorted(quality.checks, key=lambda c: c.passed)
    return "; ".join(f"{c.name} {c.value:.4g} (threshold {c.threshold:.4g}, {'ok' if c.passed else 'FAILED'})" for c in checks)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    folder = Path(args.folder)
    if not folder.is_dir():
        raise CoreError(f"{folder}: not a folder")
    if args.workers < 0 or args.batch < 1:
        raise OptionError("--workers must be >= 0 and --batch >= 1")
    model = load_weights(args.weights, device=args.device)
    files = list(iter_images(folder))
    if not files:
        raise CoreError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    failed = ungradable = 0
    grades = range(N_GRADES)
    with open(args.csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "grade", "grade_name"] + [f"score_{g}" for g in grades] + [f"probability_{g}" for g in grades]
                   + ["gradable", "quality", "warnings", "error", "weights", "weights_measured"])
        about = [f"{model.name} (sha256 {model.sha256[:12]})", headline(model.meta)]
        for r in tqdm(grade_paths(model, files, workers=args.workers, batch=args.batch), total=len(files), desc="grading",
                      unit="img", file=sys.stderr, disable=args.quiet):
            rel = r.path.relative_to(folder).as_posix()
            if r.fundus is None or r.scores is None:
                failed += 1
                w.writerow([rel, "", ""] + [""] * (2 * N_GRADES) + ["", "", "", r.error or ""] + about)
                continue
            s, fundus = r.scores, r.fundus
            prob = softmax(s)
            g = int(np.argmax(s))
            quality, gradable = fundus.quality, fundus.gradable
            ungradable += not gradable
            grade_cells = [g, GRADE_NAMES[g]] if gradable else ["", "ungradable: retake the photograph"]
            w.writerow([rel, *grade_cells] + [f"{v:.4f}" for v in s] + [f"{v:.6f}" for v in prob]
                       + [str(gradable).lower(), quality_cell(quality), "; ".join(fundus.warnings), ""] + about)
    graded = len(files) - failed - ungradable
    print(f"graded {graded} of {len(files)} images with '{model.name}' ({headline(model.meta)}) -> {args.csv}"
          + (f"; {ungradable} ungradable (see the quality column)" if ungradable else "")
          + (f"; {failed} unreadable (see the error column)" if failed else ""))
    return 0
