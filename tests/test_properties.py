"""Invariants that must hold for any input (Hypothesis)."""

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.fundus import UNEXPECTED_FAILURE, Fundus, FundusReadError, read_fundus
from core.model import CONV_LAYERS
from core.propagation import propagate
from core.transport import to_input_space
from tests.direct_propagation import random_network


@settings(max_examples=60, deadline=None)
@given(
    layer=st.integers(1, 15),
    units=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True),
                             st.floats(-1e3, 1e3, allow_nan=False)), min_size=1, max_size=6),
)
def test_transport_keeps_every_units_mass(layer, units):
    spec = CONV_LAYERS[layer - 1]
    m = np.zeros((spec.hidden, spec.hidden))
    for fy, fx, v in units:
        m[int(fy * spec.hidden), int(fx * spec.hidden)] += v
    out = to_input_space(m, spec)
    assert out.sum() == pytest.approx(m.sum(), rel=1e-9, abs=1e-9)
    for fy, fx, _ in units:  # and unit by unit: each keeps its own score
        one = np.zeros_like(m)
        i, j = int(fy * spec.hidden), int(fx * spec.hidden)
        one[i, j] = m[i, j]
        assert to_input_space(one, spec).sum() == pytest.approx(m[i, j], rel=1e-9, abs=1e-12)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    widths=st.lists(st.integers(1, 4), min_size=15, max_size=15),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
)
def test_conservation_for_random_networks_and_images(widths, seed, scale):
    model = random_network(tuple(widths), seed)
    x = torch.randn(1, 3, 640, 640, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * scale
    p = propagate(model, x, precision="float64")
    s = p.scores
    const = np.zeros(5)
    worst = 0.0
    for i in range(14, -1, -1):
        const += p.constant[i].sum((1, 2))
        rec = p.input_dependent[i].sum((1, 2)) + const + p.bias
        worst = max(worst, np.abs(s - rec).max())
    worst = max(worst, np.abs(s - (p.input_map.sum((1, 2)) + const + p.bias)).max())
    # only units below the 1e-5 threshold lose their (tiny) score
    assert worst <= 1e-6 * max(1.0, np.abs(s).max())


def _valid_files() -> list[bytes]:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    out = []
    for fmt in ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


VALID = _valid_files()


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, len(VALID) - 1),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=8),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    junk=st.binary(max_size=64),
)
def test_reader_raises_only_its_own_error(which, flips, cut, junk):
    data = bytearray(VALID[which])
    for pos, x in flips:
        data[int(pos * len(data))] ^= x
    if cut is not None:
        data = data[: int(cut * len(data))]
    data += junk
    try:
        f = read_fundus(bytes(data))
    except FundusReadError as e:
        assert str(e) and "\n" not in str(e)
        assert not str(e).startswith(UNEXPECTED_FAILURE), str(e)  # a named refusal, not the catch-all
    else:
        assert isinstance(f, Fundus) and f.image.shape == (640, 640, 3) and f.image.dtype == np.uint8


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_reader_on_arbitrary_bytes(data):
    try:
        f = read_fundus(data)
    except FundusReadError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert f.image.shape == (640, 640, 3)
