"""The circular field of view of a fundus photograph, found by a robust circle fit.

The disc is thresholded on a downscaled copy, its boundary fitted by RANSAC (which
ignores camera notches and fields cut at the top and bottom), refined by least squares
and accepted only if the bright blob really is that disc.

What photographs do to this, and how the search copes (each measured on real IDRiD
photographs, tests/fundus/test_fov_real.py):

- Exposure varies tenfold, and the dark background carries a faint glow near the disc,
  so no fixed level separates them. The threshold is read from the histogram instead: the
  middle of the valley between the background's peak and the disc's values. That level
  is also where a blurred edge is crossed halfway, so the circle is refitted to where
  the value crosses it along radii (to a fraction of a pixel): its position then does
  not depend on exposure or on how much the picture was shrunk.
- Cameras crop the disc at the top and bottom (IDRiD at 0.83 r; others at 0.7 r or
  less, or with black bands inside the picture). Boundary points on long straight rows or
  columns are those cuts, not the circle: they are left out of the fit, and the blob is
  compared with the disc as clipped to the blob's bounding box.
- A screenshot or a scanned print adds a thin bright frame round the picture, which joins
  the disc's cut chords into one blob. Border rows and columns that are bright nearly
  all along are peeled off first.
- A small photograph pasted into a large black canvas gives a small disc: radii down to
  a 25th of the picture's longest side are searched, and a small disc is fitted again
  on the square around it at up to full resolution.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .decode import as_rgb8

# FOV search parameters (in the pixels of the downscaled working copy).
_WORK_SIDE = 512  # the search runs on a copy whose longest side is at most this
_MIN_CONTRAST = 12  # bright level minus dark level below this: nothing to find (x0.15 photographs have ~25)
_MIN_RADIUS = 0.04  # smallest radius searched, as a share of the longest side (a 400 px disc in 1600 has 0.125)
_MIN_RADIUS_PX = 8
_MAX_RADIUS = 0.75
_FRAME_DEPTH = 0.04  # a bright frame up to this share of the side (and at least 3 px) is peeled off
_FRAME_FILL = 0.75  # ... a border row or column bright over this share of its length is frame
_STRAIGHT = 0.3  # a row or column holding this many radii of boundary points (and 6 sqrt(r)) is a straight cut
_INLIER_TOL = 2.0  # max distance of a boundary point from the circle to count as on it
_MIN_ARC_POINTS = 30
_MIN_INLIERS = 0.5  # share of the curved boundary points on the circle (the rest: notches, noise)
_MIN_COVER = 0.25  # share of the circle's angles that the inliers cover (two 45 degree arcs at least)
_RANSAC_TRIES = 256
_REFINE_BELOW = 0.3  # a radius under this share of the working copy's side is refitted around the disc

Circle = tuple[float, float, float]  # (cx, cy, r) in pixels, pixel centres at integers


def find_fov(rgb: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """Find the circular field of view.

    Returns the mask (HxW bool: the disc within the image, or everything when no disc
    was found) and the circle (cx, cy, r) in this image's pixels (pixel centres at
    integer coordinates), or None.
    """
    rgb = as_rgb8(rgb)
    h, w = rgb.shape[:2]
    circle = fit_fov(rgb)
    if circle is None:
        return np.ones((h, w), bool), None
    return disc_mask(h, w, *circle), circle


def disc_mask(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Pixels whose centre lies in the disc, without an HxW float temporary."""
    rows = r * r - (np.arange(h)[:, None] - cy) ** 2
    half = np.where(rows >= 0, np.sqrt(np.maximum(rows, 0)), -1.0)
    return np.abs(np.arange(w)[None, :] - cx) <= half


def fit_fov(rgb: np.ndarray) -> tuple[float, float, float] | None:
    """Circle of the bright disc in full-resolution pixel coordinates, or None.

    On a downscaled, median-filtered max-channel copy: peel a thin bright frame off the
    borders, threshold in the histogram's valley, keep the largest blob, fit a circle to
    its curved boundary points off the image border by RANSAC (straight cuts and notches
    left out), refine by least squares, and accept it only if the blob really is that
    disc (clipped by the cuts).
    """
    found = _search(rgb)
    if found is None:
        return None
    circle, relative_radius, scale = found
    if relative_radius < _REFINE_BELOW and scale < 1:
        circle = _refined(rgb, circle) or circle
    return circle


