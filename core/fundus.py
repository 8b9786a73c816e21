"""Safe reading of fundus photographs into the model's 640x640 input (PAPER.md section 2).

Uploads come from strangers, so reading is defensive: the byte size is checked before
anything, the pixel count is read from the header and checked before any pixel is
decoded (decompression bombs), only a fixed list of well-tested Pillow decoders is
used, nothing is written to disk, and every failure becomes one ``FundusReadError``
with a one-line message that can be shown to a clinician as is.

The paper trims the dark background outside the circular field of view (FOV) and resizes
so that the retina's diameter becomes 640 pixels; ``prepare`` does that: it finds the
disc, takes the square of side 2r around its centre (black padding where the square
leaves the photograph) and resizes it to 640x640. When no disc is found the whole image
is padded to a square and used, with a warning for the caller to show.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin

__all__ = [
    "MAX_BYTES",
    "MAX_PIXELS",
    "MIN_SIDE",
    "NO_FOV_WARNING",
    "SIZE",
    "Fundus",
    "FundusReadError",
    "IMAGE_SUFFIXES",
    "decode_image",
    "find_fov",
    "prepare",
    "read_fundus",
]

MAX_PIXELS: int = 40_000_000
MAX_BYTES: int = 50 * 1024 * 1024
SIZE = 640
# Below this an image carries no usable retinal detail at all; refused rather than warned.
MIN_SIDE = 8
# A field of view narrower than this is enlarged more than 2x: still graded, but warned.
LOW_RES_DIAMETER = SIZE // 2
NO_FOV_WARNING = "No circular field of view found: the whole image was used."
# File names offered or picked up by name (uploads, folders, samples): the formats users are told about.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})

_EXPECTED = "PNG, JPEG, TIFF, BMP or WebP expected"
# Pillow decoders we trust with untrusted bytes. Formats without a magic-number check
# (TGA), with external helpers (EPS -> Ghostscript) or exotic ones are left out.
_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF", "JPEG2000", "AVIF")

# FOV search parameters (in the pixels of the downscaled working copy).
_WORK_SIDE = 512  # the search runs on a copy whose longest side is at most this
_THRESHOLD_FRACTION = 0.07  # disc threshold: this far from the dark to the bright level
_THRESHOLD_MIN = 10  # ... but at least this above the dark level (JPEG noise on black)
_MIN_CONTRAST = 20  # bright level minus dark level below this: nothing to find
_INLIER_TOL = 2.0  # max distance of a boundary point from the circle to count as on it
_RANSAC_TRIES = 256


class FundusReadError(ValueError):
    """The one error ``read_fundus`` raises; its message is a single line fit to show."""


@dataclass(frozen=True, eq=False)
class Fundus:
    """A photograph as the model sees it, plus what is needed to map results back.

    ``crop_box`` follows Pillow's crop convention (pixel edges, right/bottom exclusive)
    in the upright original: pixel (x, y) of ``image`` shows original point
    ``(left + (x + 0.5) * s - 0.5, top + (y + 0.5) * s - 0.5)`` with ``s = (right - left) / SIZE``.
    ``eq=False`` because numpy arrays have no single truth value; use ``sha256`` to
    compare or cache.
    """

    image: np.ndarray  # (SIZE, SIZE, 3) uint8 RGB, black outside the FOV
    fov: np.ndarray  # (SIZE, SIZE) bool
    crop_box: tuple[int, int, int, int]  # (left, top, right, bottom) in the original
    original_size: tuple[int, int]  # (width, height) after EXIF orientation
    warnings: tuple[str, ...] = ()
    source: str = ""

    @property
    def sha256(self) -> str:
        """Hex digest of the pixels: a cache key independent of file format and name."""
        return hashlib.sha256(np.ascontiguousarray(self.image).tobytes()).hexdigest()


# --------------------------------------------------------------------------- reading


def read_fundus(src: str | os.PathLike | bytes | BinaryIO, *, name: str = "") -> Fundus:
    """Read a path, bytes or binary file object into a ``Fundus``.

    Raises only ``FundusReadError``: callers (viewer, CLI) show its message and need no
    other error handling.
    """
    try:
        data, guessed = _read_bytes(src)
        return prepare(decode_image(data), name=name or guessed)
    except FundusReadError:
        raise
    except MemoryError:
        raise FundusReadError("not enough memory to read this image") from None
    except Exception as exc:  # a bug or an unforeseen decoder failure: still one type
        raise FundusReadError(f"could not read the image ({type(exc).__name__})") from exc


def _read_bytes(src: str | os.PathLike | bytes | BinaryIO) -> tuple[bytes, str]:
    """Return the file's bytes and its base name, refusing oversized input unread."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        _check_byte_size(len(data))
        return data, ""
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        shown = _one_line(str(path))
        try:
            size = os.stat(path).st_size
            _check_byte_size(size)
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            raise FundusReadError(f"file not found: {shown}") from None
        except IsADirectoryError:
            raise FundusReadError(f"{shown} is a folder, not a file") from None
        except PermissionError:
            raise FundusReadError(f"permission denied: {shown}") from None
        except OSError as exc:
            raise FundusReadError(f"cannot read {shown}: {exc.strerror or exc}") from None
        _check_byte_size(len(data))
        return data, os.path.basename(str(path))
    read = getattr(src, "read", None)
    if read is None:
        raise FundusReadError(f"cannot read an image from a {type(src).__name__}")
    with contextlib.suppress(AttributeError, OSError, ValueError):
        src.seek(0)  # as Image.open does: an upload may already have been read once
    data = read(MAX_BYTES + 1)
    if isinstance(data, str):
        raise FundusReadError("the file was opened as text; open it in binary mode ('rb')")
    data = bytes(data)
    _check_byte_size(len(data))
    file_name = getattr(src, "name", "")
    return data, os.path.basename(file_name) if isinstance(file_name, str) else ""


