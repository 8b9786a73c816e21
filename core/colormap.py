"""Score maps as pictures: a diverging colour map, colour bars, overlays, the flicker GIF.

NumPy and Pillow only (no matplotlib), so a 640x640 map renders in milliseconds.
Red is positive (evidence for the grade), blue negative, white zero.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

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


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def format_value(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 0.01:
        return f"{v:.3g}"
    return f"{v:.2e}"


def colourbar(scale: Scale, height: int = 640, width: int = 110, label: str = "score") -> np.ndarray:
    """A vertical colour bar with ticks in score units, as (height, width, 3) uint8."""
    img = Image.new("RGB", (width, height), "white")
    bar_w, top, bottom = 18, 12, height - 12
    ts = np.linspace(1, -1, bottom - top)
    if scale.positive_only:
        ts = np.linspace(1, 0, bottom - top)
    idx = np.clip(np.rint((ts + 1) * (_N - 1) / 2), 0, _N - 1).astype(np.intp)
    strip = np.repeat(LUT[idx][:, None, :], bar_w, axis=1)
    img.paste(Image.fromarray(strip), (4, top))
    draw = ImageDraw.Draw(img)
    font = _font(12)
    ticks = [1.0, 0.5, 0.0, -0.5, -1.0] if not scale.positive_only else [1.0, 0.5, 0.0]
    for t in ticks:
        frac = (1 - t) / (2 if not scale.positive_only else 1)
        y = top + frac * (bottom - top - 1)
        # invert the transform to label the tick in score units
        tt = t * scale.tmax
        value = np.sign(tt) * scale.reference * np.expm1(abs(tt)) if scale.log else tt
        prefix = ">= " if t == 1.0 else ("<= " if t == -1.0 else "")
        draw.line([(4 + bar_w, y), (8 + bar_w, y)], fill="black")
        draw.text((11 + bar_w, y - 7), prefix + format_value(float(value)), fill="black", font=font)
    draw.text((4, 0), label, fill="black", font=_font(11))
    return np.asarray(img)


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


def annotate(image: np.ndarray, title: str, scale: Scale | None = None, label: str = "score") -> Image.Image:
    """Image with a title above and, if ``scale`` is given, its colour bar beside it."""
    h, w = image.shape[:2]
    bar = colourbar(scale, h, label=label) if scale is not None else None
    width = w + (bar.shape[1] if bar is not None else 0)
    out = Image.new("RGB", (width, h + 28), "white")
    out.paste(Image.fromarray(image), (0, 28))
    if bar is not None:
        out.paste(Image.fromarray(bar), (w, 28))
    ImageDraw.Draw(out).text((6, 6), title, fill="black", font=_font(15))
    return out


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def flicker_gif(frames: list[np.ndarray], duration_ms: int = 700) -> bytes:
    """An endlessly looping GIF that alternates ``frames`` (the blog's comparison).

    Fast octree quantisation (~10 ms a 640x640 frame, against ~150 ms for median
    cut), so the viewer can rebuild it as the sliders move.
    """
    imgs = [Image.fromarray(f).quantize(colors=255, method=Image.Quantize.FASTOCTREE) for f in frames]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=duration_ms, loop=0, disposal=1)
    return buf.getvalue()
