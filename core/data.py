"""Labelled fundus data for training and evaluation: readers, datasets, splits,
class-balanced sampling and the training augmentation (PAPER.md sections 3 and 8).

Every source becomes a list of ``Record``s (image path, grade, id, group); ``group`` is
what a split must keep together (the patient for EyePACS, the image elsewhere).
Images are read with ``core.fundus.read_fundus`` (trim to the field of view, resize to
640), exactly as the CLI and the viewer read them, so a model sees at training time
what it will see in use. Datasets yield uint8 (3, 640, 640) tensors: they travel to
the GPU at a quarter of the size of float32, and ``BatchTransform`` then augments and
normalises whole batches there (``Normalisation.to_tensor`` semantics).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from .fundus import IMAGE_SUFFIXES, FundusReadError, prepare, read_fundus
from .weights import IMAGENET, Normalisation

KINDS = ("eyepacs", "aptos", "idrid", "ddr")
DDR_UNGRADABLE = 5


class DataError(ValueError):
    """A data set that cannot be read as asked (one-line message)."""


@dataclass(frozen=True)
class Record:
    path: Path | None  # None: labels read without their image
    label: int
    id: str
    group: str  # split unit: a patient for EyePACS, the image itself elsewhere


@dataclass
class Labelled:
    """A data set's records plus what was left out and why (reported, never silent)."""

    name: str
    records: list[Record]
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        counts = np.bincount(self.labels, minlength=5).tolist() if self.records else [0] * 5
        return {"dataset": self.name, "n": len(self.records), "per_grade": counts, "excluded": dict(self.excluded)}


# ----------------------------------------------------------------- label parsing


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # tolerate a BOM (spreadsheet exports)
    except OSError as e:
        raise DataError(f"cannot read {path.name}: {e.strerror or e}") from None


def _grade(value: str, where: str, allowed: range = range(5)) -> int:
    try:
        g = int(float(value.strip()))
    except ValueError:
        raise DataError(f"{where}: grade '{value.strip()}' is not a number") from None
    if g not in allowed:
        raise DataError(f"{where}: grade {g} outside {allowed.start}..{allowed.stop - 1}")
    return g


