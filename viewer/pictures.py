"""Arrays to pictures for the page: colour bars sized for a browser, overlays, encodings.

Only picture-making lives here (no score arithmetic): colours come from
``core.colormap`` so that the page, the CLI and the exports agree.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core import colormap as cm

BAR_HEIGHT = 34  # colour strip of the horizontal colour bar, in pixels of the composite
FONT_PX = 22  # tick labels; the composite is shown at ~0.6x, so ~13 px on screen


@lru_cache(maxsize=8)
def font(size: int = FONT_PX) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _fmt(v: float, top: float | None = None) -> str:
    """A tick label with the same number of decimals along a bar (set by its end value ``top``)."""
    top = abs(v) if top is None else abs(top)
    if v == 0:
        return "0"
    if top < 1e-3:
        return f"{v:.1e}"
    decimals = int(np.clip(2 - np.floor(np.log10(top)), 0, 6))
    return f"{v:.{decimals}f}"


def tick_values(scale: cm.Scale, t: np.ndarray) -> np.ndarray:
    """The scores at relative positions ``t`` (-1..1) of the colour bar (inverts the log)."""
    tt = np.asarray(t, dtype=np.float64) * scale.tmax
    return np.sign(tt) * scale.reference * np.expm1(np.abs(tt)) if scale.log else tt


def colourbar_h(scale: cm.Scale, width: int, label: str = "score per pixel", font_px: int = FONT_PX) -> np.ndarray:
    """A horizontal colour bar: blue (negative) left, white at 0, red (positive) right."""
    font_ = font(font_px)
    pad = max(14, font_px // 2)
    bar_h = max(BAR_HEIGHT, round(1.5 * font_px))
    height = bar_h + 2 * font_px + 22
    img = Image.new("RGB", (width, height), "white")
    lo = 0.0 if scale.positive_only else -1.0
    ts = np.linspace(lo, 1.0, width - 2 * pad)
    values = tick_values(scale, ts)
    strip = cm.colourise(values[None, :], scale)
    img.paste(Image.fromarray(np.repeat(strip, bar_h, axis=0)), (pad, 4))
    draw = ImageDraw.Draw(img)
    draw.rectangle([pad - 1, 3, width - pad, 4 + bar_h], outline=(120, 120, 120))
    few = scale.positive_only or width < 14 * font_px
    ticks = ([lo, (lo + 1) / 2, 1.0] if few else [-1.0, -0.5, 0.0, 0.5, 1.0])
    y = 4 + bar_h
    for t in ticks:
        x = pad + (t - lo) / (1.0 - lo) * (width - 2 * pad - 1)
        v = float(tick_values(scale, np.array([t]))[0])
        text = _fmt(v, scale.vmax)
        draw.line([(x, y), (x, y + 6)], fill="black", width=2)
        w = draw.textlength(text, font=font_)
        tx = min(max(x - w / 2, 2), width - w - 2)
        draw.text((tx, y + 7), text, fill="black", font=font_)
    # Aileron (Pillow's font) has no "<=" glyph: say in words where the colours saturate.
    caption = f"{label}, saturated beyond " + ("" if scale.positive_only else "\u00b1") + _fmt(scale.vmax)
    caption += " (log scale)" if scale.log else ""
    size = font_px
    while (w := draw.textlength(caption, font=font(size))) > width - 8 and size > 10:
        size -= 2  # a narrow bar: a smaller caption rather than a cut one
    draw.text(((width - w) / 2, y + 9 + font_px), caption, fill=(70, 70, 70), font=font(size))
    return np.asarray(img)


def with_colourbar(picture: np.ndarray, scale: cm.Scale, label: str = "score per pixel",
                   font_px: int = FONT_PX) -> np.ndarray:
    """``picture`` with its horizontal colour bar underneath (one image, same width)."""
    bar = colourbar_h(scale, picture.shape[1], label, font_px)
    return np.concatenate([picture, bar], axis=0)


def map_picture(values: np.ndarray, scale: cm.Scale, retina: np.ndarray | None = None,
                opacity: float = 0.7, fov: np.ndarray | None = None) -> np.ndarray:
    """A score map in colour; over ``retina`` when given, stronger scores more opaque.

    The retina is drawn in grey (red evidence would vanish on an orange fundus) and the
    overlay's opacity grows with |score| (up to ``opacity`` where the colour saturates),
    so the retina stays visible wherever a map is near zero.
    """
    colours = cm.colourise(values, scale)
    if retina is None:
        if fov is not None:
            return np.where(fov[..., None], colours, np.uint8(235))
        return colours
    strength = np.clip(np.abs(scale.transform(values)) / max(scale.tmax, 1e-30), 0.0, 1.0)
    alpha = (opacity * np.sqrt(strength))[..., None]
    out = grey(retina)[..., None] * (1 - alpha) + colours.astype(np.float32) * alpha
    return out.round().astype(np.uint8)


def grey(retina: np.ndarray) -> np.ndarray:
    """The retina in grey (float32, 0..255), so that red and blue stand out over it."""
    return retina.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def mask_picture(retina: np.ndarray, mask: np.ndarray, opacity: float) -> np.ndarray:
    """The k-sigma pixels painted over the retina."""
    return cm.mask_overlay(retina, mask, alpha=max(opacity, 0.6))


def nearest_up(values: np.ndarray, target: int = 640) -> np.ndarray:
    """Repeat each cell so a small grid is shown as visible blocks (no smoothing)."""
    n = values.shape[-1]
    f = max(1, -(-target // n))
    return np.repeat(np.repeat(values, f, axis=-2), f, axis=-1)


def grid_lines(picture: np.ndarray, cells: int, colour: tuple[int, int, int] = (150, 150, 150)) -> np.ndarray:
    """Thin lines between the cells of a small upscaled grid (only for grids up to 20x20)."""
    if cells > 20:
        return picture
    out = picture.copy()
    step = picture.shape[0] / cells
    for i in range(1, cells):
        p = int(round(i * step))
        out[p, :] = colour
        out[:, p] = colour
    return out


def jpeg(picture: np.ndarray | Image.Image, quality: int = 92) -> bytes:
    """Fast lossless-looking JPEG (no chroma subsampling, so single red/blue pixels survive)."""
    img = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def png(picture: np.ndarray | Image.Image, compress_level: int = 6) -> bytes:
    img = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def titled(picture: np.ndarray, title: str) -> np.ndarray:
    """``picture`` with a one-line title above it (for downloaded files)."""
    font_ = font(20)
    head = Image.new("RGB", (picture.shape[1], 34), "white")
    ImageDraw.Draw(head).text((8, 6), title, fill="black", font=font_)
    return np.concatenate([np.asarray(head), picture], axis=0)
