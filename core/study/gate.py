"""How well the gradability gate (``core.fundus.gradability``) separates photographs a
grader would grade from pictures a grader would refuse, measured on data.

Three measurements, all used by ``python -m core gate`` and by the tests:

- **gradable rate**: real fundus photographs (the IDRiD training photographs) must pass
  the gate; the target is that at most 1% are refused;
- **ungradable rate**: a corpus of pictures no grader would grade, *generated here in
  code* (nothing stored): natural-scene-like pictures, portraits, documents,
  screenshots, flat and noise images, and real photographs made unusable (greyscale,
  red-free, blurred past use, exposure x0.1 and x4, JPEG quality 3-5, a field cut in
  half); the target is that at least 95% are refused;
- **degradation curves**: each photograph is degraded step by step (Gaussian blur,
  exposure down and up, JPEG quality, Gaussian noise, resolution) and, for each kind,
  the step where the gate closes is compared with the step where the model's grade
  first moves; the target is that the gate closes no later than the grade moves for at
  least 90% of the photographs.

Why generated and not collected: no public corpus of "wrong uploads" exists with a
licence to bundle, and generated pictures are reproducible from a seed, so a threshold
change can be checked against exactly the same pictures by anyone.
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..fundus import Assessment, Fundus, FundusReadError, decode_image, prepare
from ..fundus.decode import read_bytes
from ..weights import LoadedModel
from .peers import StudyError

# ------------------------------------------------------------------------ the photographs

# The study reads photographs at most this wide: IDRiD's part A (4288 px) is halved to the
# size part B is stored at (2144 px), so both parts are measured alike and reading stays
# fast on two cores. The model sees 640 x 640 either way.
WORKING_WIDTH = 2144


def idrid_photographs(data: Path) -> list[Path]:
    """The IDRiD training photographs under ``data`` (the shared data folder): the 54 of
    ``idrid-segmentation-train/IDRiD_XX.jpg`` then the 413 of ``idrid-grading-train/images``.

    Lesion masks (``.tif``) are not photographs and are left out.
    """
    data = Path(data)
    if not data.is_dir():
        raise StudyError(f"{data}: not a folder (give the shared data folder, e.g. --data ../shared/data)")
    part_a = sorted(p for p in (data / "idrid-segmentation-train").glob("IDRiD_*.jpg"))
    part_b = sorted(p for p in (data / "idrid-grading-train" / "images").glob("IDRiD_*.jpg"))
    photos = part_a + part_b
    if not photos:
        raise StudyError(f"{data}: no IDRiD photographs (expected idrid-segmentation-train/ and idrid-grading-train/images/)")
    return photos


def evenly_spaced(items: Sequence[Any], n: int | None) -> list[Any]:
    """``n`` items spread evenly over ``items`` (all of them when ``n`` is None or larger):
    a fixed subset that samples both IDRiD parts, not just the first files."""
    items = list(items)
    if n is None or n >= len(items):
        return items
    if n < 1:
        return []
    return [items[(i * len(items)) // n] for i in range(n)]


def read_photograph(path: Path, max_width: int | None = WORKING_WIDTH) -> np.ndarray:
    """Decode a photograph (upright RGB uint8), halved while wider than ``max_width``."""
    try:
        rgb = decode_image(read_bytes(path)[0])
    except FundusReadError as e:
        raise StudyError(f"{path}: {e}") from None
    while max_width is not None and rgb.shape[1] > max_width:
        h, w = rgb.shape[:2]
        rgb = cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return rgb


def shrink(rgb: np.ndarray, width: int) -> np.ndarray:
    """The picture scaled (area averaging) to ``width`` pixels across, aspect kept."""
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- degradations


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip at ``quality`` (1-100), as a camera or a messenger app would save it."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit RGB array
        raise StudyError("JPEG encoding failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def exposure(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Pixel values times ``factor``, clipped: under- (< 1) or over-exposure (> 1)."""
    return np.clip(rgb.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


def blur(rgb: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of ``sigma_px`` pixels of this picture (defocus)."""
    return cv2.GaussianBlur(rgb, (0, 0), max(float(sigma_px), 1e-3))


def noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of ``sigma`` grey levels on every channel (sensor noise)."""
    noisy = rgb.astype(np.float32) + rng.normal(0.0, sigma, rgb.shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def resample(rgb: np.ndarray, factor: float) -> np.ndarray:
    """The picture scaled by ``factor`` (area averaging): a lower-resolution camera."""
    h, w = rgb.shape[:2]
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Degradation:
    """One kind of damage, applied at increasing ``steps`` (in ``unit``).

    ``apply(rgb, diameter, step, rng)`` damages a photograph whose field of view is
    ``diameter`` pixels across; steps that depend on the picture's scale (blur, resolution)
    are given in the model's terms so that they mean the same for every file size.
    """

    name: str
    unit: str
    steps: tuple[float, ...]
    apply: Callable[[np.ndarray, float, float, np.random.Generator], np.ndarray] = field(repr=False)


def model_pixels(sigma: float, diameter: float) -> float:
    """A length in the model's input pixels (the retina is 640 across) -> this picture's pixels."""
    return sigma * diameter / 640.0


DEGRADATIONS: tuple[Degradation, ...] = (
    Degradation("blur", "Gaussian sigma, model px", (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0),
                lambda rgb, d, s, rng: blur(rgb, model_pixels(s, d))),
    Degradation("darker", "exposure factor", (0.8, 0.6, 0.45, 0.33, 0.25, 0.18, 0.12, 0.08),
                lambda rgb, d, s, rng: exposure(rgb, s)),
    Degradation("brighter", "exposure factor", (1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0),
                lambda rgb, d, s, rng: exposure(rgb, s)),
    Degradation("jpeg", "JPEG quality", (60, 40, 25, 15, 10, 7, 5, 3),
                lambda rgb, d, s, rng: jpeg(rgb, int(s))),
    Degradation("noise", "Gaussian sigma, grey levels", (3, 6, 10, 15, 20, 30, 45, 60),
                lambda rgb, d, s, rng: noise(rgb, s, rng)),
    Degradation("resolution", "field of view, px across", (640, 480, 360, 280, 220, 160, 120, 80, 60),
                lambda rgb, d, s, rng: resample(rgb, min(1.0, s / d))),
)
DEGRADATION_NAMES = tuple(d.name for d in DEGRADATIONS)


# ------------------------------------------------------------------- the ungradable corpus

CORPUS_CATEGORIES = (
    "natural scene",
    "portrait",
    "document",
    "screenshot",
    "flat",
    "noise",
    "greyscale fundus",
    "red-free fundus",
    "blurred fundus",
    "under-exposed fundus",
    "over-exposed fundus",
    "compressed fundus",
    "half field",
)
# The categories made from real photographs (the others need none).
FUNDUS_CATEGORIES = CORPUS_CATEGORIES[6:]
PER_CATEGORY = 12  # 13 categories x 12 = 156 pictures, over the 150 the target asks for


@dataclass(frozen=True, eq=False)
class Picture:
    """One picture of the corpus: its category, a name that says how it was made, pixels."""

    category: str
    name: str
    rgb: np.ndarray


def _canvas_size(rng: np.random.Generator, width: int) -> tuple[int, int]:
    aspect = float(rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4]))
    return width, max(32, round(width / aspect))


def _smooth_field(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Smooth random texture in [-1, 1]-ish: cloud, foliage, skin and paper grain."""
    small = rng.normal(0, 1, (max(2, round(h / scale)), max(2, round(w / scale)))).astype(np.float32)
    field_ = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return field_ / (np.abs(field_).max() + 1e-6)


def _camera(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a phone does to a scene: a little blur, sensor noise and JPEG."""
    img = cv2.GaussianBlur(rgb, (0, 0), float(rng.uniform(0.4, 1.2)))
    img = noise(img, float(rng.uniform(1, 4)), rng)
    return jpeg(img, int(rng.integers(70, 95)))


def natural_scene(rng: np.random.Generator, width: int) -> np.ndarray:
    """Sky gradient over ground, with sun, hills, buildings and trees (or a sunset)."""
    w, h = _canvas_size(rng, width)
    sunset = rng.random() < 0.3
    top = np.array([255, 120, 40] if sunset else [40, 90, 200], np.float32) * rng.uniform(0.6, 1.0)
    horizon = np.array([255, 200, 120] if sunset else [190, 215, 245], np.float32) * rng.uniform(0.8, 1.0)
    y_h = int(h * rng.uniform(0.4, 0.7))
    t = (np.arange(h, dtype=np.float32) / max(1, y_h))[:, None, None].clip(0, 1)
    img = np.broadcast_to(top * (1 - t) + horizon * t, (h, w, 3)).copy()
    img[:y_h] += 18 * _smooth_field(rng, y_h, w, w / 6)[..., None]  # clouds
    if rng.random() < 0.6:  # the sun or moon
        c = (int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.05, 0.4) * h))
        cv2.circle(img, c, int(rng.uniform(0.02, 0.06) * w), (255, 240, 200), -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(1, 4))):  # hills
        pts = [(0, y_h)] + [(int(x), int(y_h - rng.uniform(0, 0.25) * h)) for x in np.linspace(0, w, 6)] + [(w, h), (0, h)]
        colour = np.array([60, 110, 50] if rng.random() < 0.6 else [120, 100, 80]) * rng.uniform(0.5, 1.1)
        cv2.fillPoly(img, [np.array(pts, np.int32)], tuple(float(v) for v in colour), cv2.LINE_AA)
    ground = np.array([70, 120, 45] if rng.random() < 0.6 else [170, 150, 110], np.float32) * rng.uniform(0.6, 1.0)
    img[y_h:] = ground + 25 * _smooth_field(rng, h - y_h, w, 12)[..., None]
    for _ in range(int(rng.integers(0, 5))):  # buildings
        x0, bw, bh = int(rng.uniform(0, w)), int(rng.uniform(0.05, 0.2) * w), int(rng.uniform(0.1, 0.4) * h)
        colour = tuple(float(v) for v in rng.uniform(60, 230, 3))
        cv2.rectangle(img, (x0, y_h - bh), (x0 + bw, y_h + int(0.05 * h)), colour, -1)
        for wy in range(y_h - bh + 8, y_h - 8, max(6, bh // 6)):
            for wx in range(x0 + 5, x0 + bw - 8, max(6, bw // 5)):
                cv2.rectangle(img, (wx, wy), (wx + max(2, bw // 10), wy + max(2, bh // 14)), (40, 50, 70), -1)
    for _ in range(int(rng.integers(0, 6))):  # trees
        x, y = int(rng.uniform(0, w)), int(y_h + rng.uniform(-0.02, 0.2) * h)
        r = int(rng.uniform(0.02, 0.07) * w)
        cv2.rectangle(img, (x - r // 6, y), (x + r // 6, y + 2 * r), (70, 50, 30), -1)
        cv2.circle(img, (x, y), r, tuple(float(v) for v in np.array([40, 100, 40]) * rng.uniform(0.6, 1.2)), -1, cv2.LINE_AA)
    return _camera(np.clip(img, 0, 255).astype(np.uint8), rng)


SKIN_TONES = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30))


def portrait(rng: np.random.Generator, width: int) -> np.ndarray:
    """A head and shoulders: a shaded skin-tone face (the colours closest to a fundus's),
    hair, eyes and mouth, before a plain, gradient or dark background."""
    w, h = _canvas_size(rng, width)
    bg_kind = rng.choice(["plain", "gradient", "dark"])
    base = rng.uniform(20, 70, 3) if bg_kind == "dark" else rng.uniform(90, 240, 3)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    other = base if bg_kind != "gradient" else rng.uniform(60, 240, 3)
    img = (base * (1 - t) + other * t).astype(np.float32) * np.ones((h, w, 1), np.float32)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.5)
    ax, ay = min(w, h) * rng.uniform(0.16, 0.24), min(w, h) * rng.uniform(0.22, 0.32)
    skin = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], np.float32) * rng.uniform(0.85, 1.05)
    cloth = rng.uniform(20, 230, 3)
    cv2.ellipse(img, (int(cx), int(h * 1.05)), (int(2.4 * ax), int(0.55 * h)), 0, 180, 360, tuple(float(v) for v in cloth), -1, cv2.LINE_AA)
    cv2.rectangle(img, (int(cx - 0.45 * ax), int(cy + 0.6 * ay)), (int(cx + 0.45 * ax), int(cy + 1.5 * ay)), tuple(float(v) for v in skin * 0.85), -1)
    hair = rng.uniform(10, 90, 3) if rng.random() < 0.8 else np.array([200, 170, 110], np.float32)
    cv2.ellipse(img, (int(cx), int(cy - 0.15 * ay)), (int(1.1 * ax), int(1.05 * ay)), 0, 0, 360, tuple(float(v) for v in hair), -1, cv2.LINE_AA)
    face = np.zeros((h, w), np.float32)
    cv2.ellipse(face, (int(cx), int(cy + 0.1 * ay)), (int(ax), int(ay)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    shade = 1.0 - 0.25 * (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2).clip(0, 1.5)
    skin_img = skin * (shade + 0.05 * _smooth_field(rng, h, w, 4))[..., None]
    img = img * (1 - face[..., None]) + skin_img * face[..., None]
    for side in (-1, 1):  # eyes and brows
        ex, ey = int(cx + side * 0.4 * ax), int(cy - 0.05 * ay)
        cv2.ellipse(img, (ex, ey), (int(0.2 * ax), int(0.09 * ay)), 0, 0, 360, (235, 235, 230), -1, cv2.LINE_AA)
        cv2.circle(img, (ex, ey), int(0.08 * ax) + 1, tuple(float(v) for v in rng.uniform(20, 120, 3)), -1, cv2.LINE_AA)
        cv2.line(img, (ex - int(0.22 * ax), ey - int(0.2 * ay)), (ex + int(0.22 * ax), ey - int(0.22 * ay)), tuple(float(v) for v in hair), max(2, int(0.05 * ay)), cv2.LINE_AA)
    cv2.ellipse(img, (int(cx), int(cy + 0.55 * ay)), (int(0.3 * ax), int(0.08 * ay)), 0, 0, 360, (170, 60, 70), -1, cv2.LINE_AA)
    cv2.line(img, (int(cx), int(cy + 0.05 * ay)), (int(cx - 0.05 * ax), int(cy + 0.3 * ay)), tuple(float(v) for v in skin * 0.7), 2, cv2.LINE_AA)
    return _camera(np.clip(img, 0, 255).astype(np.uint8), rng)


def _words(rng: np.random.Generator, n: int) -> str:
    letters = string.ascii_lowercase
    return " ".join("".join(rng.choice(list(letters), int(rng.integers(2, 10)))) for _ in range(n))


def document(rng: np.random.Generator, width: int) -> np.ndarray:
    """Text on white (a scan), sometimes a table, sometimes a photographed page on a desk."""
    w, h = _canvas_size(rng, width)
    paper = float(rng.uniform(225, 255))
    img = np.clip(np.full((h, w, 3), paper, np.float32) - rng.uniform(0, 12, 3), 0, 255).astype(np.uint8)
    scale = w / 1000 * rng.uniform(0.5, 0.9)
    ink = tuple(float(v) for v in (rng.uniform(0, 60, 3) if rng.random() < 0.8 else (20, 30, 140)))
    y = int(0.08 * h)
    cv2.putText(img, _words(rng, 3).title(), (int(0.08 * w), y + int(30 * scale)), cv2.FONT_HERSHEY_DUPLEX, 1.6 * scale, ink, max(1, int(2 * scale)), cv2.LINE_AA)
    y += int(70 * scale)
    line_h = max(8, int(30 * scale))
    table = rng.random() < 0.3
    while y < h - int(0.08 * h):
        if table and rng.random() < 0.3:
            for r in range(4):
                cv2.line(img, (int(0.08 * w), y + r * line_h), (int(0.92 * w), y + r * line_h), ink, 1)
            for c in np.linspace(0.08, 0.92, 4):
                cv2.line(img, (int(c * w), y), (int(c * w), y + 3 * line_h), ink, 1)
            y += 4 * line_h
            continue
        cv2.putText(img, _words(rng, int(rng.integers(5, 12))), (int(0.08 * w), y), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, ink, 1, cv2.LINE_AA)
        y += line_h if rng.random() > 0.15 else 2 * line_h
    if rng.random() < 0.4:  # photographed on a desk, slightly rotated
        desk = np.full((h, w, 3), rng.uniform(40, 160, 3), np.float32) + 15 * _smooth_field(rng, h, w, 20)[..., None]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-8, 8)), float(rng.uniform(0.7, 0.9)))
        page = cv2.warpAffine(img, m, (w, h), borderValue=(0, 0, 0))
        inside = cv2.warpAffine(np.ones((h, w), np.float32), m, (w, h))[..., None]
        img = np.clip(page * inside + desk * (1 - inside), 0, 255).astype(np.uint8)
        return _camera(img, rng)
    return jpeg(img, int(rng.integers(75, 95))) if rng.random() < 0.5 else img


def screenshot(rng: np.random.Generator, width: int) -> np.ndarray:
    """A user interface: title bar, sidebar, cards, buttons and text, light or dark theme."""
    w, h = _canvas_size(rng, width)
    dark = rng.random() < 0.35
    bg = (30, 32, 36) if dark else (245, 246, 248)
    fg = (220, 220, 220) if dark else (30, 30, 30)
    img = np.full((h, w, 3), bg, np.uint8)
    accent = tuple(int(v) for v in rng.integers(40, 230, 3))
    bar = max(12, int(0.06 * h))
    cv2.rectangle(img, (0, 0), (w, bar), accent, -1)
    cv2.putText(img, _words(rng, 2).title(), (10, int(bar * 0.7)), cv2.FONT_HERSHEY_SIMPLEX, bar / 40, (255, 255, 255), 1, cv2.LINE_AA)
    side = int(rng.uniform(0.12, 0.25) * w) if rng.random() < 0.7 else 0
    if side:
        cv2.rectangle(img, (0, bar), (side, h), (45, 47, 52) if dark else (228, 230, 235), -1)
        for i, y in enumerate(range(bar + 25, h - 10, max(14, int(0.05 * h)))):
            cv2.putText(img, _words(rng, 1), (12, y), cv2.FONT_HERSHEY_SIMPLEX, w / 2400, accent if i == 0 else fg, 1, cv2.LINE_AA)
    x0 = side + 15
    y = bar + 15
    while y < h - 40:
        ch = int(rng.uniform(0.12, 0.3) * h)
        cols = int(rng.integers(1, 4))
        cw = (w - x0 - 15) // cols
        for c in range(cols):
            xa = x0 + c * cw
            card = (40, 42, 48) if dark else (255, 255, 255)
            cv2.rectangle(img, (xa, y), (xa + cw - 12, y + ch), card, -1)
            cv2.rectangle(img, (xa, y), (xa + cw - 12, y + ch), (70, 70, 75) if dark else (215, 215, 220), 1)
            for ty in range(y + 20, y + ch - 10, 16):
                cv2.putText(img, _words(rng, int(rng.integers(2, 6))), (xa + 8, ty), cv2.FONT_HERSHEY_SIMPLEX, w / 2600, fg, 1, cv2.LINE_AA)
            if rng.random() < 0.4:
                cv2.rectangle(img, (xa + 8, y + ch - 30), (xa + 90, y + ch - 10), accent, -1)
        y += ch + 15
    return img if rng.random() < 0.6 else jpeg(img, int(rng.integers(60, 95)))


def flat(rng: np.random.Generator, width: int) -> np.ndarray:
    """One colour (black, white, grey, a fundus orange or any), or a flat orange disc on black."""
    w, h = _canvas_size(rng, width)
    kind = int(rng.integers(6))
    colour = [(0, 0, 0), (255, 255, 255), (128, 128, 128), (205, 110, 45), tuple(int(v) for v in rng.integers(0, 256, 3)),
              (0, 0, 0)][kind]
    img = np.full((h, w, 3), colour, np.uint8)
    if kind == 5:  # the shape of a fundus with nothing in it
        cv2.circle(img, (w // 2, h // 2), int(0.45 * min(w, h)), (205, 110, 45), -1, cv2.LINE_AA)
    if rng.random() < 0.5:
        img = jpeg(img, int(rng.integers(70, 95)))
    return img


def noise_picture(rng: np.random.Generator, width: int) -> np.ndarray:
    """Uniform, Gaussian, blotchy or orange-tinted noise, or noise inside a disc on black."""
    w, h = _canvas_size(rng, width)
    kind = int(rng.integers(5))
    if kind == 0:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == 1:
        img = np.clip(rng.normal(128, 50, (h, w, 3)), 0, 255).astype(np.uint8)
    elif kind == 2:
        img = np.clip(128 + 120 * np.stack([_smooth_field(rng, h, w, 16) for _ in range(3)], axis=2), 0, 255).astype(np.uint8)
    else:
        tint = np.array([205, 110, 45], np.float32)
        img = np.clip(tint * rng.uniform(0.3, 1.4, (h, w, 1)).astype(np.float32), 0, 255).astype(np.uint8)
        if kind == 4:
            disc = np.zeros((h, w), np.uint8)
            cv2.circle(disc, (w // 2, h // 2), int(0.45 * min(w, h)), 1, -1)
            img *= disc[..., None]
    return img


def _fundus_diameter(rgb: np.ndarray) -> float:
    """The field of view's diameter in pixels (the shorter side when none is found)."""
    f = prepare(rgb)
    left, top, right, _ = f.crop_box
    return float(right - left)


def greyscale_fundus(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photograph in grey (luma), as a monochrome camera or a grey export gives it."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


def red_free_fundus(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A red-free picture: the green channel, shown grey or green-tinted, as red-free
    (green-filtered) fundus cameras display it."""
    g = rgb[..., 1].astype(np.float32)
    g = g * (200.0 / max(1.0, float(np.percentile(g, 99.5))))  # red-free pictures are shown stretched
    grey = rng.random() < 0.5
    out = np.stack([g, g, g] if grey else [0.25 * g, g, 0.3 * g], axis=2)
    return np.clip(out, 0, 255).astype(np.uint8)


def blurred_fundus(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strong defocus: sigma 6-12 model pixels, where vessels of the second order vanish."""
    return blur(rgb, model_pixels(float(rng.uniform(6, 12)), _fundus_diameter(rgb)))


def under_exposed_fundus(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure x0.07-0.12 (the flash did not fire)."""
    return exposure(rgb, float(rng.uniform(0.07, 0.12)))


def over_exposed_fundus(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure x3.5-5 (burnt out)."""
    return exposure(rgb, float(rng.uniform(3.5, 5.0)))


def compressed_fundus(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG quality 3-5: 8x8 blocks of flat colour."""
    return jpeg(rgb, int(rng.integers(3, 6)))


def half_field(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half the field of view: the picture cropped through the disc's centre, or half of
    the disc covered by a dark band (an eyelid, a misplaced camera)."""
    f = prepare(rgb)
    left, top, right, bottom = f.crop_box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    h, w = rgb.shape[:2]
    side = int(rng.integers(4))
    out = rgb.copy()
    if rng.random() < 0.5:
        crops = [out[:, : int(cx)], out[:, int(cx):], out[: int(cy)], out[int(cy):]]
        return np.ascontiguousarray(crops[side])
    if side == 0:
        out[:, : int(cx)] = 0
    elif side == 1:
        out[:, int(cx):] = 0
    elif side == 2:
        out[: int(cy)] = 0
    else:
        out[int(cy):] = 0
    return out


SCENES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "natural scene": natural_scene,
    "portrait": portrait,
    "document": document,
    "screenshot": screenshot,
    "flat": flat,
    "noise": noise_picture,
}
SPOILERS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "greyscale fundus": greyscale_fundus,
    "red-free fundus": red_free_fundus,
    "blurred fundus": blurred_fundus,
    "under-exposed fundus": under_exposed_fundus,
    "over-exposed fundus": over_exposed_fundus,
    "compressed fundus": compressed_fundus,
    "half field": half_field,
}


def generated_corpus(photographs: Sequence[np.ndarray] = (), *, per_category: int = PER_CATEGORY, width: int = 1024,
                     seed: int = 0, categories: Sequence[str] | None = None) -> Iterator[Picture]:
    """The ungradable corpus, picture by picture (generated on the fly, nothing stored).

    ``photographs`` (decoded RGB fundus photographs) feed the categories made from real
    photographs, taken in turn; without any, those categories are left out. ``width`` is
    the width of the generated scenes. The same arguments always give the same pictures.
    """
    chosen = tuple(categories) if categories is not None else CORPUS_CATEGORIES
    unknown = [c for c in chosen if c not in CORPUS_CATEGORIES]
    if unknown:
        raise StudyError(f"unknown corpus categories: {', '.join(unknown)} (known: {', '.join(CORPUS_CATEGORIES)})")
    for ci, category in enumerate(CORPUS_CATEGORIES):
        if category not in chosen:
            continue
        if category in SPOILERS and not photographs:
            continue
        for i in range(per_category):
            rng = np.random.default_rng([seed, ci, i])
            if category in SCENES:
                yield Picture(category, f"{category} #{i}", SCENES[category](rng, width))
            else:
                k = (i + ci) % len(photographs)  # categories start at different photographs
                yield Picture(category, f"{category} of photograph {k}", SPOILERS[category](photographs[k], rng))



# ------------------------------------------------------------------------ the measurements


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one picture, and what it cost."""

    name: str
    category: str
    gradable: bool
    reasons: tuple[str, ...]
    seconds: float  # prepare (field of view, trim, resize) and the assessment together


def verdict(name: str, category: str, rgb: np.ndarray) -> Verdict:
    """Prepare a decoded picture as the reader does and keep the gate's answer."""
    t = time.perf_counter()
    quality = _quality(prepare(rgb, name=name))
    return Verdict(name, category, quality.gradable, quality.reasons, time.perf_counter() - t)


def _quality(fundus: Fundus) -> Assessment:
    if fundus.quality is None:  # pragma: no cover - prepare always assesses
        raise StudyError("the reader did not assess the picture")
    return fundus.quality


def gradable_rate(paths: Sequence[Path], *, progress: Callable[[str], None] | None = None) -> list[Verdict]:
    """The gate on each real photograph, read as the viewer reads an upload (full size)."""
    out = []
    for path in paths:
        out.append(verdict(path.name, path.parent.name if path.parent.name != "images" else path.parent.parent.name,
                           read_photograph(path, max_width=None)))
        if progress:
            progress(path.name)
    return out


def corpus_verdicts(pictures: Iterator[Picture], *, progress: Callable[[str], None] | None = None) -> list[Verdict]:
    """The gate on each picture of the generated corpus."""
    out = []
    for pic in pictures:
        out.append(verdict(pic.name, pic.category, pic.rgb))
        if progress:
            progress(pic.name)
    return out


@dataclass(frozen=True)
class Curve:
    """One photograph degraded step by step in one way: where the gate closed, where the
    model's grade first moved (step indices into the kind's ``steps``; None: never)."""

    photo: str
    kind: str
    base_grade: int
    grades: tuple[int, ...]
    gradable: tuple[bool, ...]
    closes: int | None
    moves: int | None
    reasons: tuple[str, ...]  # the gate's reasons at the step where it closed

    @property
    def gate_first(self) -> bool:
        """True when no moved grade was ever let through: the grade never moved, or the
        gate had closed by the step where it did (a photograph refused at that step has
        no grade shown)."""
        return self.moves is None or (self.closes is not None and self.closes <= self.moves)


def _first(flags: Sequence[bool]) -> int | None:
    return next((i for i, f in enumerate(flags) if f), None)


def degradation_curves(model: LoadedModel, rgb: np.ndarray, name: str, *, kinds: Sequence[Degradation] = DEGRADATIONS,
                       seed: int = 0, batch: int = 9) -> list[Curve]:
    """Degrade one photograph by every kind, step by step, and read the gate and the grade.

    Each degraded picture goes through ``prepare`` as an upload would (field of view,
    trim, resize, assessment), then through the network; a kind's steps make one batch.
    The photograph should pass the gate as it is (``degradation_study`` sees to that).
    """
    import torch

    from ..propagation import forward_scores

    base = prepare(rgb, name=name)
    left, _, right, _ = base.crop_box
    diameter = float(right - left)
    with torch.inference_mode():
        base_grade = int(np.argmax(forward_scores(model.network, model.normalisation.to_tensor(base.image))[0]))
        curves = []
        for k, kind in enumerate(kinds):
            rng = np.random.default_rng([seed, k])
            prepared = [prepare(kind.apply(rgb, diameter, step, rng), name=name) for step in kind.steps]
            x = torch.cat([model.normalisation.to_tensor(f.image) for f in prepared])
            scores = np.concatenate([forward_scores(model.network, x[i : i + batch]) for i in range(0, len(x), batch)])
            grades = tuple(int(g) for g in np.argmax(scores, axis=1))
            gradable = tuple(_quality(f).gradable for f in prepared)
            closes = _first([not g for g in gradable])
            moves = _first([g != base_grade for g in grades])
            reasons = _quality(prepared[closes]).reasons if closes is not None else ()
            curves.append(Curve(name, kind.name, base_grade, grades, gradable, closes, moves, reasons))
    return curves


def degradation_study(model: LoadedModel, paths: Sequence[Path], *, kinds: Sequence[Degradation] = DEGRADATIONS, seed: int = 0,
                      progress: Callable[[str], None] | None = None) -> tuple[list[Curve], list[str]]:
    """``degradation_curves`` for each photograph (read at ``WORKING_WIDTH``); photographs
    that the gate refuses as they are are left out and named in the second list."""
    curves: list[Curve] = []
    refused: list[str] = []
    for i, path in enumerate(paths):
        rgb = read_photograph(path)
        if not _quality(prepare(rgb, name=path.name)).gradable:
            refused.append(path.name)
        else:
            curves.extend(degradation_curves(model, rgb, path.name, kinds=kinds, seed=seed + i))
        if progress:
            progress(path.name)
    return curves, refused


# ----------------------------------------------------------------------------- summaries


def summarise_curves(curves: Sequence[Curve], kinds: Sequence[Degradation] = DEGRADATIONS) -> list[dict[str, Any]]:
    """Per kind: how many photographs, the share where the gate closed first, and per step
    the share of photographs already refused and already re-graded."""
    rows = []
    for kind in kinds:
        mine = [c for c in curves if c.kind == kind.name]
        n = len(mine)
        closed = [sum(1 for c in mine if c.closes is not None and c.closes <= i) / max(n, 1) for i in range(len(kind.steps))]
        moved = [sum(1 for c in mine if c.moves is not None and c.moves <= i) / max(n, 1) for i in range(len(kind.steps))]
        # The step a photograph's event happens at, or None (never within the steps);
        # sorting puts None last, so the median is "never" when most never see it.
        close_at = [kind.steps[c.closes] if c.closes is not None else None for c in mine]
        move_at = [kind.steps[c.moves] if c.moves is not None else None for c in mine]
        let_through = [c.photo for c in mine if not c.gate_first]
        rows.append({
            "kind": kind.name, "unit": kind.unit, "steps": list(kind.steps), "photographs": n,
            "gate_first": sum(c.gate_first for c in mine), "gate_first_share": sum(c.gate_first for c in mine) / max(n, 1),
            "strictly_before": sum(1 for c in mine if c.moves is not None and c.closes is not None and c.closes < c.moves),
            "grade_moved": sum(1 for c in mine if c.moves is not None),
            "median_close": _median_step_of(close_at, kind), "median_move": _median_step_of(move_at, kind),
            "closed_by_step": closed, "moved_by_step": moved, "moved_while_gradable": let_through,
        })
    return rows


def _median_step_of(values: list[float | None], kind: Degradation) -> float | None:
    """Median of step values in the order the kind's steps are taken (None = never, last)."""
    order = {v: i for i, v in enumerate(kind.steps)}
    ranked = sorted(values, key=lambda v: order[v] if v is not None else len(order))
    return ranked[(len(ranked) - 1) // 2] if ranked else None


def summarise_verdicts(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Counts and rates per category (the gradable one reports its refusals with reasons)."""
    by: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by.setdefault(v.category, []).append(v)
    cats = {}
    for cat, vs in by.items():
        cats[cat] = {"n": len(vs), "ungradable": sum(not v.gradable for v in vs),
                     "ungradable_rate": sum(not v.gradable for v in vs) / len(vs)}
    seconds = [v.seconds for v in verdicts]
    return {
        "n": len(verdicts),
        "gradable": sum(v.gradable for v in verdicts),
        "ungradable": sum(not v.gradable for v in verdicts),
        "gradable_rate": sum(v.gradable for v in verdicts) / max(1, len(verdicts)),
        "ungradable_rate": sum(not v.gradable for v in verdicts) / max(1, len(verdicts)),
        "categories": cats,
        "refused": [{"name": v.name, "category": v.category, "reasons": list(v.reasons)} for v in verdicts if not v.gradable],
        "passed": [{"name": v.name, "category": v.category} for v in verdicts if v.gradable],
        "seconds_per_picture": {"mean": float(np.mean(seconds)) if seconds else None,
                                "max": float(np.max(seconds)) if seconds else None},
    }



# ------------------------------------------------------------------------------ the run

# Targets (see the module docstring).
TARGET_GRADABLE = 0.99
TARGET_UNGRADABLE = 0.95
TARGET_GATE_FIRST = 0.90
CURVE_PHOTOGRAPHS = 60  # degradation curves: ~50 forward passes per photograph, ~25 s each on 2 CPU cores


def run_gate(data: Path, model: LoadedModel, model_name: str, *, n: int | None = None, curves_n: int = CURVE_PHOTOGRAPHS,
             per_category: int = PER_CATEGORY, width: int = 1024, seed: int = 0,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """All three measurements as one JSON-ready document (``report`` prints it).

    ``n`` limits the IDRiD photographs (evenly spaced); the degradation curves use
    ``curves_n`` of those (evenly spaced, 0: none) and the corpus one photograph per
    picture of each category made from real photographs.
    """
    photos = evenly_spaced(idrid_photographs(data), n)
    t0 = time.perf_counter()
    real = summarise_verdicts(gradable_rate(photos, progress=progress))
    t1 = time.perf_counter()
    bases = [read_photograph(p) for p in evenly_spaced(photos, per_category)]
    corpus = summarise_verdicts(corpus_verdicts(generated_corpus(bases, per_category=per_category, width=width, seed=seed),
                                                progress=progress))
    t2 = time.perf_counter()
    curve_photos = evenly_spaced(photos, curves_n) if curves_n > 0 else []
    curves, refused = degradation_study(model, curve_photos, seed=seed, progress=progress) if curve_photos else ([], [])
    t3 = time.perf_counter()
    return {
        "data": str(data), "weights": model_name,
        "gradable": {**real, "target_rate": TARGET_GRADABLE, "met": real["gradable_rate"] >= TARGET_GRADABLE},
        "corpus": {**corpus, "per_category": per_category, "width": width, "seed": seed, "target_rate": TARGET_UNGRADABLE,
                   "met": corpus["ungradable_rate"] >= TARGET_UNGRADABLE,
                   "categories_below_target": [c for c, v in corpus["categories"].items() if v["ungradable_rate"] < TARGET_UNGRADABLE]},
        "degradation": {"photographs": len(curve_photos), "of": len(photos), "working_width": WORKING_WIDTH,
                        "refused_undegraded": refused, "target_share": TARGET_GATE_FIRST,
                        "kinds": summarise_curves(curves),
                        "curves": [{"photo": c.photo, "kind": c.kind, "base_grade": c.base_grade, "grades": list(c.grades),
                                    "gradable": list(c.gradable), "closes": c.closes, "moves": c.moves,
                                    "reasons": list(c.reasons)} for c in curves]},
        "seconds": {"gradable": t1 - t0, "corpus": t2 - t1, "degradation": t3 - t2},
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _step(v: float | None) -> str:
    return "never" if v is None else f"{v:g}"


def report(doc: dict[str, Any]) -> str:
    """The document of ``run_gate`` as the text the command prints."""
    out: list[str] = []
    g = doc["gradable"]
    out.append(f"Gradability gate, weights '{doc['weights']}', data {doc['data']}")
    out.append("")
    out.append(f"1. IDRiD training photographs called gradable: {g['gradable']} of {g['n']} = {_pct(g['gradable_rate'])} "
               f"(target >= {_pct(g['target_rate'])}: {'met' if g['met'] else 'NOT met'})")
    for cat, v in g["categories"].items():
        out.append(f"   {cat}: {v['n'] - v['ungradable']} of {v['n']} gradable")
    for r in g["refused"]:
        out.append(f"   refused {r['name']}: {'; '.join(r['reasons'])}")
    sp = g["seconds_per_picture"]
    if sp["mean"] is not None:
        out.append(f"   time per photograph (find the field, trim, resize, assess; decoding not counted): "
                   f"mean {1000 * sp['mean']:.0f} ms, max {1000 * sp['max']:.0f} ms")
    c = doc["corpus"]
    out.append("")
    out.append(f"2. Generated ungradable corpus called ungradable: {c['ungradable']} of {c['n']} = {_pct(c['ungradable_rate'])} "
               f"(target >= {_pct(c['target_rate'])}: {'met' if c['met'] else 'NOT met'}; {c['per_category']} per category, "
               f"scenes {c['width']} px wide, seed {c['seed']})")
    for cat, v in c["categories"].items():
        flag = "" if v["ungradable_rate"] >= c["target_rate"] else "   <- below target"
        out.append(f"   {cat:22s} {v['ungradable']:3d} of {v['n']:3d} = {_pct(v['ungradable_rate']):>6s}{flag}")
    for p in c["passed"]:
        out.append(f"   let through: {p['name']}")
    sp = c["seconds_per_picture"]
    if sp["mean"] is not None:
        out.append(f"   time per picture: mean {1000 * sp['mean']:.0f} ms, max {1000 * sp['max']:.0f} ms")
    d = doc["degradation"]
    out.append("")
    per_photo = doc["seconds"]["degradation"] / max(1, d["photographs"])
    if d["photographs"] == d["of"]:
        subset = f"all {d['of']} photographs"
    else:
        subset = (f"a fixed, evenly spaced subset of {d['photographs']} of the {d['of']} photographs ({per_photo:.0f} s each "
                  f"here: all {d['of']} would take {per_photo * d['of'] / 3600:.1f} h)")
    out.append(f"3. Degradation curves on {subset}, read {d['working_width']} px wide. Gate first = the gate had closed by "
               f"the step where the model's grade first moved, or the grade never moved (target >= {_pct(d['target_share'])} "
               "per kind).")
    if d["refused_undegraded"]:
        out.append(f"   left out (refused before any degradation): {', '.join(d['refused_undegraded'])}")
    out.append(f"   {'kind':11s} {'unit':28s} {'gate closes':>11s} {'grade moves':>11s} {'moved':>8s} {'gate first':>15s}")
    for k in d["kinds"]:
        flag = "" if k["gate_first_share"] >= d["target_share"] else "  <- below target"
        moved = f"{k['grade_moved']}/{k['photographs']}"
        first = f"{k['gate_first']}/{k['photographs']}"
        out.append(f"   {k['kind']:11s} {k['unit']:28s} {_step(k['median_close']):>11s} {_step(k['median_move']):>11s} "
                   f"{moved:>8s} {first:>7s} {_pct(k['gate_first_share']):>7s}{flag}")
    out.append("   (gate closes, grade moves: medians over photographs of the step where it first happens; 'never': "
               "not within the steps for most)")
    for k in d["kinds"]:
        out.append(f"   {k['kind']}: step            " + " ".join(f"{s:>6g}" for s in k["steps"]))
        out.append(f"   {'':{len(k['kind'])}s}  gate closed by  " + " ".join(f"{100 * x:5.0f}%" for x in k["closed_by_step"]))
        out.append(f"   {'':{len(k['kind'])}s}  grade moved by  " + " ".join(f"{100 * x:5.0f}%" for x in k["moved_by_step"]))
    s = doc["seconds"]
    out.append("")
    out.append(f"Wall time: gradable {s['gradable']:.0f} s, corpus {s['corpus']:.0f} s, degradation curves {s['degradation']:.0f} s.")
    return "\n".join(out)

__all__ = [
    "CORPUS_CATEGORIES", "CURVE_PHOTOGRAPHS", "DEGRADATIONS", "DEGRADATION_NAMES", "FUNDUS_CATEGORIES", "PER_CATEGORY",
    "SKIN_TONES", "TARGET_GATE_FIRST", "TARGET_GRADABLE", "TARGET_UNGRADABLE", "WORKING_WIDTH", "Curve", "Degradation", "Picture", "Verdict", "blur", "corpus_verdicts", "degradation_curves",
    "degradation_study", "evenly_spaced", "exposure", "generated_corpus", "gradable_rate", "idrid_photographs", "jpeg",
    "model_pixels", "noise", "read_photograph", "report", "resample", "run_gate", "shrink", "summarise_curves", "summarise_verdicts", "verdict",
]
