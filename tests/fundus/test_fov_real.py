"""The field of view found on real photographs (IDRiD training splits, CC BY 4.0, from
../shared/data), as they are and after ordinary changes: shrunk into a big black frame,
cut by black bands, framed by a thin bright border, underexposed.

A transformed photograph must give the circle found on the original mapped through the
same change (centre within 1.5 % of r, radius within 2 %), not the reader's fall-back to
the whole frame. Pictures with no disc (a landscape, a document, flat images, noise) must
still give None.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.fundus.decode import decode_image
from core.fundus.fov import disc_mask, fit_fov, visible_fraction
from tests.conftest import require_real_data
from tests.fundus.hostile_corpus import document, landscape
from tests.fundus.transforms import Circle, bands, bright_frame, darken, jpeg, small_disc

# Six photographs spread over both folders: three full-size (4288 x 2848), three half-size.
PHOTOS = (
    "idrid-segmentation-train/IDRiD_03.jpg",
    "idrid-segmentation-train/IDRiD_27.jpg",
    "idrid-grading-train/images/IDRiD_012.jpg",
    "idrid-grading-train/images/IDRiD_150.jpg",
)
CENTRE_TOL = 0.015  # of r
RADIUS_TOL = 0.02  # of r
# The IDRiD field of view measured with this code on all 467 photographs: r / width 0.3975 to
# 0.4431 (median 0.3978; two photographs taken with more zoom), centre at 0.459-0.468 of the
# width and 0.494-0.500 of the height; the disc is cut by the top and bottom of the picture at
# 0.835 r (0.75 r for the two zoomed ones).
R_OVER_WIDTH = (0.39, 0.45)
CX_OVER_WIDTH = (0.45, 0.48)
CY_OVER_HEIGHT = (0.49, 0.51)

# name -> change of the pixels and of the circle
Transform = Callable[[np.ndarray, Circle], tuple[np.ndarray, Circle]]


def _same_circle(change: Callable[[np.ndarray, Circle], np.ndarray]) -> Transform:
    return lambda rgb, c: (change(rgb, c), c)


def framed_small_disc(rgb: np.ndarray, circle: Circle) -> tuple[np.ndarray, Circle]:
    """A screenshot of a small photograph: pasted into a big black frame, a white border round it."""
    image, moved = small_disc(rgb, circle)
    return bright_frame(image, width=5), moved


TRANSFORMS: dict[str, Transform] = {
    # 1. a small disc in a big frame
    "small-400-in-1600x1200-left": lambda rgb, c: small_disc(rgb, c, diameter=400, at=(0.3, 0.6)),
    "small-400-in-1600x1200-top-right": lambda rgb, c: small_disc(rgb, c, diameter=400, at=(0.72, 0.35)),
    "small-320-in-1920x1080": lambda rgb, c: small_disc(rgb, c, diameter=320, frame=(1920, 1080), at=(0.45, 0.5)),
    # 2. black bands cutting the disc at 0.7 r or less
    "bands-0.7": _same_circle(lambda rgb, c: bands(rgb, c, top=0.7, bottom=0.7)),
    "bands-0.55": _same_circle(lambda rgb, c: bands(rgb, c, top=0.55, bottom=0.55)),
    "band-top-0.5": _same_circle(lambda rgb, c: bands(rgb, c, top=0.5, bottom=None)),
    "band-bottom-0.6": _same_circle(lambda rgb, c: bands(rgb, c, top=None, bottom=0.6)),
    # 3. a thin bright frame round the whole picture
    "frame-white-3": _same_circle(lambda rgb, c: bright_frame(rgb, width=3, value=255)),
    "frame-white-10": _same_circle(lambda rgb, c: bright_frame(rgb, width=10, value=255)),
    "frame-grey-3": _same_circle(lambda rgb, c: bright_frame(rgb, width=3, value=128)),
    "frame-grey-10": _same_circle(lambda rgb, c: bright_frame(rgb, width=10, value=128)),
    # 4. underexposed
    "dark-0.15": _same_circle(lambda rgb, c: darken(rgb, 0.15)),
    # two at once
    "small-400-framed": lambda rgb, c: framed_small_disc(rgb, c),
    "dark-0.15-bands-0.7": _same_circle(lambda rgb, c: darken(bands(rgb, c, top=0.7, bottom=0.7), 0.15)),
}


def read(rel: str) -> np.ndarray:
    return decode_image((require_real_data() / rel).read_bytes())


@pytest.fixture(scope="module")
def photos() -> list[tuple[str, np.ndarray, Circle]]:
    """The four photographs (two full-size, two half-size) and the circle found on each, untransformed."""
    out = []
    for rel in PHOTOS:
        rgb = read(rel)
        circle = fit_fov(rgb)
        assert circle is not None, rel
        out.append((Path(rel).name, rgb, circle))
    return out


def circle_error(found: Circle, expected: Circle) -> tuple[float, float]:
    """Centre distance and radius difference, as fractions of the expected radius."""
    r = expected[2]
    return math.hypot(found[0] - expected[0], found[1] - expected[1]) / r, abs(found[2] - expected[2]) / r


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transformed_photo_gives_the_mapped_circle(photos: list[tuple[str, np.ndarray, Circle]], name: str) -> None:
    failures = []
    for photo, rgb, circle in photos:
        image, expected = TRANSFORMS[name](rgb, circle)
        found = fit_fov(jpeg(image))
        if found is None:
            failures.append(f"{photo}: no disc found")
            continue
        centre, radius = circle_error(found, expected)
        if centre > CENTRE_TOL or radius > RADIUS_TOL:
            failures.append(f"{photo}: centre off by {centre:.2%} of r, radius by {radius:.2%}")
    assert not failures, f"{name}: " + "; ".join(failures)


def real_subset() -> list[Path]:
    """40 of the 467 photographs, evenly spread over both folders in name order."""
    root = require_real_data()
    files = sorted((root / "idrid-segmentation-train").glob("IDRiD_??.jpg"))
    files += sorted((root / "idrid-grading-train" / "images").glob("IDRiD_*.jpg"))
    assert len(files) == 467
    return files[:: len(files) // 40][:40]


def test_real_photographs_are_found_with_a_plausible_circle() -> None:
    problems, seconds = [], {}
    for path in real_subset():
        rgb = decode_image(path.read_bytes())
        h, w = rgb.shape[:2]
        start = time.perf_counter()
        circle = fit_fov(rgb)
        seconds.setdefault(w, []).append(time.perf_counter() - start)
        if circle is None:
            problems.append(f"{path.name}: no disc found")
            continue
        cx, cy, r = circle
        if not (R_OVER_WIDTH[0] <= r / w <= R_OVER_WIDTH[1] and CX_OVER_WIDTH[0] <= cx / w <= CX_OVER_WIDTH[1]
                and CY_OVER_HEIGHT[0] <= cy / h <= CY_OVER_HEIGHT[1]):
            problems.append(f"{path.name}: implausible circle r/w {r / w:.3f}, cx/w {cx / w:.3f}, cy/h {cy / h:.3f}")
            continue
        # Independently: the disc is the bright part of the photograph. Nearly all of the disc
        # (its dark rim aside) is clearly above the background, and nearly nothing outside it is.
        value = rgb[::4, ::4].max(axis=2)
        disc = disc_mask(*value.shape, (cx + 0.5) / 4 - 0.5, (cy + 0.5) / 4 - 0.5, r / 4)
        bright = value > 30
        inside, outside = (bright & disc).sum() / disc.sum(), (bright & ~disc).sum() / bright.sum()
        if inside < 0.97 or outside > 0.01:
            problems.append(f"{path.name}: disc {inside:.1%} bright, {outside:.1%} of the bright pixels outside it")
        if not 0.8 < visible_fraction(circle, w, h) < 0.95:  # cut at the top and bottom by the frame
            problems.append(f"{path.name}: visible fraction {visible_fraction(circle, w, h):.3f}")
    for w, times in sorted(seconds.items()):
        print(f"fit_fov on {w}-pixel-wide photographs: {1000 * np.mean(times):.0f} ms each ({len(times)} photographs)")
    assert not problems, "; ".join(problems)


# ------------------------------------------------------------------ no disc to find


def checkerboard() -> np.ndarray:
    board = (np.indices((480, 480)).sum(0) // 40 % 2 * 255).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def rectangle_photo() -> np.ndarray:
    """A bright, textured rectangular picture pasted on black: corners, no circle."""
    out = np.zeros((900, 1200, 3), np.uint8)
    out[150:750, 200:1000] = landscape(800, 600)
    return out


NO_DISC: dict[str, Callable[[], np.ndarray]] = {
    "landscape": landscape,
    "landscape-framed": lambda: bright_frame(landscape(), width=6),
    "document": document,
    "document-dark": lambda: darken(document(), 0.15),
    "checkerboard": checkerboard,
    "rectangle-photo": rectangle_photo,
    "black": lambda: np.zeros((480, 640, 3), np.uint8),
    "white": lambda: np.full((480, 640, 3), 255, np.uint8),
    "grey": lambda: np.full((480, 640, 3), 128, np.uint8),
    "black-framed": lambda: bright_frame(np.zeros((480, 640, 3), np.uint8), width=6),
    "noise": lambda: np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
    "noise-dark": lambda: np.random.default_rng(1).integers(0, 40, (480, 640, 3), dtype=np.uint8),
    "gradient": lambda: np.repeat(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], 480, 0).repeat(3, 2),
}


@pytest.mark.parametrize("name", NO_DISC)
def test_no_disc_is_found_where_there_is_none(name: str) -> None:
    image = NO_DISC[name]()
    assert fit_fov(image) is None
    assert fit_fov(jpeg(image)) is None


# ------------------------------------------------------------------ visible fraction


def test_visible_fraction_of_whole_and_cut_discs() -> None:
    assert visible_fraction((500, 400, 300), 1000, 800) == pytest.approx(1.0, abs=1e-9)
    # Cut exactly in half by the left edge (pixel edges at -0.5 and w - 0.5).
    assert visible_fraction((-0.5, 400, 300), 1000, 800) == pytest.approx(0.5, abs=1e-4)
    # Cut at the top and bottom at 0.7 r: the band |y| <= 0.7 r of the unit disc.
    k = 0.7
    band = 2 * (k * math.sqrt(1 - k * k) + math.asin(k)) / math.pi
    cx, cy, r = 700.0, 299.5, 600 / 1.4  # visible height 600 = 1.4 r
    assert visible_fraction((cx, cy, r), 1400, 600) == pytest.approx(band, abs=1e-4)
    # A quarter: the centre on the top-left corner.
    assert visible_fraction((-0.5, -0.5, 200), 1000, 800) == pytest.approx(0.25, abs=1e-4)
    assert visible_fraction((-500, -500, 100), 1000, 800) == 0.0


def test_visible_fraction_agrees_with_counting_pixels() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        w, h = (int(v) for v in rng.integers(200, 600, 2))
        circle = (float(rng.uniform(-50, w + 50)), float(rng.uniform(-50, h + 50)), float(rng.uniform(60, 400)))
        cx, cy, r = circle
        # Count pixel centres on a 4x finer grid over a canvas that holds the whole disc.
        f = 4
        pad = int(r) + 60  # the centre is at most 50 pixels outside the image
        big_w, big_h = (w + 2 * pad) * f, (h + 2 * pad) * f
        disc = disc_mask(big_h, big_w, (cx + pad + 0.5) * f - 0.5, (cy + pad + 0.5) * f - 0.5, r * f)
        inside = disc[pad * f : (pad + h) * f, pad * f : (pad + w) * f].sum()
        assert visible_fraction(circle, w, h) == pytest.approx(inside / disc.sum(), abs=2e-3)


def band_share(circle: Circle, width: int, height: int, top: float, bottom: float) -> float:
    """Exact share of the disc between y = cy - top * r and cy + bottom * r and inside the picture."""

    def below(t: float) -> float:  # share of the unit disc with y <= t
        t = max(-1.0, min(1.0, t))
        return (t * math.sqrt(1 - t * t) + math.asin(t)) / math.pi + 0.5

    cx, cy, r = circle
    lo, hi = max(-top, (-0.5 - cy) / r), min(bottom, (height - 0.5 - cy) / r)
    assert cx - r >= -0.5 and cx + r <= width - 0.5  # IDRiD discs are whole across
    return below(hi) - below(lo)


@pytest.mark.parametrize("cut", [(None, None), (0.7, 0.7), (0.55, 0.55), (0.5, None), (None, 0.6)], ids=str)
def test_visible_fraction_sees_black_bands_in_the_picture(photos: list[tuple[str, np.ndarray, Circle]], cut) -> None:
    top, bottom = cut
    for photo, rgb, circle in photos:
        h, w = rgb.shape[:2]
        image = jpeg(bands(rgb, circle, top=top, bottom=bottom))
        expected = band_share(circle, w, h, 1.0 if top is None else top, 1.0 if bottom is None else bottom)
        assert visible_fraction(circle, w, h, rgb=image) == pytest.approx(expected, abs=0.005), photo
        # The frame alone does not see the bands.
        assert visible_fraction(circle, w, h) == pytest.approx(band_share(circle, w, h, 1.0, 1.0), abs=1e-4), photo


def test_visible_fraction_of_a_picture_without_a_bright_disc_is_zero() -> None:
    assert visible_fraction((320, 240, 200), 640, 480, rgb=np.zeros((480, 640, 3), np.uint8)) == 0.0
