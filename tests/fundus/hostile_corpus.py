"""A corpus of bad and odd uploads, generated in memory (never stored in the repository).

``corpus()`` returns 250-odd ``Case``s: truncated and bit-flipped PNG, JPEG and TIFF; empty
and signature-only files; text, HTML, SVG, PDF and other documents named ``.png``; headers
claiming 50,000 x 50,000 pixels; 1x1 images and 10,000 x 40 strips; 16-bit, grey, CMYK,
RGBA, palette and other modes; animated GIF, PNG and WebP; every EXIF orientation; flat and
noise images; non-fundus pictures; misnamed and oddly built files. Everything is seeded,
so the corpus is the same on every machine and run.

Each case says what a correct reader must do with it:

- ``"ok"``: a ``Fundus`` (``size``, when given, is the upright original size);
- ``"refused"``: a ``FundusReadError`` (``words``, when given, must be in its message);
- ``"either"``: damaged files, where both are correct as long as nothing else escapes.

Every file name ends with a suffix that the CLI's ``grade`` collects and the viewer's
uploader accepts; a file whose real format has another suffix (GIF, AVIF, PCX, ...) is
named ``.png``, as a misnamed file would be.

``WriteRecorder`` records the files a block of code opens for writing (Python audit
hooks), to prove that reading and viewing write nothing.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import sys
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, features

from tests.image_bytes import cv2_encode, encode

RETINA = Path(__file__).resolve().parents[1] / "data" / "retina.jpg"
BOMB_SIDE = 50_000


@dataclass(frozen=True)
class Case:
    name: str  # unique file name, with an accepted suffix
    data: bytes
    group: str
    expect: str  # "ok", "refused" or "either"
    words: str = ""  # must appear in the refusal message
    size: tuple[int, int] | None = None  # upright (width, height) when expect == "ok"


# ----------------------------------------------------------------------------- helpers




def fundus_like(w: int = 160, h: int = 160, seed: int = 0) -> np.ndarray:
    """A small textured orange disc on black: what the reader expects, in miniature."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cx, cy, r = w / 2, h / 2, 0.45 * min(w, h)
    dist = np.hypot(xx - cx, yy - cy) / r
    shade = (1 - 0.5 * np.clip(dist, 0, 1) ** 2) * (1 + 0.1 * rng.standard_normal((h, w)).astype(np.float32))
    img = np.array([215, 110, 45], np.float32) * shade[..., None]
    img[dist > 1] = 0
    return np.clip(img, 0, 255).astype(np.uint8)


def png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A PNG whose header claims side x side RGB pixels (7.5 GB decoded); tiny on disk."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 100_000)) + png_chunk(b"IEND", b""))


def jpeg_bomb(side: int = BOMB_SIDE) -> bytes:
    """A real baseline JPEG with its SOF0 frame header patched to claim side x side pixels."""
    data = bytearray(encode(fundus_like(64, 64), "JPEG", quality=90))
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker == 0xC0:  # SOF0: length, precision, height, width, ...
            data[i + 5 : i + 9] = struct.pack(">HH", side, side)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF0 marker")


def tiff_bomb(side: int = BOMB_SIDE) -> bytes:
    data = bytearray(encode(fundus_like(32, 32), "TIFF"))
    n = struct.unpack("<H", data[8:10])[0] if data[:2] == b"II" else None
    assert n is not None
    for k in range(n):  # patch ImageWidth (256) and ImageLength (257), stored as SHORT or LONG
        entry = 10 + 12 * k
        (tag,) = struct.unpack("<H", data[entry : entry + 2])
        if tag in (256, 257):
            data[entry + 2 : entry + 4] = struct.pack("<H", 4)  # LONG
            data[entry + 8 : entry + 12] = struct.pack("<I", side)
    return bytes(data)


def bmp_bomb(side: int = BOMB_SIDE) -> bytes:
    data = bytearray(encode(fundus_like(16, 16), "BMP"))
    data[18:26] = struct.pack("<ii", side, side)
    return bytes(data)


def gif_bomb(side: int = 65_535) -> bytes:
    return (b"GIF89a" + struct.pack("<HHBBB", side, side, 0, 0, 0) + b","
            + struct.pack("<HHHHB", 0, 0, side, side, 0) + b"\x02\x02\x44\x01\x00;")