def visible_fraction(circle: tuple[float, float, float], width: int, height: int, *, rgb: np.ndarray | None = None) -> float:
    """Share of the disc's area that the photograph shows: 1.0 for a whole disc.

    Without ``rgb``: the share inside the width x height picture (pixel edges at -0.5 and
    width - 0.5), exact to about 1e-5. With the picture itself, black bands inside it count
    as cut too: the disc is further clipped to the rows and columns where its blob (as
    ``fit_fov`` thresholds it) is bright, measured on a quick subsampled copy (a few
    milliseconds; the bounds to within a pixel of that copy).
    """
    left, top, right, bottom = -0.5, -0.5, width - 0.5, height - 0.5
    if rgb is not None:
        bounds = _bright_bounds(as_rgb8(rgb), circle)
        if bounds is None:
            return 0.0
        left, top = max(left, bounds[0]), max(top, bounds[1])
        right, bottom = min(right, bounds[2]), min(bottom, bounds[3])
    return _disc_in_rectangle(circle, left, top, right, bottom)


# ----------------------------------------------------------------------------- search


def _working_copy(rgb: np.ndarray, interpolation: int = cv2.INTER_AREA) -> tuple[np.ndarray, tuple[float, float]] | None:
    """The max channel of a copy at most _WORK_SIDE on its longest side, median-filtered
    (JPEG noise and single bright pixels gone), and its scale (x, y) from the original.

    Area averaging keeps edges where they are (the fit needs that); nearest-pixel sampling
    is ten times faster and good enough where a pixel or two does not matter."""
    h, w = rgb.shape[:2]
    scale = min(1.0, _WORK_SIDE / max(h, w))
    ws, hs = max(1, round(w * scale)), max(1, round(h * scale))
    if min(ws, hs) < 16:
        return None
    small = rgb if (ws, hs) == (w, h) else cv2.resize(rgb, (ws, hs), interpolation=interpolation)
    brightest = np.maximum(np.maximum(small[..., 0], small[..., 1]), small[..., 2])  # 15x faster than max(axis=2)
    value = cv2.medianBlur(brightest, 5)
    return value, (ws / w, hs / h)


def _search(rgb: np.ndarray) -> tuple[Circle, float, float] | None:
    """The disc's circle in ``rgb``'s pixel coordinates, found on its working copy; with its
    radius there relative to that copy's longest side, and the copy's (smaller) scale."""
    work = _working_copy(rgb)
    if work is None:
        return None
    value, (sx, sy) = work
    found = _fit_working(value)
    if found is None:
        return None
    cx, cy, r = found
    circle = (cx + 0.5) / sx - 0.5, (cy + 0.5) / sy - 0.5, r * 2 / (sx + sy)
    return circle, r / max(value.shape), min(sx, sy)


def _refined(rgb: np.ndarray, circle: Circle) -> Circle | None:
    """The circle fitted again on the square around it, at a finer scale.

    A small disc in a large picture (a photograph pasted into a screenshot) is only tens
    of pixels across in the working copy; around it the same search sees it at up to full
    resolution. Kept only when it agrees with the coarse circle (else None).
    """
    h, w = rgb.shape[:2]
    cx, cy, r = circle
    m = 1.3 * r
    x0, y0 = max(0, math.floor(cx - m)), max(0, math.floor(cy - m))
    x1, y1 = min(w, math.ceil(cx + m) + 1), min(h, math.ceil(cy + m) + 1)
    found = _search(rgb[y0:y1, x0:x1])
    if found is None:
        return None
    fx, fy, fr = found[0]
    fine = fx + x0, fy + y0, fr
    if math.hypot(fine[0] - cx, fine[1] - cy) > 0.05 * r or abs(fine[2] - r) > 0.05 * r:
        return None
    return fine


def _fit_working(value: np.ndarray) -> Circle | None:
    """The circle in the working copy's pixels: frame peeled, threshold, blob, fit, checks."""
    level = _disc_level(value)
    if level is None:
        return None
    top, bottom, left, right = _frame_widths(value > level)
    if top or bottom or left or right:
        value = value[top : value.shape[0] - bottom, left : value.shape[1] - right]
        if min(value.shape) < 16:
            return None
        level = _disc_level(value)  # the frame's own values no longer in the histogram
        if level is None:
            return None
    fit = _circle_of_blob(value, level)
    if fit is None:
        return None
    cx, cy, r = fit
    return cx + left, cy + top, r


