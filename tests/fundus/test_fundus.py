"""Tests for core.fundus: safe decoding, field-of-view detection, trim/pad/resize.

Every image except the real photograph is generated in memory, small, so the file runs
in seconds.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps, features

from core import fundus
from core.fundus import (
    MAX_PIXELS,
    NO_FOV_WARNING,
    SIZE,
    UNEXPECTED_FAILURE,
    Fundus,
    FundusReadError,
    decode_image,
    find_fov,
    prepare,
    read_fundus,
    to_input,
    to_original,
)
from tests.image_bytes import cv2_encode, encode

DATA = Path(__file__).resolve().parents[1] / "data"
RETINA = DATA / "retina.jpg"


# ------------------------------------------------------------------------- helpers




def synthetic_fundus(w: int, h: int, cx: int, cy: int, r: int, *, notch: bool = True, seed: int = 0) -> np.ndarray:
    """Textured orange disc on black with vignetting, a lateral light gradient and a notch."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3)
    texture /= texture.std() + 1e-6
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    dist = np.hypot(xx - cx, yy - cy) / r
    shade = (1 - 0.55 * np.clip(dist, 0, 1) ** 2) * (0.65 + 0.35 * xx / w)
    img = np.array([215, 110, 45], np.float32) * (shade * (1 + 0.08 * texture))[..., None]
    disc = np.zeros((h, w), np.uint8)
    cv2.circle(disc, (cx, cy), r, 1, -1)
    if notch:  # a small tab printed at the disc's edge, top right
        nx, ny, half = cx + (r + 3) * 0.7071, cy - (r + 3) * 0.7071, max(4, r // 14)
        cv2.rectangle(disc, (int(nx - half), int(ny - half)), (int(nx + half), int(ny + half)), 1, -1)
    return np.clip(img * disc[..., None], 0, 255).astype(np.uint8)


def jpeg_roundtrip(rgb: np.ndarray, quality: int = 70) -> bytes:
    return cv2_encode(rgb[..., ::-1], ".jpg", cv2.IMWRITE_JPEG_QUALITY, quality)


def circle_of_box(box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    left, top, right, bottom = box
    assert right - left == bottom - top
    return (left + right) / 2 - 0.5, (top + bottom) / 2 - 0.5, (right - left) / 2


def assert_valid_fundus(f: Fundus) -> None:
    assert isinstance(f, Fundus)
    assert f.image.shape == (SIZE, SIZE, 3) and f.image.dtype == np.uint8
    assert f.fov.shape == (SIZE, SIZE) and f.fov.dtype == bool
    assert not f.image[~f.fov].any()
    assert all(isinstance(v, int) for v in f.crop_box)
    assert f.crop_box[2] - f.crop_box[0] == f.crop_box[3] - f.crop_box[1] > 0


def assert_one_line_error(excinfo: pytest.ExceptionInfo[FundusReadError]) -> str:
    """The refusal is one short line from a check that knows what is wrong, not the reader's catch-all."""
    assert excinfo.type is FundusReadError
    message = str(excinfo.value)
    assert message and "\n" not in message and len(message) < 200
    assert not message.startswith(UNEXPECTED_FAILURE), f"refused by the reader's catch-all: {message}"
    return message


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every pixel decoding (each Pillow decoder made, each ``cv2.imdecode``): a refusal
    "before decoding" leaves it empty, whatever the clock says."""
    calls: list[str] = []
    pil_decoder, cv2_imdecode = Image._getdecoder, cv2.imdecode

    def getdecoder(mode, name, *args, **kwargs):
        calls.append(f"Pillow {name}")
        return pil_decoder(mode, name, *args, **kwargs)

    def imdecode(*args, **kwargs):
        calls.append("cv2.imdecode")
        return cv2_imdecode(*args, **kwargs)

    monkeypatch.setattr(Image, "_getdecoder", getdecoder)
    monkeypatch.setattr(cv2, "imdecode", imdecode)
    return calls


def assert_decoders_are_watched(calls: list[str]) -> None:
    """A legal 16-bit PNG goes through both decoders: the recorder sees decoding."""
    calls.clear()
    decode_image(cv2_encode(gradient_rgb().astype(np.uint16) * 257, ".png"))
    assert any(c.startswith("Pillow") for c in calls) and "cv2.imdecode" in calls, calls


# ----------------------------------------------------------------- the real photograph


def test_retina_photo_fov_matches_visible_disc() -> None:
    rgb = decode_image(RETINA.read_bytes())
    assert rgb.shape == (1411, 1411, 3)
    mask, circle = find_fov(rgb)
    assert circle is not None and mask.shape == rgb.shape[:2]
    cx, cy, r = circle
    # The visible disc, measured independently: pixels clearly brighter than the background.
    visible = cv2.medianBlur(rgb.max(axis=2), 5) > 40
    ys, xs = np.nonzero(visible)
    assert abs(cx - xs.mean()) < 4 and abs(cy - ys.mean()) < 4
    assert abs(r - math.sqrt(visible.sum() / math.pi)) < 0.015 * r
    assert (mask & visible).sum() / visible.sum() > 0.99


def test_retina_photo_fundus() -> None:
    f = read_fundus(RETINA)
    assert_valid_fundus(f)
    assert f.original_size == (1411, 1411)
    assert f.warnings == ()
    assert f.source == "retina.jpg"
    assert f.fov.mean() == pytest.approx(math.pi / 4, abs=0.01)
    cx, cy, r = circle_of_box(f.crop_box)
    assert abs(cx - 705) < 8 and abs(cy - 705) < 8 and 680 < r < 710
    # The disc fills the frame: its rim is bright, the corners are black.
    assert f.image[320, 5].max() > 60 and f.image[320, 634].max() > 60
    assert len(f.sha256) == 64 and f.sha256 == read_fundus(RETINA.read_bytes()).sha256


def test_read_fundus_accepts_path_bytes_and_file_like(tmp_path: Path) -> None:
    data = RETINA.read_bytes()
    reference = read_fundus(data, name="eye.jpg")
    assert reference.source == "eye.jpg"
    assert read_fundus(data).source == ""
    with open(RETINA, "rb") as fh:
        from_file = read_fundus(fh)
    assert from_file.source == "retina.jpg"
    stream = io.BytesIO(data)
    stream.read()  # already consumed by someone else: read from the start anyway
    variants = [read_fundus(str(RETINA)), read_fundus(stream), from_file]
    assert {v.sha256 for v in variants} == {reference.sha256}
    copy = tmp_path / "copy.jpeg"
    copy.write_bytes(data)
    assert read_fundus(copy, name="x").source == "x"


# -------------------------------------------------------------- synthetic discs (FOV)


@pytest.mark.parametrize(
    "w, h, cx, cy, r, tol",
    [
        (480, 480, 240, 240, 220, 2.0),  # centred, nearly touching the sides
        (600, 500, 260, 270, 190, 2.0),  # off-centre, with margins
        (1200, 1000, 640, 480, 450, 3.0),  # large: found on the downscaled copy
        (300, 260, 140, 132, 100, 2.0),  # small: found, but enlarged with a warning
    ],
)
def test_synthetic_disc_recovered(w: int, h: int, cx: int, cy: int, r: int, tol: float) -> None:
    rgb = synthetic_fundus(w, h, cx, cy, r)
    f = read_fundus(jpeg_roundtrip(rgb))
    assert_valid_fundus(f)
    assert f.original_size == (w, h)
    ecx, ecy, er = circle_of_box(f.crop_box)
    assert abs(ecx - cx) <= tol and abs(ecy - cy) <= tol and abs(er - r) <= tol
    assert NO_FOV_WARNING not in f.warnings
    assert any("pixels across" in note for note in f.warnings) == (2 * r < 320)
    _, circle = find_fov(decode_image(jpeg_roundtrip(rgb)))
    assert circle is not None
    assert np.allclose(circle, (cx, cy, r), atol=tol)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(250, 400),
    h=st.integers(250, 400),
    r_frac=st.floats(0.3, 0.6),
    dx=st.floats(-0.15, 0.15),
    dy=st.floats(-0.15, 0.15),
    seed=st.integers(0, 1000),
)
def test_random_discs_recovered(w: int, h: int, r_frac: float, dx: float, dy: float, seed: int) -> None:
    r = round(r_frac * min(w, h))
    cx, cy = round(w / 2 + dx * w), round(h / 2 + dy * h)
    _, circle = find_fov(synthetic_fundus(w, h, cx, cy, r, seed=seed))
    assert circle is not None
    assert np.allclose(circle, (cx, cy, r), atol=2.0)


@settings(max_examples=40, deadline=None)
@given(
    w=st.integers(8, 80),
    h=st.integers(8, 80),
    kind=st.sampled_from(["noise", "constant", "blobs"]),
    seed=st.integers(0, 2**16),
)
def test_prepare_always_gives_a_valid_fundus(w: int, h: int, kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "constant":
        rgb = np.full((h, w, 3), rng.integers(0, 256), np.uint8)
    else:
        rgb = cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    f = prepare(rgb)
    assert_valid_fundus(f)
    assert f.original_size == (w, h) and f.fov.any()


def test_disc_cut_at_top_and_bottom() -> None:
    full = synthetic_fundus(560, 560, 280, 280, 260)
    rgb = full[70:490]  # the image borders cut the disc: wider than tall
    f = read_fundus(jpeg_roundtrip(rgb))
    assert_valid_fundus(f)
    ecx, ecy, er = circle_of_box(f.crop_box)
    assert abs(ecx - 280) <= 2 and abs(ecy - 210) <= 2 and abs(er - 260) <= 2
    assert f.crop_box[1] < 0 and f.crop_box[3] > 420  # padded above and below
    # Padding is not field of view: the top and bottom rows are outside it.
    assert not f.fov[:40].any() and not f.fov[-40:].any()
    assert f.fov[320].sum() > 600
    assert f.fov.mean() < math.pi / 4 - 0.05


def test_disc_cut_by_black_bands_inside_the_image() -> None:
    rgb = synthetic_fundus(600, 600, 300, 300, 260)
    rgb[:90] = 0
    rgb[-90:] = 0
    _, circle = find_fov(decode_image(jpeg_roundtrip(rgb)))
    assert circle is not None
    assert np.allclose(circle, (300, 300, 260), atol=2.5)


def test_prepare_takes_arrays_directly() -> None:
    rgb = synthetic_fundus(400, 400, 200, 200, 180, notch=False)
    f = prepare(rgb, name="synthetic")
    assert_valid_fundus(f)
    assert f.source == "synthetic"
    assert f.fov.mean() == pytest.approx(math.pi / 4, abs=0.01)
    # float images in [0, 1], greyscale and flipped views are accepted as well
    assert prepare(rgb.astype(np.float32) / 255).sha256 == f.sha256
    assert prepare(rgb[:, ::-1]).sha256 == prepare(np.ascontiguousarray(rgb[:, ::-1])).sha256
    assert_valid_fundus(prepare(rgb[..., 0]))


# --------------------------------------------------------------- no field of view


def test_all_black_image_gives_whole_image_with_warning() -> None:
    f = read_fundus(encode(np.zeros((300, 200, 3), np.uint8), "PNG"))
    assert_valid_fundus(f)
    assert NO_FOV_WARNING in f.warnings
    assert f.crop_box == (-50, 0, 250, 300)
    # fov is the part that came from the image: the centred 2/3 of the columns
    assert f.fov[:, 320].all() and not f.fov[:, :100].any() and not f.fov[:, -100:].any()
    mask, circle = find_fov(np.zeros((50, 60, 3), np.uint8))
    assert circle is None and mask.shape == (50, 60) and mask.all()


def test_random_noise_gives_whole_image_with_warning() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    f = read_fundus(encode(noise, "PNG"))
    assert_valid_fundus(f)
    assert NO_FOV_WARNING in f.warnings
    assert f.fov.all() and f.crop_box == (0, 0, 256, 256)


def test_tiny_and_strip_images() -> None:
    with pytest.raises(FundusReadError) as excinfo:
        read_fundus(encode(np.full((1, 1, 3), 200, np.uint8), "PNG"))
    assert "at least 8 pixels" in assert_one_line_error(excinfo)
    f = read_fundus(encode(np.full((8, 8, 3), 200, np.uint8), "PNG"))
    assert_valid_fundus(f)
    assert NO_FOV_WARNING in f.warnings and len(f.warnings) == 2
    strip = np.full((40, 10000, 3), 120, np.uint8)
    f = read_fundus(encode(strip, "PNG"))
    assert_valid_fundus(f)
    assert NO_FOV_WARNING in f.warnings
    assert f.original_size == (10000, 40)
    assert 1 <= f.fov.any(axis=1).sum() <= 4 and f.fov.any(axis=0).all()


# ---------------------------------------------------------------- modes and formats


def gradient_rgb(h: int = 24, w: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) % 256], -1).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "GIF_RGB"])
def test_lossless_formats(fmt: str) -> None:
    rgb = gradient_rgb()
    if fmt == "WEBP":
        data = encode(rgb, "WEBP", lossless=True)
    elif fmt == "GIF_RGB":  # few colours, so the palette is exact
        rgb = (rgb // 128) * 255
        data = encode(rgb, "GIF")
    else:
        data = encode(rgb, fmt)
    out = decode_image(data)
    assert out.dtype == np.uint8 and out.flags.writeable
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_and_cmyk_jpeg() -> None:
    rgb = gradient_rgb()
    assert np.abs(decode_image(encode(rgb, "JPEG", quality=95)).astype(int) - rgb).mean() < 4
    cmyk = Image.fromarray(rgb).convert("CMYK")
    out = decode_image(encode(cmyk, "JPEG", quality=95))
    expected = np.asarray(cmyk.convert("RGB")).astype(int)
    assert out.shape == rgb.shape and np.abs(out.astype(int) - expected).mean() < 4


def test_16_bit_grey_png_and_tiff() -> None:
    grey = np.linspace(0, 65535, 24 * 32).reshape(24, 32).astype(np.uint16)
    big_endian = Image.fromarray(grey.astype(">u2"))
    assert big_endian.mode == "I;16B"
    for data in (
        cv2_encode(grey, ".png"),
        encode(Image.fromarray(grey), "TIFF"),
        encode(big_endian, "TIFF"),
    ):
        out = decode_image(data)
        assert out.shape == (24, 32, 3)
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
        assert np.abs(out[..., 0].astype(int) - grey / 257).max() <= 1


def test_12_bit_data_in_16_bit_container_is_scaled_to_12_bits() -> None:
    grey = np.linspace(0, 4095, 24 * 32).reshape(24, 32).astype(np.uint16)
    out = decode_image(cv2_encode(grey, ".png"))
    assert out.max() == 255
    assert np.abs(out[..., 0].astype(int) - grey.astype(float) * 255 / 4095).max() <= 1


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_16_bit_rgb(ext: str) -> None:
    rgb16 = gradient_rgb().astype(np.uint16) * 257
    rgb16[..., 2] //= 4  # a darker blue channel, to catch channel-order mistakes
    out = decode_image(cv2_encode(rgb16[..., ::-1], ext))  # cv2 writes BGR
    assert np.abs(out.astype(int) - rgb16 / 257).max() <= 1


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_12_bit_rgb_in_16_bit_container(ext: str) -> None:
    # Pillow alone would keep only the high byte (values <= 15): nearly black.
    rgb12 = (gradient_rgb().astype(np.uint32) * 4095 // 255).astype(np.uint16)
    out = decode_image(cv2_encode(rgb12[..., ::-1], ext))
    assert out.max() == 255
    assert np.abs(out.astype(int) - rgb12 * 255.0 / 4095).max() <= 1


def test_16_bit_rgb_png_with_impossible_chunk_length_is_refused_before_opencv(decoder_calls: list[str]) -> None:
    # OpenCV (which decodes 16-bit RGB) took seconds on this 8 KB file before the chunk check.
    data = bytearray(cv2_encode(gradient_rgb().astype(np.uint16) * 257, ".png"))
    data[33] = 0xE1  # top byte of the length of the chunk after IHDR
    with pytest.raises(FundusReadError) as excinfo:
        decode_image(bytes(data))
    assert "truncated or corrupt" in assert_one_line_error(excinfo)
    assert "cv2.imdecode" not in decoder_calls, decoder_calls  # the chunk check refused it first
    assert_decoders_are_watched(decoder_calls)


def test_16_bit_rgba_png_is_composited_on_black() -> None:
    rgba = np.zeros((16, 16, 4), np.uint16)
    rgba[..., :3] = 60000
    rgba[:8, :, 3] = 65535
    out = decode_image(cv2_encode(rgba[..., [2, 1, 0, 3]], ".png"))
    assert (out[:8] >= 232).all() and (out[8:] == 0).all()


def test_float_images() -> None:
    grey = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    out = decode_image(encode(Image.fromarray(grey, mode="F"), "TIFF"))
    assert np.abs(out[..., 0].astype(int) - grey * 255).max() <= 1
    rgb = gradient_rgb().astype(np.float32) / 255  # Pillow cannot hold float RGB: cv2 path
    out = decode_image(cv2_encode(rgb[..., ::-1], ".tiff"))
    assert np.abs(out.astype(int) - rgb * 255).max() <= 1


def test_palette_alpha_grey_and_bilevel_modes() -> None:
    rgb = gradient_rgb()
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    np.testing.assert_array_equal(decode_image(encode(pal, "PNG")), np.asarray(pal.convert("RGB")))

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:, :10, 3] = 0
    rgba[:, 10:20, 3] = 128
    out = decode_image(encode(rgba, "PNG")).astype(int)
    assert (out[:, :10] == 0).all()
    assert np.abs(out[:, 10:20] - rgb[:, 10:20].astype(float) * 128 / 255).max() <= 1
    np.testing.assert_array_equal(out[:, 20:], rgb[:, 20:])

    pal_t = Image.fromarray(np.repeat(np.arange(4, dtype=np.uint8), 8)[None].repeat(8, 0), "P")
    pal_t.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255])
    out = decode_image(encode(pal_t, "PNG", transparency=1))
    assert (out[:, 8:16] == 0).all() and (out[:, :8] == [255, 0, 0]).all()

    la = Image.fromarray(np.dstack([rgb[..., 0], np.full(rgb.shape[:2], 255, np.uint8)]), "LA")
    out = decode_image(encode(la, "PNG"))
    np.testing.assert_array_equal(out, np.repeat(rgb[..., :1], 3, axis=2))

    grey = decode_image(encode(Image.fromarray(rgb[..., 1]), "PNG"))
    np.testing.assert_array_equal(grey, np.repeat(rgb[..., 1:2], 3, axis=2))

    bits = Image.fromarray(rgb[..., 0] > 127)
    assert bits.mode == "1"
    out = decode_image(encode(bits, "PNG"))
    assert set(np.unique(out)) == {0, 255}
    np.testing.assert_array_equal(out[..., 0] == 255, rgb[..., 0] > 127)


def test_animated_gif_takes_first_frame() -> None:
    frames = [Image.new("RGB", (16, 12), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = decode_image(buf.getvalue())
    assert out.shape == (12, 16, 3) and (out == [255, 0, 0]).all()


@pytest.mark.skipif(not features.check("webp"), reason="Pillow without WebP")
def test_animated_webp_takes_first_frame() -> None:
    frames = [Image.new("RGB", (16, 12), c) for c in ((0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert (decode_image(buf.getvalue()) == [0, 255, 0]).all()


# Orientation -> what a viewer must do to the stored pixels (EXIF 2.3, tag 0x0112).
EXPECTED_ORIENTATION = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirror horizontally
    3: lambda a: np.rot90(a, 2),  # rotate 180
    4: lambda a: a[::-1],  # mirror vertically
    5: lambda a: np.rot90(a[:, ::-1], 1),  # mirror horizontally, rotate 90 CCW
    6: lambda a: np.rot90(a, -1),  # rotate 90 CW
    7: lambda a: np.rot90(a[:, ::-1], -1),  # mirror horizontally, rotate 90 CW
    8: lambda a: np.rot90(a, 1),  # rotate 90 CCW
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation(orientation: int, fmt: str) -> None:
    stored = np.zeros((16, 24, 3), np.uint8)  # asymmetric: 4 coloured 8x8 blocks, 2 black
    stored[:8, :8] = (255, 0, 0)
    stored[:8, 8:16] = (0, 255, 0)
    stored[8:, :8] = (0, 0, 255)
    stored[8:, 16:] = (255, 255, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    lossy = {"quality": 98, "subsampling": 0} if fmt == "JPEG" else {}
    data = encode(stored, fmt, exif=exif.tobytes(), **lossy)
    out = decode_image(data).astype(int)
    expected = EXPECTED_ORIENTATION[orientation](stored).astype(int)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= (0 if fmt == "PNG" else 40)
    pillow = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(out, pillow)


# ----------------------------------------------------------------- refusals


def png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def bomb_png() -> bytes:
    """A 50000 x 50000 RGB PNG header over a tiny IDAT."""
    header = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + png_chunk(b"IEND", b"")
    )


def bomb_gif() -> bytes:
    """A 65535 x 65535 GIF screen and frame over a few bytes of data."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
        + b","
        + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0)
        + b"\x02\x02\x44\x01\x00;"
    )


