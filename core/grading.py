"""Grading many photographs: reading them in worker processes, overlapped with batched
forward passes in this one.

Reading a full-size photograph (decoding the JPEG, finding the field of view, resizing,
assessing gradability) costs more CPU than the forward pass itself, so ``grade`` can read
ahead in ``workers`` spawned processes (one thread each) while this process runs the
network, ``batch`` photographs per pass. Results come back in input order, with each
photograph's own reading and quality, and equal the one-at-a-time path (tests: to 1e-4).

Measured on 2 cores (``python -m core bench --grade``): no gain there. Reading (cv2 already
uses both cores) and the forward saturate them either way, and on the CPU a batch of 8 is
slower per photograph than one at a time (cache). Hence the defaults: read here, batch 1;
the processes are for machines with cores to spare.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .fundus import Fundus, FundusReadError, read_fundus
from .propagation import forward_scores
from .weights import LoadedModel

READ_AHEAD = 4  # photographs in flight per reading process: enough to hide a slow one, little memory (~2 MB each)


@dataclass(frozen=True)
class Graded:
    """One photograph's outcome: its fundus and scores, or why it could not be read."""

    path: Path
    fundus: Fundus | None
    scores: np.ndarray | None  # (5,) float64 pre-softmax scores
    error: str | None = None


def read_one(path: str | os.PathLike) -> tuple[Fundus | None, str | None]:
    """``read_fundus`` with its one error type turned into a message (what a worker returns)."""
    try:
        return read_fundus(path, name=Path(path).name), None
    except FundusReadError as e:
        return None, str(e)


def _init_reader() -> None:
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def read_ahead(paths: Iterable[Path], workers: int) -> Iterator[tuple[Path, Fundus | None, str | None]]:
    """(path, fundus or None, error or None) in the order of ``paths``; read here when
    ``workers`` is 0, else in that many spawned processes, at most ``READ_AHEAD`` each ahead."""
    if workers <= 0:
        for p in paths:
            yield (p, *read_one(p))
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_reader) as ex:
        window: deque = deque()
        for p in paths:
            window.append((p, ex.submit(read_one, str(p))))
            if len(window) >= workers * READ_AHEAD:
                q, fut = window.popleft()
                yield (q, *fut.result())
        while window:
            q, fut = window.popleft()
            yield (q, *fut.result())


def grade_paths(model: LoadedModel, paths: Iterable[Path], *, workers: int = 0, batch: int = 1) -> Iterator[Graded]:
    """Every photograph of ``paths`` graded, in order: read (see ``read_ahead``), then scored
    ``batch`` at a time by one forward pass (eval semantics, as ``explain``)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, not {batch}")
    pending: list[tuple[Path, Fundus | None, str | None]] = []

    def flush() -> Iterator[Graded]:
        readable = [f for _, f, _ in pending if f is not None]
        scores = iter(())
        if readable:
            x = torch.cat([model.normalisation.to_tensor(f.image) for f in readable])
            scores = iter(forward_scores(model.network, x).astype(np.float64))
        for p, f, err in pending:
            yield Graded(p, f, next(scores) if f is not None else None, err)
        pending.clear()

    for item in read_ahead(paths, workers):
        pending.append(item)
        if sum(f is not None for _, f, _ in pending) >= batch:
            yield from flush()
    yield from flush()


__all__ = ["READ_AHEAD", "Graded", "grade_paths", "read_ahead", "read_one"]
