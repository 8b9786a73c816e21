"""Arrays to pictures for the page: maps over the grey retina, hidden grids as blocks.

Only picture-making lives here (no score arithmetic): colours, the colour bar, fonts
and encodings come from ``core.pictures``, so that the page, the CLI and the exports agree.
"""

from __future__ import annotations

import numpy as np

from core import INPUT_SIZE
from core import pictures as draw


def map_picture(values: np.ndarray, scale: draw.Scale, retina: np.ndarray | None = None,
                opacity: float = 0.7, fov: np.ndarray | None = None) -> np.ndarray:
    """A score map in colour; over ``retina`` when given, stronger scores more opaque.

    The retina is drawn faint but in its own colours (``faint``: the red of a haemorrhage
    and the yellow of an exudate stay told apart, while the map's saturated red and blue
    stand out over the pale fundus), and the overlay's opacity grows with |score| (up to
    ``opacity`` where the colour saturates), so the retina stays visible wherever a map
    is near zero. The reading view composes the same two layers in the browser.
    """
    colours = draw.colourise(values, scale)
    if retina is None:
        if fov is not None:
            return np.where(fov[..., None], colours, np.uint8(235))
        return colours
    strength = np.clip(np.abs(scale.transform(values)) / max(scale.tmax, 1e-30), 0.0, 1.0)
    alpha = (opacity * np.sqrt(strength))[..., None]
    out = faint(retina) * (1 - alpha) + colours.astype(np.float32) * alpha
    return out.round().astype(np.uint8)


FAINT = 0.45  # the retina's weight against white under a map (the reading view's layout image opacity too)


def faint(retina: np.ndarray) -> np.ndarray:
    """The retina in its colours, faded towards white (float32, 0..255), for under a map."""
    return retina.astype(np.float32) * FAINT + 255.0 * (1 - FAINT)


def grey(retina: np.ndarray) -> np.ndarray:
    """The retina in grey (float32, 0..255), so that red and blue stand out over it."""
    return retina.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def mask_picture(retina: np.ndarray, mask: np.ndarray, opacity: float) -> np.ndarray:
    """The k-sigma pixels painted over the retina."""
    return draw.mask_overlay(retina, mask, alpha=max(opacity, 0.6))


def nearest_up(values: np.ndarray, target: int = INPUT_SIZE) -> np.ndarray:
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


def shrink(picture: np.ndarray, side: int) -> np.ndarray:
    """A picture no larger than ``side`` pixels across (for thumbnails: fewer bytes to the browser)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(picture))
    if max(img.size) <= side:
        return picture
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(img)


def stamped(picture: np.ndarray, text: str, colour: tuple[int, int, int] = (178, 24, 43)) -> np.ndarray:
    """``text`` on a band across the middle of a picture (an ungradable photograph's thumbnail)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(picture if picture.ndim == 3 else np.dstack([picture] * 3)))
    pen = ImageDraw.Draw(img)
    size = max(12, img.width // 11)
    font = draw.font(size)
    w = pen.textlength(text, font=font)
    top = img.height // 2 - size
    pen.rectangle([0, top, img.width, top + 2 * size], fill=colour)
    pen.text(((img.width - w) / 2, top + size * 0.45), text, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def mask_rgba(mask: np.ndarray, alpha: float = 0.9, outline: int = 0) -> np.ndarray:
    """The k-sigma pixels in the mask colour, everything else transparent. With ``outline`` > 0
    only a border that many pixels wide is drawn (whole regions: the retina stays visible inside)."""
    if outline > 0:
        import cv2

        inner = cv2.erode(mask.astype(np.uint8), np.ones((2 * outline + 1, 2 * outline + 1), np.uint8),
                          borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
        mask = mask & ~inner
    out = np.zeros((*mask.shape, 4), np.uint8)
    out[mask] = (*draw.MASK_COLOUR, int(round(255 * alpha)))
    return out


def png_fast(picture: np.ndarray) -> bytes:
    """PNG at low compression: exact pixels, encoded in a few milliseconds (an RGBA overlay)."""
    import cv2

    arr = np.ascontiguousarray(picture)
    code = cv2.COLOR_RGBA2BGRA if arr.ndim == 3 and arr.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, buf = cv2.imencode(".png", cv2.cvtColor(arr, code), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB(A)
        raise ValueError("PNG encoding failed")
    return buf.tobytes()
