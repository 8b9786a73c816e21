"""The lesions: alpha patches of each lesion type, where they go, and how they are painted.

Why a module of its own: this is where the masks come from. Each lesion instance is
rendered into an alpha patch, placed by a ``Painter`` where it stays inside the field of
view, off the disc and off every other lesion *type*, and composited onto the eye; its
mask is ``alpha >= MASK_ALPHA`` inside the field of view. The lesions are sampled for a
target grade (``draw_lesions``); whether the target was met is decided by
``grading.grade_from_lesions`` on what the painter actually placed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from .anatomy import Eye, Vessel
from .grading import LESION_TYPES

# A pixel belongs to a lesion's mask where the lesion contributes at least this share
# of its colour (its alpha); fainter anti-aliasing fringes are not counted.
MASK_ALPHA = 0.25

_TYPE_ID = {t: i + 1 for i, t in enumerate(LESION_TYPES)}


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


class Painter:
    """Places lesion patches: inside the FOV, off the disc, never on another type."""

    def __init__(self, eye: Eye, vessel_opacity: np.ndarray) -> None:
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
        """Instances placed per lesion type, in total and per quadrant about the fovea."""
        counts = {t: len(c) for t, c in self.centres.items()}
        perq: dict[str, tuple[int, int, int, int]] = {}
        for t, cs in self.centres.items():
            q = [0, 0, 0, 0]
            for x, y in cs:
                q[self.eye.quadrant(x, y)] += 1
            perq[t] = (q[0], q[1], q[2], q[3])
        return counts, perq

    def masks(self, fov: np.ndarray) -> dict[str, np.ndarray]:
        """Every lesion type's mask: ``alpha >= MASK_ALPHA`` of its layers, inside ``fov``."""
        out = {t: np.zeros(fov.shape, bool) for t in LESION_TYPES}
        for t, layer, _ in _LAYERS:
            a = self.alpha.get(layer)
            if a is not None:
                out[t] |= (a >= MASK_ALPHA) & fov
        return out


def _point(rng: np.random.Generator, eye: Eye, spread: float | None, quadrant: int | None = None,
           margin: float = 8.0) -> tuple[float, float]:
    """A random point in the FOV, |N(0, spread)| px from the fovea (uniform if None).

    With ``quadrant`` the point lies in that quadrant about the fovea.
    """
    ax, ay = eye.fovea
    for _ in range(200):
        uniform = spread is None
        rho = math.sqrt(rng.uniform(0.003, 1.0)) * 1.1 * eye.radius if uniform else abs(rng.normal(0.0, spread))
        if quadrant is None:
            a = rng.uniform(0, math.tau)
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
        start, span = rng.uniform(0, math.tau), rng.uniform(0.35, 0.95) * math.tau
        ang = start + np.sort(rng.uniform(0, span, k))
        dist = np.clip(rad + rng.normal(0, 0.12 * rad + 1.0, k), 0.0, rad + 7 * s)  # stay in the patch
    else:
        k = int(rng.integers(3, 16))
        ang = rng.uniform(0, math.tau, k)
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
        p = _walk(rng, x, y, rng.uniform(0, math.tau), steps, 2.0 * s, 0.35)
        width = rng.uniform(1.3, 2.3) * s
        paths.append((p, width))
        if rng.random() < 0.6:
            j = int(rng.integers(2, steps))
            q = _walk(rng, p[j, 0], p[j, 1], rng.uniform(0, math.tau), int(rng.integers(4, 10)), 2.0 * s, 0.4)
            paths.append((q, width * 0.8))
    patch = _lines_patch(n, n, [(np.clip(p, 1, n - 2), w) for p, w in paths])
    return patch * rng.uniform(0.8, 1.0)


def _nv_patch(rng: np.random.Generator, s: float, radius: float, loops: int) -> np.ndarray:
    """Neovascularisation: a tangle of fine, irregular vessel loops fanning from a base."""
    half = int(radius * 1.3) + 6
    n = 2 * half + 1
    paths = []
    t = np.linspace(0, math.tau, 40, dtype=np.float32)
    for _ in range(loops):
        phi = rng.uniform(0, math.tau)
        dist = radius * math.sqrt(rng.uniform(0.02, 0.7))
        lr = radius * rng.uniform(0.12, 0.35)
        cx = half + dist * math.cos(phi)
        cy = half + dist * math.sin(phi)
        rad = np.full_like(t, lr)
        for k in (2, 3, 5):
            rad *= 1.0 + rng.uniform(0.05, 0.25) * np.sin(k * t + rng.uniform(0, math.tau))
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


def _beading_candidates(eye: Eye, vessels: list[Vessel]) -> dict[int, list[tuple[Vessel, int, int]]]:
    """Stretches of wide veins (start, end index) that could be beaded, by quadrant."""
    out: dict[int, list[tuple[Vessel, int, int]]] = {0: [], 1: [], 2: [], 3: []}
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


def _beading_patch(rng: np.random.Generator, eye: Eye, v: Vessel, a: int, b: int
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


def draw_lesions(eye: Eye, vessels: list[Vessel], vessel_opacity: np.ndarray,
                  rng: np.random.Generator, grade: int) -> Painter:
    """Sample a plan for ``grade`` and paint it; the caller checks the result's grade."""
    s, dd = eye.scale, eye.dd
    painter = Painter(eye, vessel_opacity)
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


def composite(img: np.ndarray, painter: Painter, rng: np.random.Generator) -> None:
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
