"""Ordinary things that happen to a fundus photograph before it is uploaded, each with
where it moves the field of view's circle, so a test can compare the circle found on the
transformed image with the one found on the original mapped through the same change.

Circles are ``(cx, cy, r)`` in pixels, pixel centres at integer coordinates (as
``core.fundus.fov``).
"""

from __future__ import annotations

import cv2
import numpy as np

Circle = tuple[float, float, float]


def jpeg(rgb: np.ndarray, quality: int = 90) -> np.ndarray:
    """Encode and decode as JPEG: what an uploaded file goes through (ringing at every edge)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def small_disc(
    rgb: np.ndarray, circle: Circle, *, diameter: float = 400, frame: tuple[int, int] = (1600, 1200),
    at: tuple[float, float] = (0.3, 0.6),
) -> tuple[np.ndarray, Circle]:
    """The photograph shrunk so its field of view is ``diameter`` pixels across, pasted on a
    black ``frame`` (width, height) with the disc's centre near ``at`` (fractions of the frame),
    the whole photograph kept inside the frame."""
    h, w = rgb.shape[:2]
    cx, cy, r = circle
    scale = diameter / (2 * r)
    pw, ph = round(w * scale), round(h * scale)
    sx, sy = pw / w, ph / h
    small = cv2.resize(rgb, (pw, ph), interpolation=cv2.INTER_AREA)
    fw, fh = frame
    ccx, ccy = (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5
    ox = int(np.clip(round(at[0] * fw - ccx), 0, fw - pw))
    oy = int(np.clip(round(at[1] * fh - ccy), 0, fh - ph))
    out = np.zeros((fh, fw, 3), np.uint8)
    out[oy : oy + ph, ox : ox + pw] = small
    return out, (ccx + ox, ccy + oy, r * (sx + sy) / 2)


def bands(rgb: np.ndarray, circle: Circle, *, top: float | None = 0.7, bottom: float | None = 0.7) -> np.ndarray:
    """Black bands above ``cy - top * r`` and below ``cy + bottom * r`` (None: no band there), as
    cameras that crop the field of view at the top and bottom write them."""
    out = rgb.copy()
    cx, cy, r = circle
    if top is not None:
        out[: max(0, int(np.ceil(cy - top * r)))] = 0
    if bottom is not None:
        out[int(np.floor(cy + bottom * r)) + 1 :] = 0
    return out


def bright_frame(rgb: np.ndarray, *, width: int = 5, value: int = 255) -> np.ndarray:
    """A thin uniform border drawn round the whole picture (a screenshot, a printed-and-scanned photo)."""
    out = rgb.copy()
    out[:width] = value
    out[-width:] = value
    out[:, :width] = value
    out[:, -width:] = value
    return out


def darken(rgb: np.ndarray, factor: float = 0.15) -> np.ndarray:
    """An underexposed photograph: every value multiplied by ``factor``."""
    return np.clip(np.round(rgb.astype(np.float32) * factor), 0, 255).astype(np.uint8)
