"""Is this picture a gradable colour fundus photograph? Measured before any grading.

The network grades whatever it is given: a plain orange square comes out "severe NPDR"
and a black one "no DR", both with near certainty. Screening programmes never grade
such pictures; they answer "ungradable: retake". ``assess`` does the same: it measures a
few quantities of the photograph and of the model's 640 x 640 input, compares each
with a threshold and calls the picture gradable only if every check passes.

Every check is one measured number against one threshold, so a refusal can always say
what was measured and what was needed ("under-exposed: brightness 9 (needs >= 28)").
The thresholds are named constants below; each comment says how it was set. They were
set on data with ``python -m core gate`` (``core.study.gate``): at most 1% of the 467
IDRiD training photographs may be refused, at least 95% of a generated corpus of
ungradable pictures must be, and on photographs degraded step by step the gate should
close before the model's grade moves.

Image measures are taken on the model's input, where the retina is always 640 pixels
across, so they mean the same for a 1 MP and a 12 MP file and they describe what the
model actually sees; only the size of the field of view, the share of it inside the
picture, the black around it and the JPEG block pattern are read from the original,
where they live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..model import INPUT_SIZE
from .fov import visible_fraction

Circle = tuple[float, float, float]

# ----------------------------------------------------------------------------- thresholds
# Set on data with ``python -m core gate --data ../shared/data --weights paper``
# (``core.study.gate``). "IDRiD" below means the 467 IDRiD training photographs as the
# reader sees them (54 full-size, 413 half-size); "curves" the 60 of them degraded step by
# step; "corpus" the 156 generated ungradable pictures. Every threshold keeps all 467
# photographs gradable, with a margin beyond the extreme one.

# Original pixels across the field of view, at least. A field enlarged that much is soft
# at the model's scale, so the sharpness check closes on it as well (from 360-280 px in
# the resolution curves); this check closes there first and names the real cause. In
# those curves the gate closed first in 56 of 60. IDRiD's smallest field: 1704 px. (The
# reader still warns below 320 px.)
MIN_FOV_DIAMETER = 300.0
# Share of the disc in the picture and not under a dark band, at least. IDRiD, whose
# fields the sensor cuts at top and bottom: 0.855-0.922; the corpus' half fields: <= 0.44
# (or no field of view found at all).
MIN_VISIBLE = 0.70
# Median luma (0-255) of the field of view, at least / at most. IDRiD: 32.0-141.4; the
# corpus' exposures x0.07-0.12 and x3.5-5: 5.5-15 and 193-252. In the curves the model's
# grade moves already within IDRiD's own range (x0.8 darker moved it in 6 of 60, x1.25
# brighter in 3), so no exposure threshold can close before it for all photographs;
# these sit ~12% and ~6% beyond IDRiD's extremes (30 / 140 would refuse one or two).
MIN_BRIGHTNESS = 28.0
MAX_BRIGHTNESS = 150.0
# Share of the field of view with fundus colours (hue red to orange through 0, saturation
# >= FUNDUS_MIN_SATURATION), at least. IDRiD: 0.92-1.00; greyscale and red-free: ~0.
MIN_FUNDUS_COLOUR = 0.60
FUNDUS_HUE_DEGREES = (340.0, 50.0)  # from, to (through 0 = red)
FUNDUS_MIN_SATURATION = 64  # of 255
# Share of the picture outside the disc that is near black (max channel below
# SURROUND_BLACK_LEVEL), at least: a fundus camera's field is a disc on black. IDRiD:
# 0.996-1.000. Not measured when less than MIN_SURROUND_SHARE of the picture is outside.
MIN_DARK_SURROUND = 0.80
SURROUND_BLACK_LEVEL = 35
MIN_SURROUND_SHARE = 0.02
# Detail contrast, at least: standard deviation (grey levels) of the green channel's band
# between Gaussian sigma 4 and 8 model pixels (vessel widths). IDRiD: 0.63-4.1; flat
# pictures 0; exposure x0.1: ~0.2.
MIN_CONTRAST = 0.55
# Sharpness, at least: finest detail (green minus its sigma-1 blur, less the floor that
# rounding to 8 bits leaves in any picture, QUANTISATION_FLOOR) over the vessel-scale
# detail above, so exposure and contrast cancel. IDRiD: 0.368 (IDRiD_022, hazy, severe
# DR: gradable) to 1.37; strong blur (sigma 6-12 model px): 0.0-0.1. In the blur curves
# the gate closed first in 59 of 60.
MIN_SHARPNESS = 0.34
QUANTISATION_FLOOR = 0.24  # std of the finest band of a smooth picture rounded to uint8 (measured: 0.22-0.26)
# Noise, at most: Immerkaer's estimate (grey levels) on the green channel at the model's
# scale. IDRiD: 0.39-1.39. Gaussian noise added to the 60 photographs (half-size files):
# sigma 3 grey levels 1.06-1.57, sigma 6 1.87-2.22, sigma 10 ~3.1; the noise curves moved
# the grade by sigma 6 in 7 of 60 (with 2.5 the gate closed only at sigma 10: 88%).
# A JPEG re-save at quality 60 raises it too (up to 1.77 on those 60).
MAX_NOISE = 1.8
# JPEG blockiness, at most: gradient across 8-pixel block edges over the gradient
# elsewhere, in the original. IDRiD: 1.6-3.8 (part A's files up to 3.8, part B's ~2);
# quality 25: ~5, quality 15 and below: 9 or more.
MAX_BLOCKINESS = 4.5

# The rim of the field is left out of the image measures: its edge is a strong, artificial gradient.
_RIM = np.ones((2 * round(0.02 * INPUT_SIZE) + 1,) * 2, np.uint8)
_LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


# ----------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Check:
    """One measured quantity against its threshold, with a line a clinician understands."""

    name: str
    value: float
    threshold: float
    passed: bool
    message: str


@dataclass(frozen=True)
class Assessment:
    """Whether a picture can be graded, and every check that says so.

    ``checks`` are in order of importance (a missing field of view matters more than a
    little noise), so ``reasons`` lists the failed ones most important first. A check
    that could not be measured (e.g. the surround of a field that fills the picture) has
    the value NaN and passes.
    """

    gradable: bool
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """The messages of the failed checks, most important first."""
        return tuple(c.message for c in self.checks if not c.passed)

    def check(self, name: str) -> Check:
        """The check called ``name`` (KeyError if there is none)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"gradable", "reasons", "checks": {name: {"value", "threshold", "passed"}}}``;
        a value that was not measured is None."""
        return {
            "gradable": bool(self.gradable),
            "reasons": list(self.reasons),
            "checks": {
                c.name: {"value": _finite(c.value), "threshold": _finite(c.threshold), "passed": bool(c.passed)}
                for c in self.checks
            },
        }


def _finite(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# ---------------------------------------------------------------------------- measuring


def blockiness(original: np.ndarray) -> float:
    """JPEG block pattern: mean gradient across 8-pixel block edges over the mean elsewhere.

    Read on the green channel of the original (where the blocks are) in a central window
    of at most 1024 x 1024, at the strongest of the 8 phases (so a grid shifted by a crop
    or a rotation is found too). About 1 without compression, 2 for IDRiD's files,
    10 or more at quality 15 and below.
    """
    h, w = original.shape[:2]
    ch, cw = min(h, 1024) // 8 * 8, min(w, 1024) // 8 * 8
    if ch < 16 or cw < 16:
        return 1.0
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    g = original[y0 : y0 + ch, x0 : x0 + cw, 1].astype(np.int16)
    dx = np.abs(np.diff(g, axis=1)).mean(axis=0)[: (cw - 1) // 8 * 8].reshape(-1, 8).mean(axis=0)
    dy = np.abs(np.diff(g, axis=0)).mean(axis=1)[: (ch - 1) // 8 * 8].reshape(-1, 8).mean(axis=0)
    ratios = []
    for d in (dx, dy):
        k = int(np.argmax(d))
        rest = float(np.delete(d, k).mean())
        ratios.append(float(d[k]) / max(rest, 0.05))
    return float(np.mean(ratios))


def dark_surround(original: np.ndarray, circle: Circle | None) -> float:
    """Share of the picture outside the disc that is near black, or NaN when there is no
    disc or almost nothing lies outside it. Read on a subsampled original (fast)."""
    if circle is None:
        return math.nan
    h, w = original.shape[:2]
    step = max(1, max(h, w) // 512)
    small = original[::step, ::step]
    cx, cy, r = circle
    ys = np.arange(small.shape[0])[:, None] * step
    xs = np.arange(small.shape[1])[None, :] * step
    outside = (xs - cx) ** 2 + (ys - cy) ** 2 > (1.03 * r + 2 * step) ** 2
    if outside.mean() < MIN_SURROUND_SHARE:
        return math.nan
    return float(np.count_nonzero(small.max(axis=2)[outside] < SURROUND_BLACK_LEVEL) / np.count_nonzero(outside))


def measure(original: np.ndarray, circle: Circle | None, image: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """Every quantity the checks compare (NaN: not measurable here); ``brightness`` feeds
    both exposure checks."""
    h, w = original.shape[:2]
    inner = cv2.erode(fov.astype(np.uint8), _RIM).astype(bool)
    if np.count_nonzero(inner) < 64:
        inner = fov if np.count_nonzero(fov) >= 64 else np.ones(fov.shape, bool)
    img = image.astype(np.float32)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    m: dict[str, float] = {
        "fov_found": float(circle is not None),
        "fov_diameter_px": 2.0 * circle[2] if circle is not None else float(min(h, w)),
        # inside the frame and not under a dark band (an eyelid, a camera's black bars)
        "fov_visible": visible_fraction(circle, w, h, rgb=original) if circle is not None else math.nan,
        "brightness": float(np.median(luma[inner])),
    }
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)[inner]
    hue = hsv[:, 0].astype(np.float32) * (360.0 / 256.0)
    lo, hi = FUNDUS_HUE_DEGREES
    fundus = ((hue >= lo) | (hue <= hi)) & (hsv[:, 1] >= FUNDUS_MIN_SATURATION)
    m["colour_fundus"] = float(fundus.mean())
    m["dark_surround"] = dark_surround(original, circle)
    b1 = cv2.GaussianBlur(g, (0, 0), 1.0)
    b4 = cv2.GaussianBlur(b1, (0, 0), math.sqrt(15.0))  # sigma 4 (blurs compose by their variances)
    b8 = cv2.GaussianBlur(b4, (0, 0), math.sqrt(48.0))  # sigma 8
    finest = float((g - b1)[inner].std())
    vessels = float((b4 - b8)[inner].std())
    m["contrast"] = vessels
    detail = math.sqrt(max(0.0, finest * finest - QUANTISATION_FLOOR**2))
    m["sharpness"] = detail / vessels if vessels > 1e-3 else 0.0
    m["noise"] = float(math.sqrt(math.pi / 2) / 6 * np.abs(cv2.filter2D(g, -1, _LAPLACE))[inner].mean())
    m["compression"] = blockiness(original)
    return m


# ---------------------------------------------------------------------------- the checks


def _compare(name: str, value: float, threshold: float, at_least: bool, label: str, shown: str, failure: str,
             fmt: str) -> Check:
    """A check whose message reads ``failure: shown (needs >= threshold)`` when it fails,
    ``shown (needs ...)`` when it passes; ``shown`` holds ``{v}``, the formatted value."""
    if not math.isfinite(value):
        return Check(name, value, threshold, True, f"{label}: not measured")
    passed = value >= threshold if at_least else value <= threshold
    text = f"{shown.format(v=fmt.format(value))} (needs {'>=' if at_least else '<='} {fmt.format(threshold)})"
    return Check(name, value, threshold, passed, text if passed else f"{failure}: {text}")


def checks_of(m: dict[str, float]) -> tuple[Check, ...]:
    """The checks, most important first, from the measures of ``measure``."""
    found = m["fov_found"] >= 1.0
    pct = "{:.0%}"
    return (
        Check("fov_found", m["fov_found"], 1.0, found,
              "field of view found" if found else "no field of view found: no round retina on a black background"),
        _compare("fov_diameter_px", m["fov_diameter_px"], MIN_FOV_DIAMETER, True, "size",
                 "{v} px across" if found else "picture {v} px across", "field of view too small", "{:.0f}"),
        _compare("fov_visible", m["fov_visible"], MIN_VISIBLE, True, "share of the field in the picture",
                 "{v} of it in the picture", "field of view cut off", pct),
        _compare("exposure_low", m["brightness"], MIN_BRIGHTNESS, True, "brightness", "brightness {v}", "under-exposed", "{:.0f}"),
        _compare("exposure_high", m["brightness"], MAX_BRIGHTNESS, False, "brightness", "brightness {v}", "over-exposed", "{:.0f}"),
        _compare("colour_fundus", m["colour_fundus"], MIN_FUNDUS_COLOUR, True, "fundus colours",
                 "{v} of it in fundus colours (red to orange)", "not a colour fundus photograph", pct),
        _compare("dark_surround", m["dark_surround"], MIN_DARK_SURROUND, True, "black surround",
                 "{v} of the picture around the field black", "not a fundus photograph", pct),
        _compare("contrast", m["contrast"], MIN_CONTRAST, True, "contrast", "detail contrast {v}", "too little contrast", "{:.2f}"),
        _compare("sharpness", m["sharpness"], MIN_SHARPNESS, True, "sharpness", "sharpness {v}",
                 "not sharp (out of focus, motion blur or too few pixels)", "{:.2f}"),
        _compare("noise", m["noise"], MAX_NOISE, False, "noise", "noise {v}", "too noisy", "{:.1f}"),
        _compare("compression", m["compression"], MAX_BLOCKINESS, False, "JPEG blockiness", "JPEG blockiness {v}",
                 "over-compressed (JPEG blocks)", "{:.1f}"),
    )


def assess(original: np.ndarray, circle: Circle | None, image: np.ndarray, fov: np.ndarray) -> Assessment:
    """Assess a photograph before grading.

    ``original`` is the decoded, upright HxWx3 uint8 photograph, ``circle`` the field of
    view found in it (cx, cy, r in its pixels; None if none), ``image`` and ``fov`` the
    640 x 640 model input and its field-of-view mask (``prepare`` makes all four).
    """
    checks = checks_of(measure(original, circle, image, fov))
    return Assessment(all(c.passed for c in checks), checks)


__all__ = [
    "Assessment", "Check", "assess", "blockiness", "checks_of", "dark_surround", "measure",
]
