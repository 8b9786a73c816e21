"""The circular field of view of a fundus photograph, found by a robust circle fit.

The disc is thresholded on a downscaled copy, its boundary fitted by RANSAC (which
ignores camera notches and fields cut at the top and bottom), refined by least squares
and accepted only if the bright blob really is that disc.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .decode import as_rgb8

# FOV search parameters (in the pixels of the downscaled working copy).
_WORK_SIDE = 512  # the search runs on a copy whose longest side is at most this
_THRESHOLD_FRACTION = 0.07  # disc threshold: this far from the dark to the bright level
_THRESHOLD_MIN = 10  # ... but at least this above the dark level (JPEG noise on black)
_MIN_CONTRAST = 20  # bright level minus dark level below this: nothing to find
_INLIER_TOL = 2.0  # max distance of a boundary point from the circle to count as on it
_RANSAC_TRIES = 256

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

    Threshold a downscaled, median-filtered max-channel image at a level derived from
    the image, keep the largest blob, fit a circle to its boundary points off the image
    border by RANSAC (ignoring notches and straight cuts), refine by least squares, and
    accept it only if the blob really is that disc.
    """
    h, w = rgb.shape[:2]
    scale = min(1.0, _WORK_SIDE / max(h, w))
    ws, hs = max(1, round(w * scale)), max(1, round(h * scale))
    if min(ws, hs) < 16:
        return None
    small = rgb if (ws, hs) == (w, h) else cv2.resize(rgb, (ws, hs), interpolation=cv2.INTER_AREA)
    value = cv2.medianBlur(np.ascontiguousarray(small.max(axis=2)), 5)
    dark, bright = np.percentile(value, (1, 99))
    if bright - dark < _MIN_CONTRAST:
        return None
    level = dark + max(_THRESHOLD_MIN, _THRESHOLD_FRACTION * (bright - dark))
    blob = (value > level).astype(np.uint8)
    blob = cv2.morphologyEx(blob, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    pts = contour[:, 0, :].astype(np.float64)
    off_border = (pts[:, 0] > 1) & (pts[:, 0] < ws - 2) & (pts[:, 1] > 1) & (pts[:, 1] < hs - 2)
    pts = pts[off_border]
    if len(pts) < 30:
        return None
    longest = max(ws, hs)
    circle = _robust_circle(pts, 0.15 * longest, 0.75 * longest)
    if circle is None:
        return None
    cx, cy, r = circle
    r += 0.5  # contour points are centres of the blob's outermost pixels; the edge is half a pixel out
    if not (0 <= cx < ws and 0 <= cy < hs and 0.15 * longest <= r <= 0.75 * longest):
        return None
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, [contour], -1, 1, thickness=cv2.FILLED)
    filled = filled.astype(bool)
    disc = disc_mask(hs, ws, cx, cy, r)
    inside = np.count_nonzero(filled & disc) / max(1, np.count_nonzero(disc))
    outside = np.count_nonzero(filled & ~disc_mask(hs, ws, cx, cy, r + max(2.0, 0.02 * r)))
    if inside < 0.85 or outside > 0.05 * np.count_nonzero(filled):
        return None
    sx, sy = ws / w, hs / h
    return ((cx + 0.5) / sx - 0.5, (cy + 0.5) / sy - 0.5, r * 2 / (sx + sy))


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
        if inliers.sum() < 30:
            return None
        fit = _least_squares_circle(pts[inliers])
        if fit is None:
            return None
        cx, cy, r = fit
    inliers = np.abs(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy) - r) < _INLIER_TOL
    angles = np.arctan2(pts[inliers, 1] - cy, pts[inliers, 0] - cx)
    covered = np.unique(((angles + np.pi) / (2 * np.pi) * 36).astype(int) % 36).size / 36
    if inliers.mean() < 0.5 or covered < 0.25:
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
