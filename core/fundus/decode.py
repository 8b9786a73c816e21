"""Safe decoding of untrusted image bytes into an 8-bit RGB array.

Uploads come from strangers, so decoding is defensive: the byte size is checked before
anything, the pixel count is read from the header and checked before any pixel is
decoded (decompression bombs), only a fixed list of well-tested Pillow decoders is
used, nothing is written to disk, and every failure becomes one ``FundusReadError``
with a one-line message that can be shown to a clinician as is. DICOM files are only
recognised here (``is_dicom``); ``dicom`` reads them, with the same limits.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin

from ..errors import CoreError

MAX_PIXELS: int = 40_000_000
MAX_BYTES: int = 50 * 1024 * 1024
# Below this an image carries no usable retinal detail at all; refused rather than warned.
MIN_SIDE = 8
# File names offered or picked up by name (uploads, folders, samples): the formats users are told about.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".dcm"})

_EXPECTED = "PNG, JPEG, TIFF, BMP, WebP or DICOM expected"
# Pillow decoders we trust with untrusted bytes. Formats without a magic-number check
# (TGA), with external helpers (EPS -> Ghostscript) or exotic ones are left out.
_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF", "JPEG2000", "AVIF")


class FundusReadError(CoreError):
    """The one error reading a photograph raises; its message is a single line fit to show."""


# --------------------------------------------------------------------------- reading


def read_bytes(src: str | os.PathLike | bytes | BinaryIO) -> tuple[bytes, str]:
    """Return the file's bytes and its base name, refusing oversized input unread."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        check_byte_size(len(data))
        return data, ""
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        shown = _one_line(str(path))
        try:
            size = os.stat(path).st_size
            check_byte_size(size)
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
        check_byte_size(len(data))
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
    check_byte_size(len(data))
    file_name = getattr(src, "name", "")
    return data, os.path.basename(file_name) if isinstance(file_name, str) else ""


def check_byte_size(n: int) -> None:
    """Refuse an empty file, or one over ``MAX_BYTES``, before anything else is done with it."""
    if n == 0:
        raise FundusReadError("file is empty")
    if n > MAX_BYTES:
        raise FundusReadError(f"file is {n / 2**20:.1f} MB; the limit is {MAX_BYTES / 2**20:g} MB")


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The VRs an explicit-VR element may start with (PS3.5 6.2): how a DICOM file without its
# 128-byte preamble is told from other bytes.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)


def is_dicom(data: bytes) -> bool:
    """True for a DICOM file: "DICM" after the 128-byte preamble, or a dataset that starts
    without one with a file-meta (0002,xxxx) or identifying (0008,xxxx) element.

    No picture format starts with these bytes, so the check cannot steal a photograph.
    """
    if data[128:132] == b"DICM":
        return True
    if len(data) < 8 or data[:2] not in (b"\x02\x00", b"\x08\x00") or int.from_bytes(data[2:4], "little") >= 0x100:
        return False
    return data[4:6] in _VRS or int.from_bytes(data[4:8], "little") <= 1024  # explicit VR, or an implicit VR length


# -------------------------------------------------------------------------- decoding


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes to an HxWx3 uint8 RGB array, upright per its EXIF orientation.

    The pixel count is checked from the header before decoding. Odd modes (16-bit,
    float, palette, alpha, CMYK, ...) are brought to 8-bit RGB; alpha is composited onto
    black because fundus backgrounds are black. Raises ``FundusReadError`` only.
    """
    try:
        data = bytes(data)
        check_byte_size(len(data))
        im = _open_header(data)
        if im is None:
            return _decode_tiff_with_cv2(data)
        with im:
            check_pixels(*im.size)
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
    if is_dicom(data):  # read_fundus reads these (dicom.py); decode_image reads pictures only
        return "this is a DICOM file: read it with read_fundus, not decode_image"
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


def check_pixels(width: int, height: int) -> None:
    """Refuse an image without pixels, or with more than ``MAX_PIXELS``, from its header's size."""
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
    check_pixels(width, height)
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
    rgb = scale_to_uint8(colour, _value_range(colour))
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if alpha is not None:
        a8 = scale_to_uint8(alpha, _type_range(alpha))
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


def scale_to_uint8(a: np.ndarray, white: float) -> np.ndarray:
    """Map 0..``white`` linearly (rounded, clipped) to 0..255 uint8."""
    if a.dtype == np.uint8 and white == 255.0:
        return np.ascontiguousarray(a)
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=white, neginf=0.0)
    a *= 255.0 / white
    np.clip(a, 0.0, 255.0, out=a)
    return (a + 0.5).astype(np.uint8)


def as_rgb8(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise FundusReadError(f"expected an image array, got {type(rgb).__name__}")
    if rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)  # OpenCV refuses negative strides (flipped views)
    return _to_rgb8(rgb)
