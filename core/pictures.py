"""Score maps as pictures: the diverging colour map, the one colour bar, overlays, PNG,
JPEG and the flicker GIF, and the one font loader. The CLI, the viewer and the quality
study all draw with these, so a map looks the same and is labelled the same everywhere.

NumPy and Pillow only (no matplotlib), so a 640x640 map renders in milliseconds.
Red is positive (evidence for the grade), blue negative, white zero.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Anchors of a red-white-blue map (ColorBrewer RdBu, reversed), interpolated once.
_ANCHORS = np.array(
    [
        (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240),
        (247, 247, 247),
        (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
    ],
    dtype=np.float64,
)
_N = 511  # odd: entry 255 is exactly zero
_POS = np.linspace(0, 1, len(_ANCHORS))
LUT = np.stack([np.interp(np.linspace(0, 1, _N), _POS, _ANCHORS[:, c]) for c in range(3)], 1).round().astype(np.uint8)
MASK_COLOUR = (0, 255, 255)  # cyan: stands out on the orange retina, also for red-green colour blindness


@dataclass(frozen=True)
class Scale:
    """How values became colours: needed to draw an honest colour bar."""

    vmax: float  # values at or beyond +-vmax saturate
    log: bool
    positive_only: bool
    reference: float  # log scale: t = sign(s) * log(1 + |s| / reference)

    def transform(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        if self.positive_only:
            v = np.maximum(v, 0.0)
        if self.log:
            return np.sign(v) * np.log1p(np.abs(v) / self.reference)
        return v

    def inverse(self, t: np.ndarray) -> np.ndarray:
        """The scores at relative positions ``t`` (-1..1) of the colour bar (undoes the log)."""
        tt = np.asarray(t, dtype=np.float64) * self.tmax
        return np.sign(tt) * self.reference * np.expm1(np.abs(tt)) if self.log else tt

    @property
    def tmax(self) -> float:
        return float(self.transform(np.array([self.vmax]))[0])


def make_scale(values: np.ndarray, *, log: bool = False, positive_only: bool = False,
               region: np.ndarray | None = None, percentile: float = 99.5, vmax: float | None = None) -> Scale:
    """A symmetric scale for ``values``; by default it saturates the top 0.5% of |s|.

    Single pixels of the input map can be hundreds of times the typical value;
    clipping at a high percentile keeps the rest visible (the bar says so).
    """
    v = np.asarray(values, dtype=np.float64)
    sel = v[region] if region is not None and region.any() else v.ravel()
    if positive_only:
        sel = sel[sel > 0]
    mag = np.abs(sel[np.isfinite(sel)])
    if vmax is None:
        vmax = float(np.percentile(mag, percentile)) if mag.size else 0.0
    vmax = vmax if vmax > 0 else (float(mag.max()) if mag.size and mag.max() > 0 else 1.0)
    nonzero = mag[mag > 0]
    reference = float(np.median(nonzero)) if nonzero.size else vmax
    return Scale(vmax=vmax, log=log, positive_only=positive_only, reference=max(reference, vmax * 1e-6))


def colourise(values: np.ndarray, scale: Scale) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8 on the diverging map."""
    t = scale.transform(values) / scale.tmax
    idx = np.clip(np.rint((np.nan_to_num(t) + 1.0) * (_N - 1) / 2), 0, _N - 1).astype(np.intp)
    return LUT[idx]