def webp_bomb() -> bytes:
    """A lossless WebP header claiming 16,384 x 16,384 pixels (the format's maximum)."""
    bits = (16_383) | (16_383 << 14)  # width-1, height-1, alpha 0, version 0
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 32
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def bmp_rle8(rgb: np.ndarray) -> bytes:
    """An 8-bit palette BMP with run-length encoded rows (BI_RLE8), which Pillow cannot write."""
    pal = Image.fromarray(rgb).quantize(64)
    idx = np.asarray(pal)
    h, w = idx.shape
    body = bytearray()
    for row in idx[::-1]:  # bottom-up
        x = 0
        while x < w:
            run = 1
            while x + run < w and run < 255 and row[x + run] == row[x]:
                run += 1
            body += bytes((run, int(row[x])))
            x += run
        body += b"\x00\x00"  # end of line
    body += b"\x00\x01"  # end of bitmap
    palette = np.asarray(pal.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
    colours = np.zeros((256, 4), np.uint8)
    colours[: len(palette), :3] = palette[:, ::-1]
    offset = 14 + 40 + 1024
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(body), 2835, 2835, 256, 0)
    head = b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset)
    return head + info + colours.tobytes() + bytes(body)


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def asymmetric(w: int = 48, h: int = 32) -> np.ndarray:
    """Blocks of colour no rotation or mirror maps onto itself."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 3] = (255, 0, 0)
    a[: h // 2, w // 3 : 2 * w // 3] = (0, 255, 0)
    a[h // 2 :, : w // 3] = (0, 0, 255)
    a[h // 2 :, 2 * w // 3 :] = (255, 255, 255)
    return a


def landscape(w: int = 960, h: int = 640, seed: int = 3) -> np.ndarray:
    """A non-fundus photograph, procedurally: sky, sun, hills, a house, grain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    sky = yy / h
    img[...] = np.stack([90 + 100 * sky, 150 + 60 * sky, 235 - 40 * sky], -1)
    sun = np.hypot(xx - 0.75 * w, yy - 0.2 * h) < 0.07 * h
    img[sun] = (255, 240, 190)
    hill = yy > 0.55 * h + 0.08 * h * np.sin(xx / w * 7)
    img[hill] = np.stack([60 + 30 * np.sin(xx / 13), 120 + 20 * np.cos(yy / 9), 50 + 0 * xx], -1)[hill]
    img[int(0.45 * h) : int(0.7 * h), int(0.2 * w) : int(0.35 * w)] = (170, 60, 50)  # house
    img[int(0.5 * h) : int(0.58 * h), int(0.24 * w) : int(0.28 * w)] = (250, 230, 120)  # window
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def moon(side: int = 400, seed: int = 4) -> np.ndarray:
    """A bright textured disc on black: looks like a field of view, is not a retina."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    d = np.hypot(xx - side / 2, yy - side / 2) / (0.4 * side)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (side, side)).astype(np.float32), (0, 0), 6)
    grey = np.clip(180 + 40 * tex / (tex.std() + 1e-6), 0, 255) * (d <= 1)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def document(w: int = 850, h: int = 1100) -> np.ndarray:
    """A scanned page: white paper, lines of 'text'."""
    page = np.full((h, w, 3), 245, np.uint8)
    rng = np.random.default_rng(5)
    for y in range(100, h - 100, 28):
        x = 80
        while x < w - 120:
            word = int(rng.integers(20, 90))
            page[y : y + 12, x : x + word] = 30
            x += word + 14
    return page


# ------------------------------------------------------------------------------ groups


def _truncated(out: list[Case]) -> None:
    rgb = fundus_like()
    bases = {
        "png": encode(rgb, "PNG"),
        "jpg": encode(rgb, "JPEG", quality=90),
        "tif": encode(rgb, "TIFF"),
        "lzw.tif": encode(rgb, "TIFF", compression="tiff_lzw"),
    }
    for ext, data in bases.items():
        for frac in (0.001, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9):
            out.append(Case(f"truncated-{int(frac * 1000):04d}.{ext}", data[: max(1, int(len(data) * frac))],
                            "truncated", "refused"))
        for cut in (16, 1):  # the last bytes: the image data may be whole, the file is not
            out.append(Case(f"truncated-minus{cut}.{ext}", data[:-cut], "truncated", "either"))
    photo = RETINA.read_bytes()
    for frac in (0.3, 0.6, 0.95):
        out.append(Case(f"truncated-photo-{int(frac * 100)}.jpg", photo[: int(len(photo) * frac)], "truncated", "refused"))


def _bit_flipped(out: list[Case]) -> None:
    rgb = fundus_like(seed=1)
    bases = {"png": encode(rgb, "PNG"), "jpg": encode(rgb, "JPEG", quality=85), "tif": encode(rgb, "TIFF")}
    rng = np.random.default_rng(6)
    for ext, data in bases.items():
        for k in range(15 if ext == "jpg" else 25):  # most flipped JPEGs still decode (and cost a grading)
            bad = bytearray(data)
            span = 64 if k < 6 else len(data)  # the first few hit the header only
            for pos in rng.integers(0, span, int(rng.integers(1, 9))):
                bad[pos] ^= 1 << int(rng.integers(0, 8))
            out.append(Case(f"bitflip-{k:02d}.{ext}", bytes(bad), "bit-flipped", "either"))


def _empty_and_signatures(out: list[Case]) -> None:
    out.append(Case("zero-bytes.png", b"", "empty", "refused", "empty"))
    out.append(Case("zero-bytes.jpg", b"", "empty", "refused", "empty"))
    for name, data in {
        "signature-only.png": b"\x89PNG\r\n\x1a\n",
        "signature-only.jpg": b"\xff\xd8\xff\xe0",
        "signature-only.tif": b"II*\x00\x08\x00\x00\x00",
        "signature-only-gif.png": b"GIF89a",
        "signature-only.webp": b"RIFF\x04\x00\x00\x00WEBP",
        "signature-only.bmp": b"BM",
        "header-no-idat.png": b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)),
        "one-byte.png": b"\x00",
    }.items():
        out.append(Case(name, data, "empty", "refused"))


def _not_images(out: list[Case]) -> None:
    docs = {
        "text.png": (b"Patient notes: fundus photograph to follow.\n" * 20, "text file"),
        "html.png": (b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><img src=eye.jpg></body></html>", "HTML page"),
        "svg.png": (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="640" height="640">'
                    b'<circle cx="320" cy="320" r="300" fill="orange"/></svg>', "SVG"),
        "svg-no-xml.png": (b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>', "SVG"),
        "pdf.png": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n", "PDF"),
        "xml.png": (b'<?xml version="1.0" encoding="UTF-8"?>\n<study><eye side="left"/></study>', "XML"),
        "json.png": (b'{"patient": "anonymous", "grade": 2}', "text file"),
        "csv.jpg": (b"file,grade\neye1.jpg,0\neye2.jpg,3\n", "text file"),
        "utf8-bom.png": ("\ufeffRétinographie — œil gauche\n".encode(), "text file"),
        "script.png": (b"#!/bin/sh\necho hello\n", "text file"),
        "zip.png": (b"PK\x03\x04" + b"\x14\x00" * 20, "ZIP"),
        "dicom.png": (bytes(128) + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + bytes(64), "DICOM"),
        "heic.jpg": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100), "HEIC"),
    }
    for name, (data, words) in docs.items():
        out.append(Case(name, data, "not an image", "refused", words))
    for name, data in {
        "utf16-text.png": "hello, not a picture\n".encode("utf-16"),
        "elf.png": b"\x7fELF\x02\x01\x01" + bytes(200),
        "gzip.png": b"\x1f\x8b\x08\x00" + bytes(60),
        "random-bytes.jpg": np.random.default_rng(8).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "eps-named.png": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        "pcx-named.png": encode(fundus_like(32, 32), "PCX"),
        "tga-named.png": encode(fundus_like(32, 32), "TGA"),
        "ico-named.png": encode(fundus_like(32, 32), "ICO"),
        "ppm-named.png": encode(fundus_like(32, 32), "PPM"),
    }.items():
        out.append(Case(name, data, "not an image", "refused"))


def _bombs(out: list[Case]) -> None:
    for name, data in {
        "bomb-50000x50000.png": png_bomb(),
        "bomb-50000x50000.jpg": jpeg_bomb(),
        "bomb-50000x50000.tif": tiff_bomb(),
        "bomb-50000x50000.bmp": bmp_bomb(),
        "bomb-65535x65535-gif.png": gif_bomb(),
        "bomb-16384x16384.webp": webp_bomb(),
        "bomb-6325x6325.png": png_bomb(6325),  # just over 40,000,000 pixels
        "bomb-65500x65500.jpg": jpeg_bomb(65_500),
    }.items():
        out.append(Case(name, data, "decompression bomb", "refused", "limit"))


def _tiny_and_strips(out: list[Case]) -> None:
    one = np.full((1, 1, 3), 200, np.uint8)
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif"), ("BMP", "bmp"), ("WEBP", "webp"), ("GIF", "gif.png")):
        out.append(Case(f"1x1.{ext}", encode(one, fmt), "tiny", "refused", "at least"))
    out.append(Case("7x7.png", encode(np.full((7, 7, 3), 90, np.uint8), "PNG"), "tiny", "refused", "at least"))
    out.append(Case("1x2000.png", encode(np.full((2000, 1, 3), 90, np.uint8), "PNG"), "tiny", "refused", "at least"))
    out.append(Case("8x8.png", encode(np.full((8, 8, 3), 90, np.uint8), "PNG"), "tiny", "ok", size=(8, 8)))
    rng = np.random.default_rng(9)
    strip = rng.integers(0, 255, (40, 10_000, 3), dtype=np.uint8)
    out.append(Case("strip-10000x40.png", encode(strip, "PNG"), "strip", "ok", size=(10_000, 40)))
    out.append(Case("strip-10000x40.jpg", encode(strip, "JPEG"), "strip", "ok", size=(10_000, 40)))
    out.append(Case("strip-10000x40.tif", encode(strip, "TIFF"), "strip", "ok", size=(10_000, 40)))
    out.append(Case("strip-40x10000.png", encode(np.ascontiguousarray(strip.swapaxes(0, 1)), "PNG"), "strip", "ok",
                    size=(40, 10_000)))


def _modes(out: list[Case]) -> None:
    rgb = fundus_like(128, 96, seed=2)
    grey = rgb[..., 0]
    size = (128, 96)
    deep = (rgb.astype(np.uint16) * 257)
    cases: dict[str, bytes] = {
        "grey16.png": encode(Image.fromarray(np.ascontiguousarray(deep[..., 0])), "PNG"),
        "grey16.tif": encode(Image.fromarray(np.ascontiguousarray(deep[..., 0])), "TIFF"),
        "grey12-in-16.png": encode(Image.fromarray((deep[..., 0] >> 4).astype(np.uint16)), "PNG"),
        "rgb16.png": cv2_encode(deep[..., ::-1], ".png"),
        "rgb16.tif": cv2_encode(deep[..., ::-1], ".tiff"),
        "rgba16.png": cv2_encode(np.dstack([deep[..., ::-1], np.full(deep.shape[:2], 65535, np.uint16)]), ".png"),
        "grey.png": encode(grey, "PNG"),
        "grey.jpg": encode(grey, "JPEG"),
        "grey.tif": encode(grey, "TIFF"),
        "grey.bmp": encode(grey, "BMP"),
        "grey.webp": encode(grey, "WEBP"),
        "grey-alpha.png": encode(Image.fromarray(np.dstack([grey, np.full_like(grey, 200)])), "PNG"),
        "cmyk.jpg": encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        "cmyk.tif": encode(Image.fromarray(rgb).convert("CMYK"), "TIFF"),
        "rgba.png": encode(Image.fromarray(np.dstack([rgb, np.full_like(grey, 255)])), "PNG"),
        "rgba-half-transparent.png": encode(Image.fromarray(np.dstack([rgb, np.full_like(grey, 128)])), "PNG"),
        "rgba.tif": encode(Image.fromarray(np.dstack([rgb, np.full_like(grey, 255)])), "TIFF"),
        "rgba.webp": encode(Image.fromarray(np.dstack([rgb, np.full_like(grey, 255)])), "WEBP", lossless=True),
        "palette.png": encode(Image.fromarray(rgb).convert("P"), "PNG"),
        "palette-gif.png": encode(Image.fromarray(rgb).convert("P"), "GIF"),
        "palette.bmp": encode(Image.fromarray(rgb).convert("P"), "BMP"),
        "palette.tif": encode(Image.fromarray(rgb).convert("P"), "TIFF"),
        "palette-transparency.png": encode(Image.fromarray(rgb).convert("P"), "PNG", transparency=0),
        "bilevel.png": encode(Image.fromarray(grey > 100), "PNG"),
        "bilevel.tif": encode(Image.fromarray(grey > 100), "TIFF"),
        "bilevel.bmp": encode(Image.fromarray(grey > 100), "BMP"),
        "int32.tif": encode(Image.fromarray(grey.astype(np.int32) * 1000), "TIFF"),
        "float32.tif": encode(Image.fromarray(grey.astype(np.float32) / 255), "TIFF"),
        "float32-rgb-nan.tif": cv2_encode(np.where(grey[..., None] > 100, rgb[..., ::-1] / 255, np.nan).astype(np.float32), ".tiff"),
        "ycbcr-444.jpg": encode(rgb, "JPEG", subsampling=0, quality=95),
        "progressive.jpg": encode(rgb, "JPEG", progressive=True),
        "lossless.webp": encode(rgb, "WEBP", lossless=True),
        "lossy.webp": encode(rgb, "WEBP", quality=60),
        "interlaced.png": cv2_encode(rgb[..., ::-1], ".png"),
        "jpeg2000-named.png": encode(rgb, "JPEG2000"),
    }
    if features.check("avif"):
        cases["avif-named.png"] = encode(rgb, "AVIF")
    for name, data in cases.items():
        out.append(Case(name, data, "mode", "ok", size=size))


def _animated(out: list[Case]) -> None:
    frames = [Image.fromarray(fundus_like(96, 96, seed=s)) for s in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    out.append(Case("animated-gif.png", gif.getvalue(), "animated", "ok", size=(96, 96)))
    pal = [f.convert("P", palette=Image.Palette.ADAPTIVE, colors=16) for f in frames]
    gif2 = io.BytesIO()
    pal[0].save(gif2, "GIF", save_all=True, append_images=pal[1:], duration=[50, 500, 50], loop=3,
                disposal=2, transparency=0, optimize=False)
    out.append(Case("animated-gif-disposal-transparency.png", gif2.getvalue(), "animated", "ok", size=(96, 96)))
    apng = io.BytesIO()
    frames[0].save(apng, "PNG", save_all=True, append_images=frames[1:], duration=100)
    out.append(Case("animated.png", apng.getvalue(), "animated", "ok", size=(96, 96)))
    webp = io.BytesIO()
    frames[0].save(webp, "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    out.append(Case("animated.webp", webp.getvalue(), "animated", "ok", size=(96, 96)))


def _exif(out: list[Case]) -> None:
    stored = asymmetric()
    h, w = stored.shape[:2]
    for orientation in range(1, 9):
        upright = (w, h) if orientation <= 4 else (h, w)
        exif = exif_bytes(orientation)
        out.append(Case(f"exif-orientation-{orientation}.jpg", encode(stored, "JPEG", exif=exif, quality=95), "exif", "ok", size=upright))
        out.append(Case(f"exif-orientation-{orientation}.png", encode(stored, "PNG", exif=exif), "exif", "ok", size=upright))
        if orientation in (3, 5):
            out.append(Case(f"exif-orientation-{orientation}.webp", encode(stored, "WEBP", exif=exif, lossless=True), "exif", "ok",
                            size=upright))
        if orientation in (6, 8):
            tif = Image.fromarray(stored)
            info = tif.getexif()
            info[0x0112] = orientation
            out.append(Case(f"exif-orientation-{orientation}.tif", encode(tif, "TIFF", exif=info), "exif", "ok", size=upright))
    for bogus in (0, 9, 65535):
        out.append(Case(f"exif-orientation-bogus-{bogus}.jpg", encode(stored, "JPEG", exif=exif_bytes(bogus)), "exif", "ok", size=(w, h)))
    # a JPEG whose APP1 'Exif' segment is garbage
    jpg = encode(stored, "JPEG")
    junk = b"Exif\x00\x00" + b"MM\x00*" + b"\xff\xfe" * 40
    broken = jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(junk) + 2) + junk + jpg[2:]
    out.append(Case("exif-garbage.jpg", broken, "exif", "either"))


def _flat_and_noise(out: list[Case]) -> None:
    rng = np.random.default_rng(10)
    for w, h in ((640, 480), (64, 64)):
        images = {
            "black": np.zeros((h, w, 3), np.uint8),
            "white": np.full((h, w, 3), 255, np.uint8),
            "grey": np.full((h, w, 3), 128, np.uint8),
            "noise": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        }
        for kind, arr in images.items():
            for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"))[: 2 if w > 64 else 1]:
                out.append(Case(f"{kind}-{w}x{h}.{ext}", encode(arr, fmt), "flat or noise", "ok", size=(w, h)))
    noise_grey = rng.integers(0, 256, (300, 300), dtype=np.uint8)
    out.append(Case("noise-grey-300.png", encode(noise_grey, "PNG"), "flat or noise", "ok", size=(300, 300)))
    out.append(Case("noise-16bit-300.png", encode(Image.fromarray(noise_grey.astype(np.uint16) * 257), "PNG"),
                    "flat or noise", "ok", size=(300, 300)))


def _non_fundus(out: list[Case]) -> None:
    scene = landscape()
    out.append(Case("landscape-photo.jpg", encode(scene, "JPEG", quality=88), "non-fundus", "ok", size=(960, 640)))
    out.append(Case("landscape-photo-rotated.jpg", encode(scene, "JPEG", quality=88, exif=exif_bytes(6)), "non-fundus", "ok",
                    size=(640, 960)))
    out.append(Case("moon.png", encode(moon(), "PNG"), "non-fundus", "ok", size=(400, 400)))
    out.append(Case("document-scan.png", encode(document(), "PNG"), "non-fundus", "ok", size=(850, 1100)))
    out.append(Case("document-scan.tif", encode(Image.fromarray(document()).convert("1"), "TIFF", compression="group4"),
                    "non-fundus", "ok", size=(850, 1100)))
    checker = (np.indices((480, 480)).sum(0) // 40 % 2 * 255).astype(np.uint8)
    out.append(Case("checkerboard.bmp", encode(checker, "BMP"), "non-fundus", "ok", size=(480, 480)))


def _misc(out: list[Case]) -> None:
    rgb = fundus_like(200, 150, seed=11)
    size = (200, 150)
    png, jpg, tif = encode(rgb, "PNG"), encode(rgb, "JPEG"), encode(rgb, "TIFF")
    top_down = bytearray(encode(rgb, "BMP"))
    top_down[22:26] = struct.pack("<i", -150)  # negative height: rows stored top to bottom
    top_down[54:] = encode(rgb[::-1], "BMP")[54:]
    ok = {
        "jpeg-named.png": jpg,
        "png-named.jpg": png,
        "tiff-named.jpeg": tif,
        "webp-named.tiff": encode(rgb, "WEBP"),
        "trailing-garbage.png": png + np.random.default_rng(12).bytes(200_000),
        "trailing-garbage.jpg": jpg + b"\x00" * 1000 + b"PK\x03\x04" + bytes(100),
        "big-text-chunk.png": png[:33] + png_chunk(b"tEXt", b"Comment\x00" + b"x" * 500_000) + png[33:],
        "bmp-top-down.bmp": bytes(top_down),
        "bmp-rle8.bmp": bmp_rle8(rgb),
        "tiff-big-endian.tif": cv2_encode(rgb[..., ::-1], ".tiff"),
        "tiff-deflate.tif": encode(rgb, "TIFF", compression="tiff_adobe_deflate"),
        "tiff-packbits.tif": encode(rgb, "TIFF", compression="packbits"),
        "tiff-jpeg.tif": encode(rgb, "TIFF", compression="jpeg"),
        "tiff-tiled.tif": encode(rgb, "TIFF", tile=(64, 64)) if _tiles_supported() else tif,
        "tiff-multipage.tif": _multipage(rgb),
        "png-with-icc.png": encode(rgb, "PNG", icc_profile=b"\x00" * 128),
        "jpeg-with-icc.jpg": encode(rgb, "JPEG", icc_profile=b"\x00" * 128),
        "png-16-colours.png": encode(Image.fromarray(rgb).quantize(16), "PNG", bits=4),
        "jpeg-restart-markers.jpg": cv2_encode(rgb[..., ::-1], ".jpg", cv2.IMWRITE_JPEG_RST_INTERVAL, 4),
        "double-extension.jpg.png": png,
    }
    for name, data in ok.items():
        out.append(Case(name, data, "misc", "ok", size=size))
    # A PNG whose IDAT CRC is wrong, and one with an impossible chunk length.
    bad_crc = bytearray(png)
    bad_crc[-20] ^= 0xFF
    out.append(Case("png-bad-crc.png", bytes(bad_crc), "misc", "either"))
    huge_len = png[:33] + struct.pack(">I", 0x7FFFFFF0) + b"IDAT" + png[41:]
    out.append(Case("png-impossible-chunk-length.png", huge_len, "misc", "either"))
    out.append(Case("over-50MB.png", b"\x89PNG\r\n\x1a\n" + bytes(50 * 2**20), "oversized file", "refused", "limit"))


def _tiles_supported() -> bool:
    try:
        encode(np.zeros((64, 64, 3), np.uint8), "TIFF", tile=(16, 16))
    except Exception:
        return False
    return True


def _multipage(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    first = Image.fromarray(rgb)
    first.save(buf, "TIFF", save_all=True, append_images=[Image.fromarray(rgb[::-1])])
    return buf.getvalue()


@functools.cache
def corpus() -> tuple[Case, ...]:
    out: list[Case] = []
    for group in (_truncated, _bit_flipped, _empty_and_signatures, _not_images, _bombs, _tiny_and_strips, _modes,
                  _animated, _exif, _flat_and_noise, _non_fundus, _misc):
        group(out)
    names = [c.name for c in out]
    assert len(names) == len(set(names)), "case names must be unique"
    return tuple(out)


def representative_third(cases: tuple[Case, ...] | None = None) -> list[Case]:
    """Every third case of every group (the first, fourth, ...), so each group is in it."""
    cases = corpus() if cases is None else cases
    by_group: dict[str, list[Case]] = {}
    for c in cases:
        by_group.setdefault(c.group, []).append(c)
    return [c for group in by_group.values() for c in group[::3]]


def write_corpus(folder: Path, cases: tuple[Case, ...] | None = None) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for c in corpus() if cases is None else cases:
        p = folder / c.name
        p.write_bytes(c.data)
        paths[c.name] = p
    return paths


# ---------------------------------------------------------------- recording file writes

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_WRITE_EVENTS = {"os.rename", "os.replace", "os.link", "os.symlink", "os.mkdir", "os.truncate", "shutil.copyfile",
                 "shutil.copytree", "shutil.move", "os.mkfifo", "os.mknod"}
_active: list[list[tuple[str, str]]] = []
_lock = threading.Lock()
_installed = False


def _audit(event: str, args: tuple) -> None:
    if not _active:
        return
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        if isinstance(path, int):
            return
        writes = (isinstance(mode, str) and any(m in mode for m in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if not writes:
            return
        record = (event, os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else repr(path))
    elif event in _WRITE_EVENTS:
        record = (event, " ".join(map(repr, args)))
    else:
        return
    with _lock:
        for sink in _active:
            sink.append(record)


class WriteRecorder:
    """``with WriteRecorder() as w: ...`` then ``w.writes``: every file opened for writing
    (or created, renamed, linked) by Python code in this process, from any thread.

    C libraries that write through their own ``fopen`` are not seen: pair this with a
    listing of the folders they could write to.
    """

    def __enter__(self) -> WriteRecorder:
        global _installed
        with _lock:
            if not _installed:
                sys.addaudithook(_audit)  # audit hooks cannot be removed: it is idle outside a recorder
                _installed = True
            self.writes: list[tuple[str, str]] = []
            _active.append(self.writes)
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _active.remove(self.writes)


def listing(root: Path, skip: tuple[str, ...] = (".git",)) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (relative path -> size, mtime), skipping the named folders."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for f in filenames:
            p = Path(dirpath) / f
            try:
                st = p.lstat()
            except OSError:
                continue
            found[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
    return found


def changed(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """Files that are new or modified between two listings."""
    return sorted(p for p, v in after.items() if before.get(p) != v)
