"""Data readers (EyePACS, APTOS, IDRiD, DDR, synthetic), the patient split, balanced
sampling and the batch augmentation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from core.fundus import prepare
from core.synthetic import generate_many
from core.training import augment as A
from core.training import datasets as D
from core.training import sampling as S
from core.weights import IMAGENET


def _fundus_png(path, seed=0, size=96):
    """A small bright disc on black: enough for read_fundus to find a field of view."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size + 20, 3), np.uint8)
    cv2.circle(img, (size // 2 + 10, size // 2), size // 2 - 4, (60, 90, 200), -1)
    img[img > 0] += rng.integers(0, 20, img.shape, dtype=np.uint8)[img > 0]
    cv2.imwrite(str(path), img)


# ---------------------------------------------------------------------- readers


def test_eyepacs_reads_labels_images_and_patients(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "trainLabels.csv").write_text("image,level\n10_left,0\n10_right,2\n13_left,4\n13_right,1\n15_left,3\n")
    for i, name in enumerate(["10_left", "10_right", "13_left", "13_right"]):  # 15_left missing
        _fundus_png(tmp_path / "train" / f"{name}.jpeg", i)
    data = D.read_dataset("eyepacs", tmp_path)
    assert [(r.id, r.label, r.group) for r in data.records] == [
        ("10_left", 0, "10"), ("10_right", 2, "10"), ("13_left", 4, "13"), ("13_right", 1, "13")]
    assert data.excluded == {"image not found": 1}
    assert data.describe()["per_grade"] == [1, 1, 1, 0, 1]
    ds = D.FundusDataset(data.records)
    x, y = ds[1]
    assert x.shape == (3, 640, 640) and x.dtype == torch.uint8 and y == 2
    assert x[:, 320, 320].sum() > 0 and x[:, 0, 0].sum() == 0  # retina in the middle, black corner


def test_eyepacs_split_keeps_both_eyes_together():
    rows = [(f"{p}_{eye}", (p + k) % 5, str(p)) for p in range(200) for k, eye in enumerate(("left", "right"))]
    records = D.attach_images("eyepacs", rows, None).records
    train, val = D.split_by_group(records, 0.1, seed=4)
    assert len(train) + len(val) == 400 and 40 <= len(val) <= 41
    assert not {r.group for r in train} & {r.group for r in val}
    for side in (train, val):
        for g in {r.group for r in side}:
            assert sum(r.group == g for r in side) == 2
    again = D.split_by_group(records, 0.1, seed=4)[1]
    assert [r.id for r in again] == [r.id for r in val]
    assert [r.id for r in D.split_by_group(records, 0.1, seed=5)[1]] != [r.id for r in val]
    assert len(D.split_by_group(records, 30, seed=4)[1]) == 30


def test_aptos(tmp_path):
    (tmp_path / "train_images").mkdir()
    (tmp_path / "train.csv").write_text("id_code,diagnosis\n000c1434d8d7,2\n001639a390f0,4\n")
    _fundus_png(tmp_path / "train_images" / "000c1434d8d7.png")
    _fundus_png(tmp_path / "train_images" / "001639a390f0.png", 1)
    data = D.read_dataset("aptos", tmp_path / "train.csv")
    assert [(r.id, r.label) for r in data.records] == [("000c1434d8d7", 2), ("001639a390f0", 4)]
    assert data.records[0].path.name == "000c1434d8d7.png"


def test_idrid_header_with_trailing_space_and_empty_columns(tmp_path):
    text = (
        "Image name,Retinopathy grade,Risk of macular edema ,,,,\n"
        "IDRiD_001,3,2,,,,\n"
        "IDRiD_002,0,0,,,,\n"
        ",,,,,,\n"
    )
    assert D.parse_idrid(text) == [("IDRiD_001", 3), ("IDRiD_002", 0)]
    (tmp_path / "labels.csv").write_text(text)
    _fundus_png(tmp_path / "IDRiD_001.jpg")
    _fundus_png(tmp_path / "IDRiD_002.jpg")
    data = D.read_dataset("idrid", tmp_path / "labels.csv")
    assert [r.label for r in data.records] == [3, 0] and not data.excluded


def test_idrid_published_layout(tmp_path):
    gt = tmp_path / "2. Groundtruths"
    im = tmp_path / "1. Original Images" / "b. Testing Set"
    gt.mkdir()
    im.mkdir(parents=True)
    (gt / "b. IDRiD_Disease Grading_Testing Labels.csv").write_text(
        "Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,4,1\n")
    _fundus_png(im / "IDRiD_001.jpg")
    data = D.read_dataset("idrid", gt / "b. IDRiD_Disease Grading_Testing Labels.csv")
    assert data.records[0].path.parent == im


def test_ddr_excludes_and_reports_ungradable(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train.txt").write_text("007-0004-000.jpg 0\n007-0005-000.jpg 5\n\n007-0006-000.jpg 3\n")
    for n in ("007-0004-000", "007-0005-000", "007-0006-000"):
        _fundus_png(tmp_path / "train" / f"{n}.jpg")
    data = D.read_dataset("ddr", tmp_path / "train.txt")
    assert [(r.id, r.label) for r in data.records] == [("007-0004-000.jpg", 0), ("007-0006-000.jpg", 3)]
    assert data.excluded == {"ungradable (label 5)": 1}


@pytest.mark.parametrize("kind, name, text, match", [
    ("eyepacs", "trainLabels.csv", "image,grade\n1_left,0\n", "expected columns"),
    ("eyepacs", "trainLabels.csv", "image,level\n1_left,7\n", "outside"),
    ("aptos", "train.csv", "id_code,diagnosis\nabc,x\n", "not a number"),
    ("ddr", "train.txt", "a.jpg 1 2\n", "expected"),
])
def test_bad_label_files_say_where(tmp_path, kind, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(D.DataError, match=match):
        D.read_dataset(kind, tmp_path / name)


def test_no_images_at_all_is_an_error(tmp_path):
    (tmp_path / "trainLabels.csv").write_text("image,level\n1_left,0\n")
    with pytest.raises(D.DataError, match="none of the 1"):
        D.read_dataset("eyepacs", tmp_path)


# -------------------------------------------------------------------- synthetic


def test_synthetic_dataset_is_generate_many_prepared():
    ds = D.SyntheticDataset(6, seed=9)
    ref = list(generate_many(6, seed=9))
    assert ds.labels.tolist() == [f.grade for f in ref]
    assert sorted(ds.labels[:5].tolist()) == [0, 1, 2, 3, 4]  # balanced blocks of 5
    x, y = ds[2]
    assert y == ref[2].grade and x.shape == (3, 640, 640)
    expect = prepare(ref[2].image).image
    assert np.array_equal(x.permute(1, 2, 0).numpy(), expect)
    assert torch.equal(D.SyntheticDataset(6, seed=9)[2][0], x)


def test_preload_keeps_images_and_labels():
    ds = D.SyntheticDataset(3, seed=2)
    mem = S.preload(ds, workers=0, progress=False)
    assert torch.equal(mem.images[1], ds[1][0]) and mem.labels.tolist() == ds.labels.tolist()
    got = list(S.batches(mem, [2, 0], 2, 0, torch.device("cpu")))
    assert torch.equal(got[0][0][0], ds[2][0]) and got[0][1].tolist() == [ds.labels[2], ds.labels[0]]


# --------------------------------------------------------------------- sampling


def test_balanced_sampler_equalises_grades_and_shards():
    labels = np.array([0] * 900 + [1] * 50 + [2] * 30 + [3] * 15 + [4] * 5)
    s = S.BalancedSampler(labels, num_samples=5000, seed=1)
    drawn = np.bincount(labels[list(s)], minlength=5) / 5000
    assert np.allclose(drawn, 0.2, atol=0.03)
    s.set_epoch(1)
    assert list(s) != list(S.BalancedSampler(labels, num_samples=5000, seed=1))
    r0 = S.BalancedSampler(labels, 101, seed=3, rank=0, world_size=2)
    r1 = S.BalancedSampler(labels, 101, seed=3, rank=1, world_size=2)
    assert len(r0) == len(r1) == 51 == len(list(r0))
    whole = list(S.BalancedSampler(labels, 102, seed=3))
    assert list(r0) == whole[0::2] and list(r1) == whole[1::2]
    plain = S.BalancedSampler(labels, seed=0, balanced=False)
    assert sorted(plain) == list(range(1000))


def test_shard_sampler_is_exact():
    parts = [list(S.ShardSampler(7, r, 3)) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(7))


# ----------------------------------------------------------------- augmentation


def _batch(n=3):
    return torch.stack([D.SyntheticDataset(n, seed=1)[i][0] for i in range(n)])


def test_augmentation_identity_and_normalisation():
    x = _batch(2)
    none = A.Augmentation(max_rotation=0.0, flips=False, brightness=0.0, contrast=0.0)
    same = A.augment(x, torch.Generator().manual_seed(0), none)
    assert torch.allclose(same, x.float(), atol=0.01)
    ref = torch.cat([IMAGENET.to_tensor(img.permute(1, 2, 0).numpy()) for img in x])
    assert torch.allclose(A.BatchTransform(IMAGENET)(x), ref, atol=1e-6)


def test_augmentation_is_seeded_keeps_black_and_changes_images():
    x = _batch(3)
    a = A.augment(x, torch.Generator().manual_seed(5))
    b = A.augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 255
    corners = a[:, :, :40, :40]
    assert corners.abs().max() < 1.0  # outside the field of view stays black
    assert (a - x.float()).abs().mean() > 5  # rotated and recoloured
    # brightness/contrast only: the mean of the field of view moves, the geometry does not
    colour = A.Augmentation(max_rotation=0.0, flips=False)
    c = A.augment(x, torch.Generator().manual_seed(1), colour)
    outside = (x.amax(1, keepdim=True) <= 8).expand_as(x)
    assert torch.allclose(c[outside], x.float()[outside], atol=0.01)
    assert (c - x.float()).abs().mean() > 1


def test_flip_only_is_exact():
    x = _batch(1)[..., ::4, ::4].contiguous()  # any size will do; small is quick
    flip = A.Augmentation(max_rotation=0.0, flips=True, brightness=0.0, contrast=0.0)
    seen = set()
    for s in range(10):
        y = A.augment(x, torch.Generator().manual_seed(s), flip)
        for name, ref in {"none": x, "h": x.flip(3), "v": x.flip(2), "hv": x.flip(2).flip(3)}.items():
            if torch.allclose(y, ref.float(), atol=0.01):
                seen.add(name)
    assert seen == {"none", "h", "v", "hv"}
