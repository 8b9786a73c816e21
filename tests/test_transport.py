"""Hidden maps to input space: every unit's score stays whole, at the border too."""

import numpy as np
import pytest
import torch

from core.model import CONV_LAYERS
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


@pytest.mark.parametrize("spec", CONV_LAYERS, ids=lambda s: f"L{s.index}")
def test_kernel_is_the_receptive_fields_gaussian(spec):
    """Support within the paper's RF, centred on the RF centre, sigma = (RF - 1) / 4."""
    a = spread_matrix(spec.stride, spec.offset, spec.rf_paper, spec.hidden).numpy()
    i = spec.hidden // 2
    c = unit_centre(spec, i)
    row = a[i]
    support = np.nonzero(row)[0]
    half = (spec.rf_paper - 1) / 2
    if c - half >= 0 and c + half <= 639:  # this unit's field lies inside the image
        assert support.max() - support.min() + 1 <= spec.rf_paper
        assert np.abs(support - c).max() <= (spec.rf_paper - 1) / 2
        assert (row * np.arange(640)).sum() == pytest.approx(c, abs=1e-9)
        sigma = (spec.rf_paper - 1) / 4
        p = support[0]
        expected = np.exp(-0.5 * ((p - c) / sigma) ** 2) / np.exp(-0.5 * ((round(c) - c) / sigma) ** 2)
        assert row[p] / row[round(c)] == pytest.approx(expected, rel=1e-9)


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
