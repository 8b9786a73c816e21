"""Tests for core.fundus.gradability: the gate that refuses ungradable pictures before grading.

Pictures are the real CC0 photograph in tests/data and damaged copies of it, made in
memory, so the file needs no shared data and runs in seconds. (The rates on IDRiD and
on the generated corpus are in tests/study/test_gate.py.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.fundus import PARTIAL_FOV_SHARE, Assessment, Check, Fundus, assess, prepare, read_fundus
from core.fundus import gradability as g
from core.study.gate import blur, exposure, jpeg, model_pixels, noise
from tests.image_bytes import encode

RETINA = Path(__file__).resolve().parents[1] / "data" / "retina.jpg"
ORANGE = (205, 110, 45)
CHECK_NAMES = ("fov_found", "fov_diameter_px", "fov_visible", "exposure_low", "exposure_high", "colour_fundus",
               "dark_surround", "contrast", "sharpness", "noise", "compression")


@pytest.fixture(scope="module")
def retina() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(RETINA)), cv2.COLOR_BGR2RGB)


def failed(a: Assessment) -> set[str]:
    return {c.name for c in a.checks if not c.passed}


def quality(rgb: np.ndarray) -> Assessment:
    q = prepare(rgb).quality
    assert q is not None
    return q


# ------------------------------------------------------------------ the two known failures


def test_an_8x8_orange_png_is_ungradable_for_the_right_reasons() -> None:
    f = read_fundus(encode(np.full((8, 8, 3), ORANGE, np.uint8), "PNG"))
    q = f.quality
    assert q is not None and not q.gradable
    assert {"fov_found", "fov_diameter_px", "contrast"} <= failed(q)
    assert q.reasons[0].startswith("no field of view found")
    assert q.check("fov_diameter_px").value == 8
    # orange is a fundus colour: that check is not what refuses it
    assert q.check("colour_fundus").passed


def test_an_all_black_image_is_ungradable_for_the_right_reasons() -> None:
    q = read_fundus(encode(np.zeros((480, 640, 3), np.uint8), "PNG")).quality
    assert q is not None and not q.gradable
    assert {"fov_found", "exposure_low", "colour_fundus", "contrast"} <= failed(q)
    assert q.check("exposure_low").value == 0
    assert "under-exposed" in " ".join(q.reasons)


# ---------------------------------------------------------------------- the real photograph


def test_the_real_photograph_is_gradable_and_every_check_is_there(retina: np.ndarray) -> None:
    t = time.perf_counter()
    f = prepare(retina)
    seconds = time.perf_counter() - t
    print(f"\nprepare + assess of a {retina.shape[1]}x{retina.shape[0]} photograph: {1000 * seconds:.0f} ms")
    q = f.quality
    assert q is not None and q.gradable and q.reasons == ()
    assert tuple(c.name for c in q.checks) == CHECK_NAMES
    assert all(isinstance(c, Check) and c.passed for c in q.checks)


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda rgb, d: blur(rgb, model_pixels(10, d)), "sharpness"),
        (lambda rgb, d: exposure(rgb, 0.1), "exposure_low"),
        (lambda rgb, d: exposure(rgb, 4.0), "exposure_high"),
        (lambda rgb, d: jpeg(rgb, 3), "compression"),
        (lambda rgb, d: noise(rgb, 60, np.random.default_rng(0)), "noise"),
        (lambda rgb, d: np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2), "colour_fundus"),
        (lambda rgb, d: cv2.resize(rgb, (200, 200), interpolation=cv2.INTER_AREA), "fov_diameter_px"),
    ],
    ids=["blur", "dark", "bright", "jpeg", "noise", "greyscale", "tiny"],
)
def test_each_damage_is_refused_by_its_own_check(retina: np.ndarray, damage, reason: str) -> None:
    diameter = float(prepare(retina).crop_box[2] - prepare(retina).crop_box[0])
    q = quality(damage(retina, diameter))
    assert not q.gradable
    assert reason in failed(q), q.reasons


def test_a_field_cut_in_half_is_refused_and_warned(retina: np.ndarray) -> None:
    h, w = retina.shape[:2]
    banded = retina.copy()
    banded[: h // 2] = 0  # the upper half under a dark band
    for cut in (np.ascontiguousarray(retina[:, : int(0.55 * w)]), np.ascontiguousarray(retina[int(0.45 * h) :]), banded):
        f = prepare(cut)
        assert f.quality is not None and not f.quality.gradable
        visible = f.quality.check("fov_visible")
        assert not visible.passed and visible.value < 0.6, visible
        assert f.quality.reasons[0].startswith("field of view cut off")
        assert any(w.startswith("Only ") and "field of view is in the picture" in w for w in f.warnings)
    # exactly half of a disc that fills the frame is no longer recognisable as a disc: refused all the same
    q = quality(np.ascontiguousarray(retina[:, : w // 2]))
    assert not q.gradable and {"fov_found", "fov_visible"} & failed(q)


def test_a_whole_field_gives_no_partial_warning(retina: np.ndarray) -> None:
    f = prepare(retina)
    assert f.quality is not None and f.quality.check("fov_visible").value > PARTIAL_FOV_SHARE
    assert not any("field of view is in the picture" in w for w in f.warnings)


# ---------------------------------------------------------------------- the result's form


@pytest.mark.parametrize("kind", ["retina", "orange", "black", "noise", "half"])
def test_every_message_is_one_line_naming_value_and_threshold(retina: np.ndarray, kind: str) -> None:
    rgb = {
        "retina": retina,
        "orange": np.full((8, 8, 3), ORANGE, np.uint8),
        "black": np.zeros((300, 400, 3), np.uint8),
        "noise": np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8),
        "half": np.ascontiguousarray(retina[:, : retina.shape[1] // 2]),
    }[kind]
    q = quality(rgb)
    for c in q.checks:
        assert c.message and "\n" not in c.message and len(c.message) < 160, c
        if c.name == "fov_found":
            continue
        if not np.isfinite(c.value):
            assert c.passed and c.message.endswith("not measured")
            continue
        assert "(needs >= " in c.message or "(needs <= " in c.message, c.message
        shown = c.message.split("(needs")[0]
        assert any(ch.isdigit() for ch in shown), c.message  # the measured value is in the line
    assert q.reasons == tuple(c.message for c in q.checks if not c.passed)  # in order of importance


def test_failed_message_says_what_is_wrong_and_passed_one_does_not(retina: np.ndarray) -> None:
    f = prepare(retina)
    from core.fundus.fov import fit_fov

    measures = g.measure(retina, fit_fov(retina), f.image, f.fov)
    checks = {c.name: c for c in g.checks_of({**measures, "sharpness": 0.21, "noise": 1.04})}
    assert checks["sharpness"].message == (
        f"not sharp (out of focus, motion blur or too few pixels): sharpness 0.21 (needs >= {g.MIN_SHARPNESS:.2f})")
    assert not checks["sharpness"].passed
    assert checks["noise"].passed and checks["noise"].message == f"noise 1.0 (needs <= {g.MAX_NOISE:.1f})"


def test_as_dict_is_json_ready(retina: np.ndarray) -> None:
    for rgb in (retina, np.zeros((64, 64, 3), np.uint8)):
        q = quality(rgb)
        d = q.as_dict()
        text = json.dumps(d, allow_nan=False)  # NaN (not measured) became null
        back = json.loads(text)
        assert back["gradable"] is q.gradable
        assert back["reasons"] == list(q.reasons)
        assert list(back["checks"]) == [c.name for c in q.checks]
        for c in q.checks:
            entry = back["checks"][c.name]
            assert set(entry) == {"value", "threshold", "passed"}
            assert entry["passed"] is c.passed
            assert entry["value"] == (c.value if np.isfinite(c.value) else None)


def test_gradable_means_every_check_passed() -> None:
    ok = Check("a", 1.0, 0.5, True, "a 1.0 (needs >= 0.5)")
    bad = Check("b", 0.1, 0.5, False, "too low: b 0.1 (needs >= 0.5)")
    a = Assessment(False, (ok, bad))
    assert a.reasons == ("too low: b 0.1 (needs >= 0.5)",)
    assert a.check("b") is bad
    with pytest.raises(KeyError):
        a.check("c")


def test_assess_takes_the_readers_four_inputs(retina: np.ndarray) -> None:
    f = prepare(retina)
    from core.fundus.fov import fit_fov

    direct = assess(retina, fit_fov(retina), f.image, f.fov)
    assert direct == f.quality


def test_a_fundus_built_by_hand_has_no_assessment() -> None:
    f = Fundus(image=np.zeros((640, 640, 3), np.uint8), fov=np.ones((640, 640), bool), crop_box=(0, 0, 640, 640),
               original_size=(640, 640))
    assert f.quality is None


def test_measures_do_not_depend_on_the_files_size(retina: np.ndarray) -> None:
    """The same photograph at full and at half size: the image measures are taken at the
    model's scale, so they agree closely and both pass."""
    half = cv2.resize(retina, (retina.shape[1] // 2, retina.shape[0] // 2), interpolation=cv2.INTER_AREA)
    a, b = quality(retina), quality(half)
    assert a.gradable and b.gradable
    for name in ("exposure_low", "colour_fundus", "contrast"):
        assert a.check(name).value == pytest.approx(b.check(name).value, rel=0.1), name
    assert a.check("sharpness").value == pytest.approx(b.check("sharpness").value, rel=0.25)
    assert a.check("fov_diameter_px").value == pytest.approx(2 * b.check("fov_diameter_px").value, rel=0.02)


def test_blockiness_sees_the_jpeg_grid_at_any_phase(retina: np.ndarray) -> None:
    heavy = jpeg(retina, 5)
    assert g.blockiness(heavy) > g.MAX_BLOCKINESS
    assert g.blockiness(np.ascontiguousarray(heavy[3:, 5:])) > g.MAX_BLOCKINESS  # grid shifted by a crop
    assert g.blockiness(retina) < g.MAX_BLOCKINESS
    assert g.blockiness(np.zeros((8, 8, 3), np.uint8)) == 1.0
