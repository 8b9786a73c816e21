"""Command line: ``python -m core explain | grade | batch | report | weights | bench | train | evaluate | quality | gate``.

One small module per command: it declares its options, calls the library and prints.
Library code raises its own errors (subclasses of ``core.errors.CoreError``); only here
do they become one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence

from ..errors import CoreError
from . import batch, bench, evaluate, explain, gate, grade, quality, report, train, weights
from .common import EXIT_USER_ERROR, fail

COMMANDS = (explain, grade, batch, report, weights, bench, train, evaluate, quality, gate)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Interpretable DR grading (de la Torre, Valls & Puig).")
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


@contextlib.contextmanager
def _quiet_decoders() -> Iterator[None]:
    """Damaged files make the decoders talk on stderr by themselves (Pillow's warnings,
    OpenCV's libtiff errors); the reader already turns every failure into one line."""
    import cv2

    level = cv2.utils.logging.getLogLevel()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"PIL\.")
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            yield
        finally:
            cv2.utils.logging.setLogLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if os.environ.get("DR_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["DR_THREADS"]))
    try:
        with _quiet_decoders():
            return int(args.func(args) or 0)
    except CoreError as e:
        fail(str(e))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        fail("interrupted")
        return 130


__all__ = ["COMMANDS", "EXIT_USER_ERROR", "build_parser", "main"]