@pytest.mark.parametrize(("make", "size"), [(bomb_png, "50000 x 50000"), (bomb_gif, "65535 x 65535")], ids=["png", "gif"])
def test_decompression_bomb_refused_from_header(decoder_calls: list[str], make, size: str) -> None:
    with pytest.raises(FundusReadError) as excinfo:
        read_fundus(make())
    message = assert_one_line_error(excinfo)
    assert size in message and f"{MAX_PIXELS:,}" in message  # the header check's refusal
    assert decoder_calls == []  # no pixel was decoded
    assert_decoders_are_watched(decoder_calls)


def test_oversized_file_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fundus.decode, "MAX_BYTES", 1000)
    path = tmp_path / "big.png"
    path.write_bytes(b"\x00" * 5000)
    for src in (path, path.read_bytes(), io.BytesIO(path.read_bytes())):
        with pytest.raises(FundusReadError) as excinfo:
            read_fundus(src)
        assert "limit" in assert_one_line_error(excinfo)


def small_png_and_jpeg() -> tuple[bytes, bytes]:
    rgb = synthetic_fundus(96, 96, 48, 48, 44, notch=False)
    return encode(rgb, "PNG"), encode(rgb, "JPEG", quality=90)


NOT_IMAGES = {
    "empty": (b"", "empty"),
    "text": (b"hello, this is not a picture\n", "text file"),
    "html": (b"<!DOCTYPE html>\n<html><body>oops</body></html>", "HTML"),
    "svg": (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    "pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "PDF"),
    "heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC photos are not supported"),
    "binary": (bytes(range(256)) * 4, "not a supported image file"),
}


