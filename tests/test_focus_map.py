"""Explanation.focus_map: which map the threshold and the overlay act on at each level."""

from __future__ import annotations

import numpy as np
import pytest

import core
from core.model import CONV_LAYERS
from core.weights import save_checkpoint
from tests.direct_propagation import random_network

LEVELS: tuple[int | str, ...] = (*range(16, 0, -1), "input")  # the viewer's layer slider


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> core.Explanation:
    """A narrow random network of the paper's topology on a random image: cheap, and every map differs."""
    path = tmp_path_factory.mktemp("focus") / "narrow.pt"
    save_checkpoint(path, random_network((3,) * 15, seed=11).float(), {"title": "narrow random network"})
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:640, :640]
    fov = (xx - 319.5) ** 2 + (yy - 319.5) ** 2 <= 320**2
    image = rng.integers(0, 256, (640, 640, 3), dtype=np.uint8) * fov[..., None].astype(np.uint8)
    fundus = core.Fundus(image=image, fov=fov, crop_box=(0, 0, 640, 640), original_size=(640, 640))
    return core.explain(core.load_weights(path), fundus)


@pytest.mark.parametrize("grade", [0, 4])
def test_total_map_at_16_and_at_the_input(exp, grade):
    for level in (16, "input"):
        values, name = exp.focus_map(grade, level)
        assert name == "total map"
        assert values.shape == (640, 640)
        np.testing.assert_array_equal(values, exp.total()[grade])
        assert values.sum(dtype=np.float64) == pytest.approx(float(exp.scores[grade]), rel=1e-4, abs=1e-3)


@pytest.mark.parametrize("spec", CONV_LAYERS, ids=lambda s: f"L{s.index}")
def test_hidden_layer_gives_its_input_dependent_map_in_input_space(exp, spec):
    grade = 2
    values, name = exp.focus_map(grade, spec.index)
    assert name == f"input-dependent map of layer {spec.index}"
    assert values.shape == (640, 640) and not values.flags.writeable
    np.testing.assert_array_equal(values, exp.in_input_space(spec.index, "input_dependent")[grade])
    # not the constant map, nor the total: the part that depends on the pixels
    assert not np.array_equal(values, exp.in_input_space(spec.index, "constant")[grade])
    assert not np.array_equal(values, exp.total()[grade])
    row = next(r for r in exp.conservation()["grades"][grade]["layers"] if r["layer"] == spec.index)
    assert values.sum(dtype=np.float64) == pytest.approx(row["input_dependent"], rel=1e-4, abs=1e-3)


def test_every_slider_level_has_a_map_and_a_mask(exp):
    """Every level of the viewer's slider names a map, and thresholding it is exp.mask on that map."""
    names = set()
    for level in LEVELS:
        values, name = exp.focus_map(exp.grade, level)
        names.add(name)
        mask = exp.mask(exp.grade, 2.0, values=values)
        assert mask.shape == (640, 640) and not mask[~exp.fundus.fov].any()
    assert len(names) == 16  # "total map" for 16 and input, one name per hidden layer
    # the default (no values) threshold is the total map's, as at level 16 and the input
    np.testing.assert_array_equal(exp.mask(1, 1.5), exp.mask(1, 1.5, values=exp.focus_map(1, "input")[0]))


@pytest.mark.parametrize("level", [0, 17, -1, "pixels", "16", True, None])
def test_other_levels_are_refused(exp, level):
    with pytest.raises(ValueError, match="level must be"):
        exp.focus_map(0, level)
