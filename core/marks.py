"""The clinician's own marks on the model's input, and what the score owes to them.

A mark is a box, a lasso or a point drawn on the 640x640 input and labelled with a
lesion type. Because the grade's total map adds up exactly to its score, the map's sum
inside a mark is the mark's exact share of the score, in score units: "how much of this
grade comes from what I marked", and, from the blocks outside every mark, "where the
model relied on what I did not mark".

One geometry for the page and the exports: coordinates are input pixels, x to the
right and y downwards; pixel (x, y) covers [x, x+1) x [y, y+1) and lies inside a shape
when its centre (x + 0.5, y + 0.5) does. Edges are half-open ([min, max) on both axes)
so that a box and the lasso of the same rectangle give the same pixels, and two marks
that share an edge do not share pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import regions
from .model import INPUT_SIZE

if TYPE_CHECKING:  # the annotation only
    from .explanation import Explanation

LESION_TYPES: tuple[str, ...] = (
    "microaneurysm",
    "haemorrhage",
    "hard exudate",
    "cotton-wool spot",
    "neovascularisation",
    "IRMA / venous beading",
    "other",
)
KINDS: tuple[str, ...] = ("box", "lasso", "point")
# A microaneurysm is 1-2 input pixels: a point mark covers the disc of this radius.
POINT_RADIUS = 3.0


@dataclass(frozen=True)
class Mark:
    """One shape drawn on the input with the lesion it shows.

    ``points``: a box's two opposite corners (any order), a lasso's polygon vertices
    (at least 3, filled by the even-odd rule), or a point's one position. ``radius``
    is used by points only. Coordinates may lie outside the image: masks are clipped.
    """

    kind: str
    lesion: str
    points: tuple[tuple[float, float], ...]
    radius: float = POINT_RADIUS

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"a mark's kind must be one of {KINDS}, not {self.kind!r}")
        if self.lesion not in LESION_TYPES:
            raise ValueError(f"unknown lesion type {self.lesion!r}: choose one of {', '.join(LESION_TYPES)}")
        pts = _points(self.points)
        need = {"box": "exactly 2", "lasso": "at least 3", "point": "exactly 1"}[self.kind]
        if (self.kind == "box" and len(pts) != 2) or (self.kind == "lasso" and len(pts) < 3) or (
            self.kind == "point" and len(pts) != 1
        ):
            raise ValueError(f"a {self.kind} mark needs {need} points, got {len(pts)}")
        if self.kind == "box" and (pts[0][0] == pts[1][0] or pts[0][1] == pts[1][1]):
            raise ValueError(f"a box needs two corners that differ in x and in y, got {pts}")
        if self.kind == "lasso" and _collinear(pts):
            raise ValueError("a lasso must enclose an area (its points are all on one line)")
        try:
            radius = float(self.radius)
        except (TypeError, ValueError):
            raise ValueError(f"a mark's radius must be a number, not {self.radius!r}") from None
        if not math.isfinite(radius) or radius < 0:
            raise ValueError(f"a mark's radius must be finite and >= 0, not {self.radius!r}")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "radius", radius)

    def mask(self, size: int = INPUT_SIZE) -> np.ndarray:
        """(size, size) bool: the pixels whose centres lie in the shape, clipped to the image."""
        if self.kind == "box":
            return _box_mask(self.points, size)
        if self.kind == "lasso":
            return _polygon_mask(self.points, size)
        return _disc_mask(self.points[0], self.radius, size)

    def bounds(self, size: int = INPUT_SIZE) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), right/bottom exclusive: the smallest box holding the
        mask's pixels; (0, 0, 0, 0) when the mark lies wholly outside the image."""
        m = self.mask(size)
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if rows.size == 0:
            return (0, 0, 0, 0)
        return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (lists and floats); ``Mark.from_dict`` reads it back."""
        return {
            "kind": self.kind,
            "lesion": self.lesion,
            "points": [[float(x), float(y)] for x, y in self.points],
            "radius": float(self.radius),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mark:
        """The inverse of ``as_dict``; ``radius`` may be missing (the default)."""
        try:
            return cls(d["kind"], d["lesion"], tuple(tuple(p) for p in d["points"]), d.get("radius", POINT_RADIUS))
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a mark: {d!r} ({e})") from None

    def label(self, i: int) -> str:
        """Short text for lists and legends, e.g. ``"#1 haemorrhage (box)"``; ``i`` is shown as given."""
        return f"#{i} {self.lesion} ({self.kind})"


def _points(points: Any) -> tuple[tuple[float, float], ...]:
    """``points`` as a tuple of finite (x, y) float pairs, or a ValueError that says why."""
    try:
        pairs = [tuple(p) for p in points]
        if any(len(p) != 2 for p in pairs):
            raise ValueError
        pts = tuple((float(x), float(y)) for x, y in pairs)
    except (TypeError, ValueError):
        raise ValueError(f"a mark's points must be (x, y) pairs of numbers, not {points!r}") from None
    if not all(math.isfinite(v) for p in pts for v in p):
        raise ValueError(f"a mark's coordinates must be finite, got {pts}")
    return pts


def _collinear(pts: tuple[tuple[float, float], ...]) -> bool:
    """All points on one line (no area at all). Not the signed area: a figure-eight lasso has
    signed area 0 yet encloses two loops, which the even-odd fill keeps."""
    d = np.asarray(pts, np.float64) - np.asarray(pts[0], np.float64)
    return bool(np.linalg.matrix_rank(d, tol=1e-9) < 2)


def _first_index(v: float, size: int) -> int:
    """The first pixel index whose centre is >= v (pixel i's centre is i + 0.5), clipped to [0, size]."""
    return min(max(math.ceil(v - 0.5), 0), size)


def _box_mask(pts: tuple[tuple[float, float], ...], size: int) -> np.ndarray:
    (x0, y0), (x1, y1) = pts
    left, right = _first_index(min(x0, x1), size), _first_index(max(x0, x1), size)
    top, bottom = _first_index(min(y0, y1), size), _first_index(max(y0, y1), size)
    m = np.zeros((size, size), bool)
    m[top:bottom, left:right] = True
    return m


def _polygon_mask(pts: tuple[tuple[float, float], ...], size: int) -> np.ndarray:
    """Even-odd fill by pixel centres, exact: for every row, each edge the row's centre
    line crosses toggles every pixel left of the crossing (a crossing counts when the
    centre is strictly left of it), so a pixel is inside when it is left of an odd
    number of crossings. Costs rows x edges + rows x columns, not rows x columns x edges."""
    xs = np.array([p[0] for p in pts], np.float64)
    ys = np.array([p[1] for p in pts], np.float64)
    xj, yj = np.roll(xs, -1), np.roll(ys, -1)
    cy = np.arange(size, dtype=np.float64)[:, None] + 0.5  # (size, 1) row centres
    crosses = (ys[None, :] > cy) != (yj[None, :] > cy)  # (size, edges); horizontal edges never cross
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = xs + (cy - ys) * (xj - xs) / (yj - ys)
    # Columns c with c + 0.5 < x_at, i.e. c < ceil(x_at - 0.5): [0, stop).
    stop = np.clip(np.ceil(np.where(crosses, x_at, 0.0) - 0.5), 0, size).astype(np.intp)
    diff = np.zeros((size, size + 1), np.int32)
    rows = np.broadcast_to(np.arange(size)[:, None], crosses.shape)[crosses]
    np.add.at(diff, (rows, np.zeros_like(rows)), 1)
    np.add.at(diff, (rows, stop[crosses]), -1)
    return (np.cumsum(diff[:, :size], axis=1) % 2).astype(bool)


def _disc_mask(p: tuple[float, float], radius: float, size: int) -> np.ndarray:
    """The pixels whose centres are within ``radius`` of ``p``, and always the pixel that holds ``p``."""
    px, py = p
    c = np.arange(size, dtype=np.float64) + 0.5
    m = (c[None, :] - px) ** 2 + (c[:, None] - py) ** 2 <= radius * radius
    x, y = math.floor(px), math.floor(py)
    if 0 <= x < size and 0 <= y < size:
        m[y, x] = True
    return m


def union_mask(marks: list[Mark] | tuple[Mark, ...], size: int = INPUT_SIZE) -> np.ndarray:
    """(size, size) bool: the pixels inside any mark (each pixel once, however many overlap)."""
    m = np.zeros((size, size), bool)
    for mark in marks:
        m |= mark.mask(size)
    return m


@dataclass(frozen=True)
class MarkStats:
    """What one region (a mark or the union of marks) adds to one grade's score.

    ``contribution`` is the total map's sum inside, its exact share of the score;
    ``image_evidence`` the input-dependent part of it and ``constants`` the rest (the
    layers' constants and the bias that the total map spreads over receptive fields and
    the field of view). ``score_share`` = contribution / score: negative when the region
    speaks against the grade, above 1 when other places speak against it.
    """

    contribution: float
    image_evidence: float
    constants: float
    pixels: int  # pixels in the region
    marked_pixels: int  # k-sigma marked pixels in the region
    marked_share: float  # share of all k-sigma marked pixels that lie in the region (0 when none are marked)
    score_share: float  # contribution / score; 0.0 when |score| < 1e-12

    def as_dict(self) -> dict[str, Any]:
        return {
            "contribution": self.contribution,
            "image_evidence": self.image_evidence,
            "constants": self.constants,
            "pixels": self.pixels,
            "marked_pixels": self.marked_pixels,
            "marked_share": self.marked_share,
            "score_share": self.score_share,
        }


def measure(exp: Explanation, grade: int, mask: np.ndarray, marked: np.ndarray) -> MarkStats:
    """The stats of region ``mask`` for ``grade``; ``marked`` is the k-sigma mask the page
    shows (both bool, the maps' shape), so "marked" here means the model's marks."""
    total = exp.total(grade)
    mask = _bool_map(mask, total.shape, "mask")
    marked = _bool_map(marked, total.shape, "marked")
    contribution = float(total[mask].sum(dtype=np.float64))
    image = float(exp.input_map[grade][mask].sum(dtype=np.float64))
    inside = int(np.count_nonzero(mask & marked))
    all_marked = int(np.count_nonzero(marked))
    score = float(exp.scores[grade])
    return MarkStats(
        contribution=contribution,
        image_evidence=image,
        constants=contribution - image,
        pixels=int(np.count_nonzero(mask)),
        marked_pixels=inside,
        marked_share=inside / all_marked if all_marked else 0.0,
        score_share=contribution / score if abs(score) >= 1e-12 else 0.0,
    )


def measure_marks(exp: Explanation, grade: int, marks: list[Mark] | tuple[Mark, ...],
                  marked: np.ndarray) -> tuple[list[MarkStats], MarkStats]:
    """Stats per mark and for their union. Overlapping marks each count a shared pixel,
    so the per-mark contributions may add up to more than the union's."""
    size = exp.input_map.shape[-1]
    masks = [mark.mask(size) for mark in marks]
    union = np.zeros((size, size), bool)
    for m in masks:
        union |= m
    return [measure(exp, grade, m, marked) for m in masks], measure(exp, grade, union, marked)


def unmarked_regions(exp: Explanation, grade: int, exclude: np.ndarray, n: int = 5,
                     size: int = regions.BLOCK) -> list[regions.Region]:
    """Where the model relied on what you did not mark: the ``n`` blocks that add most to
    ``grade``'s score counting only their pixels outside ``exclude`` (a block half covered
    by a mark counts its other half), strongest first; blocks whose unmarked contribution
    is <= 0 are left out. ``contribution`` and ``image_evidence`` are the unmarked part's,
    ``fov_share`` the whole block's. With nothing excluded it is ``strongest_regions``."""
    return regions.strongest_regions(exp, grade, n, size, exclude=exclude)


def _bool_map(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != shape:
        raise ValueError(f"{name} must be a bool array of shape {shape}, not {mask.dtype} {mask.shape}")
    return mask


__all__ = [
    "KINDS",
    "LESION_TYPES",
    "POINT_RADIUS",
    "Mark",
    "MarkStats",
    "measure",
    "measure_marks",
    "union_mask",
    "unmarked_regions",
]
