"""``python -m core train``: the options of a training run, then ``core.training.train``."""

from __future__ import annotations

import argparse
import os

from ..training import train as train_module
from ..training.train import train
from .data_options import add_data_arguments


def run(args: argparse.Namespace) -> int:
    summary = train(args)
    if summary and int(os.environ.get("RANK", "0")) == 0:
        last = summary["history"][-1] if summary["history"] else {}
        kappa = last.get("val_quadratic_weighted_kappa")
        print(f"trained {summary['epochs']} epochs in {summary['wall_time_s']:.0f} s; best epoch {summary['best_epoch']}"
              + (f"; last val kappa {kappa:.4f}" if kappa is not None else "") + f"; checkpoint {summary['checkpoint']}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the network (kappa loss, Adam, balanced sampling, augmentation)",
                       description=train_module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    p.add_argument("--val", type=float, help="validation: share (<1) or number of images split off by patient/image; "
                   "with --synthetic, the number of images generated from --val-seed (default min(500, N/10))")
    p.add_argument("--val-data", help="a separate validation label file of the same --dataset format")
    p.add_argument("--val-seed", type=int, help="seed of the synthetic validation set (default --seed + 1)")
    p.add_argument("--init", metavar="WEIGHTS", help="start from this checkpoint of ours (registry name or path; "
                   "not the published weights, which carry no licence); default: Kaiming initialisation")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=15, help="per process (paper: 15)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (paper: 3e-4)")
    p.add_argument("--loss", choices=["kappa", "ce"], default="kappa", help="quadratic weighted kappa loss (paper) or cross-entropy")
    p.add_argument("--widths", help="15 channel counts of layers 1..15 ('8,8,16,...' or '8x2,16x13'); default the paper's")
    p.add_argument("--samples-per-epoch", type=int, help="images drawn per epoch (default: the training set's size)")
    p.add_argument("--no-balance", action="store_true", help="plain shuffling instead of class-balanced sampling")
    p.add_argument("--no-augment", action="store_true", help="no rotation, flips, brightness or contrast")
    p.add_argument("--preload", choices=["cpu", "device"], help="decode/generate all images once into memory (cpu) or onto the GPU (device)")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA (ignored on CPU)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default); under torchrun, cuda means cuda:LOCAL_RANK")
    p.add_argument("--out", default="runs/model.pt", help="best checkpoint (registry format); the resumable state and a "
                   "JSON-lines log are written beside it (default runs/model.pt)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="STATE",
                   help="continue from the state beside --out (or the STATE file given)")
    p.add_argument("--time-limit", type=float, help="stop after this many seconds (then validate and save)")
    p.add_argument("--max-steps", type=int, help="at most this many steps per epoch (smoke tests)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    p.set_defaults(func=run)
