"""Evidence regions: block sums stay exact (they add up to the score) and boxes land on
the photograph where the blocks of the model's input came from."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from core.fundus import to_original
from core.regions import BLOCK, block_sums, strongest_regions
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


def test_version_matches_the_project():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert __version__ == project["version"]