def _disc_level(value: np.ndarray) -> float | None:
    """The level between background and disc: the middle of the histogram's valley.

    From the background's peak the smoothed histogram is walked up until it climbs well
    above the lowest count seen (the disc's values begin); the threshold is the middle of
    the run of near-lowest bins around that minimum. A faint glow just outside the disc
    sits before the valley, the disc's darkest rim after it; the middle keeps clear of
    both whatever the exposure. None when the picture has too little contrast.
    """
    dark, bright = np.percentile(value, (1, 99))
    span = float(bright - dark)
    if span < _MIN_CONTRAST:
        return None
    hist = np.bincount(value.ravel(), minlength=256).astype(np.float64)
    k = max(1, round(span / 50))
    smooth = np.convolve(hist, np.ones(2 * k + 1) / (2 * k + 1), mode="same")
    start, end = int(dark), int(dark + 0.6 * span)
    mode = start + int(np.argmax(smooth[start : int(dark + 0.25 * span) + 1]))
    noise = 3e-4 * value.size  # a count this small is as good as empty (edge pixels and noise spikes)
    best, stop = mode, end + 1
    for t in range(mode + 1, end + 1):
        if smooth[t] < smooth[best]:
            best = t
        elif smooth[t] > 4 * smooth[best] + noise:
            stop = t
            break
    if best == mode:  # no valley: the histogram only climbs (or is flat) from the darkest peak
        best = min(mode + 1, end)
    limit = 2 * smooth[best] + noise
    a = b = best
    while a - 1 > mode and smooth[a - 1] <= limit:
        a -= 1
    top = int(bright) if stop > end else stop  # an empty valley may run past 0.6 of the span
    while b + 1 < top and smooth[b + 1] <= limit:
        b += 1
    return (a + b) / 2


def _frame_widths(blob: np.ndarray) -> tuple[int, int, int, int]:
    """Rows (top, bottom) and columns (left, right) of a thin bright frame round the picture.

    A border row bright over nearly all its length is not the disc (whose cut chords are
    at most as long as the disc is wide, which leaves dark corners) but a frame drawn
    round the picture; it would join the chords into one blob with no curved edge.
    """
    h, w = blob.shape

    def peel(lines: np.ndarray, limit: int) -> int:
        n = 0
        while n < limit and lines[n].mean() > _FRAME_FILL:
            n += 1
        return n

    depth_rows, depth_cols = max(3, math.ceil(_FRAME_DEPTH * h)), max(3, math.ceil(_FRAME_DEPTH * w))
    return peel(blob, depth_rows), peel(blob[::-1], depth_rows), peel(blob.T, depth_cols), peel(blob.T[::-1], depth_cols)


def _circle_of_blob(value: np.ndarray, level: float) -> Circle | None:
    """Fit and check the circle of the largest blob brighter than ``level``."""
    hs, ws = value.shape
    blob = cv2.morphologyEx((value > level).astype(np.uint8), cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    pts = contour[:, 0, :].astype(np.float64)
    off_border = (pts[:, 0] > 1) & (pts[:, 0] < ws - 2) & (pts[:, 1] > 1) & (pts[:, 1] < hs - 2)
    pts = pts[off_border]
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, [contour], -1, 1, thickness=cv2.FILLED)
    filled = filled.astype(bool)
    area = np.count_nonzero(filled)
    arc = pts[~_on_straight_cut(pts, math.sqrt(area / math.pi))]
    if len(arc) < _MIN_ARC_POINTS:
        return None
    longest = max(ws, hs)
    r_min, r_max = max(_MIN_RADIUS_PX, _MIN_RADIUS * longest), _MAX_RADIUS * longest
    circle = _robust_circle(arc, r_min, r_max)
    if circle is None:
        return None
    cx, cy, r = _subpixel_circle(value, level, arc, circle)
    if not (0 <= cx < ws and 0 <= cy < hs and r_min <= r <= r_max):
        return None
    # The blob must be the disc, clipped by the cuts: its bounding box (straight cuts and the
    # picture's edges are axis-aligned) bounds the part of the disc that can be seen.
    x, y, bw, bh = cv2.boundingRect(contour)
    disc = disc_mask(hs, ws, cx, cy, r)
    seen = np.zeros_like(disc)
    seen[y : y + bh, x : x + bw] = disc[y : y + bh, x : x + bw]
    inside = np.count_nonzero(filled & seen) / max(1, np.count_nonzero(seen))
    outside = np.count_nonzero(filled & ~disc_mask(hs, ws, cx, cy, r + max(2.0, 0.02 * r)))
    if inside < 0.85 or outside > 0.05 * area:
        return None
    return cx, cy, r


