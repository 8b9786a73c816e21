"""The pictures made of synthetic images for people: mask outlines, the contact sheet
and the README samples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.synthetic import LESION_TYPES, OVERLAY_COLOURS, generate, image_seed, overlay, save_overview, save_samples

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "samples" / "synthetic"


def test_save_overview_writes_a_small_contact_sheet(tmp_path) -> None:
    path = save_overview(tmp_path / "overview.jpg", seed=0)
    im = cv2.imread(str(path))
    assert im is not None and im.shape[0] > im.shape[1] > 500
    assert path.stat().st_size < 400_000


def test_overview_tiles_are_the_images_and_their_outlines(tmp_path) -> None:
    """Lossless PNG: row g holds two grade-g images, each raw then outlined; a legend below."""
    tile = 240
    sheet = cv2.cvtColor(cv2.imread(str(save_overview(tmp_path / "o.png", seed=3))), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (5 * tile + 44, 4 * tile, 3)
    for g in (0, 4):
        for k in range(2):
            f = generate(image_seed(3, 10 * g + k), g)
            for j, im in enumerate((f.image, overlay(f))):
                want = cv2.resize(im, (tile, tile), interpolation=cv2.INTER_AREA)
                got = sheet[g * tile : (g + 1) * tile, (2 * k + j) * tile : (2 * k + j + 1) * tile]
                below_title = slice(30, None) if k == 0 and j == 0 else slice(None)  # "grade g" is written top left
                assert np.array_equal(got[below_title], want[below_title]), (g, k, j)
    legend = sheet[5 * tile :]
    for t in LESION_TYPES:  # a swatch of every outline colour
        assert (legend == OVERLAY_COLOURS[t]).all(axis=2).sum() >= 100, t


def test_overview_is_jpeg_or_png_only(tmp_path) -> None:
    with pytest.raises(ValueError):
        save_overview(tmp_path / "overview.gif")


def test_overlay_outlines_the_lesions_only(samples: dict) -> None:
    clean = samples[0][0]
    assert np.array_equal(overlay(clean), clean.image)
    f = samples[3][0]
    out = overlay(f)
    assert out.shape == f.image.shape and out.dtype == np.uint8
    changed = (out != f.image).any(axis=2)
    assert changed.any()
    near = cv2.dilate(f.lesion_union.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert not (changed & ~near).any()


def test_save_samples_reproduces_the_bundled_grade_images(tmp_path) -> None:
    paths = save_samples(tmp_path, seed=0)
    assert [p.name for p in paths] == [f"grade{g}.jpg" for g in range(5)] + ["overview.jpg"]
    for p in paths[:5]:
        bundled = ASSETS / p.name
        if bundled.is_file():
            assert p.read_bytes() == bundled.read_bytes(), p.name
        im = cv2.imread(str(p))
        assert im is not None and im.shape == (640, 640, 3)
