"""Lesion-level measures of one map on real masks: does it beat a fair chance, which
lesions does it find, and how much of its positive evidence lies on lesions?

- **Clumped chance.** A k-sigma mask of a few blobs and one of scattered pixels with the
  same pixel count touch very different numbers of lesions by chance: scattered pixels
  touch many large exudates. The fair baseline moves *the method's own mask*: rotated
  about the field of view's centre by a random angle and mirrored at random (pixel
  count, shape and distance from the centre stay; only its place changes), kept where
  at least ``KEEP`` of it stays inside the field of view.
- **Detection.** A lesion (an 8-connected component of one type's mask) is detected
  when the map's sum over its pixels is positive: net evidence for the grade. For the
  exact maps that sum is the lesion's contribution to the score. Unsigned maps
  (gradient magnitude, Grad-CAM) detect every lesion trivially; the report says so.
- **Positive evidence on lesions.** The share of the map's positive mass (sum of its
  positive values over the FOV) that lies on lesion pixels, against the share of the
  FOV the lesions cover: their ratio is 1 for a map that ignores where lesions are.

Everything here works on one image; sizes are in model-input pixels (640 px side).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..explanation import threshold_mask
from .measures import instances_hit

KEEP = 0.9  # a moved mask must keep this share of its pixels inside the FOV
MOVES = 16  # moved copies per mask
TRIES = 8  # draws per copy before the best one is taken
SIZE_BINS: tuple[tuple[int, int, str], ...] = ((1, 9, "1-9 px"), (10, 99, "10-99 px"), (100, 10**9, ">=100 px"))


def size_bin(area: int) -> str:
    """The name of the size class of a lesion of ``area`` model-input pixels."""
    return next(name for lo, hi, name in SIZE_BINS if lo <= area <= hi)


@dataclass(frozen=True)
class Instances:
    """One lesion type's instances on one image: labels (0 = background), count, and
    each instance's size class (index i is label i + 1)."""

    labels: np.ndarray
    count: int
    bins: tuple[str, ...]

    @classmethod
    def of(cls, labels: np.ndarray, count: int) -> Instances:
        """From ``measures.components`` of a type's mask."""
        areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        return cls(labels, count, tuple(size_bin(int(a)) for a in areas))


def moved(mask: np.ndarray, fov: np.ndarray, rng: np.random.Generator, n: int = MOVES) -> list[np.ndarray]:
    """``n`` copies of ``mask`` moved as a whole: rotated about the FOV's centre by a
    uniform random angle, mirrored left-right with probability one half, cut to the FOV.

    Each copy is the first of up to ``TRIES`` draws that keeps ``KEEP`` of the pixels
    inside the FOV, else the draw that keeps most. An empty mask gives empty copies.
    """
    total = int(mask.sum())
    if total == 0:
        return [np.zeros_like(mask) for _ in range(n)]
    ys, xs = np.nonzero(fov)
    centre = (float(xs.mean()), float(ys.mean())) if xs.size else ((mask.shape[1] - 1) / 2, (mask.shape[0] - 1) / 2)
    src = mask.astype(np.uint8)
    size = (mask.shape[1], mask.shape[0])
    out = []
    for _ in range(n):
        best, best_kept = None, -1
        for _ in range(TRIES):
            m = cv2.getRotationMatrix2D(centre, float(rng.uniform(0.0, 360.0)), 1.0)
            if rng.random() < 0.5:  # mirror about the centre's column, then rotate
                m = m @ np.array([[-1.0, 0.0, 2 * centre[0]], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
            copy = cv2.warpAffine(src, m, size, flags=cv2.INTER_NEAREST, borderValue=0).astype(bool) & fov
            kept = int(copy.sum())
            if kept > best_kept:
                best, best_kept = copy, kept
            if kept >= KEEP * total:
                break
        out.append(best)
    return out


def chance_metrics(mask: np.ndarray, fov: np.ndarray, union: np.ndarray, instances: dict[str, Instances],
                   rng: np.random.Generator, n: int = MOVES) -> dict[str, tuple[float, float]]:
    """The clumped baseline of one k-sigma mask: its moved copies' mean precision
    (``chance_precision``) and mean instances touched per type (``chance_hit_<type>``,
    as (mean hits, instances) so that it pools over images like ``hit_<type>``)."""
    if not mask.any():
        return {}
    copies = moved(mask, fov, rng, n)
    out: dict[str, tuple[float, float]] = {}
    precisions = [float((c & union).sum()) / int(c.sum()) for c in copies if c.any()]
    if precisions:
        out["chance_precision"] = (float(np.mean(precisions)), 1.0)
    for t, inst in instances.items():
        if inst.count:
            hits = np.mean([instances_hit(c, inst.labels, inst.count) for c in copies])
            out[f"chance_hit_{t}"] = (float(hits), float(inst.count))
    return out


def detection(values: np.ndarray, instances: dict[str, Instances]) -> dict[str, tuple[float, float]]:
    """Lesions with a positive sum of the map over their pixels: per type (``det_<type>``)
    and per size class over all types (``det_size_<class>``), as (detected, lesions)."""
    out: dict[str, tuple[float, float]] = {}
    names = [name for _, _, name in SIZE_BINS]
    detected, total = np.zeros(len(names)), np.zeros(len(names))
    flat = values.ravel().astype(np.float64)
    for t, inst in instances.items():
        if not inst.count:
            continue
        found = np.bincount(inst.labels.ravel(), weights=flat, minlength=inst.count + 1)[1:] > 0
        out[f"det_{t}"] = (float(found.sum()), float(inst.count))
        which = np.array([names.index(b) for b in inst.bins])
        detected += np.bincount(which, weights=found, minlength=len(names))
        total += np.bincount(which, minlength=len(names))
    by_size = {b: (float(d), float(n)) for b, d, n in zip(names, detected, total, strict=True)}
    out.update({f"det_size_{b}": (d, n) for b, (d, n) in by_size.items() if n})
    return out


def positive_share(values: np.ndarray, union: np.ndarray, fov: np.ndarray) -> dict[str, tuple[float, float]]:
    """``pos_share``: the share of the map's positive mass in the FOV that lies on lesions;
    ``enrichment``: that share over the lesions' share of the FOV (pooled as a ratio of
    sums over images); ``lesion_share`` the latter alone. {} without positive mass."""
    pos = np.clip(values[fov].astype(np.float64), 0.0, None)
    mass = pos.sum()
    if mass <= 0 or not union.any():
        return {}
    on = float(pos[union[fov]].sum() / mass)
    area = float(union[fov].mean())
    return {"pos_share": (on, 1.0), "enrichment": (on, area), "lesion_share": (area, 1.0)}


def lesion_metrics(values: np.ndarray, fov: np.ndarray, union: np.ndarray, instances: dict[str, Instances], k: float,
                   rng: np.random.Generator | None) -> dict[str, tuple[float, float]]:
    """Every lesion-level measure of one map; the clumped chance only with ``rng``."""
    out = detection(values, instances) | positive_share(values, union, fov)
    if rng is not None:
        out |= chance_metrics(threshold_mask(values, fov, k), fov, union, instances, rng)
    return out


__all__ = [
    "KEEP", "MOVES", "SIZE_BINS", "Instances", "chance_metrics", "detection", "lesion_metrics", "moved",
    "positive_share", "size_bin",
]
