"""The options that name a labelled data set, shared by ``train`` and ``evaluate``."""

from __future__ import annotations

import argparse
import os

from ..training.datasets import KINDS


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``evaluate`` to name a labelled data set."""
    g = p.add_argument_group("data (a labelled data set, or --synthetic)")
    g.add_argument("--dataset", choices=KINDS, help="format of --data (docs/method.md section 8)")
    g.add_argument("--data", help="the data set's folder or label file (trainLabels.csv, train.csv, IDRiD CSV, DDR train.txt)")
    g.add_argument("--images", help="folder of the images, when not where the format puts them")
    g.add_argument("--only", metavar="LIST", help="use only the images named in LIST (ids, one per line; # comments)")
    g.add_argument("--exclude", metavar="LIST", help="leave out the images named in LIST (e.g. a held-out test set)")
    g.add_argument("--synthetic", type=int, metavar="N", help="use N synthetic images (core.synthetic), generated from --seed")
    g.add_argument("--seed", type=int, default=0, help="synthetic set / split / training seed (default 0)")
    g.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="processes reading or generating images (default min(4, cores))")
