"""Synthetic colour fundus photographs with exact lesion masks and clinical grades.

Why this exists: public DR data sets cannot be bundled, and they give a grade per
image but (almost) never a mask per lesion, so one cannot measure whether an
attribution map points at lesions (PAPER.md section 6: "lack of DR images with
manually marked lesions"). Here every lesion is painted by us, so its mask is known
to the pixel, and the grade is *derived* from what was painted by the international
clinical scale (PAPER.md section 7) instead of being a label. The same images train
the bundled demo model.

How an image is made (all randomness from ``numpy.random.Generator``s seeded from
the seed; OpenCV drawing is deterministic):

1. the eye (stream 0): field of view, choroidal background, macula, optic disc and a
   branching vessel tree grown by a random walk from the disc;
2. the lesions (stream 2, re-drawn with a fresh sub-stream until the grade is the
   requested one): each instance is rendered into an alpha patch, placed where it
   neither leaves the field of view nor touches another lesion *type*, and
   composited; its mask is ``alpha >= MASK_ALPHA`` inside the field of view;
3. the camera (stream 1): vignetting, uneven illumination, colour balance, gamma,
   blur and sensor noise, applied after the lesions so that lesions are imaged like
   the rest of the eye.

Because the streams are independent, ``generate(seed, lesions=False)`` renders the
very same eye and camera without lesions: the counterfactual that the tests use to
show that lesions are visible, and that attribution studies can use as a baseline.
"""

from __future__ import annotations

import math
import multiprocessing
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

LESION_TYPES = (
    "microaneurysm",
    "haemorrhage",
    "hard_exudate",
    "cotton_wool_spot",
    "venous_beading",
    "irma",
    "neovascularisation",
    "preretinal_haemorrhage",
)
# Quadrants are taken around the fovea: a single macula-centred 45-degree field has
# little retina nasal to the disc, so disc-centred quadrants would be very unequal.
QUADRANTS = ("superotemporal", "superonasal", "inferonasal", "inferotemporal")
SIZE = 640
# A pixel belongs to a lesion's mask where the lesion contributes at least this share
# of its colour (its alpha); fainter anti-aliasing fringes are not counted.
MASK_ALPHA = 0.25

_TYPE_ID = {t: i + 1 for i, t in enumerate(LESION_TYPES)}
_MAX_ATTEMPTS = 25
_TAU = 2.0 * math.pi


@dataclass(frozen=True, eq=False)
class SyntheticFundus:
    """One synthetic photograph, its lesion masks and the grade they imply.

    An instance is one microaneurysm, haemorrhage, hard-exudate deposit, cotton-wool
    spot, beaded vein stretch, IRMA complex, neovascular tuft or pre-retinal
    haemorrhage. ``per_quadrant[t]`` counts the instances of type ``t`` whose centre
    lies in each of ``QUADRANTS`` (around the fovea); the severe-NPDR rules need it.
    ``generate(f.seed, f.grade)`` reproduces ``f`` exactly.
    """

    image: np.ndarray  # (S, S, 3) uint8 RGB
    fov: np.ndarray  # (S, S) bool
    masks: dict[str, np.ndarray]  # every lesion type -> (S, S) bool
    counts: dict[str, int]  # every lesion type -> number of instances drawn
    per_quadrant: dict[str, tuple[int, int, int, int]]
    grade: int
    seed: int
    eye: str  # "left" or "right"
    disc_centre: tuple[float, float]  # (x, y) px
    fovea_centre: tuple[float, float]  # (x, y) px
    disc_diameter: float  # px

    @property
    def lesion_union(self) -> np.ndarray:
        """Pixels that belong to any lesion."""
        out = np.zeros(self.fov.shape, bool)
        for m in self.masks.values():
            out |= m
        return out

    @property
    def haemorrhages_per_quadrant(self) -> tuple[int, int, int, int]:
        return self.per_quadrant["haemorrhage"]

    @property
    def venous_beading_quadrants(self) -> int:
        """Number of quadrants with at least one beaded vein segment."""
        return sum(1 for n in self.per_quadrant["venous_beading"] if n > 0)


def grade_from_lesions(
    counts: Mapping[str, int],
    haemorrhages_per_quadrant: Sequence[int] = (0, 0, 0, 0),
    venous_beading_quadrants: int = 0,
) -> int:
    """The international clinical DR grade (0..4) implied by the lesions present.

    ``counts`` maps lesion types (``LESION_TYPES``; missing ones count 0) to their
    number of instances. The severe-NPDR rules need where the lesions are: the
    intraretinal haemorrhages in each of the 4 quadrants and the number of quadrants
    with venous beading; IRMA needs only a count (IRMA in one quadrant suffices).
    Rules, first that holds: 4 if any neovascularisation or pre-retinal/vitreous
    haemorrhage; 3 if more than 20 haemorrhages in each of the 4 quadrants, or venous
    beading in 2 or more quadrants, or any IRMA; 2 if any haemorrhage, hard exudate,
    cotton-wool spot or venous beading (more than microaneurysms only); 1 if any
    microaneurysm; else 0.
    """
    unknown = set(counts) - set(LESION_TYPES)
    if unknown:
        raise ValueError(f"unknown lesion types: {sorted(unknown)}")
    n = {t: int(counts.get(t, 0)) for t in LESION_TYPES}
    if any(v < 0 for v in n.values()):
        raise ValueError("lesion counts must be >= 0")
    hpq = tuple(int(v) for v in haemorrhages_per_quadrant)
    if len(hpq) != 4 or min(hpq) < 0:
        raise ValueError("haemorrhages_per_quadrant must be 4 counts >= 0")
    if sum(hpq) > n["haemorrhage"]:
        raise ValueError("more haemorrhages in the quadrants than counted")
    vbq = int(venous_beading_quadrants)
    if not 0 <= vbq <= min(4, n["venous_beading"]):
        raise ValueError("venous_beading_quadrants must be 0..min(4, venous beading count)")

    if n["neovascularisation"] > 0 or n["preretinal_haemorrhage"] > 0:
        return 4
    if min(hpq) > 20 or vbq >= 2 or n["irma"] > 0:
        return 3
    if n["haemorrhage"] or n["hard_exudate"] or n["cotton_wool_spot"] or n["venous_beading"]:
        return 2
    if n["microaneurysm"] > 0:
        return 1
    return 0


# --------------------------------------------------------------------------- the eye


@dataclass
class _Vessel:
    x: np.ndarray  # centreline, px
    y: np.ndarray
    w: np.ndarray  # width at each point, px
    vein: bool
    gen: int


@dataclass
class _Eye:
    size: int
    scale: float  # size / 640: every length below is given for 640 px and scaled
    cx: float
    cy: float
    radius: float
    side: int  # +1: the disc is right of the fovea (a right eye), -1: left eye
    disc: tuple[float, float]
    fovea: tuple[float, float]
    dd: float  # disc diameter, px
    eu: tuple[float, float]  # unit vector disc -> fovea (temporal)
    ev: tuple[float, float]  # its perpendicular pointing inferiorly
    dist: np.ndarray  # distance of each pixel from the FOV centre
    fov_weight: np.ndarray  # anti-aliased FOV, float32 in [0, 1]

    def quadrant(self, x: float, y: float) -> int:
        """Index into ``QUADRANTS`` of a point (by its position about the fovea)."""
        superior = y < self.fovea[1]
        temporal = (x - self.fovea[0]) * self.side < 0
        if superior:
            return 0 if temporal else 1
        return 3 if temporal else 2

    def inside(self, x: float, y: float, margin: float) -> bool:
        return (x - self.cx) ** 2 + (y - self.cy) ** 2 < (self.radius - margin) ** 2

    def frame(self, x: float, y: float) -> tuple[float, float]:
        """(u, v) of a point: u along disc -> fovea, v inferior, origin at the disc."""
        dx, dy = x - self.disc[0], y - self.disc[1]
        return dx * self.eu[0] + dy * self.eu[1], dx * self.ev[0] + dy * self.ev[1]

    def from_frame(self, du: float, dv: float) -> tuple[float, float]:
        """Image vector of a frame vector."""
        return du * self.eu[0] + dv * self.ev[0], du * self.eu[1] + dv * self.ev[1]

    def fibre_angle(self, x: float, y: float) -> float:
        """Direction of the nerve fibres (arcuate about the fovea, radial nasally)."""
        u, v = self.frame(x, y)
        if u > 0.2 * self.dd:
            dx, dy = self.from_frame(2.0 * u, v)
        else:
            dx, dy = x - self.disc[0], y - self.disc[1]
        return math.atan2(dy, dx)


