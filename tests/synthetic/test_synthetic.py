"""Tests of the synthetic fundus generator: grades follow the clinical rules from what
was painted, masks are exact and visible, and everything is reproducible by seed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.synthetic import (
    LESION_TYPES,
    SyntheticFundus,
    generate,
    generate_many,
    grade_from_lesions,
    save_overview,
)

SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def samples() -> dict[int, list[SyntheticFundus]]:
    """A few images of each grade, made once for the module."""
    return {g: [generate(seed, g) for seed in SEEDS] for g in range(5)}


def _assert_same(a: SyntheticFundus, b: SyntheticFundus) -> None:
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.fov, b.fov)
    for t in LESION_TYPES:
        assert np.array_equal(a.masks[t], b.masks[t]), t
    assert a.counts == b.counts and a.per_quadrant == b.per_quadrant
    assert (a.grade, a.seed) == (b.grade, b.seed)


def _severe(f: SyntheticFundus) -> bool:
    return (
        min(f.haemorrhages_per_quadrant) > 20
        or f.venous_beading_quadrants >= 2
        or f.counts["irma"] > 0
    )


# ------------------------------------------------------------ grade_from_lesions


def test_grade_rules_each_level() -> None:
    assert grade_from_lesions({}) == 0
    assert grade_from_lesions({"microaneurysm": 1}) == 1
    assert grade_from_lesions({"microaneurysm": 40}) == 1
    for t in ("haemorrhage", "hard_exudate", "cotton_wool_spot", "venous_beading"):
        assert grade_from_lesions({t: 1}) == 2, t
        assert grade_from_lesions({"microaneurysm": 3, t: 1}) == 2, t
    assert grade_from_lesions({"irma": 1}) == 3
    assert grade_from_lesions({"neovascularisation": 1}) == 4
    assert grade_from_lesions({"preretinal_haemorrhage": 1}) == 4


def test_grade_rule_haemorrhages_20_vs_21_per_quadrant() -> None:
    assert grade_from_lesions({"haemorrhage": 84}, (21, 21, 21, 21)) == 3
    assert grade_from_lesions({"haemorrhage": 83}, (21, 21, 21, 20)) == 2
    assert grade_from_lesions({"haemorrhage": 80}, (20, 20, 20, 20)) == 2
    # many, but not in every quadrant
    assert grade_from_lesions({"haemorrhage": 300}, (100, 100, 100, 0)) == 2


def test_grade_rule_beading_1_vs_2_quadrants() -> None:
    assert grade_from_lesions({"venous_beading": 3}, venous_beading_quadrants=1) == 2
    assert grade_from_lesions({"venous_beading": 2}, venous_beading_quadrants=2) == 3
    assert grade_from_lesions({"venous_beading": 4}, venous_beading_quadrants=4) == 3


def test_grade_rule_proliferative_overrides_severe() -> None:
    severe = {"haemorrhage": 100, "irma": 2, "venous_beading": 4, "microaneurysm": 9}
    assert grade_from_lesions(severe, (25, 25, 25, 25), 4) == 3
    assert grade_from_lesions({**severe, "neovascularisation": 1}, (25, 25, 25, 25), 4) == 4
    assert grade_from_lesions({**severe, "preretinal_haemorrhage": 1}, (25, 25, 25, 25), 4) == 4


@pytest.mark.parametrize(
    "args",
    [
        ({"drusen": 1},),  # unknown type
        ({"microaneurysm": -1},),
        ({"haemorrhage": 3}, (1, 1, 1)),  # not 4 quadrants
        ({"haemorrhage": 3}, (1, 1, 1, 1)),  # more in quadrants than counted
        ({"venous_beading": 1}, (0, 0, 0, 0), 2),  # more quadrants than segments
        ({"venous_beading": 9}, (0, 0, 0, 0), 5),
    ],
)
def test_grade_rejects_inconsistent_input(args: tuple) -> None:
    with pytest.raises(ValueError):
        grade_from_lesions(*args)


counts_st = st.fixed_dictionaries({t: st.integers(0, 30) for t in LESION_TYPES})


@settings(max_examples=200, deadline=None)
@given(counts=counts_st, extra=st.sampled_from(LESION_TYPES), hpq=st.lists(st.integers(0, 30), min_size=4, max_size=4),
       vbq=st.integers(0, 4))
def test_grade_is_monotonic_in_lesions(counts: dict, extra: str, hpq: list, vbq: int) -> None:
    """Adding a lesion never lowers the grade (the scale is a severity order)."""
    counts = {**counts, "haemorrhage": max(counts["haemorrhage"], sum(hpq)),
              "venous_beading": max(counts["venous_beading"], vbq)}
    g = grade_from_lesions(counts, hpq, vbq)
    assert 0 <= g <= 4
    more = {**counts, extra: counts[extra] + 1}
    assert grade_from_lesions(more, hpq, vbq) >= g


# ----------------------------------------------------------------- generate


def test_same_seed_same_image_and_masks() -> None:
    _assert_same(generate(11, 3), generate(11, 3))


def test_different_seeds_differ() -> None:
    a, b = generate(11, 2), generate(12, 2)
    assert not np.array_equal(a.image, b.image)
    assert np.mean(a.image != b.image) > 0.5


def test_random_grade_is_reproducible_and_consistent() -> None:
    grades = set()
    for seed in range(12):
        f = generate(seed)
        assert f.grade == generate(seed).grade
        assert f.grade == grade_from_lesions(f.counts, f.haemorrhages_per_quadrant, f.venous_beading_quadrants)
        grades.add(f.grade)
    assert len(grades) >= 3  # the grade is drawn, not fixed


@pytest.mark.parametrize("grade", range(5))
def test_requested_grade_is_the_drawn_grade(samples: dict, grade: int) -> None:
    for f in samples[grade]:
        assert f.grade == grade
        assert f.grade == grade_from_lesions(f.counts, f.haemorrhages_per_quadrant, f.venous_beading_quadrants)
        assert f.image.shape == (640, 640, 3) and f.image.dtype == np.uint8
        assert f.fov.shape == (640, 640) and f.fov.dtype == bool
        assert set(f.masks) == set(LESION_TYPES) == set(f.counts) == set(f.per_quadrant)
        for t in LESION_TYPES:
            assert f.masks[t].shape == (640, 640) and f.masks[t].dtype == bool
            # a type is counted exactly when it left pixels
            assert (f.counts[t] > 0) == bool(f.masks[t].any()), t
            assert sum(f.per_quadrant[t]) == f.counts[t]


def test_masks_agree_with_grades(samples: dict) -> None:
    for f in samples[0]:
        assert not f.lesion_union.any()
    for f in samples[1]:
        assert f.masks["microaneurysm"].any()
        assert not (f.lesion_union & ~f.masks["microaneurysm"]).any()
    for f in samples[2]:
        assert any(f.masks[t].any() for t in ("haemorrhage", "hard_exudate", "cotton_wool_spot", "venous_beading"))
        assert not any(f.masks[t].any() for t in ("irma", "neovascularisation", "preretinal_haemorrhage"))
        assert not _severe(f)
    for f in samples[3]:
        assert _severe(f)
        assert not f.masks["neovascularisation"].any() and not f.masks["preretinal_haemorrhage"].any()
    for f in samples[4]:
        assert f.masks["neovascularisation"].any() or f.masks["preretinal_haemorrhage"].any()


def test_masks_inside_fov_and_fov_is_the_photograph(samples: dict) -> None:
    for g in range(5):
        for f in samples[g]:
            assert not (f.lesion_union & ~f.fov).any()
            assert not f.image[~f.fov].any()  # black outside the field of view
            # a round field of 600..640 px diameter
            diameter = 2 * np.sqrt(f.fov.sum() / np.pi)
            assert 595 <= diameter <= 642


def test_lesions_are_visible_against_the_lesion_free_eye(samples: dict) -> None:
    """Painted pixels change the image; pixels far from every lesion do not."""
    for g in (1, 2, 3, 4):
        f = samples[g][0]
        h = generate(f.seed, g, lesions=False)
        assert h.grade == 0 and not h.lesion_union.any()
        assert np.array_equal(h.fov, f.fov)
        diff = np.abs(f.image.astype(np.int16) - h.image.astype(np.int16)).sum(axis=2)
        union = f.lesion_union
        assert diff[union].mean() > 30
        far = ~cv2.dilate(union.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
        assert diff[far].max() <= 2
        green_f, green_h = f.image[..., 1].astype(float), h.image[..., 1].astype(float)
        for t in LESION_TYPES:
            m = f.masks[t]
            if not m.any():
                continue
            change = green_f[m].mean() - green_h[m].mean()
            if t in ("hard_exudate", "cotton_wool_spot"):
                assert change > 15, t  # pale lesions brighten
            else:
                assert change < -5, t  # red lesions darken


def test_microaneurysms_darker_than_their_surroundings(samples: dict) -> None:
    for f in samples[1]:
        ma = f.masks["microaneurysm"].astype(np.uint8)
        ring = cv2.dilate(ma, np.ones((9, 9), np.uint8)).astype(bool) & ~cv2.dilate(
            ma, np.ones((3, 3), np.uint8)
        ).astype(bool)
        g = f.image[..., 1].astype(float)
        assert g[ma.astype(bool)].mean() < g[ring].mean() - 10


def test_microaneurysms_are_small_dots(samples: dict) -> None:
    for f in samples[1]:
        n, _, stats, _ = cv2.connectedComponentsWithStats(f.masks["microaneurysm"].astype(np.uint8))
        sizes = stats[1:, cv2.CC_STAT_WIDTH]
        assert n - 1 == f.counts["microaneurysm"]
        assert sizes.min() >= 3 and sizes.max() <= 7


def test_other_sizes_and_bad_arguments() -> None:
    f = generate(4, 3, size=320)
    assert f.image.shape == (320, 320, 3) and f.grade == 3
    for bad in (dict(grade=5), dict(grade=-1), dict(seed=-1), dict(size=64)):
        with pytest.raises(ValueError):
            generate(**{"seed": 1, **bad})


# ------------------------------------------------------------ generate_many


def test_generate_many_is_balanced_deterministic_and_reproducible() -> None:
    a = list(generate_many(10, seed=7))
    b = list(generate_many(10, seed=7))
    assert sorted(f.grade for f in a) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    for x, y in zip(a, b, strict=True):
        _assert_same(x, y)
    # image i is generate(its seed, its grade)
    _assert_same(a[3], generate(a[3].seed, a[3].grade))
    # image i depends only on (seed, i): a longer run starts with the same images
    _assert_same(list(generate_many(3, seed=7))[2], a[2])
    assert len({f.seed for f in a}) == 10
    assert [f.grade for f in generate_many(4, seed=1, grades=[4, 0])] == [4, 0, 4, 0]


def test_generate_many_workers_give_the_same_images() -> None:
    one = list(generate_many(4, seed=5, workers=1))
    two = list(generate_many(4, seed=5, workers=2))
    for x, y in zip(one, two, strict=True):
        _assert_same(x, y)


def test_save_overview_writes_a_small_contact_sheet(tmp_path) -> None:
    path = save_overview(tmp_path / "overview.jpg", seed=0)
    im = cv2.imread(str(path))
    assert im is not None and im.shape[0] > im.shape[1] > 500
    assert path.stat().st_size < 400_000
