"""Feeding images to a training or evaluation loop: loaders that do not oversubscribe the
cores, preloading into memory, batches on a device, and the samplers (class-balanced
with replacement for training; an exact, unpadded shard for evaluation).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..model import INPUT_SIZE
from .datasets import DataError, InMemoryDataset


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    torch.set_num_threads(1)


def loader(dataset: Dataset, batch_size: int, sampler: Sampler | None = None, workers: int = 0,
           pin: bool = False, drop_last: bool = False) -> DataLoader:
    """A DataLoader whose workers do not oversubscribe the cores."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin, drop_last=drop_last, worker_init_fn=_worker_init if workers else None,
                      persistent_workers=False)


def preload(dataset: Dataset, workers: int = 0, device: torch.device | str = "cpu",
            progress: bool = True) -> InMemoryDataset:
    """Decode (or generate) every image once, in ``workers`` processes, into memory on
    ``device``; training epochs then cost no decoding. 1.2 MB per 640x640 image."""
    from tqdm import tqdm

    n = len(dataset)
    labels = np.asarray(getattr(dataset, "labels", np.zeros(n)), dtype=np.int64)
    images = torch.empty((n, 3, INPUT_SIZE, INPUT_SIZE), dtype=torch.uint8, device=device)
    got = np.empty(n, dtype=np.int64)
    pos = 0
    with tqdm(total=n, desc="loading images", unit="img", file=sys.stderr, disable=not progress) as bar:
        for x, y in loader(dataset, batch_size=16, workers=workers):
            images[pos:pos + len(y)] = x.to(device)
            got[pos:pos + len(y)] = y.numpy()
            pos += len(y)
            bar.update(len(y))
    if hasattr(dataset, "labels") and not np.array_equal(labels, got):
        raise DataError("labels changed while loading the images")
    return InMemoryDataset(images, got)


def batches(dataset: Dataset, sampler: Sampler, batch_size: int, workers: int, device: torch.device,
            drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(uint8 images, grades) on ``device``, in the sampler's order."""
    if isinstance(dataset, InMemoryDataset):
        idx = list(sampler)
        stop = len(idx) - (len(idx) % batch_size if drop_last else 0)
        for s in range(0, stop, batch_size):
            take = torch.as_tensor(idx[s:s + batch_size], device=dataset.images.device)
            yield dataset.images[take].to(device, non_blocking=True), dataset.label_tensor[take].to(device)
        return
    for x, y in loader(dataset, batch_size, sampler, workers, pin=device.type == "cuda", drop_last=drop_last):
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)




class BalancedSampler(Sampler[int]):
    """Class-balanced sampling with replacement (each grade equally likely), sharded
    over processes (``rank::world_size``) and re-drawn per epoch from (seed, epoch).

    With ``balanced=False`` it is a seeded permutation instead. Every rank yields the
    same number of indices, as DistributedDataParallel needs.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, num_samples: int | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1, balanced: bool = True) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.size == 0:
            raise DataError("no training images")
        self.total = int(num_samples or len(self.labels))
        self.per_rank = math.ceil(self.total / world_size)
        self.seed, self.rank, self.world_size, self.balanced = seed, rank, world_size, balanced
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        need = self.per_rank * self.world_size
        if self.balanced:
            counts = np.bincount(self.labels)
            weights = torch.as_tensor(1.0 / counts[self.labels], dtype=torch.float64)
            idx = torch.multinomial(weights, need, replacement=True, generator=g)
        else:
            perm = torch.randperm(len(self.labels), generator=g)
            idx = perm.repeat(math.ceil(need / len(perm)))[:need]
        return iter(idx[self.rank::self.world_size].tolist())


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` in order: an exact, unpadded split for
    evaluation (DistributedSampler pads with repeats, which would bias metrics)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, n, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)
