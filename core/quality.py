"""``python -m core quality``: do the highlighted pixels sit on the lesions, and are they
what the score depends on? Measured beside peer attribution methods.

The paper could not measure its maps (no images with marked lesions); the synthetic
generator paints every lesion, so its masks are exact. For each image and for the maps
of its true and of its predicted grade, within the field of view (FOV):

- pixel AUC-ROC of the map against the union of the lesion masks;
- pointing game: the map's maximum lies within ``tolerance`` px of a lesion;
- precision and recall of the k-sigma mask (``threshold_mask``: positive and above
  mean + k std over the FOV), and per lesion type the share of lesion instances
  (8-connected components of that type's mask) that the mask touches;
- deletion and insertion (faithfulness): the top-scoring FOV pixels are replaced by a
  heavily blurred copy of the image (deletion), or revealed on that blurred copy
  (insertion), and the grade's pre-softmax score is read after each step.

Images without lesions (grade 0) have no positives: they are left out of every mask
metric, but not out of deletion/insertion. Every figure comes with a 95% bootstrap
interval over images (the same resamples for every method, so differences are paired).

Cost with the full-width network on 2 free CPU cores: about 3 s per image for all maps
and mask metrics, 6 s more per image for Integrated Gradients (16 steps) and 10-15 s more
per image for deletion/insertion (about 140 forward passes). Hence the subsets: the
defaults (500 images, deletion/insertion and Integrated Gradients on the first 50) take
about 40 minutes there. ``--workers N`` spreads images over processes and ``--device
cuda`` moves the peers and the forward passes to a GPU (the paper's method stays on
the CPU); neither changes the numbers beyond float rounding.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import re
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from . import synthetic
from .attribution import DEFAULT_LAYERS, Context, Method, Peers, methods
from .explanation import threshold_mask
from .fundus import Fundus, FundusReadError, map_mask, prepare, read_fundus
from .weights import ASSETS, LoadedModel, is_available, load_weights, read_checkpoint

OUT_DIR = ASSETS / "quality"
ROLES = ("predicted", "true")
FRACTIONS = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50)  # intermediate steps; 0 and 1 are shared
HIGHER_IS_BETTER = {"auc": True, "auc_abs": True, "pointing": True, "precision": True, "recall": True, "deletion": False, "insertion": True}
IDRID_TYPES = {"MA": "microaneurysm", "HE": "haemorrhage", "EX": "hard_exudate", "SE": "cotton_wool_spot"}


@dataclass(frozen=True)
class Settings:
    """Everything that decides the numbers; written into the output as is."""

    n: int = 500
    seed: int = 10_000_000
    faith_n: int = 50
    ig_n: int = 50
    ig_steps: int = 16
    fractions: tuple[float, ...] = FRACTIONS
    blur_sigma: float = 20.0
    min_gap: float = 1.0
    k: float = 2.0
    tolerance: float = 5.0
    bootstrap: int = 1000
    layers: tuple[int, ...] = DEFAULT_LAYERS
    batch: int = 8
    device: str = "cpu"


# ------------------------------------------------------------------------------ data
@dataclass(frozen=True, eq=False)
class Sample:
    """One image as the model sees it, its lesion masks (None: no ground truth) and grade."""

    name: str
    fundus: Fundus
    lesions: dict[str, np.ndarray] | None
    grade: int | None


def synthetic_samples(n: int, seed: int) -> Iterator[Sample]:
    """``synthetic.generate_many(n, seed)`` as Samples: grades balanced in blocks of five.

    Each image goes through ``prepare`` as if read from a file (as ``core.data`` feeds
    training), and its masks through the same trim and resize (``map_mask``).
    """
    return (_sample(t) for t in synthetic_tasks(n, seed))


def _read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 0


def _idrid_grades(folder: Path) -> dict[str, int]:
    """Grades from any IDRiD grading CSV under ``folder`` ("Image name", "Retinopathy grade")."""
    grades: dict[str, int] = {}
    for path in sorted(folder.rglob("*.csv")):
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            continue
        head = [c.strip().lower() for c in rows[0]]
        if "image name" not in head or "retinopathy grade" not in head:
            continue
        i, j = head.index("image name"), head.index("retinopathy grade")
        for r in rows[1:]:
            if len(r) > max(i, j) and r[i].strip() and r[j].strip().isdigit():
                grades[Path(r[i].strip()).stem] = int(r[j])
    return grades


def idrid_samples(folder: Path) -> list[Sample]:
    """IDRiD segmentation layout: ``IDRiD_XX.jpg`` anywhere under ``folder`` and mask TIFs
    ``IDRiD_XX_{MA,HE,EX,SE,OD}.tif`` anywhere under it (OD, the optic disc, is not a lesion).

    Soft exudates are cotton-wool spots. The true grade comes from an IDRiD grading CSV
    under the folder if there is one, else it is unknown (only the predicted grade's map
    is measured). Images without any lesion mask file are skipped. Masks carry no EXIF
    orientation: photographs with an orientation tag would be misaligned (IDRiD has none).
    """
    images = {p.stem: p for p in sorted(folder.rglob("*")) if re.fullmatch(r"IDRiD_\d+\.jpe?g", p.name, re.I)}
    masks: dict[str, dict[str, Path]] = defaultdict(dict)
    for p in sorted(folder.rglob("*")):
        m = re.fullmatch(r"(IDRiD_\d+)_(MA|HE|EX|SE|OD)\.tiff?", p.name, re.I)
        if m and m.group(2).upper() in IDRID_TYPES:
            masks[m.group(1)][IDRID_TYPES[m.group(2).upper()]] = p
    grades = _idrid_grades(folder)
    out = []
    for stem, path in images.items():
        if stem not in masks:
            continue
        fundus = read_fundus(path, name=path.name)
        lesions = {t: np.zeros(fundus.fov.shape, bool) for t in IDRID_TYPES.values()}
        for t, mp in masks[stem].items():
            lesions[t] = map_mask(_read_mask(mp), fundus.crop_box) & fundus.fov
        out.append(Sample(path.name, fundus, lesions, grades.get(stem)))
    return out


DIHEDRAL = {
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


# ------------------------------------------------------------------------------ metrics
def pixel_auc(values: np.ndarray, positives: np.ndarray, region: np.ndarray) -> float:
    """AUC-ROC of ``values`` for ``positives`` within ``region``; ties count one half.

    Mann-Whitney form with average ranks, so a constant map gives exactly 0.5. NaN when
    the region holds no positive or no negative pixel.
    """
    v = values[region]
    p = positives[region]
    n_pos = int(p.sum())
    n_neg = p.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(v, kind="stable")
    sv = v[order]
    starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
    ends = np.r_[starts[1:], sv.size]
    avg_rank = (starts + ends + 1) / 2.0  # 1-based mean rank of each tie group
    ranks = np.repeat(avg_rank, ends - starts)
    rank_sum = float(ranks[p[order]].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def near(positives: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels within ``tolerance`` px (Euclidean) of a positive pixel."""
    if not positives.any():
        return np.zeros(positives.shape, bool)
    dist = cv2.distanceTransform((~positives).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist <= tolerance


def pointing_hit(values: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    """Share of the map's maximal FOV pixels that fall in ``target`` (lesions grown by the
    tolerance): 1 or 0 for a unique maximum; for ties, the chance that a random pick of the
    tied maxima hits, so a flat map is not rewarded."""
    v = np.where(region, values, -np.inf)
    top = v == v.max()
    return float(target[top].mean())


def mask_precision_recall(mask: np.ndarray, positives: np.ndarray) -> tuple[float, float]:
    """Pixel precision and recall of a binary mask (precision NaN for an empty mask)."""
    hit = int((mask & positives).sum())
    n_mask, n_pos = int(mask.sum()), int(positives.sum())
    precision = hit / n_mask if n_mask else float("nan")
    recall = hit / n_pos if n_pos else float("nan")
    return precision, recall


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components (lesion instances): labels (0 = background) and their count."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return labels, n - 1


def instances_hit(mask: np.ndarray, labels: np.ndarray, count: int) -> int:
    """How many of the ``count`` labelled instances share at least one pixel with ``mask``."""
    if count == 0:
        return 0
    return int((np.bincount(labels[mask], minlength=count + 1)[1:] > 0).sum())


def descending_ranks(values: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each FOV pixel from the highest value (0) down; ties in random order.
    Pixels outside the region get a rank no step reaches."""
    idx = rng.permutation(np.flatnonzero(region))  # a stable sort of a shuffled list breaks ties at random
    v = np.nan_to_num(values.ravel()[idx], nan=-np.inf)
    order = np.argsort(-v, kind="stable")
    ranks = np.full(values.size, np.iinfo(np.int32).max, np.int32)
    ranks[idx[order]] = np.arange(idx.size, dtype=np.int32)
    return ranks.reshape(values.shape)


def blurred(image: np.ndarray, fov: np.ndarray, sigma: float) -> np.ndarray:
    """The image blurred with a Gaussian of ``sigma`` px inside the FOV only (normalised
    convolution, so the black surround does not bleed in): lesions, vessels and texture
    are gone, the retina's colour and illumination stay. Black outside the FOV."""
    f = fov.astype(np.float32)
    num = cv2.GaussianBlur(image.astype(np.float32) * f[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(f, (0, 0), sigma)
    out = num / np.maximum(den, 1e-6)[..., None]
    out[~fov] = 0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def perturbation_scores(
    score: Any, x: torch.Tensor, base: torch.Tensor, ranks: Sequence[np.ndarray], counts: Sequence[int], batch: int
) -> np.ndarray:
    """Scores (len(ranks), 2, len(counts), 5) of deletion (0) and insertion (1) images.

    Deletion puts ``base`` on the ``count`` top-ranked pixels of ``x``; insertion puts
    ``x`` on them over ``base``. Images are built and scored ``batch`` at a time.
    """
    specs = [(r, kind, c) for r in range(len(ranks)) for kind in (0, 1) for c in counts]
    rank_t = [torch.from_numpy(r) for r in ranks]
    out = []
    for s in range(0, len(specs), batch):
        chunk = specs[s:s + batch]
        sel = torch.stack([rank_t[r] < c for r, _, c in chunk])
        on_base = sel ^ torch.tensor([kind == 1 for _, kind, _ in chunk]).view(-1, 1, 1)
        out.append(score(torch.where(on_base[:, None], base, x)).numpy())
    return np.concatenate(out).reshape(len(ranks), 2, len(counts), -1)


def curve_area(y: np.ndarray) -> float:
    """Area under a curve whose steps are equally spaced on the x axis (trapezoid / steps)."""
    return float(np.trapezoid(y, dx=1.0) / (len(y) - 1))


# ------------------------------------------------------------------------------ tallies
@dataclass
class Truth:
    """Per-image ground truth, prepared once for all methods."""

    fov: np.ndarray
    union: np.ndarray
    near: np.ndarray
    labels: dict[str, tuple[np.ndarray, int]]

    @classmethod
    def of(cls, sample: Sample, tolerance: float) -> Truth | None:
        if sample.lesions is None:
            return None
        fov = sample.fundus.fov
        union = np.zeros(fov.shape, bool)
        for m in sample.lesions.values():
            union |= m
        union &= fov
        return cls(fov, union, near(union, tolerance) & fov, {t: components(m & fov) for t, m in sample.lesions.items()})


def mask_metrics(values: np.ndarray, truth: Truth, k: float) -> dict[str, tuple[float, float]]:
    """metric -> (numerator, denominator) for one map; {} if the image has no lesion.

    Most metrics are a per-image value with denominator 1 (averaged over images);
    ``hit_<type>`` is (instances hit, instances), pooled over images.
    """
    if not truth.union.any():
        return {}
    mask = threshold_mask(values, truth.fov, k)
    precision, recall = mask_precision_recall(mask, truth.union)
    out = {
        "auc": (pixel_auc(values, truth.union, truth.fov), 1.0),
        "auc_abs": (pixel_auc(np.abs(values), truth.union, truth.fov), 1.0),
        "pointing": (pointing_hit(values, truth.near, truth.fov), 1.0),
        "recall": (recall, 1.0),
        "mask_share": (mask.sum() / max(int(truth.fov.sum()), 1), 1.0),
    }
    if not np.isnan(precision):
        out["precision"] = (precision, 1.0)
    for t, (labels, count) in truth.labels.items():
        if count:
            out[f"hit_{t}"] = (float(instances_hit(mask, labels, count)), float(count))
    return {m: v for m, v in out.items() if not np.isnan(v[0])}


Key = tuple[str, str, str]  # (method, role, metric)


@dataclass
class ImageResult:
    """Everything measured on one image: (method, role, metric) -> (numerator, denominator)."""

    index: int
    name: str
    row: dict[Key, tuple[float, float]] = field(default_factory=dict)
    curves: dict[Key, np.ndarray] = field(default_factory=dict)  # (method, role, kind) -> normalised curve
    seconds: dict[str, float] = field(default_factory=dict)
    correlations: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    n_grades: int = 1


@dataclass
class Study:
    """The per-image results of a run, in image order."""

    images: list[ImageResult]

    def arrays(self, key: Key) -> tuple[np.ndarray, np.ndarray]:
        pairs = np.array([r.row.get(key, (0.0, 0.0)) for r in self.images], np.float64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def keys(self) -> list[Key]:
        return sorted({k for r in self.images for k in r.row})

    def gather(self, attr: str) -> dict[Any, list[Any]]:
        out: dict[Any, list[Any]] = defaultdict(list)
        for r in self.images:
            for k, v in getattr(r, attr).items():
                out[k].append(v)
        return dict(out)


def _pearson(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    x, y = a[region].astype(np.float64), b[region].astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else float("nan")


def faithfulness(ctx: Context, maps: dict[str, dict[int, np.ndarray]], roles: dict[str, int], s: Settings,
                 res: ImageResult) -> None:
    """Deletion and insertion curves of every method's map, once per distinct grade."""
    fundus = ctx.fundus
    rng = np.random.default_rng([s.seed, 1, ctx.index])  # ties: same order whatever the workers
    base = ctx.peers.lm.normalisation.to_tensor(blurred(fundus.image, fundus.fov, s.blur_sigma))[0]
    s0 = ctx.shared("scores", lambda: ctx.peers.scores(ctx.x))[0].numpy()
    sb = ctx.peers.scores(base[None])[0].numpy()
    n_fov = int(fundus.fov.sum())
    counts = [max(1, round(f * n_fov)) for f in s.fractions]
    names = list(maps)
    for g in sorted(set(roles.values())):
        gap = float(s0[g] - sb[g])
        their = [r for r, rg in roles.items() if rg == g]
        if gap < s.min_gap:
            for role in their:
                res.counts[f"faith_excluded_{role}"] = 1
            continue
        ranks = [descending_ranks(maps[m][g], fundus.fov, rng) for m in names]
        sc = perturbation_scores(ctx.peers.scores, ctx.x[0], base, ranks, counts, s.batch)[..., g]
        for i, m in enumerate(names):
            for kind, name, first, last in ((0, "deletion", 1.0, 0.0), (1, "insertion", 0.0, 1.0)):
                y = np.r_[first, (sc[i, kind] - sb[g]) / gap, last]
                for role in their:
                    res.row[(m, role, name)] = (curve_area(y), 1.0)
                    res.curves[(m, role, name)] = y


def evaluate_image(index: int, sample: Sample, peers: Peers, s: Settings, chosen: Sequence[Method]) -> ImageResult:
    """Every method's maps for the image's true and predicted grades, and their metrics."""
    res = ImageResult(index, sample.name)
    ctx = Context(peers, sample.fundus, (), s.seed, index)
    pred = int(np.argmax(ctx.shared("scores", lambda: peers.scores(ctx.x))[0].numpy()))
    roles = {"predicted": pred} | ({"true": sample.grade} if sample.grade is not None else {})
    ctx.grades = tuple(sorted(set(roles.values())))
    res.n_grades = len(ctx.grades)
    truth = Truth.of(sample, s.tolerance)
    maps: dict[str, dict[int, np.ndarray]] = {}
    for m in chosen:
        if m.subset and index >= s.ig_n:
            continue
        maps[m.name], res.seconds[m.name] = ctx.run(m)
        if truth is not None:
            per_grade = {g: mask_metrics(maps[m.name][g], truth, s.k) for g in ctx.grades}
            for role, g in roles.items():
                res.row.update({(m.name, role, metric): v for metric, v in per_grade[g].items()})
    for a, b in (("paper_input", "gradient_x_input"), ("paper_input", "lrp_epsilon")):
        if a in maps and b in maps:
            res.correlations[f"{a}~{b}"] = _pearson(maps[a][pred], maps[b][pred], sample.fundus.fov)
    if index < s.faith_n:
        faithfulness(ctx, maps, roles, s, res)
    res.counts["with_lesions"] = int(truth is not None and bool(truth.union.any()))
    res.counts["true_equals_predicted"] = int(roles.get("true") == pred)
    return res


# Work items: a Sample, or ("synthetic", image seed, grade) rendered where it is evaluated.
Task = Sample | tuple[str, int, int]


def synthetic_tasks(n: int, seed: int) -> list[Task]:
    """The images of ``synthetic.generate_many(n, seed)`` as (seed, grade) pairs, so that a
    worker process can render its own (tests check the two agree)."""
    return [("synthetic", synthetic._image_seed(seed, i), synthetic._grade_of(seed, i, None)) for i in range(n)]


def _sample(task: Task) -> Sample:
    if isinstance(task, Sample):
        return task
    _, seed, grade = task
    f = synthetic.generate(seed, grade)
    fundus = prepare(f.image, name=f"synthetic:{f.seed}")  # as a saved file is read, and as training reads it
    lesions = {t: map_mask(m, fundus.crop_box) & fundus.fov for t, m in f.masks.items()}
    return Sample(f"synthetic seed {f.seed}", fundus, lesions, f.grade)


def held_out(tasks: list[Task], meta: dict[str, Any]) -> tuple[list[Task], str]:
    """Drop synthetic test images whose seed the model's card lists among its training or
    validation images (sets described as {"dataset": "synthetic", "n", "seed"})."""
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    used: set[int] = set()
    described = []
    for part in ("train", "validation"):
        d = data.get(part) if isinstance(data.get(part), dict) else None
        if d and d.get("dataset") == "synthetic" and isinstance(d.get("n"), int) and isinstance(d.get("seed"), int):
            used.update(synthetic._image_seed(d["seed"], i) for i in range(d["n"]))
            described.append(f"{part}: {d['n']} images from seed {d['seed']}")
    if not described:
        return tasks, "the model card names no synthetic training seeds; test seeds cannot be checked against them"
    kept = [t for t in tasks if isinstance(t, Sample) or t[1] not in used]
    return kept, (f"checked against the card ({'; '.join(described)}): "
                  f"{len(tasks) - len(kept)} test images shared a seed and were dropped")


_WORKER: dict[str, Any] = {}


def _init_worker(weights: str, s: Settings, names: list[str], threads: int | None = None) -> None:
    if threads is not None:  # a spawned worker: share the cores with its siblings
        torch.set_num_threads(threads)
        cv2.setNumThreads(1)
    _WORKER.update(peers=Peers(load_weights(weights), s.device, s.ig_steps, s.batch), settings=s,
                   methods=methods(s.layers, names))


def _work(item: tuple[int, Task]) -> ImageResult:
    w = _WORKER
    return evaluate_image(item[0], _sample(item[1]), w["peers"], w["settings"], w["methods"])


def evaluate(tasks: Sequence[Task], weights: str, s: Settings, chosen: Sequence[Method],
             workers: int = 1, quiet: bool = False) -> Study:
    """Run every method on every image and record the metrics (the slow part).

    ``workers > 1`` evaluates images in that many spawned processes, each with
    ``torch threads // workers`` threads; results do not depend on it.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    items = list(enumerate(tasks))
    bar = tqdm(total=len(items), desc="quality", unit="img", file=sys.stderr, disable=quiet)
    names = [m.name for m in chosen]
    threads = max(1, torch.get_num_threads() // max(workers, 1))
    results: list[ImageResult] = []
    if workers <= 1 or len(items) <= 1:
        _init_worker(weights, s, names)
        for item in items:
            results.append(_work(item))
            bar.update()
    else:
        with ProcessPoolExecutor(min(workers, len(items)), mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(weights, s, names, threads)) as ex:
            for r in ex.map(_work, items, chunksize=1):
                results.append(r)
                bar.update()
    bar.close()
    _WORKER.clear()
    return Study(sorted(results, key=lambda r: r.index))


# ------------------------------------------------------------------------------ statistics
def resample_weights(n: int, b: int, seed: int) -> np.ndarray:
    """(b, n) multiplicities of the images in ``b`` bootstrap resamples (seeded)."""
    if n == 0:
        return np.zeros((b, 0))
    return np.random.default_rng([seed, 2]).multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)


def ratio_ci(num: np.ndarray, den: np.ndarray, w: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """sum(num) / sum(den) and its 95% percentile interval over the resamples ``w``.

    With den = 1 per defined image (0 otherwise) it is the mean over images; with counts
    it pools instances. Returns (value, low, high, the resampled statistics).
    """
    d = den.sum()
    value = float(num.sum() / d) if d > 0 else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ num) / (w @ den)
    ok = boot[np.isfinite(boot)]
    if ok.size == 0:
        return value, float("nan"), float("nan"), boot
    low, high = np.percentile(ok, [2.5, 97.5])
    return value, float(low), float(high), boot


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def summarise(study: Study, chosen: Sequence[Method], s: Settings) -> dict[str, Any]:
    """The JSON document: method -> metric -> {value, low, high, n}, paired comparisons
    with the paper's total map, mean curves, timings and counts.

    A comparison's verdict is "paper loses" or "paper wins" when the 95% interval of the
    paired difference excludes 0, else "tie"; it uses only images where both are defined.
    """
    n = len(study.images)
    w = resample_weights(n, s.bootstrap, s.seed)
    table: dict[str, dict[str, dict[str, Any]]] = {m.name: {} for m in chosen}
    comparisons: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    ref = "paper_total"
    keys = study.keys()
    present = set(keys)
    for method, role, metric in keys:
        num, den = study.arrays((method, role, metric))
        value, low, high, _ = ratio_ci(num, den, w)
        table[method][f"{metric}_{role}"] = {"value": value, "low": low, "high": high, "n": int((den > 0).sum())}
        if method == ref or (ref, role, metric) not in present or metric == "mask_share":
            continue
        rnum, rden = study.arrays((ref, role, metric))
        both = (den > 0) & (rden > 0)
        if not both.any():
            continue
        v1, _, _, b1 = ratio_ci(num * both, den * both, w)
        v0, _, _, b0 = ratio_ci(rnum * both, rden * both, w)
        diff = (b1 - b0)[np.isfinite(b1 - b0)]
        lo, hi = np.percentile(diff, [2.5, 97.5]) if diff.size else (np.nan, np.nan)
        verdict = "tie"
        if lo > 0 or hi < 0:
            better = HIGHER_IS_BETTER.get("hit" if metric.startswith("hit_") else metric, True)
            verdict = "paper loses" if (lo > 0) == better else "paper wins"
        comparisons[method][f"{metric}_{role}"] = {
            "difference": v1 - v0, "low": float(lo), "high": float(hi), "n": int(both.sum()), "verdict": verdict,
        }
    curves = {f"{m}|{role}|{kind}": {"mean": np.mean(ys, 0).tolist(), "n": len(ys)}
              for (m, role, kind), ys in sorted(study.gather("curves").items())}
    counts = {k: int(sum(v)) for k, v in study.gather("counts").items()}
    return _clean({
        "n_images": n,
        "n_with_lesions": counts.get("with_lesions", 0),
        "n_true_equals_predicted": counts.get("true_equals_predicted", 0),
        "mean_grades_per_image": float(np.mean([r.n_grades for r in study.images])) if n else None,
        "methods": table,
        "labels": {m.name: m.label for m in chosen},
        "comparisons_with_paper_total": dict(comparisons),
        "curves": curves,
        "timings_s": {m: {"mean_s": float(np.mean(v)), "n": len(v)} for m, v in study.gather("seconds").items()},
        "correlations": {k: float(np.nanmean(v)) for k, v in study.gather("correlations").items()},
        "faithfulness_excluded": {k.removeprefix("faith_excluded_"): v for k, v in counts.items() if k.startswith("faith_excluded")},
    })


# ------------------------------------------------------------------------------ CLI
def add_parser(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("quality", help="measure how well the maps point at lesions and how faithful they are, beside peer methods",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--weights", help="registry name or checkpoint path; default: demo if available, else paper")
    src = q.add_mutually_exclusive_group()
    src.add_argument("--idrid", metavar="DIR", help="real images with IDRiD-format lesion masks instead of synthetic ones")
    src.add_argument("--real", nargs="+", metavar="PATH", help="real photographs without masks: faithfulness only")
    q.add_argument("--augment", action="store_true", help="with --real: add the 7 flips/rotations of each photograph (labelled)")
    d = Settings()
    q.add_argument("--n", type=int, default=d.n, help=f"synthetic test images (default {d.n})")
    q.add_argument("--seed", type=int, default=d.seed, help=f"seed of the synthetic test set, bootstrap and random maps (default {d.seed:_})")
    q.add_argument("--faith-n", type=int, default=d.faith_n, help=f"deletion/insertion on the first N images (default {d.faith_n})")
    q.add_argument("--ig-n", type=int, default=d.ig_n, help=f"Integrated Gradients on the first N images (default {d.ig_n})")
    q.add_argument("--ig-steps", type=int, default=d.ig_steps, help=f"Integrated Gradients steps (default {d.ig_steps})")
    q.add_argument("--fractions", default=",".join(f"{100 * f:g}" for f in d.fractions),
                   help="deletion/insertion steps, percent of FOV pixels, besides 0 and 100 (default %(default)s)")
    q.add_argument("--blur-sigma", type=float, default=d.blur_sigma, help=f"Gaussian sigma in px of the removal baseline (default {d.blur_sigma:g})")
    q.add_argument("--min-gap", type=float, default=d.min_gap, help="leave out of deletion/insertion a grade whose score drops by less than this when the whole FOV is blurred (default %(default)s)")
    q.add_argument("--k", type=float, default=d.k, help="k of the k-sigma mask (default %(default)s)")
    q.add_argument("--tolerance", type=float, default=d.tolerance, help="pointing-game tolerance in px (default %(default)s)")
    q.add_argument("--bootstrap", type=int, default=d.bootstrap, help="bootstrap resamples (default %(default)s)")
    q.add_argument("--layers", default=",".join(map(str, d.layers)), help="paper's hidden layers to compare (default %(default)s)")
    q.add_argument("--methods", help="comma-separated subset of methods (default: all)")
    q.add_argument("--batch", type=int, default=d.batch, help="images per forward pass (default %(default)s)")
    q.add_argument("--workers", type=int, default=1, help="evaluate images in this many processes (default 1)")
    q.add_argument("--device", default=d.device, help="torch device of the peer methods and of deletion/insertion (default cpu)")
    q.add_argument("--out", default=None, help="folder for the table, plots and SUMMARY.md (default: the project's assets/quality)")
    q.add_argument("--json", metavar="PATH", help="also write the JSON document here")
    q.add_argument("--render", metavar="JSON", help="only re-draw the table, plots and summary from a JSON this command wrote")
    q.add_argument("--timings-from", metavar="JSON", help="with --render: take the timings from another run (e.g. one on a 2-core CPU)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_quality)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def cmd_quality(args: argparse.Namespace) -> int:
    from .cli import UserError

    if args.render:
        try:
            doc = json.loads(Path(args.render).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{args.render}: not a quality JSON ({type(e).__name__})") from None
        if args.timings_from:
            doc = with_timings(doc, json.loads(Path(args.timings_from).read_text()))
        written = write_report(doc, Path(args.out) if args.out else OUT_DIR, Path(args.json) if args.json else None)
        print(written["markdown_text"])
        return 0
    name = args.weights or ("demo" if is_available("demo") else "paper")
    lm = load_weights(name)  # fails early, with one line, on bad weights
    fractions = tuple(sorted(f / 100 for f in _floats(args.fractions)))
    if not fractions or fractions[0] <= 0 or fractions[-1] >= 1:
        raise UserError("--fractions must be percentages strictly between 0 and 100")
    if min(args.n, args.faith_n, args.ig_n) < 0 or min(args.ig_steps, args.batch, args.bootstrap, args.workers) < 1:
        raise UserError("--n, --faith-n and --ig-n must be >= 0; --ig-steps, --batch, --bootstrap and --workers >= 1")
    try:
        layers = tuple(int(v) for v in args.layers.split(",") if v.strip())
        if any(not 1 <= v <= 15 for v in layers):
            raise ValueError("--layers must be layer numbers 1..15")
        chosen = methods(layers, [m.strip() for m in args.methods.split(",")] if args.methods else None)
    except ValueError as e:
        raise UserError(str(e)) from None
    tasks: list[Task]
    check = ""
    try:
        if args.real:
            tasks, kind = list(real_samples(args.real, args.augment)), "real"
        elif args.idrid:
            if not Path(args.idrid).is_dir():
                raise UserError(f"{args.idrid}: not a folder")
            tasks, kind = list(idrid_samples(Path(args.idrid))), "idrid"
            if not tasks:
                raise UserError(f"{args.idrid}: no IDRiD_XX.jpg with lesion masks (IDRiD_XX_MA.tif, ...) found")
        else:
            tasks, kind = synthetic_tasks(args.n, args.seed), "synthetic"
            card = dict(lm.meta)
            if not isinstance(card.get("data"), dict):  # a registry entry's meta may omit it; the file has it
                card["data"] = (read_checkpoint(lm.path).get("meta") or {}).get("data")
            tasks, check = held_out(tasks, card)
    except FundusReadError as e:
        raise UserError(str(e)) from None
    total = len(tasks)
    every = kind == "real"  # a handful of photographs: every measure on every one
    settings = Settings(n=total, seed=args.seed, faith_n=total if every else min(args.faith_n, total),
                        ig_n=total if every else min(args.ig_n, total), ig_steps=args.ig_steps, fractions=fractions,
                        blur_sigma=args.blur_sigma, min_gap=args.min_gap, k=args.k, tolerance=args.tolerance,
                        bootstrap=args.bootstrap, layers=layers, batch=args.batch, device=args.device)
    started = time.perf_counter()
    weights = str(lm.path) if name not in ("paper", "demo") else name
    study = evaluate(tasks, weights, settings, chosen, workers=args.workers, quiet=args.quiet)
    doc = summarise(study, chosen, settings)
    doc.update(describe(lm, settings, kind, study, time.perf_counter() - started, args.workers))
    doc["data"]["held_out"] = check or None
    out = Path(args.out) if args.out else OUT_DIR
    written = write_report(doc, out, Path(args.json) if args.json else None)
    print(written["markdown_text"])
    for p in written["files"]:
        print(f"wrote {p}", file=sys.stderr)
    return 0


def with_timings(doc: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the timings of ``other`` (a run made to time the methods), saying so."""
    o = other["settings"]
    n = max((t["n"] for t in other["timings_s"].values()), default=0)
    return doc | {
        "timings_s": other["timings_s"],
        "settings": doc["settings"] | {
            "timing_source": f"`{reproduce(other['command'])}`: {n} images on device {o['device']} with {o['torch_threads']} torch "
                             f"threads in {o.get('workers', 1)} process, on a machine with {other.get('machine', 'CPUs not recorded')}",
        },
    }


def machine(device: str = "cpu") -> str:
    """What ran it, in words (CPU count; the GPU if one was used)."""
    text = f"{os.cpu_count()} CPUs"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def command_line() -> str:
    """The command as typed, with paths shown relative to the working directory."""
    parts = []
    for a in sys.argv[1:] if sys.argv and sys.argv[0].endswith("__main__.py") else []:
        if os.path.isabs(a):
            rel = os.path.relpath(a)
            a = Path(a).name if rel.startswith("..") else rel
        parts.append(a)
    return "python -m core " + shlex.join(parts) if parts else "python -m core quality"


def describe(lm: LoadedModel, s: Settings, kind: str, study: Study, seconds: float, workers: int = 1) -> dict[str, Any]:
    """Model, data and settings, as stated in the output."""
    data = {
        "synthetic": f"core.synthetic.generate_many(n={s.n}, seed={s.seed}), grades balanced in blocks of 5, each image "
                     "prepared as a file is read and its masks mapped alike",
        "idrid": "real images with IDRiD lesion masks (MA, HE, EX, SE; SE counted as cotton-wool spots)",
        "real": "real photographs without masks: deletion/insertion only, map of the predicted grade",
    }[kind]
    return {
        "model": {"name": lm.name, "sha256": lm.sha256, "widths": list(lm.network.widths),
                  "title": lm.meta.get("title", ""), "synthetic": lm.is_synthetic},
        "data": {"kind": kind, "description": data, "images": [r.name for r in study.images] if kind != "synthetic" else None},
        "command": command_line(),
        "machine": machine(s.device),
        "settings": dataclasses.asdict(s) | {
            "torch_threads": torch.get_num_threads(),
            "workers": workers,
            "threads_per_worker": max(1, torch.get_num_threads() // workers) if workers > 1 else torch.get_num_threads(),
            "wall_s": round(seconds, 1),
            "mask_metrics": "within the FOV; images without lesions (grade 0) excluded; mean over images",
            "auc": "pixel AUC-ROC against the union of the lesion masks, ties counted half; 'auc' ranks the map's signed "
                   "values (evidence for the grade), 'auc_abs' their magnitude (where the map is strong, either sign)",
            "pointing": f"the map's FOV maximum within {s.tolerance:g} px (Euclidean) of a lesion pixel; ties: share of tied maxima",
            "k_sigma_mask": f"positive and > mean + {s.k:g} std of the map over the FOV (core.threshold_mask)",
            "hit_share": "lesion instances = 8-connected components of a type's mask; hit = shares >= 1 pixel with the mask; pooled over images",
            "removal_baseline": f"the image blurred inside the FOV with a Gaussian of sigma {s.blur_sigma:g} px (normalised convolution)",
            "faithfulness_normalisation": "(score - score of the fully blurred image) / (original score - fully blurred score), "
                                          f"per image and grade; left out when that gap < {s.min_gap:g}",
            "curve_area": "trapezoid over equally spaced steps (0, the fractions, 100%), divided by the number of intervals",
            "ranking_ties": "broken at random (seeded)",
            "bootstrap": f"{s.bootstrap} resamples of the images (seeded), 95% percentile intervals, paired across methods",
            "paper_layers": "layer L's unit scores, input-dependent + constant part (S_O), spread over receptive fields",
            "gradient": "|gradient| summed over RGB",
            "signed_sum_over_rgb": "gradient x input, Integrated Gradients, LRP-epsilon",
            "integrated_gradients": f"Captum, {s.ig_steps} steps (Gauss-Legendre), black image baseline, first {s.ig_n} images",
            "lrp": "Captum LRP, default rules (epsilon 1e-9), on a deep copy of the network",
            "gradcam": "layer 14 output (10x10), ReLU, bilinear upsampling to 640",
            "random": "i.i.d. standard normal per pixel, seeded",
            "timing": "mean seconds per image to make the method's maps for the image's distinct true/predicted grades "
                      "(shared passes charged in full to each method that uses them)",
        },
    }


# ------------------------------------------------------------------------------ report
HEADLINE = ("auc", "auc_abs", "pointing", "precision", "recall", "mask_share", "deletion", "insertion")
ARROW = {True: " ↑", False: " ↓"}
COLOURS = {
    "paper_total": (200, 30, 30), "paper_input": (240, 120, 20), "paper_layer5": (170, 110, 60),
    "paper_layer8": (225, 90, 160), "paper_layer11": (150, 40, 110), "gradient": (40, 110, 200),
    "gradient_x_input": (20, 170, 190), "integrated_gradients": (40, 150, 60), "lrp_epsilon": (120, 90, 200),
    "gradcam": (30, 40, 120), "random": (140, 140, 140),
}
EXTRA_COLOURS = [(90, 160, 30), (200, 160, 0), (0, 120, 120), (100, 100, 30)]


def _title(metric: str, s: dict[str, Any]) -> str:
    titles = {
        "auc": "pixel AUC", "auc_abs": "pixel AUC of magnitude", "pointing": f"pointing ≤{s['tolerance']:g} px", "precision": f"precision k={s['k']:g}",
        "recall": f"recall k={s['k']:g}", "mask_share": "mask share of FOV", "deletion": "deletion area",
        "insertion": "insertion area",
    }
    t = titles.get(metric, metric.replace("hit_", "").replace("_", " "))
    return t + ARROW.get(HIGHER_IS_BETTER[metric], "") if metric in HIGHER_IS_BETTER else t


def _cell(c: dict[str, Any] | None) -> str:
    if not c or c.get("value") is None:
        return "–"
    lo, hi = c.get("low"), c.get("high")
    ci = f" ({lo:.3f}–{hi:.3f})" if lo is not None and hi is not None else ""
    return f"{c['value']:.3f}{ci}"


def reproduce(command: str) -> str:
    """The recorded command without the options that only say where files go."""
    parts, out, skip = shlex.split(command), [], False
    for p in parts:
        if skip:
            skip = False
        elif p in ("--out", "--json"):
            skip = True
        elif p != "--quiet" and not p.startswith(("--out=", "--json=")):
            out.append(p)
    return shlex.join(out)


def tag_of(doc: dict[str, Any]) -> str:
    """File-name tag: the model's name (no extension) and, for real data, the data kind."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(doc["model"]["name"]).stem) or "model"
    kind = doc["data"]["kind"]
    return stem if kind == "synthetic" else f"{stem}_{kind}"


def _roles(doc: dict[str, Any]) -> list[str]:
    present = {k.rsplit("_", 1)[1] for cells in doc["methods"].values() for k in cells}
    return [r for r in ROLES if r in present]


def markdown(doc: dict[str, Any]) -> str:
    """The table with intervals, the comparisons with the paper's total map, timings, settings."""
    s, tag = doc["settings"], tag_of(doc)
    labels = doc["labels"]
    real = doc["data"]["kind"] == "real"
    lines = [
        f"## Explanation quality: model `{doc['model']['name']}`, {doc['data']['kind']} images",
        "",
        f"Command: `{reproduce(doc['command'])}`",
        "",
        f"Model `{doc['model']['name']}` (sha256 `{doc['model']['sha256']}`)"
        + (", trained on synthetic images only." if doc["model"]["synthetic"] else "."),
        f"Data: {doc['n_images']} images: {doc['data']['description']}."
        + (f" Held out: {doc['data']['held_out']}." if doc["data"].get("held_out") else ""),
    ]
    if real:
        names = doc["data"]["images"] or []
        distinct = sorted({n.rsplit(" (", 1)[0] for n in names})
        extra = len(names) - len(distinct)
        lines.append(f"Distinct real photographs: {len(distinct)} ({', '.join(distinct)})"
                     + (f"; the other {extra} images are flips/rotations of them, not new photographs, so the intervals "
                        "describe these variants, not a population." if extra else "."))
    else:
        lines.append(
            f"Mask metrics use the {doc['n_with_lesions']} images with lesions (grade-0 images have no positive pixels and are "
            f"left out); deletion/insertion use the first {s['faith_n']} images; Integrated Gradients ({s['ig_steps']} steps) "
            f"ran on the first {s['ig_n']} images only, so its row comes from those. The true grade equalled the predicted one "
            f"on {doc['n_true_equals_predicted']} of {doc['n_images']} images."
        )
    lines += ["Each cell: value (95% bootstrap interval over images). ↑ higher is better, ↓ lower is better.", ""]
    metrics = ["deletion", "insertion"] if real else list(HEADLINE)
    for role in _roles(doc):
        lines += [f"### Map of the {role} grade", ""]
        cols = [_title(m, s) for m in metrics] + (["s / image"] if role == "predicted" else [])
        lines += ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for m, cells in doc["methods"].items():
            row = [_cell(cells.get(f"{x}_{role}")) for x in metrics]
            if role == "predicted":
                t = doc["timings_s"].get(m)
                row.append(f"{t['mean_s']:.2f}" if t else "–")
            lines.append(f"| {labels[m]} | " + " | ".join(row) + " |")
        lines.append("")
    if not real:
        types = sorted({k[4:].rsplit("_", 1)[0] for cells in doc["methods"].values() for k in cells if k.startswith("hit_")})
        role = "true" if "true" in _roles(doc) else "predicted"
        if types:
            ref = doc["methods"].get("paper_total") or next(iter(doc["methods"].values()))
            heads = [f"{t.replace('_', ' ')} (n={(ref.get(f'hit_{t}_{role}') or {}).get('n', 0)} images)" for t in types]
            lines += [f"### Share of lesion instances touched by the k = {s['k']:g} mask, by type (map of the {role} grade)", "",
                      "Pooled over images (n: images with that type). A mask of scattered pixels touches large lesions by "
                      "chance: read each column against the random map's row.", "",
                      "| method | " + " | ".join(heads) + " |", "|---" * (len(types) + 1) + "|"]
            for m, cells in doc["methods"].items():
                lines.append(f"| {labels[m]} | " + " | ".join(_cell(cells.get(f"hit_{t}_{role}")) for t in types) + " |")
            lines.append("")
    lines += comparison_table(doc, metrics)
    lines += [
        f"![deletion curves](deletion_{tag}.png)", "", f"![insertion curves](insertion_{tag}.png)", "",
        "### How it was measured", "",
    ]
    keys = ("mask_metrics", "auc", "pointing", "k_sigma_mask", "hit_share")[5 if real else 0:] + ("removal_baseline", "faithfulness_normalisation",
            "curve_area", "bootstrap", "paper_layers", "gradient", "signed_sum_over_rgb", "integrated_gradients", "lrp",
            "gradcam", "random", "timing")
    lines += [f"- {k.replace('_', ' ')}: {s[k]}" for k in keys]
    lines.append(f"- steps (% of FOV pixels): 0, {', '.join(f'{100 * f:g}' for f in s['fractions'])}, 100")
    excluded = doc.get("faithfulness_excluded") or {}
    if excluded:
        lines.append("- left out of deletion/insertion (gap below the minimum): "
                     + ", ".join(f"{k.replace('faith_excluded_', '')}: {v}" for k, v in sorted(excluded.items())))
    for k, v in (doc.get("correlations") or {}).items():
        a, b = k.split("~")
        lines.append(f"- mean Pearson correlation over the FOV, {labels.get(a, a)} vs {labels.get(b, b)}: {v:.6f}")
    workers = s.get("workers", 1)
    threads = s.get("threads_per_worker") or (s["torch_threads"] // workers if workers > 1 else s["torch_threads"])
    lines.append(f"- run on {doc.get('machine', 'a machine not recorded')}: device {s['device']}, {workers} worker process(es) "
                 f"x {threads} torch threads, wall time {s['wall_s']:.0f} s")
    if s.get("timing_source"):
        lines.append(f"- timings (s / image) from: {s['timing_source']}")
    return "\n".join(lines) + "\n"


def comparison_table(doc: dict[str, Any], metrics: Sequence[str]) -> list[str]:
    """For each metric: which methods beat the paper's total map, tie with it, lose to it."""
    comp = doc.get("comparisons_with_paper_total") or {}
    if "paper_total" not in doc["methods"] or not comp:
        return []
    labels, s = doc["labels"], doc["settings"]
    lines = ["### Against the paper's total map (paired bootstrap of the difference, method − paper's total map)", "",
             "| map | metric | paper's total map | better than it | no clear difference | worse than it |", "|---|---|---|---|---|---|"]
    for role in _roles(doc):
        for metric in metrics:
            if metric == "mask_share":
                continue
            key = f"{metric}_{role}"
            groups: dict[str, list[str]] = {"paper loses": [], "tie": [], "paper wins": []}
            for m, cells in comp.items():
                c = cells.get(key)
                if c:
                    groups[c["verdict"]].append(f"{labels[m]} ({c['difference']:+.3g})")
            if not any(groups.values()):
                continue
            ref = doc["methods"]["paper_total"].get(key)
            lines.append(f"| {role} | {_title(metric, s)} | {_cell(ref)} | " + " | ".join(", ".join(g) or "–" for g in groups.values()) + " |")
    return [*lines, ""]


def summary_paragraph(doc: dict[str, Any]) -> str:
    """Plain words for the README: where the paper's method stands, where it loses."""
    s, labels, comp = doc["settings"], doc["labels"], doc.get("comparisons_with_paper_total") or {}
    real = doc["data"]["kind"] == "real"
    role = "predicted"
    ref = doc["methods"].get("paper_total", {})
    metrics = ["deletion", "insertion"] if real else ["auc", "auc_abs", "pointing", "precision", "recall", "deletion", "insertion"]
    names = {"auc": "pixel AUC (signed map)", "auc_abs": "pixel AUC of the map's magnitude", "pointing": f"the pointing game (≤{s['tolerance']:g} px)", "precision": f"precision of the k={s['k']:g} mask",
             "recall": f"recall of the k={s['k']:g} mask", "deletion": "deletion area (lower is better)", "insertion": "insertion area"}
    if real:
        distinct = sorted({n.rsplit(" (", 1)[0] for n in doc["data"]["images"] or []})
        head = (f"**Faithfulness on real photographs** (`{reproduce(doc['command'])}`; model `{doc['model']['name']}`): "
                f"{len(distinct)} distinct real photograph{'s' if len(distinct) != 1 else ''} ({', '.join(distinct)})"
                + (f", measured as {doc['n_images']} images with its flips and rotations (not independent samples)" if doc["n_images"] > len(distinct) else "")
                + ", map of the predicted grade, blurred removal baseline. ")
    else:
        head = (f"**Do the highlighted pixels sit on the lesions?** (`{reproduce(doc['command'])}`; model `{doc['model']['name']}`"
                + (", trained on synthetic images only" if doc["model"]["synthetic"] else "")
                + f"): {doc['n_images']} held-out synthetic images, {doc['n_with_lesions']} with lesions; "
                f"deletion/insertion on the first {s['faith_n']}, Integrated Gradients on the first {s['ig_n']} "
                f"({s['ig_steps']} steps). Map of the predicted grade; 95% bootstrap intervals in brackets. ")
    parts = [head]
    figures = ", ".join(f"{names[m]} {_cell(ref.get(f'{m}_{role}'))}" for m in metrics if ref.get(f"{m}_{role}"))
    if figures:
        parts.append(f"The paper's total map: {figures}. ")
    for m in metrics:
        key = f"{m}_{role}"
        verdicts = {x: c[key]["verdict"] for x, c in comp.items() if key in c}
        cells = {x: c.get(key) for x, c in doc["methods"].items() if c.get(key) and c[key].get("value") is not None}
        best = max(cells, key=lambda x: cells[x]["value"] * (1 if HIGHER_IS_BETTER[m] else -1), default=None)
        losses = [labels[x] for x, v in verdicts.items() if v == "paper loses"]
        if losses:
            parts.append(f"**On {names[m]} it loses** to {', '.join(losses)}"
                         + (f" (best: {labels[best]}, {_cell(cells[best])})" if best else "") + ". ")
        elif verdicts and all(v == "paper wins" for v in verdicts.values()):
            parts.append(f"On {names[m]} it beats every other method. ")
        elif verdicts:
            wins = [labels[x] for x, v in verdicts.items() if v == "paper wins"]
            parts.append(f"On {names[m]} no method is clearly better" + (f"; it is clearly better than {', '.join(wins)}" if wins else "") + ". ")
        if verdicts.get("random") in ("tie", "paper loses"):
            parts.append(f"**It does not beat the random map on {names[m]}.** ")
            if m in ("deletion", "insertion"):
                parts.append("(Scattered random pixels alone move this network's score that much: pixel-wise "
                             f"{m} rewards scattered maps as well as faithful ones.) ")
    corr = doc.get("correlations") or {}
    if corr:
        same = all(v > 0.999 for v in corr.values())
        parts.append(("The paper's input map is, up to rounding and its 1e-5 activity threshold, the same map as "
                      if same else "Correlation of the paper's input map with ")
                     + " and ".join(f"{labels.get(k.split('~')[1], k)} (correlation {v:.5f})" for k, v in corr.items()) + ". ")
    t = doc["timings_s"]
    if t and not real:
        parts.append("Seconds per image: " + ", ".join(f"{labels[m]} {v['mean_s']:.2f}" for m, v in t.items()) + ".")
    return "".join(parts).strip()


def update_summary(path: Path, tag: str, text: str) -> None:
    """Replace this tag's section of SUMMARY.md (other runs' sections are kept)."""
    begin, end = f"<!-- quality:{tag} -->", f"<!-- /quality:{tag} -->"
    old = path.read_text() if path.is_file() else ""
    block = f"{begin}\n{text}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: block, old) if begin in old else (old.rstrip() + "\n\n" + block if old.strip() else block)
    path.write_text(new.strip() + "\n")


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def plot_curves(doc: dict[str, Any], kind: str) -> Image.Image:
    """Mean deletion or insertion curves, one panel per role, one line per method."""
    s, labels = doc["settings"], doc["labels"]
    xs = ["0", *(f"{100 * f:g}" for f in s["fractions"]), "100"]
    panels = [(r, {m: doc["curves"][f"{m}|{r}|{kind}"] for m in doc["methods"] if f"{m}|{r}|{kind}" in doc["curves"]})
              for r in ROLES]
    panels = [(r, c) for r, c in panels if c]
    if not panels:
        panels = [("predicted", {})]
    ys = [v for _, c in panels for cur in c.values() for v in cur["mean"]] + [0.0, 1.0]
    step = next(t for t in (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, float("inf")) if (max(ys) - min(ys)) / t <= 10)
    step = step if np.isfinite(step) else max(ys) - min(ys)
    lo, hi = np.floor(min(ys) / step) * step, np.ceil(max(ys) / step) * step
    pw, ph, left, top, gap, legend_w = 520, 380, 80, 70, 100, 250
    width = left + len(panels) * pw + (len(panels) - 1) * gap + 40 + legend_w
    img = Image.new("RGB", (width, top + ph + 80), "white")
    d = ImageDraw.Draw(img)
    f_title, f_axis, f_tick = _font(18), _font(15), _font(13)
    what = "replaced by" if kind == "deletion" else "revealed on"
    d.text((left, 12), f"{kind.capitalize()}: top-scoring FOV pixels {what} the blurred image; model {doc['model']['name']}, "
           f"{doc['data']['kind']} images", fill="black", font=f_title)
    colours: dict[str, tuple[int, int, int]] = {}
    for pi, (role, curves) in enumerate(panels):
        x0 = left + pi * (pw + gap)
        n = next(iter(curves.values()))["n"] if curves else 0
        d.text((x0, 42), f"map of the {role} grade (mean over {n} images)", fill="black", font=f_axis)

        def px(i: float, y: float, x0: int = x0) -> tuple[float, float]:
            return x0 + i / (len(xs) - 1) * pw, top + (hi - y) / (hi - lo) * ph

        for tick in np.arange(lo, hi + step / 2, step):
            _, yy = px(0, tick)
            d.line([(x0, yy), (x0 + pw, yy)], fill=(170, 170, 170) if abs(tick) < 1e-9 or abs(tick - 1) < 1e-9 else (225, 225, 225))
            d.text((x0 - 8, yy), f"{tick:g}", fill="black", font=f_tick, anchor="rm")
        for i, label in enumerate(xs):
            xx, _ = px(i, lo)
            d.line([(xx, top + ph), (xx, top + ph + 5)], fill="black")
            d.text((xx, top + ph + 8), f"{label}%", fill="black", font=f_tick, anchor="mt")
        d.rectangle([x0, top, x0 + pw, top + ph], outline="black")
        d.text((x0 + pw / 2, top + ph + 30), f"share of FOV pixels {'removed' if kind == 'deletion' else 'revealed'} (top-scoring first)",
               fill="black", font=f_axis, anchor="mt")
        ylab = Image.new("RGB", (ph, 22), "white")
        ImageDraw.Draw(ylab).text((ph / 2, 11), "normalised score of the grade", fill="black", font=f_axis, anchor="mm")
        img.paste(ylab.rotate(90, expand=True), (x0 - 75, top))
        for j, (m, cur) in enumerate(curves.items()):
            c = colours.setdefault(m, COLOURS.get(m, EXTRA_COLOURS[j % len(EXTRA_COLOURS)]))
            pts = [px(i, y) for i, y in enumerate(cur["mean"])]
            d.line(pts, fill=c, width=4 if m == "paper_total" else 2, joint="curve")
            for p in pts:
                d.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill=c)
    lx = left + len(panels) * pw + (len(panels) - 1) * gap + 40
    for j, (m, c) in enumerate(colours.items()):
        y = top + 10 + 24 * j
        d.line([(lx, y), (lx + 30, y)], fill=c, width=4 if m == "paper_total" else 2)
        d.text((lx + 38, y), labels[m], fill="black", font=f_tick, anchor="lm")
    return img


def write_report(doc: dict[str, Any], out: Path, json_path: Path | None = None) -> dict[str, Any]:
    """quality_<tag>.md/.json, deletion_<tag>.png, insertion_<tag>.png and SUMMARY.md in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    tag = tag_of(doc)
    text = markdown(doc)
    files = [out / f"quality_{tag}.md", out / f"quality_{tag}.json"]
    files[0].write_text(text)
    blob = json.dumps(doc, indent=1, allow_nan=False)
    files[1].write_text(blob + "\n")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(blob + "\n")
        files.append(json_path)
    for kind in ("deletion", "insertion"):
        files.append(out / f"{kind}_{tag}.png")
        plot_curves(doc, kind).save(files[-1], optimize=True)
    update_summary(out / "SUMMARY.md", tag, summary_paragraph(doc))
    files.append(out / "SUMMARY.md")
    return {"markdown_text": text, "files": files}


__all__ = [
    "Settings", "Sample", "Study", "Truth", "add_parser", "blurred", "components", "curve_area", "descending_ranks",
    "evaluate", "idrid_samples", "instances_hit", "map_mask", "mask_metrics", "mask_precision_recall", "near",
    "perturbation_scores", "pixel_auc", "pointing_hit", "ratio_ci", "real_samples", "resample_weights", "summarise",
    "synthetic_samples", "write_report",
]
