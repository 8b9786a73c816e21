"""The reading view's maps (core.views): every one sums to a named part of the score.

On the real photograph with the published weights (``paper_explanation``): the total map
of any level, the input or a hidden layer's input-dependent map with the constants of the
layers from it up and the bias, adds up to the grade's score; the pixel-evidence maps are
exactly the explanation's own input-dependent maps; and ``shares`` splits the score into
pixels, constants and bias that add up to it.
"""

from __future__ import annotations

import numpy as np
import pytest

from core import views
from core.model import CONV_LAYERS

GRADES = range(5)
LEVELS = (*range(1, len(CONV_LAYERS) + 1), "input", 16)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.parametrize("level", LEVELS, ids=str)
def test_total_map_of_every_level_sums_to_the_score(paper_explanation, level):
    exp = paper_explanation
    for g in GRADES:
        values, name = views.level_map(exp, g, level, "total")
        assert values.shape == (640, 640) and values.dtype == np.float32
        score = float(exp.scores[g])
        assert rel(float(values.sum(dtype=np.float64)), score) < 1e-4, (level, g, name)
        if level in ("input", 16):
            assert name == "total map"
            np.testing.assert_array_equal(values, exp.total()[g])
        else:
            assert name.startswith(f"total map at layer {level} ") and f"layers ≥ {level}" in name