def _wrap(a: float) -> float:
    return (a + math.pi) % _TAU - math.pi


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise of unit variance with about ``cells`` blobs across the image."""
    g = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    step = size / cells
    big = int(round(step * (cells + 3)))
    up = cv2.resize(g, (big, big), interpolation=cv2.INTER_CUBIC)
    o = int(round(1.5 * step))
    out = np.ascontiguousarray(up[o : o + size, o : o + size])
    return out / max(float(out[::7, ::7].std()), 1e-6)


def _make_eye(rng: np.random.Generator, size: int) -> _Eye:
    s = size / SIZE
    radius = rng.uniform(300, 320) * s
    slack = size / 2 - radius
    cx = size / 2 + rng.uniform(-0.6, 0.6) * slack
    cy = size / 2 + rng.uniform(-0.6, 0.6) * slack
    side = 1 if rng.random() < 0.5 else -1
    dd = rng.uniform(64, 82) * s
    tilt = math.radians(rng.uniform(-8, 8))
    eu = (-side * math.cos(tilt), math.sin(tilt))  # disc -> fovea
    ev = (-eu[1], eu[0])
    if ev[1] < 0:
        ev = (-ev[0], -ev[1])
    # fovea near the centre, slightly temporal; disc ~2.5 DD nasal, a little higher
    fx = cx - side * rng.uniform(0.0, 0.08) * radius
    fy = cy + rng.uniform(-0.04, 0.06) * radius
    sep = rng.uniform(2.35, 2.7) * dd
    dx = fx - sep * eu[0] - 0.25 * dd * ev[0]
    dy = fy - sep * eu[1] - 0.25 * dd * ev[1]
    limit = radius - 0.75 * dd  # keep the whole disc well inside the field
    off = math.hypot(dx - cx, dy - cy)
    if off > limit:  # slide the pair temporally until the disc fits
        shift = off - limit + 1.0
        dx, fx = dx + shift * eu[0], fx + shift * eu[0]
        dy, fy = dy + shift * eu[1], fy + shift * eu[1]
    yy, xx = np.ogrid[:size, :size]
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2, dtype=np.float32)
    fov_weight = np.clip(radius + 0.5 - dist, 0.0, 1.0).astype(np.float32)
    return _Eye(size, s, cx, cy, radius, side, (dx, dy), (fx, fy), dd, eu, ev, dist, fov_weight)


def _background(eye: _Eye, rng: np.random.Generator) -> np.ndarray:
    """Red-orange fundus with choroidal texture, macula and optic disc (linear RGB)."""
    size, s = eye.size, eye.scale
    base = np.array(
        [rng.uniform(0.82, 1.0), rng.uniform(0.27, 0.42), rng.uniform(0.14, 0.26)], np.float32
    )
    low, mid, fine = _noise(rng, size, 4), _noise(rng, size, 22), _noise(rng, size, 110)
    img = np.empty((size, size, 3), np.float32)
    amp_low = rng.uniform(0.02, 0.06)
    amp_mid = rng.uniform(0.01, 0.03)
    for c, k in enumerate((0.6, 1.0, 1.2)):
        img[..., c] = base[c] * (1.0 + k * (amp_low * low + amp_mid * mid + 0.012 * fine))
    # tigroid choroid: a ridged network, stronger towards the periphery
    ridge = 1.0 - np.abs(_noise(rng, size, 16))
    ridge = np.clip(ridge, 0.0, 1.0) ** 3
    tig = rng.uniform(0.0, 0.12) * ridge * np.clip(eye.dist / eye.radius, 0.3, 1.0)
    img[..., 0] *= 1.0 - 0.5 * tig
    img[..., 1] *= 1.0 - tig
    img[..., 2] *= 1.0 - tig

    # macula: broad darker, browner area with a small dark fovea
    yy, xx = np.ogrid[:size, :size]
    fx, fy = eye.fovea
    d2 = ((xx - fx) ** 2 + (yy - fy) ** 2).astype(np.float32)
    sm = rng.uniform(0.55, 0.85) * eye.dd
    mac = rng.uniform(0.15, 0.32) * np.exp(-d2 / (2 * sm * sm))
    fov_spot = rng.uniform(0.08, 0.2) * np.exp(-d2 / (2 * (0.12 * eye.dd) ** 2))
    for c, k in enumerate((0.7, 1.0, 0.9)):
        img[..., c] *= 1.0 - k * (mac + fov_spot)
    if rng.random() < 0.4:  # foveal light reflex
        refl = rng.uniform(0.1, 0.3) * np.exp(-d2 / (2 * (1.8 * s) ** 2))
        img += refl[..., None]

    # optic disc: a soft, slightly tall ellipse, paler cup shifted temporally
    x0, y0 = eye.disc
    r = eye.dd / 2
    half = int(r * 2.2) + 4
    ix, iy = int(round(x0)), int(round(y0))
    sl = (slice(iy - half, iy + half), slice(ix - half, ix + half))
    py, px = np.mgrid[iy - half : iy + half, ix - half : ix + half].astype(np.float32)
    px -= x0
    py -= y0
    elong = rng.uniform(1.0, 1.12)
    rho = np.sqrt((px * math.sqrt(elong)) ** 2 + (py / math.sqrt(elong)) ** 2)
    disc_a = np.clip((r - rho) / (0.12 * r) + 0.5, 0.0, 1.0)
    disc_a = cv2.GaussianBlur(disc_a, (0, 0), 0.06 * r + 0.5)
    rim = np.array([rng.uniform(0.95, 1.05), rng.uniform(0.58, 0.74), rng.uniform(0.36, 0.5)])
    patch = img[sl]
    # the temporal half of the rim is paler
    tshade = np.clip((px * eye.eu[0] + py * eye.eu[1]) / r, -1.0, 1.0)
    for c in range(3):
        col = rim[c] * (1.0 + 0.08 * tshade * (c > 0))
        patch[..., c] = patch[..., c] * (1 - disc_a) + col * disc_a
    cdr = rng.uniform(0.25, 0.55)
    cu = px - rng.uniform(0.05, 0.2) * r * eye.eu[0]
    cv_ = py - rng.uniform(0.05, 0.2) * r * eye.eu[1]
    crho = np.sqrt(cu * cu + cv_ * cv_) / (cdr * r)
    cup_a = np.clip(1.0 - crho, 0.0, 1.0) ** 0.6 * rng.uniform(0.6, 0.9)
    cup = np.array([1.05, rng.uniform(0.88, 0.97), rng.uniform(0.7, 0.82)])
    for c in range(3):
        patch[..., c] = patch[..., c] * (1 - cup_a) + cup[c] * cup_a
    if rng.random() < 0.3:  # peripapillary crescent on the temporal side
        cres = np.exp(-((rho - 1.12 * r) ** 2) / (2 * (0.09 * r) ** 2)) * (tshade > 0.2)
        cres = cres * rng.uniform(0.2, 0.45)
        tone = rng.uniform(0.5, 1.25)
        patch *= 1.0 - cres[..., None] * (1 - np.array([0.9, 0.75, 0.7]) * tone).astype(np.float32)
    img[sl] = patch
    return img


def _grow_vessels(eye: _Eye, rng: np.random.Generator) -> list[_Vessel]:
    """A branching tree from the disc: arcades around the macula, radial nasal trunks.

    Each vessel walks in 3 px steps with random-walk curvature (tortuosity), is
    steered by a guide (temporal arcades follow a parabola about the disc-fovea axis,
    which brings them round the macula), is pushed away from the foveal avascular zone,
    tapers, and branches by Murray's law (w^3 = w1^3 + w2^3) into thinner children.
    """
    s, dd = eye.scale, eye.dd
    fx, fy = eye.fovea
    step = 3.0 * s
    r_out2 = (eye.radius * 0.99) ** 2
    vein0 = rng.uniform(0.075, 0.095) * dd
    art_ratio = rng.uniform(0.65, 0.78)
    w_min = 0.6 * s

    def image_angle(alpha: float) -> float:
        dx, dy = eye.from_frame(math.cos(alpha), math.sin(alpha))
        return math.atan2(dy, dx)

    todo: list[tuple] = []
    for sgn in (-1, 1):  # superior, inferior
        for vein in (True, False):
            a_par = rng.uniform(0.32, 0.55) * dd
            alpha = math.radians(sgn * rng.uniform(55, 80))
            w = vein0 * (1.0 if vein else art_ratio) * rng.uniform(0.92, 1.08)
            x0, y0 = eye.disc
            ox, oy = eye.from_frame(rng.uniform(-0.12, 0.12) * dd, sgn * rng.uniform(0, 0.12) * dd)
            todo.append((x0 + ox, y0 + oy, image_angle(alpha), w, vein, 0, ("arcade", sgn, a_par), 1e9))
            alpha = math.radians(sgn * rng.uniform(105, 150))
            w = vein0 * (1.0 if vein else art_ratio) * rng.uniform(0.6, 0.8)
            todo.append((x0 - ox, y0 + oy, image_angle(alpha), w, vein, 0, ("radial",), 1e9))
            if rng.random() < 0.7:  # small nasal or macular branch
                nasal = rng.random() < 0.5
                alpha = math.radians(sgn * (rng.uniform(160, 180) if nasal else rng.uniform(5, 30)))
                w = vein0 * (1.0 if vein else art_ratio) * rng.uniform(0.3, 0.45)
                guide = ("radial",) if nasal else ("fovea", image_angle(alpha))
                todo.append((x0, y0, image_angle(alpha), w, vein, 1, guide, 1e9))

    vessels: list[_Vessel] = []
    while todo:
        x, y, th, w, vein, gen, guide, max_len = todo.pop()
        n = int(min(max_len, 2.2 * eye.radius) / step)
        sigma = (0.018 if gen == 0 else 0.032) * (0.6 + 0.8 * rng.random())
        noise = rng.standard_normal(n) * sigma
        taper = math.exp(-step / (rng.uniform(500, 900) * s))
        spacing = (35 * s, 90 * s) if gen == 0 else (22 * s, 65 * s)
        next_branch = rng.uniform(*spacing) + (0.5 * dd if gen == 0 else 0.0)
        xs, ys, ws = [x], [y], [w]
        k, travelled = 0.0, 0.0
        kind = guide[0]
        heading = th
        for i in range(n):
            k = 0.75 * k + noise[i]
            th += k
            if kind == "arcade":
                _, sgn, a_par = guide
                u, v = eye.frame(x, y)
                uu = max(u, 0.04 * dd)
                tu, tv = 1.0, sgn * math.sqrt(a_par / uu)
                tn = math.hypot(tu, tv)
                err = (sgn * 2.0 * math.sqrt(a_par * uu) - v) / dd
                du, dv = eye.from_frame(tu / tn, tv / tn + 0.8 * err)
                th += 0.1 * _wrap(math.atan2(dv, du) - th)
            elif kind == "radial":
                th += 0.02 * _wrap(math.atan2(y - eye.disc[1], x - eye.disc[0]) - th)
                th += 0.02 * _wrap(heading - th)
            elif kind == "fovea":  # towards where the fovea was seen from the branch point
                th += 0.04 * _wrap(guide[1] - th)
            dfx, dfy = x - fx, y - fy
            df = math.hypot(dfx, dfy)
            if df < (0.4 if gen == 0 else 0.5) * dd:
                break
            if df < 1.3 * dd and gen == 0:  # the arcades swerve round the macula
                th += 0.25 * (1.0 - df / (1.3 * dd)) * _wrap(math.atan2(dfy, dfx) - th)
            x += step * math.cos(th)
            y += step * math.sin(th)
            w *= taper
            xs.append(x)
            ys.append(y)
            ws.append(w)
            if (x - eye.cx) ** 2 + (y - eye.cy) ** 2 > r_out2 or w < w_min:
                break
            travelled += step
            if travelled >= next_branch and gen < 4 and w > 1.0 * s:
                ratio = rng.uniform(0.35, 0.8)
                cw = w * ratio
                w = max((w**3 - cw**3) ** (1 / 3), 0.75 * w)
                turn = 1 if rng.random() < 0.5 else -1
                cth = th + turn * rng.uniform(0.45, 1.1)
                th -= turn * 0.15 * ratio
                to_f = math.atan2(fy - y, fx - x)
                heads_in = kind in ("arcade", "fovea") and abs(_wrap(cth - to_f)) < 1.0
                cguide = ("fovea", to_f) if heads_in else ("radial",)
                clen = rng.uniform(35, 110) * cw + 20 * s
                todo.append((x, y, cth, cw, vein, gen + 1, cguide, clen))
                next_branch = travelled + rng.uniform(*spacing)
        if len(xs) >= 2:
            vessels.append(
                _Vessel(np.array(xs, np.float32), np.array(ys, np.float32),
                        np.array(ws, np.float32), vein, gen)
            )
    return vessels


def _polyline_runs(canvas: np.ndarray, x: np.ndarray, y: np.ndarray, thick: np.ndarray,
                   value: np.ndarray, up: int) -> None:
    """Draw a polyline whose segments have their own thickness and value.

    Consecutive segments that share both are drawn as one anti-aliased polyline.
    Coordinates are in output pixels; ``canvas`` is ``up`` times larger.
    """
    pts = np.stack([np.rint(x * up * 4), np.rint(y * up * 4)], 1).astype(np.int32)  # shift=2
    key = thick.astype(np.int64) * 256 + value
    cuts = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(key)]])
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        cv2.polylines(canvas, [pts[a : b + 1]], False, int(value[a]), int(thick[a]), cv2.LINE_AA, 2)


def _draw_vessels(eye: _Eye, vessels: list[_Vessel], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Vein and artery opacity maps (float32, output size), drawn at 2x then reduced.

    Opacity follows Beer-Lambert on the width (thin vessels are paler); arteries and
    wide veins get a lighter central reflex. Thin vessels are drawn first so that a
    parent drawn later covers the start of its children.
    """
    up = 2
    big = eye.size * up
    canv = {True: np.zeros((big, big), np.uint8), False: np.zeros((big, big), np.uint8)}
    w0 = rng.uniform(1.2, 1.8) * eye.scale
    order = sorted(vessels, key=lambda v: float(v.w[0]))
    for v in order:
        wseg = 0.5 * (v.w[:-1] + v.w[1:])
        thick = np.maximum(1, np.rint(wseg * up)).astype(np.int32)
        value = np.rint(255 * (1.0 - np.exp(-wseg / w0)) / 4).astype(np.int32) * 4
        _polyline_runs(canv[v.vein], v.x, v.y, thick, value, up)
    reflex = rng.uniform(0.25, 0.45)
    for v in order:
        lim = 2.2 if not v.vein else 4.0
        keep = 0.5 * (v.w[:-1] + v.w[1:]) >= lim * eye.scale
        if not keep.any():
            continue
        idx = np.flatnonzero(keep)
        a, b = int(idx[0]), int(idx[-1]) + 1
        wseg = 0.5 * (v.w[a:b] + v.w[a + 1 : b + 1])
        thick = np.maximum(1, np.rint(wseg * up * 0.28)).astype(np.int32)
        strength = reflex * (1.0 if not v.vein else 0.5)
        value = np.full(len(wseg), int(255 * (1.0 - strength)), np.int32)
        _polyline_runs(canv[v.vein], v.x[a : b + 1], v.y[a : b + 1], thick, value, up)
    out = []
    for vein in (True, False):
        small = cv2.resize(canv[vein], (eye.size, eye.size), interpolation=cv2.INTER_AREA)
        out.append(small.astype(np.float32) * (1.0 / 255.0))
    return out[0], out[1]


