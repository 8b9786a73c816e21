"""Evidence regions: block sums stay exact (they add up to the score) and boxes land on
the photograph where the blocks of the model's input came from."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from core.explanation import threshold_mask
from core.fundus import to_original
from core.regions import BLOCK, POOL_SIZES, block_sums, block_threshold, pooled, strongest_regions
from core.version import __version__
from tests.conftest import ROOT


def test_block_sums_are_exact_and_refuse_sizes_that_do_not_divide():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(640, 640)).astype(np.float32)
    for size in (4, 32, 64):
        s = block_sums(m, size)
        assert s.shape == (640 // size,) * 2
        assert s.sum() == pytest.approx(m.sum(dtype=np.float64), abs=1e-6)
        assert s[1, 2] == pytest.approx(m[size : 2 * size, 2 * size : 3 * size].sum(dtype=np.float64), abs=1e-9)
    with pytest.raises(ValueError, match="must divide"):
        block_sums(m, 48)


def test_strongest_regions_of_a_real_photograph(paper_explanation):
    exp = paper_explanation
    g = exp.grade
    regions = strongest_regions(exp, g)
    blocks = block_sums(exp.total()[g])
    assert blocks.sum() == pytest.approx(float(exp.scores[g]), rel=1e-4, abs=1e-3)  # the blocks add up to the score
    contributions = [r.contribution for r in regions]
    assert 0 < len(regions) <= 5 and contributions == sorted(contributions, reverse=True) and min(contributions) > 0
    assert contributions[0] == pytest.approx(blocks.max())
    top = regions[0]
    x0, y0, x1, y1 = top.box
    assert x1 - x0 == y1 - y0 == BLOCK
    assert top.image_evidence == pytest.approx(float(exp.input_map[g][y0:y1, x0:x1].sum(dtype=np.float64)), rel=1e-6, abs=1e-6)
    assert top.fov_share == pytest.approx(float(exp.fundus.fov[y0:y1, x0:x1].mean()))
    # the block's edges, taken to the photograph by the reader's own mapping, are the original box's (to a pixel)
    w, h = exp.fundus.original_size
    edges = to_original(np.array([[x0 - 0.5, y0 - 0.5], [x1 - 0.5, y1 - 0.5]]), exp.fundus.crop_box) + 0.5
    expected = np.clip(edges.ravel(), 0, [w, h, w, h])
    assert np.abs(np.array(top.original_box) - expected).max() <= 1


def test_only_positive_blocks_are_evidence(paper_explanation):
    exp = paper_explanation
    worst = int(np.argmin(exp.scores))
    regions = strongest_regions(exp, worst, n=400)
    assert len(regions) == int((block_sums(exp.total()[worst]) > 0).sum())


def test_excluding_nothing_changes_nothing_and_exclude_must_be_a_bool_map(paper_explanation):
    exp = paper_explanation
    nothing = np.zeros((640, 640), bool)
    for g in range(5):
        assert strongest_regions(exp, g, n=9, exclude=nothing) == strongest_regions(exp, g, n=9)
    with pytest.raises(ValueError, match="bool"):
        strongest_regions(exp, 0, exclude=nothing.astype(np.uint8))


@pytest.mark.parametrize("size", POOL_SIZES)
def test_pooled_views_hold_each_blocks_exact_sum(size):
    rng = np.random.default_rng(size)
    m = rng.normal(size=(640, 640)).astype(np.float32)
    p = pooled(m, size)
    assert p.shape == m.shape and p.dtype == np.float32
    assert p.sum(dtype=np.float64) == pytest.approx(m.sum(dtype=np.float64) * size * size, rel=1e-5, abs=1e-2)
    blocks = p.reshape(640 // size, size, 640 // size, size)
    assert (blocks == blocks[:, :1, :, :1]).all()  # one value per block
    assert p[size + 1, 2 * size + 3] == pytest.approx(m[size : 2 * size, 2 * size : 3 * size].sum(dtype=np.float64), rel=1e-6)
    assert 640 % size == 0


def test_pooled_refuses_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match="must divide"):
        pooled(np.zeros((640, 640), np.float32), 48)


def test_block_threshold_selects_the_one_strong_block():
    rng = np.random.default_rng(1)
    m = rng.normal(scale=0.01, size=(640, 640)).astype(np.float32)
    m[160:176, 320:336] += 1.0  # one 16 px block stands out
    yy, xx = np.mgrid[:640, :640]
    fov = (xx - 319.5) ** 2 + (yy - 319.5) ** 2 <= 300**2
    got = block_threshold(m, fov, 2.0, 16)
    expected = np.zeros((640, 640), bool)
    expected[160:176, 320:336] = True
    assert (got == expected).all()
    # cut across blocks, the strong place selects the blocks it falls in, within the field of view
    m2 = rng.normal(scale=0.01, size=(640, 640)).astype(np.float32)
    m2[8:24, 300:316] += 1.0  # at the top edge of the disc: blocks (0..16, 16..32) x (288..304, 304..320)
    got2 = block_threshold(m2, fov, 2.0, 16)
    block = np.zeros((640, 640), bool)
    block[0:32, 288:320] = True
    assert got2.any() and not (got2 & ~fov).any() and (got2 == (block & fov)).all()


def test_block_threshold_of_one_pixel_blocks_is_the_pixel_threshold():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(64, 64)).astype(np.float32)
    fov = np.zeros((64, 64), bool)
    fov[4:60, 8:56] = True
    assert (block_threshold(m, fov, 1.5, 1) == threshold_mask(m, fov, 1.5)).all()
    assert (block_threshold(m, np.zeros_like(fov), 1.5, 1) == threshold_mask(m, np.zeros_like(fov), 1.5)).all()


def test_a_flat_map_selects_no_block():
    assert not block_threshold(np.zeros((640, 640), np.float32), np.ones((640, 640), bool), 2.0, 32).any()


def test_version_matches_the_project():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert __version__ == project["version"]