@lru_cache(maxsize=16)
def font(size: int = 22) -> ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (the bitmap default without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def format_tick(v: float, top: float | None = None) -> str:
    """A tick label with the same number of decimals along a bar (set by its end value ``top``)."""
    top = abs(v) if top is None else abs(top)
    if v == 0:
        return "0"
    if top < 1e-3:
        return f"{v:.1e}"
    decimals = int(np.clip(2 - np.floor(np.log10(top)), 0, 6))
    return f"{v:.{decimals}f}"


BAR_HEIGHT = 34  # colour strip of the colour bar, in pixels, at the default font


def colourbar(scale: Scale, width: int, label: str = "score per pixel", font_px: int = 22) -> np.ndarray:
    """The colour bar, horizontal: blue (negative) left, white at 0, red (positive) right.

    Ticks are in score units (the log scale inverted), and a caption says where the
    colours saturate.
    """
    font_ = font(font_px)
    pad = max(14, font_px // 2)
    bar_h = max(BAR_HEIGHT, round(1.5 * font_px))
    height = bar_h + 2 * font_px + 22
    img = Image.new("RGB", (width, height), "white")
    lo = 0.0 if scale.positive_only else -1.0
    ts = np.linspace(lo, 1.0, width - 2 * pad)
    strip = colourise(scale.inverse(ts)[None, :], scale)
    img.paste(Image.fromarray(np.repeat(strip, bar_h, axis=0)), (pad, 4))
    draw = ImageDraw.Draw(img)
    draw.rectangle([pad - 1, 3, width - pad, 4 + bar_h], outline=(120, 120, 120))
    few = scale.positive_only or width < 14 * font_px
    ticks = ([lo, (lo + 1) / 2, 1.0] if few else [-1.0, -0.5, 0.0, 0.5, 1.0])
    y = 4 + bar_h
    for t in ticks:
        x = pad + (t - lo) / (1.0 - lo) * (width - 2 * pad - 1)
        text = format_tick(float(scale.inverse(np.array([t]))[0]), scale.vmax)
        draw.line([(x, y), (x, y + 6)], fill="black", width=2)
        w = draw.textlength(text, font=font_)
        tx = min(max(x - w / 2, 2), width - w - 2)
        draw.text((tx, y + 7), text, fill="black", font=font_)
    # Aileron (Pillow's font) has no "<=" glyph: say in words where the colours saturate.
    caption = f"{label}, saturated beyond " + ("" if scale.positive_only else "\u00b1") + format_tick(scale.vmax)
    caption += " (log scale)" if scale.log else ""
    size = font_px
    while (w := draw.textlength(caption, font=font(size))) > width - 8 and size > 10:
        size -= 2  # a narrow bar: a smaller caption rather than a cut one
    draw.text(((width - w) / 2, y + 9 + font_px), caption, fill=(70, 70, 70), font=font(size))
    return np.asarray(img)


def with_colourbar(picture: np.ndarray, scale: Scale, label: str = "score per pixel", font_px: int = 22) -> np.ndarray:
    """``picture`` with its colour bar underneath (one image, same width)."""
    return np.concatenate([picture, colourbar(scale, picture.shape[1], label, font_px)], axis=0)


def titled(picture: np.ndarray, title: str, font_px: int = 20) -> np.ndarray:
    """``picture`` with its title above it (for files that leave the program).

    A long title gets a smaller font, down to 14 px, then wraps at spaces: never cut off.
    """
    width = picture.shape[1] - 16
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    size = font_px
    while measure.textlength(title, font=font(size)) > width and size > 14:
        size -= 1
    lines: list[str] = []
    for word in title.split(" "):
        if lines and measure.textlength(f"{lines[-1]} {word}", font=font(size)) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    step = size + 6
    head = Image.new("RGB", (picture.shape[1], step * len(lines) + 8), "white")
    draw = ImageDraw.Draw(head)
    for i, line in enumerate(lines):
        draw.text((8, 5 + i * step), line, fill="black", font=font(size))
    return np.concatenate([np.asarray(head), picture], axis=0)


def blend(base: np.ndarray, top: np.ndarray, alpha: float, where: np.ndarray | None = None) -> np.ndarray:
    """``top`` over ``base`` with opacity ``alpha`` (only inside ``where`` if given)."""
    a = float(np.clip(alpha, 0.0, 1.0))
    out = base.astype(np.float32) * (1 - a) + top.astype(np.float32) * a
    if where is not None:
        out = np.where(where[..., None], out, base.astype(np.float32))
    return out.round().astype(np.uint8)


def mask_overlay(retina: np.ndarray, mask: np.ndarray, alpha: float = 0.8, colour: tuple[int, int, int] = MASK_COLOUR) -> np.ndarray:
    """The k-sigma pixels painted over the retina in one bright colour."""
    paint = np.empty_like(retina)
    paint[:] = colour
    return blend(retina, paint, alpha, where=mask)


def png_bytes(image: np.ndarray | Image.Image, compress_level: int = 6) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def jpeg_bytes(picture: np.ndarray | Image.Image, quality: int = 92) -> bytes:
    """Fast lossless-looking JPEG (no chroma subsampling, so single red/blue pixels survive)."""
    img = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def flicker_gif(frames: list[np.ndarray], duration_ms: int = 700) -> bytes:
    """An endlessly looping GIF that alternates ``frames`` (the blog's comparison).

    One palette for all frames (fast octree over them together, so the marks' colours get
    entries of their own), then Floyd-Steinberg dithering: 255 flat colours without it
    posterise the retina's smooth shading into patches that look like lesions. About
    30 ms for two 640x640 frames, so the viewer can rebuild it as the sliders move.
    """
    palette = Image.fromarray(np.concatenate(frames, axis=0)).quantize(colors=255, method=Image.Quantize.FASTOCTREE)
    imgs = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=duration_ms, loop=0, disposal=1)
    return buf.getvalue()