def test_total_map_at_a_layer_is_its_input_dependent_map_plus_the_constants_above_and_the_bias(paper_explanation):
    """Term by term, at one layer: what the total map at layer 8 is made of (not only its sum)."""
    exp, g = paper_explanation, paper_explanation.grade
    expected = exp.in_input_space(8, "input_dependent")[g].astype(np.float64) + exp.bias_map()[g]
    for spec in CONV_LAYERS:
        if spec.index >= 8:
            expected += exp.in_input_space(spec.index, "constant")[g]
    np.testing.assert_allclose(views.level_map(exp, g, 8)[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("level", LEVELS, ids=str)
def test_pixel_evidence_is_the_input_dependent_map_of_the_level(paper_explanation, level):
    exp = paper_explanation
    for g in GRADES:
        values, name = views.level_map(exp, g, level, "pixels")
        if level in ("input", 16):
            np.testing.assert_array_equal(values, exp.input_map[g])
            assert name == "input map (pixel evidence only)"
        else:
            np.testing.assert_array_equal(values, exp.in_input_space(level, "input_dependent")[g])
            assert name == f"input-dependent map of layer {level} (pixel evidence only)"


def test_level_16_shows_the_inputs_map(paper_explanation):
    """Layer 16's 64 features have no place: its view is the input's, for both evidences."""
    exp, g = paper_explanation, paper_explanation.grade
    for evidence in views.EVIDENCE:
        a, name_a = views.level_map(exp, g, 16, evidence)
        b, name_b = views.level_map(exp, g, "input", evidence)
        np.testing.assert_array_equal(a, b)
        assert name_a == name_b


@pytest.mark.parametrize("level", [0, 17, -1, "16", "layer 3", True, False, None])
def test_an_invalid_level_raises(paper_explanation, level):
    with pytest.raises((ValueError, TypeError)):
        views.level_map(paper_explanation, 0, level, "total")


@pytest.mark.parametrize("level", [0, 17, "x", True])
def test_an_invalid_level_raises_a_value_error_that_names_it(paper_explanation, level):
    with pytest.raises(ValueError, match="level must be 1..16 or 'input'"):
        views.level_map(paper_explanation, 0, level, "pixels")


@pytest.mark.parametrize("evidence", ["constant", "Total", "", None, "input_dependent"])
@pytest.mark.parametrize("level", ["input", 8])
def test_an_invalid_evidence_raises(paper_explanation, level, evidence):
    with pytest.raises(ValueError, match="evidence must be one of"):
        views.level_map(paper_explanation, 0, level, evidence)


def test_shares_add_up_to_the_score(paper_explanation):
    exp = paper_explanation
    for g in GRADES:
        sh = views.shares(exp, g)
        assert sh.score == pytest.approx(float(exp.scores[g]))
        assert sh.pixels == pytest.approx(float(exp.input_map[g].sum(dtype=np.float64)), rel=1e-9)
        assert sh.bias == pytest.approx(float(exp.bias[g]))
        assert rel(sh.pixels + sh.constants + sh.bias, sh.score) < 1e-4, (g, sh)
        assert 0.0 <= sh.pixel_share <= 1.0
        whole = abs(sh.pixels) + abs(sh.constants) + abs(sh.bias)
        assert sh.pixel_share == pytest.approx(abs(sh.pixels) / whole, rel=1e-12)


@pytest.mark.parametrize(
    ("pixels", "constants", "bias", "share"),
    [
        (25.6, 60.4, 0.0, 25.6 / 86.0),  # "30 % pixel evidence"
        (50.0, -45.0, 0.0, 50.0 / 95.0),  # parts of opposite signs: by magnitude, never above 1
        (-3.0, 1.0, 1.0, 3.0 / 5.0),
        (0.0, 5.0, 1.0, 0.0),
        (2.0, 0.0, 0.0, 1.0),
        (0.0, 0.0, 0.0, 0.0),  # nothing at all: 0, not a division by zero
    ],
)
def test_pixel_share_is_by_magnitude(pixels, constants, bias, share):
    sh = views.Shares(score=pixels + constants + bias, pixels=pixels, constants=constants, bias=bias)
    assert sh.pixel_share == pytest.approx(share)
    assert 0.0 <= sh.pixel_share <= 1.0


# -- lesion-scale views (core.views.ViewSpec) ---------------------------------------------------
def test_every_exact_candidate_view_sums_to_the_score(paper_explanation):
    """Means of level maps, pooled over regions: each sums to the grade's score; the
    pixel-evidence and positive-part variants are flagged as not exact, and differ."""
    from core.study.candidates import candidate_specs

    exp = paper_explanation
    g = int(np.argmax(exp.scores))
    specs = candidate_specs()
    assert len({s.name for s in specs}) == len(specs)
    for spec in specs:
        values = views.view_map(exp, g, spec)
        assert values.shape == (640, 640) and values.dtype == np.float32
        total = float(values.sum(dtype=np.float64))
        if spec.exact:
            assert rel(total, float(exp.scores[g])) < 1e-4, spec.name
        elif spec.positive:
            assert (values >= 0).all()
        if spec.pool > 1:  # one value per region
            blocks = values.reshape(640 // spec.pool, spec.pool, 640 // spec.pool, spec.pool)
            assert (blocks == blocks[:, :1, :, :1]).all(), spec.name


def test_the_lesion_view_is_the_chosen_spec(paper_explanation):
    exp = paper_explanation
    values, name = views.lesion_view(exp, 3)
    np.testing.assert_array_equal(values, views.view_map(exp, 3, views.LESION_VIEW))
    assert rel(float(values.sum(dtype=np.float64)), float(exp.scores[3])) < 1e-4
    assert name == f"lesion view: {views.LESION_VIEW.label}"
    assert views.LESION_VIEW.exact
    with pytest.raises(ValueError):
        views.view_map(exp, 3, views.ViewSpec(()))


def test_the_lesion_view_is_what_the_committed_study_chose():
    """core's LESION_VIEW is the winner of the committed IDRiD study, and the figures the page
    quotes for it are that study's (rounded as quoted)."""
    import json

    from core.weights import ASSETS

    doc = json.loads((ASSETS / "quality" / "quality_paper_idrid.json").read_text())
    sel = doc["view_selection"]
    assert sel["winner"] == views.LESION_VIEW.name == sel["in_core"]
    cells = doc["methods"]
    measured = {"photographs": doc["n_images"]}
    for key, method, metric in (("auc", "lesion_view", "auc"), ("pointing", "lesion_view", "pointing"),
                                ("paper_auc", "paper_total", "auc"), ("paper_pointing", "paper_total", "pointing")):
        measured[key] = round(cells[method][f"{metric}_predicted"]["value"], 3)
    assert measured == views.LESION_VIEW_MEASURED
