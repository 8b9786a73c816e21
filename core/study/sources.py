"""Where the study's images come from: synthetic images (exact lesion masks), a folder in
the IDRiD segmentation layout (real images, hand-drawn masks), or real photographs
without masks (faithfulness only, optionally with their eight flips and rotations).

Every image reaches the methods as a ``Sample``: the fundus as the model sees it (read
or ``prepare``d as training reads a file) and its lesion masks taken through the same
trim and resize (``core.fundus.map_mask``), so a mask pixel is a model-input pixel.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import synthetic
from ..fundus import Fundus, map_mask, prepare, read_fundus
from ..training.datasets import parse_idrid
from .peers import StudyError

IDRID_TYPES = {"MA": "microaneurysm", "HE": "haemorrhage", "EX": "hard_exudate", "SE": "cotton_wool_spot"}
IDRID_COLUMNS = ("image name", "retinopathy grade")  # a grading CSV has these (stripped, case-blind)


@dataclass(frozen=True, eq=False)
class Sample:
    """One image as the model sees it, its lesion masks (None: no ground truth) and grade."""

    name: str
    fundus: Fundus
    lesions: dict[str, np.ndarray] | None
    grade: int | None


# Work items: a Sample; ("synthetic", image seed, grade) rendered where it is evaluated; or
# ("idrid", photograph path, ((type, mask path), ...), grade) read where it is evaluated.
Task = Sample | tuple[str, int, int] | tuple[str, str, tuple[tuple[str, str], ...], int | None]


# ------------------------------------------------------------------------------ synthetic
def synthetic_tasks(n: int, seed: int) -> list[Task]:
    """The images of ``synthetic.generate_many(n, seed)`` as (seed, grade) pairs, so that a
    worker process can render its own (tests check the two agree)."""
    return [("synthetic", synthetic.image_seed(seed, i), synthetic.grade_of(seed, i, None)) for i in range(n)]


def sample_of(task: Task) -> Sample:
    """The Sample a task stands for: a synthetic one is rendered and prepared here."""
    if isinstance(task, Sample):
        return task
    if task[0] == "idrid":
        _, path, mask_paths, true_grade = task
        return idrid_sample(Path(path), {t: Path(m) for t, m in mask_paths}, true_grade)
    _, seed, grade = task
    f = synthetic.generate(seed, grade)
    fundus = prepare(f.image, name=f"synthetic:{f.seed}")  # as a saved file is read, and as training reads it
    lesions = {t: map_mask(m, fundus.crop_box) & fundus.fov for t, m in f.masks.items()}
    return Sample(f"synthetic seed {f.seed}", fundus, lesions, f.grade)


def synthetic_samples(n: int, seed: int) -> Iterator[Sample]:
    """``synthetic.generate_many(n, seed)`` as Samples: grades balanced in blocks of N_GRADES.

    Each image goes through ``prepare`` as if read from a file (as the training data
    loader feeds training), and its masks through the same trim and resize (``map_mask``).
    """
    return (sample_of(t) for t in synthetic_tasks(n, seed))


def held_out(tasks: list[Task], meta: dict[str, Any]) -> tuple[list[Task], str]:
    """Drop synthetic test images whose seed the model's card lists among its training or
    validation images (sets described as {"dataset": "synthetic", "n", "seed"})."""
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    used: set[int] = set()
    described = []
    for part in ("train", "validation"):
        d = data.get(part) if isinstance(data.get(part), dict) else None
        if d and d.get("dataset") == "synthetic" and isinstance(d.get("n"), int) and isinstance(d.get("seed"), int):
            used.update(synthetic.image_seed(d["seed"], i) for i in range(d["n"]))
            described.append(f"{part}: {d['n']} images from seed {d['seed']}")
    if not described:
        return tasks, "the model card names no synthetic training seeds; test seeds cannot be checked against them"
    kept = [t for t in tasks if isinstance(t, Sample) or t[1] not in used]
    return kept, (f"checked against the card ({'; '.join(described)}): "
                  f"{len(tasks) - len(kept)} test images shared a seed and were dropped")


# ------------------------------------------------------------------------------ IDRiD
def read_mask(path: Path) -> np.ndarray:
    """A mask image as booleans (any non-zero pixel is marked)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 0


def is_idrid_grading(text: str) -> bool:
    """Whether a CSV's header has IDRiD's grading columns (other CSVs are not ours to read)."""
    header = next(csv.reader(io.StringIO(text)), None) or []
    names = {c.strip().lower() for c in header}
    return all(c in names for c in IDRID_COLUMNS)


