"""The quality study's images: masks of real photographs follow the reader's trim and
resize, the IDRiD layout (masks, grades, malformed grading files), flips of real
photographs, and synthetic test images that match ``generate_many`` and skip training's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

import core
from core import synthetic
from core.errors import CoreError
from core.fundus import map_mask
from core.model import INPUT_SIZE
from core.study import StudyError
from core.study import sources as q
from core.training.datasets import DataError
from tests.conftest import RETINA


# -- masks of real photographs ------------------------------------------------------------------
def test_map_mask_follows_the_image_through_trim_and_resize():
    """Squares painted pure green on a photograph (an eye enlarged off-centre into a larger
    frame): the mapped mask must land where the green pixels land in the prepared image."""
    f = synthetic.generate(10_000_001, 0)
    scale, pad = 1.5, (70, 30)
    big = cv2.resize(f.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    photo = np.zeros((big.shape[0] + 2 * pad[1], big.shape[1] + 2 * pad[0], 3), np.uint8)
    photo[pad[1]:pad[1] + big.shape[0], pad[0]:pad[0] + big.shape[1]] = big
    mask = np.zeros(photo.shape[:2], bool)
    for x, y, side in ((400, 300, 40), (600, 700, 25), (800, 500, 60), (300, 650, 12)):
        mask[y:y + side, x:x + side] = True
    photo[mask] = (0, 255, 0)
    fundus = core.fundus.prepare(photo)
    assert fundus.crop_box != (0, 0, photo.shape[1], photo.shape[0])
    img = fundus.image.astype(int)
    green = (img[..., 1] > 200) & (img[..., 0] < 60) & (img[..., 2] < 60)
    mapped = map_mask(mask, fundus.crop_box)
    iou = (mapped & green).sum() / (mapped | green).sum()
    assert iou > 0.8, iou
    shifted = np.roll(mapped, 3, axis=1)
    assert (shifted & green).sum() / (shifted | green).sum() < iou


def test_map_mask_keeps_lesions_smaller_than_an_output_pixel():
    mask = np.zeros((3200, 3200), bool)
    mask[1000, 2000] = True  # one original pixel; 5x5 original pixels make one output pixel
    out = map_mask(mask, (0, 0, 3200, 3200))
    assert out.sum() == 1 and out[200, 400]


# -- IDRiD ----------------------------------------------------------------------------------------
def idrid_folder(root):
    """IDRiD_07 (a haemorrhage mask and an optic-disc mask) and IDRiD_08 (no masks)."""
    f = synthetic.generate(10_000_002, 2)
    photo = np.zeros((700, 820, 3), np.uint8)
    photo[30:670, 90:730] = f.image
    imgs, masks = root / "1. Original Images", root / "2. Groundtruths"
    (masks / "2. Haemorrhages").mkdir(parents=True)
    (masks / "5. Optic Disc").mkdir(parents=True)
    imgs.mkdir()
    Image.fromarray(photo).save(imgs / "IDRiD_07.jpg", quality=95)
    he = np.zeros(photo.shape[:2], np.uint8)
    he[30:670, 90:730] = f.masks["haemorrhage"] * 255
    Image.fromarray(he).save(masks / "2. Haemorrhages" / "IDRiD_07_HE.tif")
    Image.fromarray(np.full(photo.shape[:2], 255, np.uint8)).save(masks / "5. Optic Disc" / "IDRiD_07_OD.tif")
    Image.fromarray(photo).save(imgs / "IDRiD_08.jpg")  # no masks: skipped
    return f


def test_idrid_folder_is_read_with_grades_and_without_the_optic_disc(tmp_path):
    f = idrid_folder(tmp_path)
    (tmp_path / "grades.csv").write_text("Image name,Retinopathy grade,Risk of macular edema ,,\nIDRiD_07,2,1,,\n")
    samples = q.idrid_samples(tmp_path)
    assert [s.name for s in samples] == ["IDRiD_07.jpg"] and samples[0].grade == 2
    lesions = samples[0].lesions
    assert set(lesions) == set(q.IDRID_TYPES.values()) and not lesions["microaneurysm"].any()
    got, box = lesions["haemorrhage"], samples[0].fundus.crop_box
    expected = f.masks["haemorrhage"].sum() * (INPUT_SIZE / (box[2] - box[0])) ** 2
    assert 0.7 * expected < got.sum() < 1.5 * expected and not (got & ~samples[0].fundus.fov).any()


def test_idrid_grading_csv_with_a_malformed_row_is_refused_naming_the_file(tmp_path):
    """A grading CSV (it has the IDRiD columns) whose row has no readable grade is refused in
    one line naming the file; a CSV without those columns is none of ours and is ignored."""
    (tmp_path / "notes.csv").write_text("what,why\nIDRiD_07,not a grading file\n")
    assert q.idrid_grades(tmp_path) == {}
    bad = tmp_path / "a. IDRiD_Disease Grading_Testing Labels.csv"
    bad.write_text("Image name,Retinopathy grade,Risk of macular edema \nIDRiD_07,2,1\nIDRiD_08,two,1\n")
    with pytest.raises(DataError) as e:
        q.idrid_grades(tmp_path)
    assert isinstance(e.value, CoreError)
    message = str(e.value)
    assert bad.name in message and "line 3" in message and "\n" not in message
    idrid_folder(tmp_path)
    with pytest.raises(DataError, match="Testing Labels.csv"):
        q.idrid_samples(tmp_path)


def test_idrid_folder_must_be_a_folder(tmp_path):
    with pytest.raises(StudyError, match="not a folder"):
        q.idrid_samples(tmp_path / "missing")


# -- real photographs and synthetic images ------------------------------------------------------
def test_real_samples_label_their_flips_and_rotations():
    samples = q.real_samples([RETINA], augment=True)
    assert len(samples) == 8 and len({s.name for s in samples}) == 8
    assert all(s.name.startswith("retina.jpg (") and s.lesions is None for s in samples)
    np.testing.assert_array_equal(samples[1].fundus.image, samples[0].fundus.image[:, ::-1])


def test_synthetic_tasks_are_the_images_of_generate_many():
    tasks = q.synthetic_tasks(3, 10_000_000)
    made = list(synthetic.generate_many(3, 10_000_000))
    assert [(t[1], t[2]) for t in tasks] == [(f.seed, f.grade) for f in made]
    sample = next(q.synthetic_samples(3, 10_000_000))  # prepared as a file is; masks follow
    union = np.any(list(sample.lesions.values()), axis=0)
    assert sample.grade == made[0].grade and not (union & ~sample.fundus.fov).any()
    assert union.sum() == pytest.approx(made[0].lesion_union.sum(), rel=0.25)


def test_test_images_that_training_used_are_dropped():
    tasks = q.synthetic_tasks(4, 7) + q.synthetic_tasks(3, 10_000_000)
    meta = {"data": {"train": {"dataset": "synthetic", "n": 2, "seed": 7}, "validation": {"dataset": "synthetic", "n": 1, "seed": 8}}}
    kept, note = q.held_out(tasks, meta)
    assert kept == tasks[2:] and "2 test images" in note
    assert q.held_out(tasks, {})[0] == tasks
