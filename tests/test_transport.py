"""Hidden maps to input space: every unit's score stays whole, at the border too."""

import math

import numpy as np
import pytest
import torch

from core.model import CONV_LAYERS, layer
from core.transport import spread_matrix, to_input_space, unit_centre


@pytest.mark.parametrize("spec", CONV_LAYERS, ids=lambda s: f"L{s.index}")
def test_every_unit_keeps_its_mass(spec):
    a = spread_matrix(spec.stride, spec.offset, spec.rf_paper, spec.hidden).numpy()
    np.testing.assert_allclose(a.sum(1), 1.0, rtol=0, atol=1e-12)  # separable: 2-D mass = 1 * 1
    assert (a >= 0).all()
    h = spec.hidden
    for i, j in [(0, 0), (0, h - 1), (h - 1, h - 1), (h // 2, 0), (h // 2, h // 2)]:
        m = np.zeros((h, h))
        m[i, j] = 3.5
        out = to_input_space(m, spec)
        assert out.shape == (640, 640)
        assert out.sum() == pytest.approx(3.5, rel=1e-12)


def unit_inside(spec, size: int = 640) -> int | None:
    """The unit nearest the middle whose whole receptive field (the paper's size) lies in [0, size - 1]."""
    half = (spec.rf_paper - 1) / 2
    inside = [i for i in range(spec.hidden) if unit_centre(spec, i) - half >= 0 and unit_centre(spec, i) + half <= size - 1]
    return min(inside, key=lambda i: abs(unit_centre(spec, i) - (size - 1) / 2)) if inside else None


def test_only_layer_15_has_no_field_inside_the_image():
    """Layer 15's 637 px fields are centred at 127.5 + 128 i: none fits in 640 pixels (it would
    need a centre in [318, 321]), so its kernel is checked on a wider canvas below."""
    assert [spec.index for spec in CONV_LAYERS if unit_inside(spec) is None] == [15]
    spec = layer(15)
    assert [unit_centre(spec, i) for i in range(spec.hidden)] == [127.5, 255.5, 383.5, 511.5]
    assert unit_inside(spec, 1024) is not None


@pytest.mark.parametrize("spec", CONV_LAYERS, ids=lambda s: f"L{s.index}")
def test_kernel_is_the_receptive_fields_gaussian(spec):
    """Support within the paper's RF, centred on the RF centre, sigma = (RF - 1) / 4.

    Checked on a unit whose field lies inside the image; layer 15 has none (see above), so its
    unit is checked on a canvas wide enough to hold its field, and its kernel in the 640-pixel
    image must be that kernel cut to the image and renormalised.
    """
    size = 640 if unit_inside(spec) is not None else 1024
    i = unit_inside(spec, size)
    assert i is not None
    a = spread_matrix(spec.stride, spec.offset, spec.rf_paper, spec.hidden, size).numpy()
    c = unit_centre(spec, i)
    row = a[i]
    support = np.nonzero(row)[0]
    half = (spec.rf_paper - 1) / 2
    assert c - half >= 0 and c + half <= size - 1  # this unit's field lies inside the canvas
    assert support.max() - support.min() + 1 <= spec.rf_paper
    assert np.abs(support - c).max() <= (spec.rf_paper - 1) / 2
    assert support.min() == math.ceil(c - half) and support.max() == math.floor(c + half)  # the whole field
    assert (row * np.arange(size)).sum() == pytest.approx(c, abs=1e-9)
    sigma = (spec.rf_paper - 1) / 4
    p = support[0]
    expected = np.exp(-0.5 * ((p - c) / sigma) ** 2) / np.exp(-0.5 * ((round(c) - c) / sigma) ** 2)
    assert row[p] / row[round(c)] == pytest.approx(expected, rel=1e-9)
    gauss = np.exp(-0.5 * ((support - c) / sigma) ** 2)  # the whole profile, not one point
    np.testing.assert_allclose(row[support], gauss / gauss.sum(), rtol=1e-9)
    if size != 640:
        in_image = spread_matrix(spec.stride, spec.offset, spec.rf_paper, spec.hidden).numpy()[i]
        np.testing.assert_allclose(in_image, row[:640] / row[:640].sum(), rtol=1e-12, atol=1e-15)


def test_random_maps_keep_their_sums_and_batch_shape():
    rng = np.random.default_rng(0)
    for spec in CONV_LAYERS:
        m = rng.standard_normal((5, spec.hidden, spec.hidden))
        out = to_input_space(m, spec)
        assert out.shape == (5, 640, 640)
        np.testing.assert_allclose(out.sum((1, 2)), m.sum((1, 2)), rtol=1e-10, atol=1e-9)


def test_float32_maps_stay_float32_and_accurate():
    spec = CONV_LAYERS[0]
    m = torch.randn(5, 640, 640, generator=torch.Generator().manual_seed(1))
    out = to_input_space(m, spec)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.astype(np.float64).sum((1, 2)), m.double().sum((1, 2)).numpy(), rtol=1e-4, atol=1e-2)


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError):
        to_input_space(np.zeros((5, 10, 10)), CONV_LAYERS[0])
