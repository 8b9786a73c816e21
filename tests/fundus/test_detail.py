"""The reading view's photograph at full resolution (core.fundus.detail) on a real IDRiD photograph.

The detail must show the very square the model saw, only sharper: downsampled to the
input's size it is the model input (alignment), it is black where the input is (outside
the field of view), and it is the same picture whatever the file came as.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

import core
from core.fundus.decode import decode_image
from core.fundus.detail import DETAIL_MAX, detail_image, detail_side
from tests.conftest import require_real_data
from tests.dicom_files import dataset, save

SIDE = 1280
PHOTO = "idrid-grading-train/images/IDRiD_001.jpg"


@pytest.fixture(scope="module")
def photo() -> Path:
    path = require_real_data() / PHOTO
    if not path.is_file():
        pytest.skip(f"{PHOTO} is not in the shared data")
    return path


@pytest.fixture(scope="module")
def fundus(photo) -> core.Fundus:
    return core.read_fundus(photo, name=photo.name)


@pytest.fixture(scope="module")
def detail(photo, fundus) -> np.ndarray:
    return detail_image(str(photo), fundus, SIDE)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_the_detail_downsampled_is_the_model_input(fundus, detail):
    assert detail.shape == (SIDE, SIDE, 3) and detail.dtype == np.uint8
    down = cv2.resize(detail, (640, 640), interpolation=cv2.INTER_AREA)
    assert mad(down, fundus.image) < 2.0
    # ...and it is aligned to the input pixel: one input pixel off in any direction is clearly worse
    for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
        assert mad(np.roll(down, shift, axis=axis), fundus.image) > 1.5 * mad(down, fundus.image), (shift, axis)


def test_a_detail_of_a_shifted_crop_does_not_match(photo, fundus):
    """The check above can tell: the same photograph cropped 8 pixels (3 input pixels) to the right is off."""
    left, top, right, bottom = fundus.crop_box
    moved = dataclasses.replace(fundus, crop_box=(left + 8, top, right + 8, bottom))
    down = cv2.resize(detail_image(str(photo), moved, SIDE), (640, 640), interpolation=cv2.INTER_AREA)
    good = cv2.resize(detail_image(str(photo), fundus, SIDE), (640, 640), interpolation=cv2.INTER_AREA)
    assert mad(down, fundus.image) > 3 * mad(good, fundus.image)


def test_the_detail_is_black_outside_the_field_of_view(fundus, detail):
    f = SIDE // 640
    fov = np.repeat(np.repeat(fundus.fov, f, axis=0), f, axis=1)  # one input pixel = f x f detail pixels
    assert not fov.all() and fov.any()
    assert detail[~fov].max() == 0
    assert detail[fov].mean() > 40  # the retina itself is there
    assert (detail.max(axis=2) > 0)[fov].mean() > 0.99


def test_detail_side_is_the_crops_width_capped_and_at_least_the_inputs(fundus):
    width = fundus.crop_box[2] - fundus.crop_box[0]
    assert 640 < width < DETAIL_MAX
    assert detail_side(fundus) == width
    assert detail_side(fundus, max_side=1000) == 1000
    assert detail_side(fundus, max_side=100) == 640
    huge = dataclasses.replace(fundus, crop_box=(-10, -20, 9990, 9980))
    assert detail_side(huge) == DETAIL_MAX
    small = dataclasses.replace(fundus, crop_box=(5, 5, 305, 305))
    assert detail_side(small) == 640
    assert isinstance(detail_side(fundus), int)


def test_the_full_side_detail_also_downsamples_to_the_input(photo, fundus):
    side = detail_side(fundus)
    full = detail_image(str(photo), fundus, side)
    assert full.shape == (side, side, 3)
    assert mad(cv2.resize(full, (640, 640), interpolation=cv2.INTER_AREA), fundus.image) < 2.0


def test_bytes_path_and_str_sources_give_the_same_picture(photo, fundus, detail):
    np.testing.assert_array_equal(detail_image(photo.read_bytes(), fundus, SIDE), detail)
    np.testing.assert_array_equal(detail_image(photo, fundus, SIDE), detail)  # type: ignore[arg-type]


def test_a_dicom_source_gives_the_same_picture(photo, fundus, detail):
    rgb = decode_image(photo.read_bytes())
    dicom = save(dataset(rgb))
    from_dicom = core.read_fundus(dicom, name="eye.dcm")
    assert from_dicom.crop_box == fundus.crop_box
    np.testing.assert_array_equal(from_dicom.fov, fundus.fov)
    np.testing.assert_array_equal(detail_image(dicom, from_dicom, SIDE), detail)


def test_a_changed_file_raises_the_readers_error(fundus):
    with pytest.raises(core.FundusReadError):
        detail_image(b"\x89PNG\r\n\x1a\n not a picture" + bytes(100), fundus, SIDE)