def _csv_rows(text: str, columns: Sequence[str], source: str) -> Iterator[tuple[int, list[str]]]:
    """Rows of the named columns; headers are matched stripped and case-blind
    (IDRiD's has a trailing space and empty trailing columns)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise DataError(f"{source}: empty file")
    names = [h.strip().lower() for h in header]
    try:
        pos = [names.index(c.lower()) for c in columns]
    except ValueError:
        raise DataError(f"{source}: expected columns {', '.join(columns)}; found {', '.join(h.strip() for h in header if h.strip())}") from None
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(pos):
            raise DataError(f"{source} line {line}: too few columns")
        yield line, [row[p].strip() for p in pos]


def parse_eyepacs(text: str, source: str = "trainLabels.csv") -> list[tuple[str, int, str]]:
    """(image id, grade, patient) from ``image,level``; ``10_left`` is patient 10."""
    out = []
    for line, (image, level) in _csv_rows(text, ("image", "level"), source):
        patient = image.rsplit("_", 1)[0] if "_" in image else image
        out.append((image, _grade(level, f"{source} line {line}"), patient))
    return out


def parse_aptos(text: str, source: str = "train.csv") -> list[tuple[str, int]]:
    """(id_code, grade) from ``id_code,diagnosis``."""
    return [(i, _grade(d, f"{source} line {line}")) for line, (i, d) in _csv_rows(text, ("id_code", "diagnosis"), source)]


def parse_idrid(text: str, source: str = "IDRiD labels") -> list[tuple[str, int]]:
    """(image name, grade) from ``Image name,Retinopathy grade,Risk of macular edema ``."""
    return [(i, _grade(g, f"{source} line {line}")) for line, (i, g) in _csv_rows(text, ("Image name", "Retinopathy grade"), source)]


def parse_ddr(text: str, source: str = "DDR labels") -> tuple[list[tuple[str, int]], int]:
    """(file name, grade) from ``<name>.jpg <label>`` lines, and the number of
    ungradable images (label 5), which are left out."""
    out, ungradable = [], 0
    for line, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{source} line {line}: expected '<name> <label>'")
        g = _grade(parts[1], f"{source} line {line}", range(6))
        if g == DDR_UNGRADABLE:
            ungradable += 1
        else:
            out.append((parts[0], g))
    return out, ungradable


# ----------------------------------------------------------------- finding images


def index_images(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by lower-case name and by lower-case stem (one scan)."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    with os.scandir(folder) as it:
        for entry in it:
            p = Path(entry.path)
            if p.suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                found[p.name.lower()] = p
                found.setdefault(p.stem.lower(), p)
    return found


def attach_images(name: str, rows: Sequence[tuple[str, int, str]], folder: Path | None,
                  excluded: dict[str, int] | None = None) -> Labelled:
    """Records for (id, grade, group) rows whose image is in ``folder``; missing
    images are counted in ``excluded['image not found']``. ``folder`` None: labels only."""
    excluded = dict(excluded or {})
    if folder is None:
        return Labelled(name, [Record(None, g, i, grp) for i, g, grp in rows], excluded)
    index = index_images(folder)
    records, missing = [], 0
    for i, g, grp in rows:
        p = index.get(i.lower()) or index.get(Path(i).stem.lower())
        if p is None:
            missing += 1
            continue
        records.append(Record(p, g, i, grp))
    if missing:
        excluded["image not found"] = missing
    if rows and not records:
        raise DataError(f"{name}: none of the {len(rows)} labelled images is in {folder.name}/")
    return Labelled(name, records, excluded)


def _labels_and_images(path: Path, label_file: str, image_dirs: Sequence[str], images: Path | None) -> tuple[Path, Path | None]:
    """Resolve a data set given as its folder or its label file, and its image folder."""
    labels = path / label_file if path.is_dir() else path
    if not labels.is_file():
        raise DataError(f"no label file {label_file} in {path}" if path.is_dir() else f"{path}: no such file")
    if images is not None:
        return labels, images
    for d in image_dirs:
        cand = labels.parent / d
        if cand.is_dir():
            return labels, cand
    return labels, labels.parent


def read_eyepacs(path: Path, images: Path | None = None) -> Labelled:
    """Kaggle 2015: ``trainLabels.csv`` and ``train/<id>.jpeg``; groups are patients."""
    labels, folder = _labels_and_images(path, "trainLabels.csv", ("train",), images)
    return attach_images("eyepacs", parse_eyepacs(_read_text(labels), labels.name), folder)


def read_aptos(path: Path, images: Path | None = None) -> Labelled:
    """APTOS 2019: ``train.csv`` and ``train_images/<id_code>.png``."""
    labels, folder = _labels_and_images(path, "train.csv", ("train_images",), images)
    rows = [(i, g, i) for i, g in parse_aptos(_read_text(labels), labels.name)]
    return attach_images("aptos", rows, folder)


def read_idrid(path: Path, images: Path | None = None) -> Labelled:
    """IDRiD disease grading: the labels CSV and its images (``IDRiD_001.jpg``...).

    Without ``images``: the CSV's folder, or the published layout's
    ``../1. Original Images/a. Training Set`` (or ``b. Testing Set``).
    """
    labels = path
    if path.is_dir():
        csvs = sorted(path.glob("*.csv"))
        if len(csvs) != 1:
            raise DataError(f"{path}: give the IDRiD labels CSV itself ({len(csvs)} CSV files here)")
        labels = csvs[0]
    if not labels.is_file():
        raise DataError(f"{labels}: no such file")
    rows = [(i, g, i) for i, g in parse_idrid(_read_text(labels), labels.name)]
    if images is None:
        part = "b. Testing Set" if "test" in labels.name.lower() else "a. Training Set"
        cands = [labels.parent, labels.parent.parent / "1. Original Images" / part]
        images = next((c for c in cands if index_images(c)), labels.parent)
    return attach_images("idrid", rows, images)


def read_ddr(path: Path, images: Path | None = None) -> Labelled:
    """DDR grading: ``train.txt`` (or valid/test) and the folder of the same name."""
    labels = path / "train.txt" if path.is_dir() else path
    if not labels.is_file():
        raise DataError(f"{labels}: no such file")
    rows, ungradable = parse_ddr(_read_text(labels), labels.name)
    folder = images or (labels.parent / labels.stem if (labels.parent / labels.stem).is_dir() else labels.parent)
    excluded = {"ungradable (label 5)": ungradable} if ungradable else {}
    return attach_images("ddr", [(i, g, i) for i, g in rows], folder, excluded)


READERS: dict[str, Callable[[Path, Path | None], Labelled]] = {
    "eyepacs": read_eyepacs,
    "aptos": read_aptos,
    "idrid": read_idrid,
    "ddr": read_ddr,
}


def read_dataset(kind: str, path: str | os.PathLike, images: str | os.PathLike | None = None) -> Labelled:
    """Read one of ``KINDS`` from its folder or label file."""
    if kind not in READERS:
        raise DataError(f"unknown dataset '{kind}' ({', '.join(KINDS)})")
    return READERS[kind](Path(path).expanduser(), Path(images).expanduser() if images else None)


# ------------------------------------------------------------------------ splits


def split_by_group(records: Sequence[Record], val: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Deterministic split keeping every group (patient) on one side.

    ``val`` < 1 is a share of the images, >= 1 a number of images; groups are taken
    in a seeded random order until the validation side holds at least that many.
    """
    if val < 0:
        raise ValueError("val must be >= 0")
    target = val * len(records) if val < 1 else val
    groups = sorted({r.group for r in records})
    order = np.random.default_rng(seed).permutation(len(groups))
    sizes: dict[str, int] = {}
    for r in records:
        sizes[r.group] = sizes.get(r.group, 0) + 1
    chosen: set[str] = set()
    taken = 0
    for k in order:
        if taken >= target:
            break
        chosen.add(groups[k])
        taken += sizes[groups[k]]
    return [r for r in records if r.group not in chosen], [r for r in records if r.group in chosen]