@pytest.mark.parametrize("kind", NOT_IMAGES)
def test_non_images_named_png_are_refused(kind: str, tmp_path: Path) -> None:
    data, words = NOT_IMAGES[kind]
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    with pytest.raises(FundusReadError) as excinfo:
        read_fundus(path)
    assert words in assert_one_line_error(excinfo)


def test_formats_outside_the_allowed_list_are_refused() -> None:
    pcx = encode(gradient_rgb(), "PCX")
    with pytest.raises(FundusReadError) as excinfo:
        read_fundus(pcx)
    assert "PNG, JPEG, TIFF, BMP, WebP or DICOM expected" in assert_one_line_error(excinfo)


@pytest.mark.parametrize("which", ["png", "jpeg"])
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.7])
def test_truncated_files_are_refused(which: str, fraction: float) -> None:
    png, jpeg = small_png_and_jpeg()
    data = png if which == "png" else jpeg
    with pytest.raises(FundusReadError) as excinfo:
        read_fundus(data[: int(len(data) * fraction)])
    assert_one_line_error(excinfo)


def test_truncated_real_photo_is_refused() -> None:
    data = RETINA.read_bytes()
    with pytest.raises(FundusReadError) as excinfo:
        read_fundus(data[: len(data) // 2])
    assert "truncated or corrupt" in assert_one_line_error(excinfo)


def test_bit_flipped_files_give_fundus_or_fundus_read_error() -> None:
    rng = np.random.default_rng(7)
    for data in small_png_and_jpeg():
        for _ in range(40):
            corrupt = bytearray(data)
            for pos in rng.integers(0, len(data), rng.integers(1, 6)):
                corrupt[pos] ^= 1 << int(rng.integers(0, 8))
            try:
                assert_valid_fundus(read_fundus(bytes(corrupt)))
            except FundusReadError as exc:
                assert str(exc) and "\n" not in str(exc)
                assert not str(exc).startswith(UNEXPECTED_FAILURE), f"refused by the reader's catch-all: {exc}"


def test_path_errors(tmp_path: Path) -> None:
    for src, words in ((tmp_path / "missing.jpg", "not found"), (tmp_path, "folder")):
        with pytest.raises(FundusReadError) as excinfo:
            read_fundus(src)
        assert words in assert_one_line_error(excinfo)
    with pytest.raises(FundusReadError) as excinfo:
        read_fundus(io.StringIO("text"))  # type: ignore[arg-type]
    assert "binary" in assert_one_line_error(excinfo)
    with pytest.raises(FundusReadError):
        read_fundus(12345)  # type: ignore[arg-type]


# ------------------------------------------------------------ coordinates, both ways


@pytest.mark.parametrize("box", [(0, 0, 640, 640), (-37, 12, 1163, 1212), (100, -50, 420, 270)])
def test_input_and_original_coordinates_are_inverse(box: tuple[int, int, int, int]) -> None:
    pts = np.random.default_rng(0).uniform(-5, 645, (50, 2))
    np.testing.assert_allclose(to_input(to_original(pts, box), box), pts, atol=1e-9)
    # the centre of the input is the centre of the box; the corners' pixel centres are half a pixel in
    centre = to_original(np.array([(SIZE - 1) / 2, (SIZE - 1) / 2]), box)
    np.testing.assert_allclose(centre, [(box[0] + box[2]) / 2 - 0.5, (box[1] + box[3]) / 2 - 0.5])


def test_a_bright_dot_lands_where_to_input_says() -> None:
    photo = np.zeros((900, 1200, 3), np.uint8)
    yy, xx = np.mgrid[:900, :1200]
    photo[(xx - 600) ** 2 + (yy - 450) ** 2 <= 420**2] = (120, 60, 30)
    dot = np.array([731.0, 288.0])
    photo[int(dot[1]) - 2 : int(dot[1]) + 3, int(dot[0]) - 2 : int(dot[0]) + 3] = 255
    f = prepare(photo)
    where = to_input(dot, f.crop_box)
    grey = f.image.astype(np.float64).sum(axis=2)
    ys, xs = np.nonzero(grey > 0.5 * grey.max())  # the dot, resampled: its centroid
    found = np.array([xs.mean(), ys.mean()])
    assert np.abs(found - where).max() <= 1.0, (found, where)
