"""Labelled fundus data for training and evaluation: label parsers, readers, splits and
datasets (docs/method.md sections 3 and 8).

Every source becomes a list of ``Record``s (image path, grade, id, group); ``group`` is
what a split must keep together (the patient for EyePACS, the image elsewhere).
Images are read with ``core.fundus.read_fundus`` (trim to the field of view, resize to
640), exactly as the CLI and the viewer read them, so a model sees at training time
what it will see in use. Datasets yield uint8 (3, 640, 640) tensors: they travel to
the GPU at a quarter of the size of float32, and ``augment.BatchTransform`` then
augments and normalises whole batches there.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import synthetic
from ..errors import CoreError
from ..fundus import IMAGE_SUFFIXES, FundusReadError, prepare, read_fundus
from ..model import N_GRADES

KINDS = ("eyepacs", "aptos", "idrid", "ddr")
DDR_UNGRADABLE = 5


class DataError(CoreError):
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
        counts = np.bincount(self.labels, minlength=N_GRADES).tolist() if self.records else [0] * N_GRADES
        return {"dataset": self.name, "n": len(self.records), "per_grade": counts, "excluded": dict(self.excluded)}


# ----------------------------------------------------------------- label parsing


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # tolerate a BOM (spreadsheet exports)
    except OSError as e:
        raise DataError(f"cannot read {path.name}: {e.strerror or e}") from None


def _grade(value: str, where: str, allowed: range = range(N_GRADES)) -> int:
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
        g = _grade(parts[1], f"{source} line {line}", range(N_GRADES + 1))
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


# IDRiD part B holds the same photograph under two names (its data README lists them):
# each pair is one group, so that no split puts one copy on each side.
_IDRID_PAIRS = (("IDRiD_021", "IDRiD_391"), ("IDRiD_028", "IDRiD_327"), ("IDRiD_079", "IDRiD_279"),
                ("IDRiD_045", "IDRiD_333"), ("IDRiD_073", "IDRiD_375"))
IDRID_DUPLICATES = {name: a for a, b in _IDRID_PAIRS for name in (a, b)}


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
    rows = [(i, g, IDRID_DUPLICATES.get(i, i)) for i, g in parse_idrid(_read_text(labels), labels.name)]
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


def held_out_names(records: Sequence[Record], share: float, seed: int, include: Sequence[str] = ()) -> list[str]:
    """A test set that no training run may touch: ``share`` of each grade, by group.

    Groups are drawn per grade (a group's grade is its first record's) in a seeded
    order until each grade has its share; the groups of the ids in ``include`` (for
    example the viewer's bundled samples, which must be unseen) are taken first and
    count towards their grade. Returns the ids, sorted.
    """
    if not 0 < share < 1:
        raise ValueError("share must be in (0, 1)")
    by_group: dict[str, list[Record]] = {}
    for r in records:
        by_group.setdefault(r.group, []).append(r)
    ids = {r.id: r.group for r in records}
    missing = [i for i in include if i not in ids]
    if missing:
        raise DataError(f"held-out set: {', '.join(missing)} not in the data")
    chosen = {ids[i] for i in include}
    rng = np.random.default_rng(seed)
    for grade in range(N_GRADES):
        groups = sorted(g for g, rs in by_group.items() if rs[0].label == grade)
        target = round(share * sum(len(by_group[g]) for g in groups))
        taken = sum(len(by_group[g]) for g in groups if g in chosen)
        for k in rng.permutation(len(groups)):
            if taken >= target:
                break
            if groups[k] not in chosen:
                chosen.add(groups[k])
                taken += len(by_group[groups[k]])
    return sorted(r.id for r in records if r.group in chosen)


def read_id_list(path: str | os.PathLike) -> list[str]:
    """Image ids, one per line (``#`` starts a comment; blank lines are skipped)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such list of image ids")
    ids = (line.split("#", 1)[0].strip() for line in _read_text(p).splitlines())
    return [i for i in ids if i]


def select(data: Labelled, only: str | os.PathLike | None = None,
           exclude: str | os.PathLike | None = None) -> Labelled:
    """Keep the records named in the list ``only``, drop those in ``exclude``.

    What is left out is counted in ``excluded``, under the list's file name, so that a
    checkpoint's card and an evaluation report say which images were held out.
    """
    records, excluded = list(data.records), dict(data.excluded)
    for listed, keep, why in ((only, True, "not in {}"), (exclude, False, "held out by {}")):
        if listed is None:
            continue
        ids = {i.lower() for i in read_id_list(listed)}
        kept = [r for r in records if (r.id.lower() in ids or Path(r.id).stem.lower() in ids) == keep]
        if keep and not kept:
            raise DataError(f"--only {Path(listed).name}: none of its ids is in {data.name}")
        if len(records) - len(kept):
            excluded[why.format(Path(listed).name)] = len(records) - len(kept)
        records = kept
    return Labelled(data.name, records, excluded)


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
    return synthetic.image_seed(seed, i), synthetic.grade_of(seed, i, None)


def synthetic_image(seed: int, i: int) -> tuple[np.ndarray, int]:
    """Image ``i`` of synthetic set ``seed`` as the reader would see it saved to a file
    (``prepare``: trimmed to its field of view), and its grade."""
    s, g = synthetic_spec(seed, i)
    f = synthetic.generate(s, g)
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


def check_data_arguments(args: argparse.Namespace) -> None:
    if args.synthetic is not None:
        if args.dataset or args.data:
            raise DataError("give either --synthetic N or --dataset/--data, not both")
        if args.synthetic < 1:
            raise DataError("--synthetic needs N >= 1")
        if getattr(args, "only", None) or getattr(args, "exclude", None):
            raise DataError("--only and --exclude name images of a --dataset, not of --synthetic")
    elif not (args.dataset and args.data):
        raise DataError("name the data: --dataset KIND --data PATH, or --synthetic N --seed S")


def read_selected(args: argparse.Namespace, path: str | os.PathLike | None = None) -> Labelled:
    """The data set the options name (``path`` instead of ``--data``), after ``--only``/``--exclude``."""
    data = read_dataset(args.dataset, path or args.data, args.images)
    return select(data, getattr(args, "only", None), getattr(args, "exclude", None))


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
