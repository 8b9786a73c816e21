"""What every command shares: the exit status for user errors, the one-line message,
the weights option and a download progress bar."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..device import CHOICES_HELP

EXIT_USER_ERROR = 2
WEIGHTS_HELP = "registry name (paper, demo) or checkpoint path; default: paper if available, else demo"


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, with underscores added until no earlier photograph of this run has it
    (two ``eye.jpg`` from different folders must not overwrite each other's files)."""
    while stem in used:
        stem += "_"
    used.add(stem)
    return stem


def fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def add_weights_argument(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--weights", default=default, help=WEIGHTS_HELP)


def add_device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help=f"where the model runs: {CHOICES_HELP}; default %(default)s")


def progress_bar(name: str) -> Callable[[int, int | None], None]:
    """A tqdm bar on stderr fed with (bytes done, total) as a download proceeds."""
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int | None) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, unit="B", unit_scale=True, desc=name, file=sys.stderr)
        bar["bar"].update(done - bar["bar"].n)
        if total and done >= total:
            bar["bar"].close()

    return update
