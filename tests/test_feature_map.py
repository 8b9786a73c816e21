"""One layer-15 feature's own map for one grade: ``propagate(..., start=rows)`` and
``core.feature_map``. The propagation is linear in the layer-16 rows it starts from,
so the features' maps add up to the grade's maps without the bias."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

import core
from core.propagation import propagate
from core.transport import to_input_space
from core.weights import IMAGENET
from tests.conftest import require_paper
from tests.direct_propagation import random_network, relative_difference

SMALL = (3, 3, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 5)  # 5 features at layer 15


def _arrays(p) -> dict[str, np.ndarray]:
    out = {"scores": p.scores, "features": p.features, "bias": p.bias, "input_map": p.input_map, "activations": p.activations}
    for i, (dep, const) in enumerate(zip(p.input_dependent, p.constant, strict=True)):
        out[f"dep{i + 1}"], out[f"const{i + 1}"] = dep, const
    return out


def _assert_bit_identical(a, b) -> None:
    a, b = _arrays(a), _arrays(b)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), k


def _total(p, row: int) -> np.ndarray:
    """Row ``row``'s input map plus every layer's constant map in input space, float64."""
    acc = p.input_map[row].astype(np.float64)
    for spec in core.CONV_LAYERS:
        acc += to_input_space(p.constant[spec.index - 1][row], spec)
    return acc


def _loaded(network: core.DRNet, name: str = "random") -> core.LoadedModel:
    return core.LoadedModel(network=network, name=name, sha256="0" * 64, normalisation=IMAGENET, meta={}, path=None)


@pytest.fixture(scope="module")
def small_model():
    return _loaded(random_network(SMALL, 0).float())


@pytest.fixture(scope="module")
def demo_model():
    return core.load_weights("demo")


@pytest.fixture(scope="module")
def demo_explanation(demo_model, retina_fundus):
    return core.explain(demo_model, retina_fundus)


def _model(request, name: str) -> core.LoadedModel:
    if name == "paper":
        require_paper()
        return request.getfixturevalue("paper_model")
    return request.getfixturevalue("demo_model")


# -- propagate(start=...) -------------------------------------------------------


@pytest.mark.parametrize(("precision", "channels_last"), [("float32", True), ("float32", False), ("float64", True)])
def test_start_none_is_the_model_rows_bit_for_bit(precision, channels_last):
    model = random_network(SMALL, 1)
    x = torch.randn(1, 3, 640, 640, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    kw = {"precision": precision, "channels_last": channels_last}
    default = propagate(model, x, **kw)
    _assert_bit_identical(default, propagate(model, x, start=None, **kw))
    _assert_bit_identical(default, propagate(model, x, start=model.linear.weight, **kw))
    _assert_bit_identical(default, propagate(model, x, start=model.linear.weight.numpy(), **kw))
    # rows in another order and a subset of rows: the same maps, rearranged
    order = [4, 0, 2]
    some = propagate(model, x, start=model.linear.weight[order], **kw)
    assert some.input_map.shape == (3, 640, 640) and some.constant[0].shape == (3, 640, 640)
    np.testing.assert_array_equal(some.scores, default.scores)  # still the model's
    np.testing.assert_array_equal(some.features, default.features)
    tol = 1e-12 if precision == "float64" else 1e-5
    for r, c in enumerate(order):
        assert relative_difference(some.input_map[r], default.input_map[c]) <= tol
        for L in range(15):
            assert relative_difference(some.constant[L][r], default.constant[L][c]) <= tol
            assert relative_difference(some.input_dependent[L][r], default.input_dependent[L][c]) <= tol


def test_start_none_on_real_weights_equals_explain(demo_model, retina_fundus, demo_explanation):
    x = demo_model.normalisation.to_tensor(retina_fundus.image)
    net = demo_model.network
    default = propagate(net, x)
    _assert_bit_identical(default, propagate(net, x))  # deterministic: a second call is the same
    _assert_bit_identical(default, propagate(net, x, start=net.linear.weight))
    e = demo_explanation
    for k, v in {"scores": e.scores, "features": e.features, "bias": e.bias, "input_map": e.input_map,
                 "activations": e.activations}.items():
        assert np.array_equal(getattr(default, k), v), k
    for spec in core.CONV_LAYERS:
        assert np.array_equal(default.input_dependent[spec.index - 1], e.layer(spec.index).input_dependent)
        assert np.array_equal(default.constant[spec.index - 1], e.layer(spec.index).constant)


def test_start_rows_conserve_their_own_sum():
    """Row r's maps add up to sum_j start[r, j] f_j at every layer, with no bias (float64: only
    the score of units below the 1e-5 threshold is lost, as in test_propagation)."""
    model = random_network(SMALL, 3)
    x = torch.randn(1, 3, 640, 640, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    rows = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    p = propagate(model, x, precision="float64", start=rows)
    target = (rows @ torch.from_numpy(p.activations)).numpy()
    assert np.abs(target).min() > 1e-3
    const = np.zeros(2)
    for i in range(14, -1, -1):
        const += p.constant[i].sum((1, 2))
        np.testing.assert_allclose(p.input_dependent[i].sum((1, 2)) + const, target, rtol=1e-6)
    np.testing.assert_allclose(p.input_map.sum((1, 2)) + const, target, rtol=1e-6)


@pytest.mark.parametrize(
    "bad", [np.zeros(5), np.zeros((0, 5)), np.zeros((1, 4)), np.zeros((1, 1, 5)), np.full((1, 5), np.nan),
            np.ones((1, 5), bool)],
)
def test_start_of_the_wrong_shape_or_values_is_refused(small_model, bad):
    with pytest.raises(ValueError, match="start"):
        propagate(small_model.network, torch.zeros(1, 3, 640, 640), start=bad)


# -- feature_map ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["demo", pytest.param("paper", marks=pytest.mark.paper)])
def test_feature_map_conserves_the_features_score(request, name, retina_fundus):
    model = _model(request, name)
    w = model.network.linear.weight.numpy()
    x = model.normalisation.to_tensor(retina_fundus.image)
    feats = propagate(model.network, x).activations
    grade = 4
    j = int(np.argmax(np.abs(w[grade] * feats)))
    f = core.feature_map(model, retina_fundus, grade, j)
    assert isinstance(f, core.FeatureMap) and (f.grade, f.feature) == (grade, j)
    assert f.input_map.shape == f.total.shape == (640, 640)
    assert f.input_map.dtype == f.total.dtype == np.float32
    assert not f.input_map.flags.writeable and not f.total.flags.writeable
    assert f.score == pytest.approx(float(w[grade, j]) * float(feats[j]), rel=1e-5) and abs(f.score) > 1e-3
    total = float(f.total.sum(dtype=np.float64))
    scale = max(abs(f.score), abs(float(f.input_map.sum(dtype=np.float64))), abs(total - float(f.input_map.sum(dtype=np.float64))))
    assert abs(f.score - total) / scale <= 1e-4
    assert f.relative_error <= 1e-4
    assert np.abs(f.input_map).max() > 0  # a real map, not zeros
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.score = 0.0  # type: ignore[misc]


def test_every_features_total_adds_up_to_the_grades_total_without_bias(small_model, retina_fundus):
    """All features of a (small) network, every grade: sum_j total_j == total - bias map."""
    e = core.explain(small_model, retina_fundus)
    n_feat = small_model.network.linear.weight.shape[1]
    for grade in (0, 3):
        maps = [core.feature_map(small_model, retina_fundus, grade, j) for j in range(n_feat)]
        summed = np.sum([m.total.astype(np.float64) for m in maps], axis=0)
        expected = e.total()[grade].astype(np.float64) - e.bias_map()[grade]
        assert relative_difference(summed, expected) <= 1e-5
        inputs = np.sum([m.input_map.astype(np.float64) for m in maps], axis=0)
        assert relative_difference(inputs, e.input_map[grade]) <= 1e-5
        assert sum(m.score for m in maps) == pytest.approx(float(e.features[grade].sum()), rel=1e-5)
        assert all(m.relative_error <= 1e-4 for m in maps)


@pytest.mark.parametrize("name", ["demo", pytest.param("paper", marks=pytest.mark.paper)])
def test_a_few_features_and_the_rest_add_up_to_the_grades_total(request, name, retina_fundus):
    """64 features on the real network, in 4 passes: three features' feature_map totals plus one
    propagation started from the grade's row without them give the grade's total minus the bias."""
    model = _model(request, name)
    e = request.getfixturevalue("demo_explanation") if name == "demo" else request.getfixturevalue("paper_explanation")
    grade = 4
    order = np.argsort(-np.abs(e.features[grade]))
    chosen = [int(j) for j in order[:3]]
    maps = [core.feature_map(model, retina_fundus, grade, j) for j in chosen]
    rest = model.network.linear.weight[grade].clone().view(1, -1)
    rest[0, chosen] = 0
    x = model.normalisation.to_tensor(retina_fundus.image)
    others = propagate(model.network, x, start=rest)
    expected = e.total()[grade].astype(np.float64) - e.bias_map()[grade]
    summed = _total(others, 0) + np.sum([m.total.astype(np.float64) for m in maps], axis=0)
    assert relative_difference(summed, expected) <= 1e-5
    # and the three alone are what a start row holding just those three gives
    three = model.network.linear.weight[grade].clone().view(1, -1)
    three[0, [j for j in range(three.shape[1]) if j not in chosen]] = 0
    p3 = propagate(model.network, x, start=three)
    assert relative_difference(np.sum([m.total.astype(np.float64) for m in maps], axis=0), _total(p3, 0)) <= 1e-5
    assert relative_difference(np.sum([m.input_map for m in maps], axis=0), p3.input_map[0]) <= 1e-5


def test_a_feature_that_is_zero_has_an_all_zero_map(demo_model, demo_explanation, retina_fundus):
    dead = np.flatnonzero(demo_explanation.activations == 0)
    assert dead.size, "the demo weights have dead layer-15 features on this photograph"
    f = core.feature_map(demo_model, retina_fundus, 2, int(dead[0]))
    assert f.score == 0 and f.relative_error == 0
    assert not f.input_map.any() and not f.total.any()


def test_a_feature_of_weight_zero_has_an_all_zero_map(retina_fundus):
    net = random_network(SMALL, 0).float()
    e = core.explain(_loaded(net), retina_fundus)
    j = int(np.argmax(e.activations))
    assert e.activations[j] > 0
    net = copy.deepcopy(net)
    with torch.no_grad():
        net.linear.weight[1, j] = 0
    f = core.feature_map(_loaded(net), retina_fundus, 1, j)
    assert f.score == 0 and not f.input_map.any() and not f.total.any()
    g = core.feature_map(_loaded(net), retina_fundus, 0, j)  # the same feature for another grade is not zero
    assert g.score != 0 and g.total.any()


@pytest.mark.parametrize(
    ("grade", "feature", "which"),
    [(-1, 0, "grade"), (5, 0, "grade"), (1.0, 0, "grade"), (True, 0, "grade"), ("1", 0, "grade"), (None, 0, "grade"),
     (0, -1, "feature"), (0, 64, "feature"), (0, 2.5, "feature"), (0, False, "feature")],
)
def test_invalid_grade_or_feature_is_refused(demo_model, retina_fundus, grade, feature, which):
    with pytest.raises(ValueError, match=f"^{which} must be an integer 0..{4 if which == 'grade' else 63}"):
        core.feature_map(demo_model, retina_fundus, grade, feature)


def test_numpy_integers_are_accepted_and_a_wrong_image_size_refused(small_model, retina_fundus):
    f = core.feature_map(small_model, retina_fundus, np.int64(2), np.int32(1))
    assert (f.grade, f.feature) == (2, 1) and type(f.grade) is int
    small = dataclasses.replace(retina_fundus, image=retina_fundus.image[:320, :320])
    with pytest.raises(ValueError, match="640"):
        core.feature_map(small_model, small, 0, 0)
