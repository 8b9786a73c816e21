"""The eye of a synthetic photograph: field of view, background, macula, disc, vessels.

Why a module of its own: the eye is drawn from its own random stream (stream 0), before
and independently of the lesions and the camera, so that ``generate(seed,
lesions=False)`` renders the very same eye; the lesions are placed relative to it (its
fovea, disc, quadrants and vessels). Everything is linear RGB in float32; the camera
turns it into a photograph later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Every length in the package is given for a 640 px image and scaled by size / 640. This
# is the generator's design scale, not the model's input size (``SIZE``, which is only
# the default image size): a model with another input size must not change the eye.
REFERENCE_SIZE = 640


@dataclass
class Vessel:
    """One vessel of the tree: its centreline, width along it, kind and branching generation."""

    x: np.ndarray  # centreline, px
    y: np.ndarray
    w: np.ndarray  # width at each point, px
    vein: bool
    gen: int


@dataclass
class Eye:
    """Where everything is in one eye (px), and its field of view; lesions are placed by it."""

    size: int
    scale: float  # size / REFERENCE_SIZE: every length is given for 640 px and scaled
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
        """Index into ``grading.QUADRANTS`` of a point (by its position about the fovea)."""
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
    return (a + math.pi) % math.tau - math.pi


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise of unit variance with about ``cells`` blobs across the image."""
    g = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    step = size / cells
    big = int(round(step * (cells + 3)))
    up = cv2.resize(g, (big, big), interpolation=cv2.INTER_CUBIC)
    o = int(round(1.5 * step))
    out = np.ascontiguousarray(up[o : o + size, o : o + size])
    return out / max(float(out[::7, ::7].std()), 1e-6)


def _make_eye(rng: np.random.Generator, size: int) -> Eye:
    s = size / REFERENCE_SIZE
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
    return Eye(size, s, cx, cy, radius, side, (dx, dy), (fx, fy), dd, eu, ev, dist, fov_weight)


def _background(eye: Eye, rng: np.random.Generator) -> np.ndarray:
    """Red-orange fundus with choroidal texture, macula and optic disc (linear RGB)."""
    size, s = eye.size, eye.scale
    base = np.array(
        [rng.uniform(0.82, 1.0), rng.uniform(0.27, 0.42), rng.uniform(0.14, 0.26)], np.float32
    )
    low, mid, fine = smooth_noise(rng, size, 4), smooth_noise(rng, size, 22), smooth_noise(rng, size, 110)
    img = np.empty((size, size, 3), np.float32)
    amp_low = rng.uniform(0.02, 0.06)
    amp_mid = rng.uniform(0.01, 0.03)
    for c, k in enumerate((0.6, 1.0, 1.2)):
        img[..., c] = base[c] * (1.0 + k * (amp_low * low + amp_mid * mid + 0.012 * fine))
    # tigroid choroid: a ridged network, stronger towards the periphery
    ridge = 1.0 - np.abs(smooth_noise(rng, size, 16))
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


def _grow_vessels(eye: Eye, rng: np.random.Generator) -> list[Vessel]:
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

    vessels: list[Vessel] = []
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
                Vessel(np.array(xs, np.float32), np.array(ys, np.float32),
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


def _draw_vessels(eye: Eye, vessels: list[Vessel], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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



def render_eye(rng: np.random.Generator, size: int) -> tuple[Eye, list[Vessel], np.ndarray, np.ndarray]:
    """The lesion-free eye drawn from ``rng`` (stream 0): (eye, vessels, image, vessel opacity).

    The image is linear RGB float32 (size, size, 3) with the vessels painted in; the
    opacity (size, size) is the larger of the vein and artery opacities, which the
    lesion painter uses to keep some lesions off the vessels.
    """
    eye = _make_eye(rng, size)
    img = _background(eye, rng)
    vessels = _grow_vessels(eye, rng)
    vein_op, art_op = _draw_vessels(eye, vessels, rng)
    vein_f = np.array([rng.uniform(0.62, 0.75), rng.uniform(0.3, 0.42), rng.uniform(0.45, 0.6)], np.float32)
    art_f = np.array([rng.uniform(0.8, 0.9), rng.uniform(0.55, 0.68), rng.uniform(0.62, 0.75)], np.float32)
    img *= 1.0 - vein_op[..., None] * (1.0 - vein_f)
    img *= 1.0 - art_op[..., None] * (1.0 - art_f)
    return eye, vessels, img, np.maximum(vein_op, art_op)
