"""The lesions of synthetic images: the masks agree with the grades, lie inside the field
of view, are exact (the lesion-free eye differs only there) and look like lesions."""

from __future__ import annotations

import cv2
import numpy as np

from core.synthetic import LESION_TYPES, SyntheticFundus, generate


def _severe(f: SyntheticFundus) -> bool:
    return (
        min(f.haemorrhages_per_quadrant) > 20
        or f.venous_beading_quadrants >= 2
        or f.counts["irma"] > 0
    )


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
