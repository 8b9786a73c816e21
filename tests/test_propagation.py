"""The fast propagation against a literal implementation of the paper's rules,
and conservation of every grade's score at every layer."""

import copy

import numpy as np
import pytest
import torch

from core.propagation import propagate
from tests.direct_propagation import direct_propagation, random_network, relative_difference

TOL = 1e-4
SMALL = [(3, 3, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 5), (2, 4, 3, 5, 2, 6, 3, 7, 4, 8, 5, 3, 6, 2, 7)]


def _image(seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(1, 3, 640, 640, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def conservation_errors(p, scores=None):
    """Relative conservation error per grade at each layer and at the input."""
    s = np.asarray(p.scores if scores is None else scores, np.float64)
    errs = []
    const = np.zeros_like(s)
    for i in range(len(p.constant) - 1, -1, -1):
        const += p.constant[i].astype(np.float64).sum((1, 2))
        rec = p.input_dependent[i].astype(np.float64).sum((1, 2)) + const + p.bias
        errs.append(np.abs(s - rec) / np.abs(s))
    errs.append(np.abs(s - (p.input_map.astype(np.float64).sum((1, 2)) + const + p.bias)) / np.abs(s))
    errs.append(np.abs(s - (p.features.astype(np.float64).sum(1) + p.bias)) / np.abs(s))
    return np.array(errs)


def assert_agrees(p, d, grades, tol=TOL):
    for c in grades:
        g = d["grades"][c]
        for L in range(1, 16):
            dep, const = g["hidden"][L]
            assert relative_difference(p.input_dependent[L - 1][c], dep) <= tol, (c, L, "input-dependent")
            assert relative_difference(p.constant[L - 1][c], const) <= tol, (c, L, "constant")
        assert relative_difference(p.input_map[c], g["input_map"]) <= tol, (c, "input map")
        assert relative_difference(p.features[c], g["features"]) <= tol


@pytest.mark.parametrize(("widths", "seed"), [(SMALL[0], 0), (SMALL[1], 1), (SMALL[1], 2)])
def test_fast_path_agrees_with_direct_rules_on_random_networks(widths, seed):
    model = random_network(widths, seed)
    x = _image(seed + 10)
    p = propagate(model, x, precision="float64")
    d = direct_propagation(copy.deepcopy(model), x)
    np.testing.assert_allclose(p.scores, d["scores"], rtol=1e-10)
    assert_agrees(p, d, range(5), tol=1e-9)
    # the layers carry real signal: not a comparison of zeros
    assert all(np.abs(d["grades"][0]["hidden"][L][0]).max() > 0 for L in range(1, 16))


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_conservation_on_random_networks(precision):
    """In float64 the only loss is the score of units below the 1e-5 threshold."""
    model = random_network(SMALL[0], 3)
    p = propagate(model, _image(4), precision=precision)
    assert conservation_errors(p).max() <= (1e-6 if precision == "float64" else TOL)


@pytest.mark.parametrize(("beta", "active"), [(2e-5, True), (5e-6, False)])
def test_inactive_threshold_follows_the_authors_rule(beta, active):
    """A unit below 1e-5 gets lambda = 0 (the authors' rule), even though it is > 0."""
    model = random_network(SMALL[0], 5)
    conv, bn = model.blocks()[-1]
    with torch.no_grad():  # layer 15: channel 0 outputs exactly beta everywhere, the rest 0
        bn.weight.zero_()
        bn.bias.zero_()
        bn.bias[0] = beta
    p = propagate(model, _image(6), precision="float64")
    w = model.linear.weight[:, 0].numpy()
    expected = w[:, None, None] / 16 * beta * np.ones((1, 4, 4)) if active else np.zeros((5, 4, 4))
    np.testing.assert_allclose(p.constant[-1], expected, rtol=1e-12, atol=0)
    assert np.abs(p.input_dependent[-1]).max() == 0
    for L in range(14):  # nothing reaches the layers below layer 15: no unit has an input-dependent part
        assert np.abs(p.constant[L]).max() == 0 and np.abs(p.input_dependent[L]).max() == 0


class _GatedReLU(torch.autograd.Function):
    """ReLU whose derivative is 0 below the authors' 1e-5 threshold."""

    @staticmethod
    def forward(ctx, z):
        out = z.clamp_min(0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (out >= 1e-5)


def _gated_scores(model, x):
    h = x
    for m in list(model.features) + list(model.classifier):
        h = _GatedReLU.apply(h) if isinstance(m, torch.nn.ReLU) else m(h)
    return model.linear(h.flatten(1))[0]


def test_input_map_is_input_times_gradient():
    """The remark of docs/method.md section 4, verified with autograd: lambda is dS/da once the ReLU's
    derivative is taken as 0 below 1e-5, so the input map is x * grad (RGB summed)."""
    model = random_network(SMALL[1], 7)
    x = _image(8)
    p = propagate(model, x, precision="float64")
    xg = x.clone().requires_grad_(True)
    s = _gated_scores(model, xg)
    for c in range(5):
        (g,) = torch.autograd.grad(s[c], xg, retain_graph=True)
        assert relative_difference(p.input_map[c], (g * x).sum(1)[0].numpy()) <= 1e-9


@pytest.mark.paper
@pytest.mark.slow
def test_fast_path_agrees_with_direct_rules_on_published_weights(paper_model, retina_fundus):
    """On the real photograph, dithered by +-0.5 grey level: its black surround is exactly
    flat, and there a max pool's winner among equal inputs is arbitrary (both
    implementations are right, but pick differently). Dither removes exact ties."""
    rng = np.random.default_rng(0)
    x = paper_model.normalisation.to_tensor(retina_fundus.image)
    x = x + torch.from_numpy(rng.uniform(-0.5, 0.5, x.shape)).float() / 255 / 0.226
    grades = [4]  # one row: the gates (the forward pass) are shared by all five grades; random networks test them all
    d = direct_propagation(copy.deepcopy(paper_model.network), x, grades=grades)
    p64 = propagate(paper_model.network, x, precision="float64")
    assert_agrees(p64, d, grades, tol=1e-9)


@pytest.mark.paper
def test_conservation_on_published_weights_all_grades_all_layers(paper_model, retina_fundus):
    x = paper_model.normalisation.to_tensor(retina_fundus.image)
    p = propagate(paper_model.network, x)
    errs = conservation_errors(p)
    assert errs.shape == (17, 5)
    assert errs.max() <= TOL


@pytest.mark.paper
def test_float32_default_against_float64_reference(paper_model, retina_fundus):
    """float32 rounding decides a few units at the 1e-5 threshold or at max-pool
    near-ties differently; each moves score between a layer's two parts and changes
    what reaches the layers below. Measured: <= 3% of a map's peak in layers 1-8
    (README, "Precision"); layers 9-15 and the scores agree to float32 rounding."""
    x = paper_model.normalisation.to_tensor(retina_fundus.image)
    p32 = propagate(paper_model.network, x)
    p64 = propagate(paper_model.network, x, precision="float64")
    np.testing.assert_allclose(p32.scores, p64.scores, rtol=1e-5)
    np.testing.assert_allclose(p32.features, p64.features, rtol=1e-4, atol=1e-4)
    for L in range(1, 16):
        tol = TOL if L >= 9 else 5e-2
        for c in range(5):
            assert relative_difference(p32.input_dependent[L - 1][c], p64.input_dependent[L - 1][c]) <= tol, L
            assert relative_difference(p32.constant[L - 1][c], p64.constant[L - 1][c]) <= tol, L
        assert relative_difference(p32.input_map, p64.input_map) <= 5e-2