def idrid_grades(folder: Path) -> dict[str, int]:
    """Grades (by image stem) from every IDRiD grading CSV under ``folder``.

    CSVs without the grading columns are ignored; one with them but a malformed row is
    refused (``core.training.datasets.DataError``, naming the file and line), because a
    silently skipped row would leave that image's true grade unknown without saying so.
    """
    grades: dict[str, int] = {}
    for path in sorted(folder.rglob("*.csv")):
        try:
            text = path.read_text(encoding="utf-8-sig")  # spreadsheet exports carry a BOM
        except (OSError, UnicodeDecodeError) as e:
            raise StudyError(f"{path}: cannot read ({type(e).__name__})") from None
        if not is_idrid_grading(text):
            continue
        for name, grade in parse_idrid(text, str(path)):
            grades[Path(name).stem] = grade
    return grades


def idrid_tasks(folder: Path, limit: int | None = None) -> list[Task]:
    """IDRiD segmentation layout: ``IDRiD_XX.jpg`` anywhere under ``folder`` and mask TIFs
    ``IDRiD_XX_{MA,HE,EX,SE,OD}.tif`` anywhere under it (OD, the optic disc, is not a lesion),
    as tasks read where they are evaluated (in worker processes: reading a full-size
    photograph and its masks takes about half a second). The first ``limit`` by name.

    Soft exudates are cotton-wool spots. The true grade comes from an IDRiD grading CSV
    under the folder if there is one, else it is unknown (only the predicted grade's map
    is measured). Images without any lesion mask file are skipped. Masks carry no EXIF
    orientation: photographs with an orientation tag would be misaligned (IDRiD has none).
    """
    if not folder.is_dir():
        raise StudyError(f"{folder}: not a folder")
    images = {p.stem: p for p in sorted(folder.rglob("*")) if re.fullmatch(r"IDRiD_\d+\.jpe?g", p.name, re.I)}
    masks: dict[str, dict[str, Path]] = defaultdict(dict)
    for p in sorted(folder.rglob("*")):
        m = re.fullmatch(r"(IDRiD_\d+)_(MA|HE|EX|SE|OD)\.tiff?", p.name, re.I)
        if m and m.group(2).upper() in IDRID_TYPES:
            masks[m.group(1)][IDRID_TYPES[m.group(2).upper()]] = p
    grades = idrid_grades(folder)
    out: list[Task] = [("idrid", str(path), tuple((t, str(mp)) for t, mp in sorted(masks[stem].items())), grades.get(stem))
                       for stem, path in images.items() if stem in masks]
    return out[:limit] if limit is not None else out


def idrid_sample(path: Path, mask_paths: dict[str, Path], grade: int | None) -> Sample:
    """One IDRiD photograph as the model sees it, with its masks taken through the same crop."""
    fundus = read_fundus(path, name=path.name)
    lesions = {t: np.zeros(fundus.fov.shape, bool) for t in IDRID_TYPES.values()}
    for t, mp in mask_paths.items():
        lesions[t] = map_mask(read_mask(mp), fundus.crop_box) & fundus.fov
    return Sample(path.name, fundus, lesions, grade)


def idrid_samples(folder: Path, limit: int | None = None) -> list[Sample]:
    """``idrid_tasks`` read now."""
    return [sample_of(t) for t in idrid_tasks(folder, limit)]


# ------------------------------------------------------------------------------ real photographs
DIHEDRAL: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as taken": lambda a: a,
    "flipped left-right": lambda a: a[:, ::-1],
    "flipped up-down": lambda a: a[::-1],
    "rotated 90": lambda a: np.rot90(a, 1),
    "rotated 180": lambda a: np.rot90(a, 2),
    "rotated 270": lambda a: np.rot90(a, 3),
    "transposed": lambda a: np.swapaxes(a, 0, 1),
    "anti-transposed": lambda a: np.rot90(a, 2).swapaxes(0, 1),
}


def real_samples(paths: Sequence[str | os.PathLike], augment: bool) -> list[Sample]:
    """Real photographs without masks; with ``augment``, the 8 flips/rotations of each,
    labelled as such (they are not new photographs)."""
    out = []
    for p in paths:
        fundus = read_fundus(p, name=Path(p).name)
        variants = DIHEDRAL if augment else {"as taken": DIHEDRAL["as taken"]}
        for label, t in variants.items():
            f = dataclasses.replace(fundus, image=np.ascontiguousarray(t(fundus.image)), fov=np.ascontiguousarray(t(fundus.fov)))
            out.append(Sample(f"{Path(p).name} ({label})", f, None, None))
    return out


__all__ = [
    "DIHEDRAL", "IDRID_TYPES", "Sample", "Task", "held_out", "idrid_grades", "idrid_sample", "idrid_samples", "idrid_tasks", "is_idrid_grading",
    "read_mask", "real_samples", "sample_of", "synthetic_samples", "synthetic_tasks",
]