def _subpixel_circle(value: np.ndarray, level: float, pts: np.ndarray, circle: Circle) -> Circle:
    """The circle refitted to where the value crosses ``level`` along radii through its
    boundary points on it (linear interpolation between pixels).

    The blob's outermost pixels lie up to a pixel inside the edge, by an amount that
    depends on the edge's direction and blur; the crossing of the valley's middle level is
    where a blurred step is halfway, i.e. the edge itself. So the radius does not depend on
    how much the picture was shrunk (a 400-pixel disc and a 3400-pixel one agree).
    """
    hs, ws = value.shape
    cx, cy, r = circle
    on = np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - r) < _INLIER_TOL
    theta = np.arctan2(pts[on, 1] - cy, pts[on, 0] - cx)
    v = value.astype(np.float32)
    steps = np.arange(-3.0, 3.01, 0.25)
    for _ in range(2):
        radii = r + steps[None, :]
        x = cx + radii * np.cos(theta)[:, None]
        y = cy + radii * np.sin(theta)[:, None]
        keep = (x.min(axis=1) >= 0) & (x.max(axis=1) <= ws - 1) & (y.min(axis=1) >= 0) & (y.max(axis=1) <= hs - 1)
        if keep.sum() < _MIN_ARC_POINTS:
            break
        profile = cv2.remap(v, x[keep].astype(np.float32), y[keep].astype(np.float32), cv2.INTER_LINEAR)
        above = profile > level
        # a clean edge: inside above the level, outside below, one crossing
        clean = above[:, 0] & ~above[:, -1] & ((np.diff(above.astype(np.int8), axis=1) != 0).sum(axis=1) == 1)
        if clean.sum() < _MIN_ARC_POINTS:
            break
        prof, t = profile[clean], theta[keep][clean]
        i = np.argmin(above[clean], axis=1) - 1  # last sample above the level
        rows = np.arange(len(prof))
        a, b = prof[rows, i], prof[rows, i + 1]
        cross = steps[i] + 0.25 * (a - level) / np.maximum(a - b, 1e-6)
        edge = np.column_stack([cx + (r + cross) * np.cos(t), cy + (r + cross) * np.sin(t)])
        fit = _least_squares_circle(edge)
        if fit is None:
            break
        cx, cy, r = fit
    return cx, cy, r


def _on_straight_cut(pts: np.ndarray, r: float) -> np.ndarray:
    """Boundary points on a long horizontal or vertical line: where bands or the picture's
    edges cut the disc. Counted in 3-pixel strips so a JPEG-ragged cut still counts; the
    length needed (_STRAIGHT radii, and 6 sqrt(r), more than the flat top of a digital
    circle) keeps the disc's own rim out."""
    if len(pts) == 0:
        return np.zeros(0, bool)
    need = max(_STRAIGHT * r, 6 * math.sqrt(max(r, 1.0)))
    xs, ys = pts[:, 0].astype(np.int64), pts[:, 1].astype(np.int64)
    strip = np.ones(3)
    rows = np.convolve(np.bincount(ys), strip, mode="same")
    cols = np.convolve(np.bincount(xs), strip, mode="same")
    return (rows[ys] >= need) | (cols[xs] >= need)