# ---------------------------------------------------------------------- datasets


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


class FundusDataset(Dataset):
    """Records -> (uint8 (3, 640, 640) image, grade), read as the CLI reads them."""

    def __init__(self, records: Sequence[Record]) -> None:
        if any(r.path is None for r in records):
            raise DataError("records without images cannot be loaded")
        self.records = list(records)
        self.labels = np.array([r.label for r in self.records], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        r = self.records[i]
        try:
            return _chw(read_fundus(r.path, name=r.id).image), r.label
        except FundusReadError as e:  # name the image: a data set has thousands
            raise DataError(f"{r.id}: {e}") from None


def synthetic_spec(seed: int, i: int) -> tuple[int, int]:
    """(image seed, grade) of image ``i`` of the synthetic set ``seed``: the very image
    ``core.synthetic.generate_many(n, seed)`` yields i-th (balanced grades)."""
    from . import synthetic

    return synthetic._image_seed(seed, i), synthetic._grade_of(seed, i, None)


def synthetic_image(seed: int, i: int) -> tuple[np.ndarray, int]:
    """Image ``i`` of synthetic set ``seed`` as the reader would see it saved to a file
    (``prepare``: trimmed to its field of view), and its grade."""
    from .synthetic import generate

    s, g = synthetic_spec(seed, i)
    f = generate(s, g)
    return prepare(f.image, name=f"synthetic-{seed}-{i}").image, f.grade


class SyntheticDataset(Dataset):
    """``n`` synthetic images generated on the fly from (seed, index): deterministic,
    any worker can make any item, nothing is stored."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 0 or seed < 0:
            raise DataError("synthetic sets need n >= 0 and seed >= 0")
        self.n, self.seed = int(n), int(seed)
        self.labels = np.array([synthetic_spec(self.seed, i)[1] for i in range(self.n)], dtype=np.int64)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, grade = synthetic_image(self.seed, int(i))
        return _chw(image), grade


class InMemoryDataset(Dataset):
    """Images already decoded into one uint8 (N, 3, H, W) tensor (on CPU or GPU)."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.label_tensor = torch.as_tensor(self.labels, device=images.device)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


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
    images = torch.empty((n, 3, 640, 640), dtype=torch.uint8, device=device)
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


# ----------------------------------------------------------------------- sampling


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


# ------------------------------------------------------------------- augmentation


@dataclass
class Augmentation:
    """Ranges of the paper's augmentation (PAPER.md section 3)."""

    max_rotation: float = 180.0  # degrees, uniform in [0, max]
    flips: bool = True  # horizontal and vertical, each with probability 1/2
    brightness: float = 0.2  # gain uniform in [1 - b, 1 + b]
    contrast: float = 0.2  # about the field of view's mean, factor in [1 - c, 1 + c]


def augment(x: torch.Tensor, generator: torch.Generator, aug: Augmentation | None = None) -> torch.Tensor:
    """Randomly rotated, flipped, brightened and contrasted copies of a uint8 or float
    (B, 3, H, W) batch in 0..255 (float out, same range, black stays black).

    Parameters are drawn on the CPU from ``generator`` (reproducible on any device);
    flips and rotation are one affine resampling per image (bilinear, zero fill).
    """
    aug = aug or Augmentation()
    b = x.shape[0]
    u = torch.rand((b, 5), generator=generator, dtype=torch.float64)
    angle = u[:, 0] * math.radians(aug.max_rotation)
    flip = aug.flips * 1.0
    sx = 1.0 - 2.0 * flip * (u[:, 1] < 0.5)
    sy = 1.0 - 2.0 * flip * (u[:, 2] < 0.5)
    gain = 1.0 + (2.0 * u[:, 3] - 1.0) * aug.brightness
    contrast = 1.0 + (2.0 * u[:, 4] - 1.0) * aug.contrast
    dev = x.device
    x = x.float()
    fov = x.amax(dim=1, keepdim=True) > 8.0  # the black surround is left as it is
    mean = (x * fov).sum(dim=(2, 3), keepdim=True) / fov.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    c = contrast.float().to(dev).view(b, 1, 1, 1)
    jittered = ((x - mean) * c + mean) * gain.float().to(dev).view(b, 1, 1, 1)
    x = torch.where(fov, jittered.clamp_(0.0, 255.0), x)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros((b, 2, 3), dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos * sy
    grid = F.affine_grid(theta.float().to(dev), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def normalise(x: torch.Tensor, norm: Normalisation = IMAGENET) -> torch.Tensor:
    """0..255 (B, 3, H, W) -> the network's input, as ``Normalisation.to_tensor`` does."""
    mean = torch.tensor(norm.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


class BatchTransform:
    """Training: augment then normalise; evaluation: normalise only. Channels-last
    output (faster convolutions on CPU and GPU)."""

    def __init__(self, norm: Normalisation = IMAGENET, train: bool = False, aug: Augmentation | None = None) -> None:
        self.norm, self.train, self.aug = norm, train, aug or Augmentation()

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.train:
            if generator is None:
                raise ValueError("training augmentation needs a generator")
            x = augment(x, generator, self.aug)
        return normalise(x, self.norm).contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------ command-line options


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``evaluate`` to name a labelled data set."""
    g = p.add_argument_group("data (a labelled data set, or --synthetic)")
    g.add_argument("--dataset", choices=KINDS, help="format of --data (PAPER.md section 8)")
    g.add_argument("--data", help="the data set's folder or label file (trainLabels.csv, train.csv, IDRiD CSV, DDR train.txt)")
    g.add_argument("--images", help="folder of the images, when not where the format puts them")
    g.add_argument("--synthetic", type=int, metavar="N", help="use N synthetic images (core.synthetic), generated from --seed")
    g.add_argument("--seed", type=int, default=0, help="synthetic set / split / training seed (default 0)")
    g.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="processes reading or generating images (default min(4, cores))")


def check_data_arguments(args: argparse.Namespace) -> None:
    if args.synthetic is not None:
        if args.dataset or args.data:
            raise DataError("give either --synthetic N or --dataset/--data, not both")
        if args.synthetic < 1:
            raise DataError("--synthetic needs N >= 1")
    elif not (args.dataset and args.data):
        raise DataError("name the data: --dataset KIND --data PATH, or --synthetic N --seed S")


def describe_synthetic(n: int, seed: int) -> dict[str, Any]:
    return {
        "dataset": "synthetic",
        "n": n,
        "seed": seed,
        "generator": "core.synthetic (images i = generate_many(n, seed)[i], prepared like a file)",
    }


_SAFE = re.compile(r"[^\w.\- ]")


def describe_path(path: str | os.PathLike) -> str:
    """The last two parts of a path: enough to recognise the data, no machine layout."""
    parts = Path(path).parts[-2:]
    return _SAFE.sub("_", "/".join(parts))
