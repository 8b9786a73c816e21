"""Lesion-level measures on hand-made masks with known answers: the clumped chance keeps a
mask's pixels and shape, detection counts net-positive lesions by type and size, and the
positive share and enrichment are 1 for a map that ignores the lesions."""

from __future__ import annotations

import numpy as np
import pytest

from core.study import lesions as L
from core.study.measures import components

N = 96


def disc(n: int = N) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return (xx - (n - 1) / 2) ** 2 + (yy - (n - 1) / 2) ** 2 <= (n / 2 - 1) ** 2


def square(x0: int, y0: int, side: int) -> np.ndarray:
    m = np.zeros((N, N), bool)
    m[y0:y0 + side, x0:x0 + side] = True
    return m


def test_moved_copies_keep_pixels_and_clumps_and_change_place():
    fov, blob = disc(), square(40, 20, 6)
    copies = L.moved(blob, fov, np.random.default_rng(0), n=12)
    assert len(copies) == 12
    for c in copies:
        assert not (c & ~fov).any()
        assert c.sum() >= L.KEEP * blob.sum() and c.sum() <= 1.2 * blob.sum()
        _, count = components(c)
        assert count == 1  # one blob stays one blob (scattered pixels would not)
    assert sum((c & blob).sum() == blob.sum() for c in copies) <= 1  # moved, not left in place
    again = L.moved(blob, fov, np.random.default_rng(0), n=12)
    assert all((a == b).all() for a, b in zip(copies, again, strict=True))  # seeded
    assert not any(c.any() for c in L.moved(np.zeros((N, N), bool), fov, np.random.default_rng(0), n=2))


def test_clumped_chance_is_low_for_a_mask_on_the_lesion_and_about_its_rate_for_a_ring():
    """A mask exactly on a small lesion hits it; moved anywhere else it almost never does."""
    fov, lesion = disc(), square(60, 60, 5)
    inst = {"haemorrhage": L.Instances.of(*components(lesion))}
    out = L.chance_metrics(lesion.copy(), fov, lesion, inst, np.random.default_rng(1), n=32)
    assert set(out) == {"chance_precision", "chance_hit_haemorrhage"}
    assert out["chance_hit_haemorrhage"][1] == 1.0
    assert out["chance_hit_haemorrhage"][0] < 0.2 and out["chance_precision"][0] < 0.2
    assert L.chance_metrics(np.zeros((N, N), bool), fov, lesion, inst, np.random.default_rng(1)) == {}


def test_detection_by_type_and_size():
    small, large = square(20, 40, 2), square(50, 40, 12)  # 4 px and 144 px
    values = np.zeros((N, N), np.float32)
    values[small] = 1.0  # net positive
    values[large] = -1.0
    values[45, 55] = 500.0  # one strong pixel makes the large lesion's sum positive
    inst = {"microaneurysm": L.Instances.of(*components(small)), "haemorrhage": L.Instances.of(*components(large))}
    assert inst["haemorrhage"].bins == (">=100 px",) and inst["microaneurysm"].bins == ("1-9 px",)
    out = L.detection(values, inst)
    assert out == {"det_microaneurysm": (1.0, 1.0), "det_haemorrhage": (1.0, 1.0),
                   "det_size_1-9 px": (1.0, 1.0), "det_size_>=100 px": (1.0, 1.0)}
    values[45, 55] = -1.0
    assert L.detection(values, inst)["det_haemorrhage"] == (0.0, 1.0)


@pytest.mark.parametrize("area,name", [(1, "1-9 px"), (9, "1-9 px"), (10, "10-99 px"), (99, "10-99 px"), (100, ">=100 px")])
def test_size_bins(area, name):
    assert L.size_bin(area) == name


def test_positive_share_and_enrichment():
    fov, lesion = disc(), square(30, 30, 10)
    flat = np.ones((N, N), np.float32)
    out = L.positive_share(flat, lesion, fov)
    share = lesion.sum() / fov.sum()
    assert out["pos_share"][0] == pytest.approx(share) and out["lesion_share"][0] == pytest.approx(share)
    assert out["enrichment"][0] / out["enrichment"][1] == pytest.approx(1.0)
    on = np.where(lesion, 1.0, -1.0).astype(np.float32)  # positive only on the lesion
    out = L.positive_share(on, lesion, fov)
    assert out["pos_share"][0] == pytest.approx(1.0) and out["enrichment"][0] / out["enrichment"][1] == pytest.approx(1 / share)
    assert L.positive_share(-flat, lesion, fov) == {}  # no positive evidence at all