def _robust_circle(pts: np.ndarray, r_min: float, r_max: float) -> tuple[float, float, float] | None:
    """RANSAC over well-spread point triples, then least squares on the inliers.

    Deterministic (fixed seed), so the same image always gives the same crop.
    """
    n = len(pts)
    rng = np.random.default_rng(0)
    i = rng.integers(0, n, _RANSAC_TRIES)
    j = (i + n // 3 + rng.integers(-n // 8, n // 8 + 1, _RANSAC_TRIES)) % n
    k = (i + 2 * n // 3 + rng.integers(-n // 8, n // 8 + 1, _RANSAC_TRIES)) % n
    centres, radii = _circles_through(pts[i], pts[j], pts[k])
    ok = np.isfinite(radii) & (radii >= r_min) & (radii <= r_max)
    if not ok.any():
        return None
    centres, radii = centres[ok], radii[ok]
    dist = np.hypot(pts[None, :, 0] - centres[:, None, 0], pts[None, :, 1] - centres[:, None, 1])
    support = (np.abs(dist - radii[:, None]) < _INLIER_TOL).sum(axis=1)
    best = int(np.argmax(support))
    cx, cy, r = centres[best, 0], centres[best, 1], radii[best]
    for _ in range(3):
        inliers = np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - r) < _INLIER_TOL
        if inliers.sum() < _MIN_ARC_POINTS:
            return None
        fit = _least_squares_circle(pts[inliers])
        if fit is None:
            return None
        cx, cy, r = fit
    inliers = np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - r) < _INLIER_TOL
    angles = np.arctan2(pts[inliers, 1] - cy, pts[inliers, 0] - cx)
    covered = np.unique(((angles + np.pi) / (2 * np.pi) * 36).astype(int) % 36).size / 36
    if inliers.mean() < _MIN_INLIERS or covered < _MIN_COVER:
        return None
    return float(cx), float(cy), float(r)


def _circles_through(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Circumcircles of many triangles at once (nan radius for collinear triples)."""
    (ax, ay), (bx, by), (cx, cy) = a.T, b.T, c.T
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
        uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
        r = np.where(np.abs(d) > 1e-9, np.hypot(ax - ux, ay - uy), np.nan)
    return np.stack([ux, uy], axis=1), r


def _least_squares_circle(pts: np.ndarray) -> tuple[float, float, float] | None:
    """Algebraic (Kasa) fit, on centred coordinates for conditioning."""
    mean = pts.mean(axis=0)
    x, y = (pts - mean).T
    design = np.column_stack([x, y, np.ones_like(x)])
    (d, e, f), *_ = np.linalg.lstsq(design, -(x * x + y * y), rcond=None)
    cx, cy = -d / 2, -e / 2
    r2 = cx * cx + cy * cy - f
    if not np.isfinite(r2) or r2 <= 0:
        return None
    return float(cx + mean[0]), float(cy + mean[1]), math.sqrt(r2)


# ---------------------------------------------------------------------- visible part


def _bright_bounds(rgb: np.ndarray, circle: Circle) -> tuple[float, float, float, float] | None:
    """Pixel-edge bounds (left, top, right, bottom), in the original, of where the disc's
    blob is bright: black bands inside the picture shrink them. None: nothing bright."""
    work = _working_copy(rgb, cv2.INTER_NEAREST)
    if work is None:
        return None
    value, (sx, sy) = work
    hs, ws = value.shape
    cx, cy, r = circle
    disc = disc_mask(hs, ws, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5, r * (sx + sy) / 2)
    level = _disc_level(value)
    if level is None or not disc.any():
        return None
    bright = (value > level) & disc
    # A row or column counts when half of the disc's pixels on it are bright (JPEG ringing
    # along a band's edge, or a dark lesion, does not move the bound).
    rows = bright.sum(axis=1) >= 0.5 * np.maximum(disc.sum(axis=1), 1)
    cols = bright.sum(axis=0) >= 0.5 * np.maximum(disc.sum(axis=0), 1)
    rows &= disc.any(axis=1)
    cols &= disc.any(axis=0)
    if not rows.any() or not cols.any():
        return None
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(cols)[[0, -1]]
    return x0 / sx - 0.5, y0 / sy - 0.5, (x1 + 1) / sx - 0.5, (y1 + 1) / sy - 0.5


def _disc_in_rectangle(circle: Circle, left: float, top: float, right: float, bottom: float) -> float:
    """Share of the disc's area inside an axis-aligned rectangle: the rectangle's height
    within the disc, integrated over x (midpoint rule, 4096 columns: error about 1e-5)."""
    cx, cy, r = circle
    x0, x1 = max(left, cx - r), min(right, cx + r)
    if r <= 0 or x1 <= x0 or bottom <= top:
        return 0.0
    n = 4096
    x = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    half = np.sqrt(np.maximum(r * r - (x - cx) ** 2, 0.0))
    tall = np.clip(np.minimum(cy + half, bottom) - np.maximum(cy - half, top), 0, None)
    return float(min(1.0, tall.sum() * (x1 - x0) / n / (math.pi * r * r)))
