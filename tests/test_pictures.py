"""core.pictures: the colour scale and its inverse, the colour bar, titles that are never cut."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core import pictures as draw


@pytest.mark.parametrize("log", [False, True])
def test_the_colour_bar_ticks_invert_the_scale(log):
    values = np.random.default_rng(1).normal(scale=3.0, size=(64, 64))
    scale = draw.make_scale(values, log=log)
    t = np.linspace(-1, 1, 21)
    np.testing.assert_allclose(scale.transform(scale.inverse(t)) / scale.tmax, t, atol=1e-12)
    assert scale.inverse(np.array([1.0]))[0] == pytest.approx(scale.vmax)


def test_a_long_title_wraps_instead_of_being_cut():
    picture = np.zeros((100, 320, 3), np.uint8)
    short = draw.titled(picture, "Total map")
    long = draw.titled(picture, "Layer 8 input-dependent (RF 61 px), grade 0 No apparent DR: sum -55.21, and more words")
    assert short.shape[1] == long.shape[1] == 320 and long.shape[0] > short.shape[0]
    np.testing.assert_array_equal(long[-100:], picture)  # the picture itself is untouched, below the title
    # every line of the title fits: the right margin of the title band stays white
    band = long[: long.shape[0] - 100]
    assert (band[:, -6:] == 255).all()


def test_the_title_font_shrinks_before_it_wraps():
    title = "A title just too long for twenty pixels"
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    at20, at19 = (measure.textlength(title, font=draw.font(px)) for px in (20, 19))
    assert at19 < at20 - 2
    width = int((at19 + at20) / 2) + 16  # room for the text (width - 16): too little at 20 px, enough at 19
    out = draw.titled(np.zeros((10, width, 3), np.uint8), title)
    assert out.shape[0] - 10 == 19 + 6 + 8  # one line at the smaller size


def test_flicker_gif_keeps_the_retinas_shading_without_patches(retina_fundus):
    """256 flat colours posterise a fundus into patches that look like lesions; the GIF's
    shared palette and dithering keep every 9x9 neighbourhood's colour (measured: 0.29 grey
    levels off on average, against 1.6 for the plain octree palette this replaced)."""
    import io

    import cv2
    from PIL import Image

    img = retina_fundus.image
    mask = np.zeros(img.shape[:2], bool)
    mask[300:320, 300:340] = True
    frames = [img, draw.mask_overlay(img, mask)]
    with Image.open(io.BytesIO(draw.flicker_gif(frames))) as gif:
        for i, ref in enumerate(frames):
            gif.seek(i)
            shown = np.asarray(gif.convert("RGB")).astype(np.float32)
            local = np.abs(cv2.blur(shown, (9, 9)) - cv2.blur(ref.astype(np.float32), (9, 9)))[retina_fundus.fov]
            assert local.mean() < 0.6
            if i == 1:  # the marks keep their colour (the palette has entries for them)
                assert np.abs(shown[mask] - ref[mask].astype(np.float32)).mean() < 6
