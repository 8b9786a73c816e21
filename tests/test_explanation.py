"""The Explanation object: shapes, totals that sum to the scores, masks, exports."""

import io
import json

import numpy as np
import pytest

import core
from core.explanation import Explanation, threshold_mask
from core.propagation import propagate
from core.weights import IMAGENET
from tests.direct_propagation import random_network


@pytest.fixture(scope="module")
def small_explanation(retina_fundus):
    model = random_network((3, 3, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 5), 0).float()
    x = IMAGENET.to_tensor(retina_fundus.image)
    return Explanation(propagate(model, x), retina_fundus, "random", "0" * 64)


def test_shapes_follow_the_layer_table(small_explanation):
    e = small_explanation
    assert e.scores.shape == (5,) and e.features.shape == (5, 5) and e.bias.shape == (5,)
    for spec in core.CONV_LAYERS:
        assert e.layer(spec.index).input_dependent.shape == (5, spec.hidden, spec.hidden)
        assert e.in_input_space(spec.index, "constant").shape == (5, 640, 640)
    assert e.input_map.shape == e.total().shape == (5, 640, 640)
    with pytest.raises(ValueError):
        e.layer(16)
    with pytest.raises(ValueError):
        e.in_input_space(3, "both")


def test_input_space_maps_are_cached_per_grade_and_read_only(small_explanation):
    e = small_explanation
    a = e.in_input_space(7, "input_dependent", 2)
    assert a.shape == (640, 640) and a is e.in_input_space(7, "input_dependent", 2)
    assert e.total(3) is e.total(3) and e.constants(1) is e.constants(1)
    whole = e.in_input_space(7, "input_dependent")  # the five grades stacked from the same maps
    np.testing.assert_array_equal(whole[2], a)
    for arr in (a, whole, e.total(3), e.total()):
        with pytest.raises(ValueError):
            arr[..., 0, 0] = 1
    for bad in (5, -1, 1.0, True, "2"):
        with pytest.raises(ValueError):
            e.total(bad)


@pytest.mark.paper
def test_one_grade_shown_makes_only_that_grades_maps(paper_model, retina_fundus):
    """The page shows one grade: its total must not take the other grades' maps to input space."""
    e = core.explain(paper_model, retina_fundus)
    e.total(e.grade)
    e.conservation([e.grade])
    made = {k[-1] for k in e._cache if isinstance(k, tuple)}
    assert made == {e.grade}, made


def test_total_sums_to_the_scores_and_conservation_report(small_explanation):
    e = small_explanation
    np.testing.assert_allclose(e.total().astype(np.float64).sum((1, 2)), e.scores, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e.bias_map().sum((1, 2)), e.bias, rtol=1e-5)
    assert not e.bias_map()[:, ~e.fundus.fov].any()  # the bias lives on the field of view only
    rep = e.conservation()
    assert len(rep["grades"]) == 5 and all(len(g["layers"]) == 15 for g in rep["grades"])


def test_probabilities_and_grade(small_explanation):
    e = small_explanation
    assert e.probabilities.sum() == pytest.approx(1.0)
    assert e.grade == int(np.argmax(e.scores)) == int(np.argmax(e.probabilities))


def test_mask_is_positive_above_k_sigma_in_the_field_of_view():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((64, 64))
    fov = np.zeros((64, 64), bool)
    fov[8:56, 8:56] = True
    values[~fov] = 100.0  # outside the field of view: ignored
    m2 = threshold_mask(values, fov, 2.0)
    inside = values[fov]
    assert (m2 == fov & (values > inside.mean() + 2 * inside.std()) & (values > 0)).all()
    assert (threshold_mask(values, fov, 3.0) <= m2).all()  # higher k, fewer pixels
    assert not threshold_mask(-np.abs(values), fov, 0.5).any()  # never a negative pixel


@pytest.mark.paper
def test_published_weights_conserve_every_grade_at_every_layer(paper_explanation):
    rep = paper_explanation.conservation()
    assert rep["ok"] and rep["max_relative_error"] <= 1e-4
    for g in rep["grades"]:
        assert g["relative_error"] <= 1e-4
        assert [r["layer"] for r in g["layers"]] == list(range(15, 0, -1))
    assert paper_explanation.grade == 0


@pytest.mark.paper
def test_exports_have_the_clis_keys(paper_explanation):
    s = json.loads(paper_explanation.scores_json())
    assert {"scores", "probabilities", "grade", "weights", "conservation"} <= set(s)
    assert s["weights"]["name"] == "paper" and len(s["weights"]["sha256"]) == 64
    assert all({"relative_error", "score", "input_map_sum", "constants_sum", "bias"} <= set(g) for g in s["conservation"]["grades"])
    z = np.load(io.BytesIO(paper_explanation.npz_bytes()))
    assert z["input_map"].shape == z["total"].shape == (5, 640, 640)
    assert z["features"].shape == (5, 64) and z["scores"].shape == (5,) and z["bias"].shape == (5,)
    for spec in core.CONV_LAYERS:
        assert z[f"layer{spec.index}_input_dependent"].shape == (5, spec.hidden, spec.hidden)
        assert z[f"layer{spec.index}_constant"].shape == (5, spec.hidden, spec.hidden)


@pytest.mark.paper
def test_the_npz_reports_its_progress_and_holds_the_same_arrays(paper_explanation):
    seen: list[tuple[float, str]] = []
    data = paper_explanation.npz_bytes(lambda share, what: seen.append((share, what)))
    shares = [s for s, _ in seen]
    assert shares[0] == 0.0 and shares[-1] == 1.0 and shares == sorted(shares) and len(seen) > 30
    assert any("layer1_input_dependent" in w for _, w in seen)
    z = np.load(io.BytesIO(data))
    np.testing.assert_array_equal(z["total"], paper_explanation.total())
    np.testing.assert_array_equal(z["layer7_constant"], paper_explanation.layer(7).constant)
    assert z["fov"].dtype == bool


def test_a_limit_keeps_few_layer_maps_and_the_same_numbers(small_explanation):
    e = core.explain(core.load_weights("demo"), small_explanation.fundus)
    e.limit_layer_maps(4)
    first = {i: e.in_input_space(i, "input_dependent", 1).copy() for i in range(1, 16)}
    layer_keys = [k for k in e._cache if isinstance(k[0], int)]
    assert len(layer_keys) == 4 and (15, "input_dependent", 1) in e._cache  # the most recent kept
    again = e.in_input_space(1, "input_dependent", 1)  # dropped, made again: the same map
    np.testing.assert_array_equal(again, first[1])
    total = e.total(1)  # totals and constants are never dropped
    for i in range(1, 16):
        e.in_input_space(i, "constant", 1)
    assert e.total(1) is total and ("constants", 1) in e._cache
    np.testing.assert_allclose(e.constants_from(1, 1), e.constants(1))
    expected = sum(e.in_input_space(i, "constant", 1).astype(np.float64) for i in range(9, 16))
    np.testing.assert_allclose(e.constants_from(9, 1), expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError):
        e.limit_layer_maps(-1)
    with pytest.raises(ValueError):
        e.constants_from(16, 1)