# ----------------------------------------------------------------------- the lesions


def _ellipse(h: int, w: int, cx: float, cy: float, a: float, b: float,
             theta: float = 0.0, edge: float = 1.0) -> np.ndarray:
    """Anti-aliased filled ellipse (semi-axes a, b) on an h x w grid, alpha in [0, 1].

    ``edge`` is the width of the soft border in px (1: plain anti-aliasing).
    """
    yy, xx = np.ogrid[:h, :w]
    x = xx.astype(np.float32) - cx
    y = yy.astype(np.float32) - cy
    c, s = math.cos(theta), math.sin(theta)
    xr = x * c + y * s
    yr = y * c - x * s
    f = np.sqrt((xr / a) ** 2 + (yr / b) ** 2)
    g = np.sqrt((xr / (a * a)) ** 2 + (yr / (b * b)) ** 2) / (f + 1e-6)
    sd = (f - 1.0) / (g + 1e-6)  # first-order signed distance to the border, px
    return np.clip(0.5 - sd / edge, 0.0, 1.0)


def _stamp(canvas: np.ndarray, cx: float, cy: float, a: float, b: float, theta: float = 0.0,
           edge: float = 1.0, peak: float = 1.0) -> None:
    """Max-composite an ellipse into ``canvas`` (only on its bounding window)."""
    h, w = canvas.shape
    rad = max(a, b) + 2 * edge + 2
    x0, x1 = max(int(cx - rad), 0), min(int(cx + rad) + 2, w)
    y0, y1 = max(int(cy - rad), 0), min(int(cy + rad) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return
    e = _ellipse(y1 - y0, x1 - x0, cx - x0, cy - y0, a, b, theta, edge)
    np.maximum(canvas[y0:y1, x0:x1], e * peak, out=canvas[y0:y1, x0:x1])


def _lines_patch(h: int, w: int, paths: list[tuple[np.ndarray, float]], up: int = 2) -> np.ndarray:
    """Alpha of thin anti-aliased polylines ((n, 2) points, width px), drawn at ``up``x."""
    canv = np.zeros((h * up, w * up), np.uint8)
    for pts, width in paths:
        p = np.rint(pts * up * 4).astype(np.int32)
        cv2.polylines(canv, [p], False, 255, max(1, int(round(width * up))), cv2.LINE_AA, 2)
    return cv2.resize(canv, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _walk(rng: np.random.Generator, x: float, y: float, th: float, n: int, step: float,
          curl: float) -> np.ndarray:
    """A tortuous random-walk path of n steps (curvature itself random-walks)."""
    k = np.cumsum(rng.standard_normal(n) * curl) * 0.5 + rng.standard_normal(n) * curl
    ang = th + np.cumsum(k)
    pts = np.empty((n + 1, 2), np.float32)
    pts[0] = (x, y)
    pts[1:, 0] = x + np.cumsum(step * np.cos(ang))
    pts[1:, 1] = y + np.cumsum(step * np.sin(ang))
    return pts


# internal layers: (lesion type, how it is composited)
_LAYERS = (
    ("venous_beading", "beading", "mul"),
    ("irma", "irma", "mul"),
    ("neovascularisation", "nv", "mul"),
    ("microaneurysm", "ma", "mul"),
    ("haemorrhage", "blot", "mul"),
    ("haemorrhage", "flame", "mul"),
    ("cotton_wool_spot", "cws", "blend"),
    ("hard_exudate", "exudate", "blend"),
    ("preretinal_haemorrhage", "preretinal", "blend"),  # in front of the vessels: hides them
)


class _Painter:
    """Places lesion patches: inside the FOV, off the disc, never on another type."""

    def __init__(self, eye: _Eye, vessel_opacity: np.ndarray) -> None:
        self.eye = eye
        size = eye.size
        self.occ = np.zeros((size, size), np.int8)  # type id of each lesion pixel
        yy, xx = np.ogrid[:size, :size]
        dx, dy = xx - eye.disc[0], yy - eye.disc[1]
        self.disc_zone = dx * dx + dy * dy < (0.62 * eye.dd) ** 2
        self.outside = eye.dist > eye.radius - 3 * eye.scale
        vessel = (vessel_opacity > 0.3).astype(np.uint8)
        self.vessel = cv2.dilate(vessel, np.ones((3, 3), np.uint8)).astype(bool)
        self.alpha: dict[str, np.ndarray] = {}
        self.centres: dict[str, list[tuple[float, float]]] = {t: [] for t in LESION_TYPES}
        self._k3 = np.ones((3, 3), np.uint8)

    def place(self, layer: str, ltype: str, patch: np.ndarray, x: float, y: float, *,
              centres: Sequence[tuple[float, float]] | None = None, on_disc: bool = False,
              off_vessels: bool = False) -> bool:
        """Put ``patch`` (alpha) with its centre at (x, y) if it fits; True if placed.

        ``centres`` are the instance centres relative to the patch centre (one
        instance at the centre by default); they are counted per quadrant.
        """
        h, w = patch.shape
        x0, y0 = int(round(x)) - w // 2, int(round(y)) - h // 2
        size = self.eye.size
        if x0 < 0 or y0 < 0 or x0 + w > size or y0 + h > size:
            return False
        fp = patch >= MASK_ALPHA
        if not fp.any():
            return False
        grown = cv2.dilate(fp.astype(np.uint8), self._k3).astype(bool)
        sl = (slice(y0, y0 + h), slice(x0, x0 + w))
        occ = self.occ[sl]
        tid = _TYPE_ID[ltype]
        if np.any(grown & (occ != 0) & (occ != tid)) or np.any(grown & self.outside[sl]):
            return False
        if not on_disc and np.any(grown & self.disc_zone[sl]):
            return False
        if off_vessels and np.any(fp & self.vessel[sl]):
            return False
        occ[fp] = tid
        canvas = self.alpha.setdefault(layer, np.zeros((size, size), np.float32))
        np.maximum(canvas[sl], patch, out=canvas[sl])
        cx, cy = x0 + w // 2, y0 + h // 2
        for ox, oy in centres if centres is not None else [(0.0, 0.0)]:
            self.centres[ltype].append((cx + ox, cy + oy))
        return True

    def counts(self) -> tuple[dict[str, int], dict[str, tuple[int, int, int, int]]]:
        counts = {t: len(c) for t, c in self.centres.items()}
        perq: dict[str, tuple[int, int, int, int]] = {}
        for t, cs in self.centres.items():
            q = [0, 0, 0, 0]
            for x, y in cs:
                q[self.eye.quadrant(x, y)] += 1
            perq[t] = (q[0], q[1], q[2], q[3])
        return counts, perq


def _point(rng: np.random.Generator, eye: _Eye, spread: float | None, quadrant: int | None = None,
           margin: float = 8.0) -> tuple[float, float]:
    """A random point in the FOV, |N(0, spread)| px from the fovea (uniform if None).

    With ``quadrant`` the point lies in that quadrant about the fovea.
    """
    ax, ay = eye.fovea
    for _ in range(200):
        uniform = spread is None
        rho = math.sqrt(rng.uniform(0.003, 1.0)) * 1.1 * eye.radius if uniform else abs(rng.normal(0.0, spread))
        if quadrant is None:
            a = rng.uniform(0, _TAU)
            x, y = ax + rho * math.cos(a), ay + rho * math.sin(a)
        else:
            a = rng.uniform(0.05, math.pi / 2 - 0.05)
            temporal = quadrant in (0, 3)
            sx = -eye.side if temporal else eye.side
            sy = -1 if quadrant in (0, 1) else 1
            x, y = ax + sx * rho * math.cos(a), ay + sy * rho * math.sin(a)
        if eye.inside(x, y, margin * eye.scale) and (
            quadrant is None or eye.quadrant(round(x), round(y)) == quadrant
        ):
            return x, y
    return eye.fovea


def _ma_patch(rng: np.random.Generator, s: float, strength: float) -> np.ndarray:
    rad = rng.uniform(1.5, 3.0) * s  # diameter 3-6 px at 640
    n = int(2 * rad + 5) | 1
    c = n / 2 - 0.5 + rng.uniform(-0.3, 0.3)
    return _ellipse(n, n, c, c, rad, rad * rng.uniform(0.85, 1.0), rng.uniform(0, math.pi), 0.9) * strength


def _blot_patch(rng: np.random.Generator, s: float, small: bool) -> np.ndarray:
    """Dot-blot haemorrhage: a few overlapping irregular ellipses."""
    big = rng.uniform(2.5, 5.0) if small else rng.uniform(3.5, 10.0)
    big *= s
    n = int(4 * big + 8) | 1
    patch = np.zeros((n, n), np.float32)
    c = n / 2 - 0.5
    peak = rng.uniform(0.75, 1.0)
    for _ in range(int(rng.integers(1, 5))):
        a = big * rng.uniform(0.55, 1.0)
        b = a * rng.uniform(0.6, 1.0)
        ox, oy = rng.normal(0, 0.35 * big, 2)
        _stamp(patch, c + ox, c + oy, a, b, rng.uniform(0, math.pi), rng.uniform(1.0, 1.8), peak)
    return patch


def _flame_patch(rng: np.random.Generator, s: float, theta: float) -> np.ndarray:
    """Flame haemorrhage: streaky, feathered, along the nerve fibres."""
    length = rng.uniform(6.0, 17.0) * s
    width = rng.uniform(1.8, 4.0) * s
    n = int(2 * length + 10) | 1
    patch = np.zeros((n, n), np.float32)
    c = n / 2 - 0.5
    peak = rng.uniform(0.7, 0.95)
    nx, ny = -math.sin(theta), math.cos(theta)
    for _ in range(int(rng.integers(2, 5))):
        off = rng.normal(0, 0.5 * width)
        shift = rng.normal(0, 0.2 * length)
        cx = c + off * nx + shift * math.cos(theta)
        cy = c + off * ny + shift * math.sin(theta)
        _stamp(patch, cx, cy, length * rng.uniform(0.6, 1.0), width * rng.uniform(0.4, 0.7),
               theta + rng.normal(0, 0.08), 1.5, peak * rng.uniform(0.8, 1.0))
    return patch


def _cws_patch(rng: np.random.Generator, s: float) -> np.ndarray:
    """Cotton-wool spot: pale, fluffy, feathery-edged."""
    size = rng.uniform(6.0, 15.0) * s
    n = int(4 * size + 10) | 1
    patch = np.zeros((n, n), np.float32)
    c = n / 2 - 0.5
    for _ in range(int(rng.integers(2, 6))):
        a = size * rng.uniform(0.45, 0.9)
        ox, oy = rng.normal(0, 0.35 * size, 2)
        _stamp(patch, c + ox, c + oy, a, a * rng.uniform(0.5, 0.9), rng.uniform(0, math.pi),
               rng.uniform(2.5, 5.0) * s, 1.0)
    fluff = cv2.resize(rng.random((6, 6)).astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
    patch *= np.clip(0.7 + 0.45 * fluff, 0.0, 1.1)
    patch = cv2.GaussianBlur(patch, (0, 0), 1.0 * s)
    return np.clip(patch, 0.0, 1.0) * rng.uniform(0.55, 0.85)


def _exudate_patch(rng: np.random.Generator, s: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A cluster of hard exudates: a partial (circinate) ring or a clump of deposits."""
    ring = rng.random() < 0.6
    rad = rng.uniform(10, 38) * s if ring else rng.uniform(6, 20) * s
    n = int(2 * rad + 22 * s) | 1
    patch = np.zeros((n, n), np.float32)
    c = n / 2 - 0.5
    if ring:
        k = int(rng.integers(8, 32))
        start, span = rng.uniform(0, _TAU), rng.uniform(0.35, 0.95) * _TAU
        ang = start + np.sort(rng.uniform(0, span, k))
        dist = np.clip(rad + rng.normal(0, 0.12 * rad + 1.0, k), 0.0, rad + 7 * s)  # stay in the patch
    else:
        k = int(rng.integers(3, 16))
        ang = rng.uniform(0, _TAU, k)
        dist = rad * np.sqrt(rng.uniform(0, 1, k))
    centres = []
    for a, d in zip(ang.tolist(), dist.tolist(), strict=True):
        x, y = c + d * math.cos(a), c + d * math.sin(a)
        sz = rng.uniform(1.2, 3.6) * s
        _stamp(patch, x, y, sz, sz * rng.uniform(0.6, 1.0), rng.uniform(0, math.pi), 0.8,
               rng.uniform(0.75, 1.0))
        centres.append((x - (n // 2), y - (n // 2)))
    return patch, centres


def _irma_patch(rng: np.random.Generator, s: float) -> np.ndarray:
    """IRMA: a few dilated, tortuous, irregular capillary segments (no loops)."""
    half = int(rng.uniform(14, 30) * s) + 4
    n = 2 * half + 1
    paths = []
    for _ in range(int(rng.integers(1, 4))):
        x, y = rng.uniform(0.6 * half, 1.4 * half, 2)
        steps = int(rng.integers(10, 22))
        p = _walk(rng, x, y, rng.uniform(0, _TAU), steps, 2.0 * s, 0.35)
        width = rng.uniform(1.3, 2.3) * s
        paths.append((p, width))
        if rng.random() < 0.6:
            j = int(rng.integers(2, steps))
            q = _walk(rng, p[j, 0], p[j, 1], rng.uniform(0, _TAU), int(rng.integers(4, 10)), 2.0 * s, 0.4)
            paths.append((q, width * 0.8))
    patch = _lines_patch(n, n, [(np.clip(p, 1, n - 2), w) for p, w in paths])
    return patch * rng.uniform(0.8, 1.0)


def _nv_patch(rng: np.random.Generator, s: float, radius: float, loops: int) -> np.ndarray:
    """Neovascularisation: a tangle of fine, irregular vessel loops fanning from a base."""
    half = int(radius * 1.3) + 6
    n = 2 * half + 1
    paths = []
    t = np.linspace(0, _TAU, 40, dtype=np.float32)
    for _ in range(loops):
        phi = rng.uniform(0, _TAU)
        dist = radius * math.sqrt(rng.uniform(0.02, 0.7))
        lr = radius * rng.uniform(0.12, 0.35)
        cx = half + dist * math.cos(phi)
        cy = half + dist * math.sin(phi)
        rad = np.full_like(t, lr)
        for k in (2, 3, 5):
            rad *= 1.0 + rng.uniform(0.05, 0.25) * np.sin(k * t + rng.uniform(0, _TAU))
        # loops are stretched along the spoke from the base, like a sea fan
        stretch = rng.uniform(1.0, 1.8)
        lx, ly = rad * np.cos(t) * stretch, rad * np.sin(t)
        px = cx + lx * math.cos(phi) - ly * math.sin(phi)
        py = cy + lx * math.sin(phi) + ly * math.cos(phi)
        paths.append((np.stack([px, py], 1), rng.uniform(0.8, 1.3) * s))
        if rng.random() < 0.6:  # a feeding vessel from the base
            q = _walk(rng, half, half, phi, max(2, int(dist / (2.5 * s))), 2.5 * s, 0.12)
            paths.append((q, rng.uniform(0.8, 1.2) * s))
    paths = [(np.clip(p, 1, n - 2), w) for p, w in paths]
    patch = _lines_patch(n, n, paths)
    return np.clip(patch * 1.2, 0.0, 1.0) * rng.uniform(0.7, 0.95)


def _preretinal_patch(rng: np.random.Generator, s: float, dd: float) -> np.ndarray:
    """Pre-retinal haemorrhage: boat-shaped, the blood settled under a flat top."""
    a = rng.uniform(0.35, 1.0) * dd
    b = a * rng.uniform(0.55, 0.85)
    n = int(2.4 * a + 12) | 1
    c = n / 2 - 0.5
    patch = np.zeros((n, n), np.float32)
    _stamp(patch, c, c, a, b, rng.normal(0, 0.05), 1.8 * s)
    for _ in range(int(rng.integers(2, 5))):  # an irregular, lumpy lower border
        ang = rng.uniform(0.15, math.pi - 0.15)
        ox, oy = 0.55 * a * math.cos(ang), 0.55 * b * math.sin(ang)
        _stamp(patch, c + ox, c + oy, 0.45 * a * rng.uniform(0.8, 1.1), 0.45 * b * rng.uniform(0.8, 1.15),
               rng.uniform(0, math.pi), 2.0 * s)
    cut = c - b * rng.uniform(0.0, 0.45)
    rows = np.arange(n, dtype=np.float32)[:, None]
    cols = np.arange(n, dtype=np.float32)[None, :]
    level = cut + math.tan(math.radians(rng.normal(0, 3))) * (cols - c)  # fluid level, camera roll
    patch *= np.clip(rows - level + 0.5, 0.0, 1.0)
    shade = 0.82 + 0.18 * np.clip((rows - cut) / (b + 1e-6), 0.0, 1.0)  # darker below
    mottle = cv2.resize(rng.random((5, 5)).astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
    return np.clip(patch * shade * (0.92 + 0.1 * mottle), 0.0, 1.0) * rng.uniform(0.88, 0.98)


def _beading_candidates(eye: _Eye, vessels: list[_Vessel]) -> dict[int, list[tuple[_Vessel, int, int]]]:
    """Stretches of wide veins (start, end index) that could be beaded, by quadrant."""
    out: dict[int, list[tuple[_Vessel, int, int]]] = {0: [], 1: [], 2: [], 3: []}
    thr = 2.6 * eye.scale
    length = 12  # points, ~36 px
    for v in vessels:
        if not v.vein or v.gen > 1 or len(v.w) < length + 2:
            continue
        for a in range(0, len(v.w) - length, length // 2):
            b = a + length
            if v.w[b] < thr:
                break
            mx, my = float(v.x[(a + b) // 2]), float(v.y[(a + b) // 2])
            if not eye.inside(mx, my, 20 * eye.scale):
                continue
            if math.hypot(mx - eye.disc[0], my - eye.disc[1]) < 1.0 * eye.dd:
                continue
            out[eye.quadrant(mx, my)].append((v, a, b))
    return out


def _beading_patch(rng: np.random.Generator, eye: _Eye, v: _Vessel, a: int, b: int
                   ) -> tuple[np.ndarray, float, float]:
    """Sausage-like dilations along a vein stretch; returns the patch and its centre."""
    xs, ys, ws = v.x[a : b + 1], v.y[a : b + 1], v.w[a : b + 1]
    wmax = float(ws.max())
    pad = int(2.5 * wmax) + 6
    x0, y0 = int(math.floor(xs.min())) - pad, int(math.floor(ys.min())) - pad
    x1, y1 = int(math.ceil(xs.max())) + pad, int(math.ceil(ys.max())) + pad
    w, h = (x1 - x0) | 1, (y1 - y0) | 1
    patch = np.zeros((h, w), np.float32)
    seg = np.hypot(np.diff(xs), np.diff(ys))
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    spacing = rng.uniform(2.0, 3.0) * float(ws.mean())
    pos = rng.uniform(0, spacing * 0.5)
    peak = rng.uniform(0.6, 0.9)
    while pos < arc[-1]:
        i = min(int(np.searchsorted(arc, pos)), len(seg))
        j = max(i - 1, 0)
        t = (pos - arc[j]) / max(float(seg[min(j, len(seg) - 1)]), 1e-6)
        px = float(xs[j] + t * (xs[min(j + 1, len(xs) - 1)] - xs[j]))
        py = float(ys[j] + t * (ys[min(j + 1, len(ys) - 1)] - ys[j]))
        th = math.atan2(float(ys[min(j + 1, len(ys) - 1)] - ys[j]), float(xs[min(j + 1, len(xs) - 1)] - xs[j]))
        wl = float(ws[j])
        _stamp(patch, px - x0, py - y0, wl * rng.uniform(0.9, 1.3), wl * rng.uniform(0.85, 1.2),
               th, 0.9, peak)
        pos += spacing * rng.uniform(0.85, 1.15)
    return patch, x0 + w // 2, y0 + h // 2


def _skewed(rng: np.random.Generator, lo: int, hi: int, decay: float) -> int:
    """An integer in [lo, hi], small values likelier (truncated geometric)."""
    k = np.arange(lo, hi + 1)
    p = decay ** (k - lo)
    return int(rng.choice(k, p=p / p.sum()))


def _plan(rng: np.random.Generator, grade: int, beading_quadrants: list[int]) -> dict:
    """What to draw for a target grade: counts and which severe/proliferative signs.

    Counts, sizes and contrast vary widely within each grade, and higher grades carry
    the lower grades' lesions too, so the grades overlap in look but not in rule.
    """
    p: dict = {"ma": 0, "haem_q": [0, 0, 0, 0], "exudate": 0, "cws": 0, "beading": [], "irma": 0,
               "nvd": False, "nve": 0, "preretinal": 0}
    if grade == 0:
        return p
    if grade == 1:
        p["ma"] = _skewed(rng, 1, 15, 0.82)
        return p
    if grade == 4:
        base = _plan(rng, 2 if rng.random() < 0.5 else 3, beading_quadrants)
        base["nvd"] = rng.random() < 0.5
        base["nve"] = int(rng.integers(1, 4)) if rng.random() < 0.5 else 0
        base["preretinal"] = (1 if rng.random() < 0.8 else 2) if rng.random() < 0.4 else 0
        if not (base["nvd"] or base["nve"] or base["preretinal"]):
            pick = rng.integers(3)
            base["nvd"] = pick == 0
            base["nve"] = 1 if pick == 1 else 0
            base["preretinal"] = 1 if pick == 2 else 0
        return base
    moderate = grade == 2
    p["ma"] = (_skewed(rng, 1, 25, 0.92) if moderate else int(rng.integers(4, 36))) if rng.random() < 0.88 else 0
    haem = rng.random() < (0.7 if moderate else 0.85)
    exud = rng.random() < (0.45 if moderate else 0.6)
    cws = rng.random() < (0.35 if moderate else 0.6)
    bead1 = bool(beading_quadrants) and rng.random() < 0.1
    if moderate and not (haem or exud or cws or bead1):
        choice = rng.integers(3)
        haem, exud, cws = choice == 0, choice == 1, choice == 2
    if haem:
        total = _skewed(rng, 1, 24, 0.9) if moderate else int(rng.integers(4, 45))
        pref = rng.dirichlet(np.full(4, 0.8))
        q = rng.multinomial(total, pref)
        p["haem_q"] = [int(min(v, 12 if moderate else 20)) for v in q]
    p["exudate"] = int(rng.integers(1, 3 if moderate else 5)) if exud else 0
    p["cws"] = (_skewed(rng, 1, 4, 0.6) if moderate else int(rng.integers(1, 7))) if cws else 0
    if moderate:
        if bead1:
            p["beading"] = [int(rng.choice(beading_quadrants))]
        return p
    # severe: at least one of the three rules
    routes = {
        "haem": rng.random() < 0.45,
        "beading": len(beading_quadrants) >= 2 and rng.random() < 0.4,
        "irma": rng.random() < 0.55,
    }
    if not any(routes.values()):
        options = ["haem", "irma"] + (["beading"] if len(beading_quadrants) >= 2 else [])
        routes[options[int(rng.integers(len(options)))]] = True
    if routes["haem"]:
        p["haem_q"] = [int(rng.integers(21, 33)) for _ in range(4)]
    if routes["beading"]:
        k = int(rng.integers(2, len(beading_quadrants) + 1))
        p["beading"] = [int(q) for q in rng.choice(beading_quadrants, k, replace=False)]
    elif beading_quadrants and rng.random() < 0.2:
        p["beading"] = [int(rng.choice(beading_quadrants))]
    if routes["irma"]:
        p["irma"] = _skewed(rng, 1, 4, 0.6)
    return p


def _draw_lesions(eye: _Eye, vessels: list[_Vessel], vessel_opacity: np.ndarray,
                  rng: np.random.Generator, grade: int) -> _Painter:
    """Sample a plan for ``grade`` and paint it; the caller checks the result's grade."""
    s, dd = eye.scale, eye.dd
    painter = _Painter(eye, vessel_opacity)
    cands = _beading_candidates(eye, vessels)
    plan = _plan(rng, grade, [q for q in range(4) if cands[q]])
    tries = 40

    for _ in range(plan["preretinal"]):
        patch = _preretinal_patch(rng, s, dd)
        for _ in range(tries):
            x, y = _point(rng, eye, 2.2 * dd, margin=patch.shape[0] / 2 + 6)
            if painter.place("preretinal", "preretinal_haemorrhage", patch, x, y):
                break
    if plan["nvd"]:
        patch = _nv_patch(rng, s, rng.uniform(0.4, 0.8) * dd, int(rng.integers(8, 22)))
        ox, oy = rng.normal(0, 0.1 * dd, 2)
        painter.place("nv", "neovascularisation", patch, eye.disc[0] + ox, eye.disc[1] + oy, on_disc=True)
    big = [v for v in vessels if v.gen <= 1 and len(v.x) > 20]
    for _ in range(plan["nve"]):
        patch = _nv_patch(rng, s, rng.uniform(12, 30) * s, int(rng.integers(5, 14)))
        for _ in range(tries):
            v = big[int(rng.integers(len(big)))]
            i = int(rng.integers(5, len(v.x)))
            off = rng.normal(0, 6 * s, 2)
            x, y = float(v.x[i] + off[0]), float(v.y[i] + off[1])
            if math.hypot(x - eye.disc[0], y - eye.disc[1]) < 1.3 * dd:
                continue
            if painter.place("nv", "neovascularisation", patch, x, y):
                break
    for q in plan["beading"]:
        for _ in range(int(rng.integers(1, 3))):
            for _ in range(10):
                v, a, b = cands[q][int(rng.integers(len(cands[q])))]
                patch, x, y = _beading_patch(rng, eye, v, a, b)
                if painter.place("beading", "venous_beading", patch, x, y,
                                 centres=[(float(v.x[(a + b) // 2]) - x, float(v.y[(a + b) // 2]) - y)]):
                    break
    for _ in range(plan["irma"]):
        patch = _irma_patch(rng, s)
        for _ in range(tries):
            x, y = _point(rng, eye, 2.5 * dd, margin=patch.shape[0] / 2 + 4)
            if painter.place("irma", "irma", patch, x, y, off_vessels=True):
                break
    for _ in range(plan["cws"]):
        patch = _cws_patch(rng, s)
        for _ in range(tries):
            v = big[int(rng.integers(len(big)))]
            i = int(rng.integers(0, len(v.x)))
            off = rng.normal(0, 12 * s, 2)
            x, y = float(v.x[i] + off[0]), float(v.y[i] + off[1])
            if math.hypot(x - eye.fovea[0], y - eye.fovea[1]) > 3.5 * dd:
                continue
            if painter.place("cws", "cotton_wool_spot", patch, x, y):
                break
    for _ in range(plan["exudate"]):
        patch, centres = _exudate_patch(rng, s)
        for _ in range(tries):
            x, y = _point(rng, eye, 1.6 * dd, margin=patch.shape[0] / 2 + 4)
            if painter.place("exudate", "hard_exudate", patch, x, y, centres=centres):
                break
    severe_haem = min(plan["haem_q"]) > 20
    for q, n in enumerate(plan["haem_q"]):
        for _ in range(n):
            flame = rng.random() < 0.3
            for _ in range(tries):
                spread = None if severe_haem else 2.4 * dd
                x, y = _point(rng, eye, spread, quadrant=q, margin=14)
                if flame:
                    patch, layer = _flame_patch(rng, s, eye.fibre_angle(x, y)), "flame"
                else:
                    patch, layer = _blot_patch(rng, s, severe_haem), "blot"
                if eye.quadrant(round(x), round(y)) != q:
                    continue
                if painter.place(layer, "haemorrhage", patch, x, y):
                    break
    strength = rng.uniform(0.65, 1.0)
    for _ in range(plan["ma"]):
        patch = _ma_patch(rng, s, strength * rng.uniform(0.85, 1.0))
        for _ in range(tries):
            x, y = _point(rng, eye, 2.0 * dd)
            if painter.place("ma", "microaneurysm", patch, x, y, off_vessels=True):
                break
    return painter


def _composite(img: np.ndarray, painter: _Painter, rng: np.random.Generator) -> None:
    """Paint the lesion layers onto the fundus (in place, linear RGB)."""
    colours = {
        "beading": (0.6, 0.32, 0.48),
        "irma": (rng.uniform(0.5, 0.65), rng.uniform(0.24, 0.36), rng.uniform(0.32, 0.48)),
        "nv": (rng.uniform(0.62, 0.75), rng.uniform(0.28, 0.4), rng.uniform(0.35, 0.5)),
        "ma": (rng.uniform(0.4, 0.55), rng.uniform(0.12, 0.25), rng.uniform(0.18, 0.32)),
        "blot": (rng.uniform(0.5, 0.65), rng.uniform(0.15, 0.28), rng.uniform(0.2, 0.35)),
        "flame": (rng.uniform(0.62, 0.75), rng.uniform(0.25, 0.38), rng.uniform(0.28, 0.42)),
        "cws": (rng.uniform(0.9, 1.0), rng.uniform(0.82, 0.92), rng.uniform(0.72, 0.85)),
        "exudate": (rng.uniform(0.95, 1.05), rng.uniform(0.8, 0.92), rng.uniform(0.3, 0.5)),
        "preretinal": (rng.uniform(0.34, 0.48), rng.uniform(0.04, 0.1), rng.uniform(0.04, 0.1)),
    }
    for _, layer, mode in _LAYERS:
        a = painter.alpha.get(layer)
        if a is None:
            continue
        ys, xs = np.nonzero(a.any(axis=1))[0], np.nonzero(a.any(axis=0))[0]
        sl = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        aa = a[sl][..., None]
        col = np.asarray(colours[layer], np.float32)
        if mode == "mul":
            img[sl] *= 1.0 - aa * (1.0 - col)
        else:
            img[sl] = img[sl] * (1.0 - aa) + aa * col


def _camera(img: np.ndarray, eye: _Eye, rng: np.random.Generator) -> np.ndarray:
    """Vignetting, uneven light, colour balance, gamma, blur and noise -> uint8 RGB."""
    size = eye.size
    rr = eye.dist / eye.radius
    vig = 1.0 - rng.uniform(0.2, 0.5) * rr ** rng.uniform(2.0, 3.5)
    vig *= np.clip((1.0 - rr) / 0.035, 0.0, 1.0) ** 0.5 * 0.35 + 0.65  # dark rim
    yy, xx = np.ogrid[:size, :size]
    phi = rng.uniform(0, _TAU)
    grad = 1.0 + rng.uniform(0.0, 0.22) * ((xx - eye.cx) * math.cos(phi) + (yy - eye.cy) * math.sin(phi)) / eye.radius
    light = (vig * grad * (1.0 + 0.05 * _noise(rng, size, 3))).astype(np.float32)
    gains = np.array([rng.uniform(0.92, 1.08), rng.uniform(0.85, 1.12), rng.uniform(0.8, 1.2)], np.float32)
    gains *= rng.uniform(0.8, 1.15)
    img *= light[..., None]
    img *= gains
    np.clip(img, 0.0, 1.0, out=img)
    gamma = rng.uniform(0.8, 1.2)
    cv2.pow(img, gamma, dst=img)
    sigma = rng.uniform(0.35, 1.1) * eye.scale
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0.003, 0.012)
    img *= eye.fov_weight[..., None]
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- public


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def generate(seed: int, grade: int | None = None, size: int = SIZE, *, lesions: bool = True) -> SyntheticFundus:
    """One synthetic fundus photograph of ``grade`` (random if None), reproducible by seed.

    Lesions are sampled for the requested grade, then the grade is recomputed by
    ``grade_from_lesions`` from what was actually painted; if a placement failed and
    the two differ, the lesions are re-drawn from the next sub-stream. With
    ``lesions=False`` the same eye and camera are rendered without any lesion (grade 0).
    """
    seed = int(seed)
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if size < 128:
        raise ValueError("size must be >= 128 (microaneurysms would be sub-pixel)")
    if grade is None:
        grade = int(_rng(seed, 3).integers(5))
    if grade not in range(5):
        raise ValueError(f"grade must be 0..4 or None, got {grade!r}")
    eye_rng = _rng(seed, 0)
    eye = _make_eye(eye_rng, size)
    img = _background(eye, eye_rng)
    vessels = _grow_vessels(eye, eye_rng)
    vein_op, art_op = _draw_vessels(eye, vessels, eye_rng)
    vein_f = np.array([eye_rng.uniform(0.62, 0.75), eye_rng.uniform(0.3, 0.42), eye_rng.uniform(0.45, 0.6)], np.float32)
    art_f = np.array([eye_rng.uniform(0.8, 0.9), eye_rng.uniform(0.55, 0.68), eye_rng.uniform(0.62, 0.75)], np.float32)
    img *= 1.0 - vein_op[..., None] * (1.0 - vein_f)
    img *= 1.0 - art_op[..., None] * (1.0 - art_f)

    fov = eye.fov_weight > 0
    counts = {t: 0 for t in LESION_TYPES}
    perq = {t: (0, 0, 0, 0) for t in LESION_TYPES}
    masks = {t: np.zeros((size, size), bool) for t in LESION_TYPES}
    drawn = 0
    if lesions and grade > 0:
        for attempt in range(_MAX_ATTEMPTS):
            rng = _rng(seed, 2, attempt)
            painter = _draw_lesions(eye, vessels, np.maximum(vein_op, art_op), rng, grade)
            counts, perq = painter.counts()
            drawn = grade_from_lesions(
                counts, perq["haemorrhage"], sum(1 for v in perq["venous_beading"] if v)
            )
            if drawn == grade:
                break
        else:  # pragma: no cover - would need 25 unlucky placements in a row
            raise RuntimeError(f"could not draw grade {grade} for seed {seed}")
        _composite(img, painter, rng)
        for t, layer, _ in _LAYERS:
            a = painter.alpha.get(layer)
            if a is not None:
                masks[t] |= (a >= MASK_ALPHA) & fov
    image = _camera(img, eye, _rng(seed, 1))
    return SyntheticFundus(
        image=image, fov=fov, masks=masks, counts=counts, per_quadrant=perq, grade=drawn,
        seed=seed, eye="right" if eye.side > 0 else "left", disc_centre=eye.disc,
        fovea_centre=eye.fovea, disc_diameter=eye.dd,
    )


def _image_seed(seed: int, i: int) -> int:
    return int(np.random.SeedSequence(int(seed), spawn_key=(0, int(i))).generate_state(1, np.uint32)[0])


def _grade_of(seed: int, i: int, grades: Sequence[int] | None) -> int:
    if grades is not None:
        return int(grades[i % len(grades)])
    block = _rng(int(seed), 1, i // 5).permutation(5)  # balanced, order shuffled per 5
    return int(block[i % 5])


def _job(args: tuple[int, int, int]) -> SyntheticFundus:
    return generate(args[0], args[1], args[2])


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def generate_many(n: int, seed: int, grades: Sequence[int] | None = None, workers: int = 1,
                  size: int = SIZE) -> Iterator[SyntheticFundus]:
    """``n`` images; image i depends only on (seed, i), whatever ``workers`` is.

    Grades: by default every block of 5 consecutive images holds grades 0..4 once, in
    a seeded order (balanced, not periodic); with ``grades`` image i gets
    ``grades[i % len(grades)]`` (pass n grades to set each one). Image i is
    ``generate(s_i, g_i)`` with ``s_i`` derived from (seed, i) and kept in ``.seed``.

    ``workers > 1`` renders in spawned processes (safe beside torch's threads), so a
    script that calls it must guard its entry point with ``if __name__ == "__main__":``.
    At most a few images per worker are rendered ahead of the consumer, which bounds
    memory when a slow training loop reads the stream.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if grades is not None and (len(grades) == 0 or any(int(g) not in range(5) for g in grades)):
        raise ValueError("grades must be a non-empty sequence of values in 0..4")
    jobs = [(_image_seed(seed, i), _grade_of(seed, i, grades), size) for i in range(n)]
    if workers <= 1 or n <= 1:
        for job in jobs:
            yield _job(job)
        return
    ctx = multiprocessing.get_context("spawn")
    ex = ProcessPoolExecutor(min(workers, n), mp_context=ctx, initializer=_init_worker)
    try:
        pending: deque[Future[SyntheticFundus]] = deque()
        todo = iter(jobs)
        for job in islice(todo, 3 * workers):
            pending.append(ex.submit(_job, job))
        while pending:
            try:
                f = pending.popleft().result()
            except BrokenProcessPool as e:
                raise RuntimeError(
                    "a generate_many worker died; if the caller is a script, guard it with "
                    "if __name__ == '__main__':"
                ) from e
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(ex.submit(_job, nxt))
            yield f
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- samples

# overlay colours of the lesion types (RGB) for contact sheets
OVERLAY_COLOURS = {
    "microaneurysm": (0, 255, 255),
    "haemorrhage": (40, 90, 255),
    "hard_exudate": (255, 255, 0),
    "cotton_wool_spot": (255, 255, 255),
    "venous_beading": (255, 0, 255),
    "irma": (255, 140, 0),
    "neovascularisation": (0, 255, 0),
    "preretinal_haemorrhage": (160, 60, 255),
}


def overlay(f: SyntheticFundus) -> np.ndarray:
    """The image with each lesion type's mask outlined in its ``OVERLAY_COLOURS``.

    Masks are dilated before outlining so that 3 px microaneurysms stay visible.
    """
    out = f.image.copy()
    grow = max(2, int(round(4 * f.image.shape[0] / SIZE)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    for t in LESION_TYPES:
        m = f.masks[t]
        if not m.any():
            continue
        big = cv2.dilate(m.astype(np.uint8), kernel)
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, OVERLAY_COLOURS[t], 2, cv2.LINE_AA)
    return out


def save_overview(path: str | Path, seed: int = 0, tile: int = 240) -> Path:
    """Contact sheet: 2 samples per grade, each raw and with its masks outlined.

    One row per grade (0..4), four tiles per row; a legend of the outline colours
    at the bottom. Saved as JPEG or PNG by the file's suffix.
    """
    path = Path(path)
    rows = []
    font = cv2.FONT_HERSHEY_SIMPLEX
    for g in range(5):
        tiles = []
        for k in range(2):
            f = generate(_image_seed(seed, 10 * g + k), g)
            for im in (f.image, overlay(f)):
                t = cv2.resize(im, (tile, tile), interpolation=cv2.INTER_AREA)
                tiles.append(t)
        row = np.concatenate(tiles, axis=1)
        cv2.putText(row, f"grade {g}", (6, 20), font, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(row)
    legend = np.zeros((44, rows[0].shape[1], 3), np.uint8)
    x = 6
    for i, t in enumerate(LESION_TYPES):
        xx, yy = x + (i % 4) * (rows[0].shape[1] // 4), 16 + (i // 4) * 20
        cv2.rectangle(legend, (xx, yy - 9), (xx + 12, yy + 1), OVERLAY_COLOURS[t], -1)
        cv2.putText(legend, t.replace("_", " "), (xx + 18, yy), font, 0.42, (230, 230, 230), 1, cv2.LINE_AA)
    sheet = np.concatenate(rows + [legend], axis=0)
    bgr = cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if path.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), bgr, params):
        raise OSError(f"could not write {path}")
    return path


def save_samples(directory: str | Path, seed: int = 0) -> list[Path]:
    """The README samples: ``grade{g}.jpg`` for g in 0..4 and ``overview.jpg``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for g in range(5):
        f = generate(_image_seed(seed, 1000 + g), g)
        p = directory / f"grade{g}.jpg"
        if not cv2.imwrite(str(p), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"could not write {p}")
        out.append(p)
    out.append(save_overview(directory / "overview.jpg", seed))
    return out