def _check_byte_size(n: int) -> None:
    if n == 0:
        raise FundusReadError("file is empty")
    if n > MAX_BYTES:
        raise FundusReadError(f"file is {n / 2**20:.1f} MB; the limit is {MAX_BYTES / 2**20:g} MB")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -------------------------------------------------------------------------- decoding


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes to an HxWx3 uint8 RGB array, upright per its EXIF orientation.

    The pixel count is checked from the header before decoding. Odd modes (16-bit,
    float, palette, alpha, CMYK, ...) are brought to 8-bit RGB; alpha is composited onto
    black because fundus backgrounds are black. Raises ``FundusReadError`` only.
    """
    try:
        data = bytes(data)
        _check_byte_size(len(data))
        im = _open_header(data)
        if im is None:
            return _decode_tiff_with_cv2(data)
        with im:
            _check_pixels(*im.size)
            # TIFF tiles are decoded whole: a huge tile in a small image is a bomb too.
            tags = getattr(im, "tag_v2", None)
            if tags is not None and int(tags.get(322, 0)) * int(tags.get(323, 0)) > MAX_PIXELS:
                raise FundusReadError(f"image tiles are too large; the limit is {MAX_PIXELS:,} pixels")
            deep = _has_deep_colour(im)  # before load(), which clears the tile list
            im.load()  # animated images: the first frame (the one open() points at)
            orientation = _orientation(im)
            # Pillow would cut 16-bit RGB(A) to its high byte: decode those with cv2.
            arr = _cv2_decode(data, im.size) if deep else _pil_to_array(im)
        return _to_rgb8(_apply_orientation(arr, orientation))
    except FundusReadError:
        raise
    except MemoryError:
        raise FundusReadError("not enough memory to decode this image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FundusReadError(f"image is too large to decode safely; the limit is {MAX_PIXELS:,} pixels") from None
    except Exception:  # OSError, SyntaxError, ValueError, struct.error, cv2.error, ...
        raise FundusReadError("image is truncated or corrupt") from None


def _open_header(data: bytes) -> Image.Image | None:
    """Open with Pillow's allowed decoders, reading the header only.

    Mirrors ``Image.open`` but without its own decompression-bomb check (which runs at a
    higher limit and cannot say the image's size), so that ours is the one that fires.
    Returns None for TIFF that Pillow cannot represent (e.g. float RGB), to go to cv2.
    """
    Image.init()
    prefix = data[:16]
    recognised = False
    for fmt in _FORMATS:
        entry = Image.OPEN.get(fmt)
        if entry is None:
            continue
        factory, accept = entry
        verdict = accept(prefix) if accept else True
        if not verdict or isinstance(verdict, str):  # str: plugin missing its library
            continue
        recognised = True
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error, ValueError, OSError):
            continue
    if prefix[:4] in (b"II*\x00", b"MM\x00*"):
        return None
    if recognised:
        raise FundusReadError("image is truncated or corrupt")
    raise FundusReadError(_not_an_image_message(data))


def _not_an_image_message(data: bytes) -> str:
    """Name common wrong uploads instead of giving a generic refusal."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if data[128:132] == b"DICM":
        return "DICOM files are not supported; export the image as PNG or JPEG"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return "HEIC photos are not supported; export the image as JPEG or PNG"
    kind = None
    if head.startswith(b"%pdf"):
        kind = "a PDF document"
    elif b"<svg" in head:
        kind = "an SVG drawing"
    elif b"<html" in head or head.startswith(b"<!doctype html"):
        kind = "an HTML page"
    elif head.startswith(b"<?xml"):
        kind = "an XML document"
    elif head.startswith(b"pk\x03\x04"):
        kind = "a ZIP archive or Office document"
    elif b"\x00" not in data[:4096]:
        with contextlib.suppress(UnicodeDecodeError):
            data[:4096].decode("utf-8")
            kind = "a text file"
    if kind:
        return f"this is {kind}, not an image ({_EXPECTED})"
    return f"not a supported image file ({_EXPECTED})"


def _check_pixels(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise FundusReadError("image has no pixels")
    if width * height > MAX_PIXELS:
        raise FundusReadError(f"image is {width} x {height} pixels; the limit is {MAX_PIXELS:,} pixels")


def _orientation(im: Image.Image) -> int:
    """EXIF orientation tag (1..8); broken EXIF is ignored rather than refused."""
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


# What PIL.ImageOps.exif_transpose does for each orientation, on arrays (so that the
# cv2 path gets the same treatment).
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    return np.ascontiguousarray(_ORIENT.get(orientation, _ORIENT[1])(arr))


def _has_deep_colour(im: Image.Image) -> bool:
    """True for multi-channel images stored with 16 bits per sample."""
    if im.mode not in ("RGB", "RGBA", "LA", "RGBX"):
        return False
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if isinstance(tile, tuple) else getattr(tile, "args", None)
        raw = args if isinstance(args, str) else (args[0] if args else "")
        if isinstance(raw, str) and ";16" in raw:
            return True
    return False


def _png_chunks_intact(data: bytes, max_chunks: int = 100_000) -> bool:
    """Check every PNG chunk's CRC up to IEND.

    OpenCV's PNG reader can spend seconds on a few kilobytes with a bad IDAT CRC, which
    Pillow does not check; so such files are refused before they reach it.
    """
    pos = 8
    for _ in range(max_chunks):
        if pos + 12 > len(data):
            return False
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 12 + length
        if end > len(data):
            return False
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            return False
        if data[pos + 4 : pos + 8] == b"IEND":
            return True
        pos = end
    return False


def _cv2_decode(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """Decode at full depth with OpenCV (size already checked); returns RGB(A) order."""
    if data.startswith(b"\x89PNG") and not _png_chunks_intact(data):
        raise FundusReadError("image is truncated or corrupt")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or (arr.shape[1], arr.shape[0]) != tuple(size):
        raise FundusReadError("image is truncated or corrupt")
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[..., ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., [2, 1, 0, 3]]
    return arr


def _decode_tiff_with_cv2(data: bytes) -> np.ndarray:
    """TIFF flavours Pillow cannot hold (float or 32-bit RGB): size from the IFD, then cv2."""
    try:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
        fp = io.BytesIO(data)
        fp.seek(ifd.next)
        ifd.load(fp)
        width, height = int(ifd[256]), int(ifd[257])
        orientation = int(ifd.get(274, 1))
    except Exception:
        raise FundusReadError("image is truncated or corrupt") from None
    _check_pixels(width, height)
    arr = _cv2_decode(data, (width, height))
    return _to_rgb8(_apply_orientation(arr, orientation if 1 <= orientation <= 8 else 1))


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """Pixels as HxW or HxWxC in RGB(A) order, keeping 16-bit and float depth."""
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "LA", "I", "F") or mode.startswith("I;16"):
        return np.array(im)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return np.array(im.convert("RGBA" if has_alpha else "RGB"))
    if mode == "1":
        return np.array(im.convert("L"))
    if mode in ("La", "RGBa"):
        return np.array(im.convert(mode.upper()))
    return np.array(im.convert("RGB"))  # CMYK, YCbCr, LAB, HSV, RGBX, ...


def _to_rgb8(arr: np.ndarray) -> np.ndarray:
    """Any HxW / HxWxC (C = 1..4) array of any numeric depth to HxWx3 uint8 RGB.

    Colour is scaled by the bit depth its maximum implies (so 12-bit data in a 16-bit
    container is not left nearly black), alpha by its type's full range.
    """
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or not 1 <= arr.shape[2] <= 4 or arr.size == 0:
        raise FundusReadError(f"unsupported pixel layout {arr.shape}")
    if arr.dtype.kind not in "uifb":
        raise FundusReadError(f"unsupported pixel type {arr.dtype}")
    channels = arr.shape[2]
    colour = arr[..., :3] if channels >= 3 else arr[..., :1]
    alpha = arr[..., channels - 1] if channels in (2, 4) else None
    rgb = _scale_to_uint8(colour, _value_range(colour))
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if alpha is not None:
        a8 = _scale_to_uint8(alpha, _type_range(alpha))
        rgb = cv2.multiply(rgb, np.repeat(a8[..., None], 3, axis=2), scale=1 / 255)
    return np.ascontiguousarray(rgb)


def _type_range(a: np.ndarray) -> float:
    """Full scale of a type (for alpha, where 'opaque' is the type's maximum)."""
    return 1.0 if a.dtype.kind in "fb" else float(np.iinfo(a.dtype).max)


def _value_range(a: np.ndarray) -> float:
    """The white level: 255 for 8-bit, 2**bits - 1 (even bits) for integers, 1 or max for floats."""
    if a.dtype == np.uint8:
        return 255.0
    if a.dtype.kind == "b":
        return 1.0
    if a.dtype.kind == "f":
        finite = a[np.isfinite(a)]
        top = float(finite.max()) if finite.size else 0.0
        return 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else top
    top = int(a.max())
    bits = max(8, top.bit_length())
    bits += bits % 2
    return float(2**bits - 1)


def _scale_to_uint8(a: np.ndarray, white: float) -> np.ndarray:
    if a.dtype == np.uint8 and white == 255.0:
        return np.ascontiguousarray(a)
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=white, neginf=0.0)
    a *= 255.0 / white
    np.clip(a, 0.0, 255.0, out=a)
    return (a + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------- field of view


def find_fov(rgb: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """Find the circular field of view.

    Returns the mask (HxW bool: the disc within the image, or everything when no disc
    was found) and the circle (cx, cy, r) in this image's pixels (pixel centres at
    integer coordinates), or None.
    """
    rgb = _as_rgb8(rgb)
    h, w = rgb.shape[:2]
    circle = _fit_fov(rgb)
    if circle is None:
        return np.ones((h, w), bool), None
    return _disc_mask(h, w, *circle), circle


def _disc_mask(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Pixels whose centre lies in the disc, without an HxW float temporary."""
    rows = r * r - (np.arange(h)[:, None] - cy) ** 2
    half = np.where(rows >= 0, np.sqrt(np.maximum(rows, 0)), -1.0)
    return np.abs(np.arange(w)[None, :] - cx) <= half


def _fit_fov(rgb: np.ndarray) -> tuple[float, float, float] | None:
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
    disc = _disc_mask(hs, ws, cx, cy, r)
    inside = np.count_nonzero(filled & disc) / max(1, np.count_nonzero(disc))
    outside = np.count_nonzero(filled & ~_disc_mask(hs, ws, cx, cy, r + max(2.0, 0.02 * r)))
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


# ------------------------------------------------------------------- trim, pad, resize

_DISC = _disc_mask(SIZE, SIZE, (SIZE - 1) / 2, (SIZE - 1) / 2, SIZE / 2)


def prepare(rgb: np.ndarray, *, name: str = "") -> Fundus:
    """Find the FOV of a decoded image, then trim, pad and resize it as the paper does.

    The square of side 2r around the disc's centre becomes 640x640 (so the retina's
    diameter is 640); parts of the square outside the photograph are black and not FOV.
    Without a disc the whole image is padded to a centred square, with a warning.
    """
    rgb = _as_rgb8(rgb)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise FundusReadError(f"image is {w} x {h} pixels; at least {MIN_SIDE} pixels on each side are needed")
    notes: list[str] = []
    circle = _fit_fov(rgb)
    if circle is None:
        side = max(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        notes.append(NO_FOV_WARNING)
        if min(w, h) < LOW_RES_DIAMETER:
            notes.append(
                f"The image is only {min(w, h)} pixels on its shorter side ({SIZE} expected); fine detail may be missing."
            )
    else:
        cx, cy, r = circle
        side = max(1, round(2 * r))
        left, top = round(cx + 0.5 - r), round(cy + 0.5 - r)
        if side < LOW_RES_DIAMETER:
            notes.append(f"The field of view is only {side} pixels across ({SIZE} expected); fine detail may be missing.")
    box = (int(left), int(top), int(left + side), int(top + side))
    image, valid = _crop_resize(rgb, box)
    if circle is None:
        fov = valid
    else:
        fov = valid & _DISC
        image[~fov] = 0
    return Fundus(
        image=image,
        fov=fov,
        crop_box=box,
        original_size=(w, h),
        warnings=tuple(notes),
        source=name,
    )


def _as_rgb8(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise FundusReadError(f"expected an image array, got {type(rgb).__name__}")
    if rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)  # OpenCV refuses negative strides (flipped views)
    return _to_rgb8(rgb)


def _crop_resize(rgb: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize the part of ``box`` inside the image straight into its place in the output.

    Never materialises the padded square, which for a strip could be huge.
    """
    h, w = rgb.shape[:2]
    left, top, right, bottom = box
    scale = SIZE / (right - left)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    valid = np.zeros((SIZE, SIZE), bool)
    if x1 <= x0 or y1 <= y0:
        return image, valid
    ox0, oy0 = min(round((x0 - left) * scale), SIZE - 1), min(round((y0 - top) * scale), SIZE - 1)
    ox1 = min(max(round((x1 - left) * scale), ox0 + 1), SIZE)
    oy1 = min(max(round((y1 - top) * scale), oy0 + 1), SIZE)
    region = rgb[y0:y1, x0:x1]
    shrinking = (ox1 - ox0) * (oy1 - oy0) < (x1 - x0) * (y1 - y0)
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    image[oy0:oy1, ox0:ox1] = cv2.resize(region, (ox1 - ox0, oy1 - oy0), interpolation=interpolation)
    valid[oy0:oy1, ox0:ox1] = True
    return image, valid
