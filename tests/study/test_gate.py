"""Tests for core.study.gate and ``python -m core gate``: the gradability gate on data.

The generated corpus needs nothing; the rates on real photographs read the IDRiD
training photographs in ../shared/data beside the project (skipped when absent, as on
a user's machine; failed when DR_REQUIRE_PAPER_WEIGHTS=1, as in CI).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.study import gate
from core.study.gate import (
    CORPUS_CATEGORIES,
    DEGRADATIONS,
    FUNDUS_CATEGORIES,
    PER_CATEGORY,
    Curve,
    corpus_verdicts,
    evenly_spaced,
    generated_corpus,
    idrid_photographs,
    read_photograph,
    shrink,
    summarise_curves,
    summarise_verdicts,
)
from core.study.gate import report as gate_report

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RETINA = Path(__file__).resolve().parents[1] / "data" / "retina.jpg"
SCENES = tuple(c for c in CORPUS_CATEGORIES if c not in FUNDUS_CATEGORIES)


def require_data() -> Path:
    """Skip without the shared IDRiD photographs, as on a user's machine; fail in CI."""
    if (DATA / "idrid-grading-train" / "images").is_dir():
        return DATA
    if os.environ.get("DR_REQUIRE_PAPER_WEIGHTS") == "1":
        pytest.fail(f"the shared data are required (DR_REQUIRE_PAPER_WEIGHTS=1) but {DATA} has no IDRiD photographs")
    pytest.skip(f"shared data not found ({DATA})")


@pytest.fixture(scope="module")
def idrid() -> list[Path]:
    return idrid_photographs(require_data())


@pytest.fixture(scope="module")
def small_photographs(idrid: list[Path]) -> list[np.ndarray]:
    """Twelve IDRiD photographs, evenly spaced, shrunk to 720 px wide (fast, field ~575 px)."""
    return [shrink(read_photograph(p), 720) for p in evenly_spaced(idrid, PER_CATEGORY)]


def report_rates(verdicts, label: str) -> dict:
    s = summarise_verdicts(verdicts)
    print(f"\n{label}: {s['ungradable']} of {s['n']} ungradable, {1000 * s['seconds_per_picture']['mean']:.0f} ms per picture")
    for cat, v in s["categories"].items():
        print(f"  {cat}: {v['ungradable']}/{v['n']}")
    for p in s["passed"]:
        print(f"  let through: {p['name']}")
    return s


# ------------------------------------------------------------------------------ the corpus


def test_the_generated_scenes_are_ungradable() -> None:
    verdicts = corpus_verdicts(generated_corpus((), width=480))
    s = report_rates(verdicts, "generated scenes")
    assert set(s["categories"]) == set(SCENES)
    assert s["n"] == PER_CATEGORY * len(SCENES)
    assert s["ungradable_rate"] >= 0.95
    assert all(v["ungradable_rate"] >= 0.9 for v in s["categories"].values()), s["categories"]


def test_the_spoilt_photographs_are_ungradable(small_photographs: list[np.ndarray]) -> None:
    verdicts = corpus_verdicts(generated_corpus(small_photographs, categories=FUNDUS_CATEGORIES))
    s = report_rates(verdicts, "spoilt photographs")
    assert set(s["categories"]) == set(FUNDUS_CATEGORIES)
    assert s["ungradable_rate"] >= 0.95
    assert all(v["ungradable_rate"] >= 0.9 for v in s["categories"].values()), s["categories"]


def test_the_corpus_is_reproducible_and_large_enough() -> None:
    photo = np.zeros((300, 400, 3), np.uint8)
    photo[50:250, 100:300] = (205, 110, 45)
    a = list(generated_corpus([photo], width=160, per_category=2, seed=3))
    b = list(generated_corpus([photo], width=160, per_category=2, seed=3))
    assert [p.name for p in a] == [p.name for p in b]
    assert all(np.array_equal(x.rgb, y.rgb) for x, y in zip(a, b, strict=True))
    assert {p.category for p in a} == set(CORPUS_CATEGORIES)
    assert all(p.rgb.dtype == np.uint8 and p.rgb.ndim == 3 and p.rgb.shape[2] == 3 for p in a)
    assert PER_CATEGORY * len(CORPUS_CATEGORIES) >= 150  # the default corpus
    c = list(generated_corpus([photo], width=160, per_category=2, seed=4))
    assert any(not np.array_equal(x.rgb, y.rgb) for x, y in zip(a, c, strict=True))
    with pytest.raises(gate.StudyError, match="unknown corpus categories"):
        list(generated_corpus(categories=["cats"]))


# -------------------------------------------------------------------- real photographs


def test_a_fixed_subset_of_60_idrid_photographs_is_all_gradable(idrid: list[Path]) -> None:
    subset = evenly_spaced(idrid, 60)
    assert len(subset) == 60 and any("segmentation" in str(p) for p in subset) and any("grading" in str(p) for p in subset)
    t = time.perf_counter()
    verdicts = gate.gradable_rate(subset)
    print(f"\n60 IDRiD photographs: {1000 * (time.perf_counter() - t) / 60:.0f} ms each (decode, prepare, assess)")
    refused = [(v.name, v.reasons) for v in verdicts if not v.gradable]
    assert refused == []


def test_idrid_photographs_are_found_and_a_missing_folder_is_one_line(tmp_path: Path, idrid: list[Path]) -> None:
    assert len(idrid) == 467
    with pytest.raises(gate.StudyError, match="not a folder"):
        idrid_photographs(tmp_path / "nowhere")
    with pytest.raises(gate.StudyError, match="no IDRiD photographs"):
        idrid_photographs(tmp_path)


# --------------------------------------------------------------------- degradation curves


def curve(closes: int | None, moves: int | None, kind: str = "blur") -> Curve:
    return Curve("p", kind, 3, (3,) * 8, (True,) * 8, closes, moves, ())


@pytest.mark.parametrize(
    "closes, moves, first",
    [(2, 4, True), (3, 3, True), (None, None, True), (5, None, True), (4, 2, False), (None, 0, False)],
)
def test_gate_first_means_no_moved_grade_was_let_through(closes, moves, first) -> None:
    assert curve(closes, moves).gate_first is first


def test_curves_are_summarised_per_kind() -> None:
    blur = DEGRADATIONS[0]
    curves = [curve(1, 3), curve(2, 2), curve(4, 1), curve(None, None)]
    (row,) = summarise_curves(curves, [blur])
    assert row["photographs"] == 4 and row["gate_first"] == 3 and row["gate_first_share"] == 0.75
    assert row["grade_moved"] == 3 and row["strictly_before"] == 1
    assert row["closed_by_step"][:5] == [0, 0.25, 0.5, 0.5, 0.75]
    assert row["moved_by_step"][:4] == [0, 0.25, 0.5, 0.75]
    assert row["median_close"] == blur.steps[2] and row["median_move"] == blur.steps[2]
    assert row["moved_while_gradable"] == ["p"]


def test_degradation_curves_run_end_to_end(tiny) -> None:
    import cv2

    from core.weights import load_weights

    rgb = shrink(cv2.cvtColor(cv2.imread(str(RETINA)), cv2.COLOR_BGR2RGB), 700)
    kinds = [d for d in DEGRADATIONS if d.name in ("blur", "darker")]
    curves = gate.degradation_curves(load_weights(str(tiny)), rgb, "retina", kinds=kinds)
    assert [c.kind for c in curves] == ["blur", "darker"]
    for c, kind in zip(curves, kinds, strict=True):
        assert len(c.grades) == len(c.gradable) == len(kind.steps)
        assert c.closes is not None, f"{kind.name}: the gate never closed"
        assert not c.gradable[c.closes] and all(c.gradable[: c.closes]) and c.reasons


# -------------------------------------------------------------------------- the command


def test_the_command_prints_the_three_measurements(idrid: list[Path], tiny, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["gate", "--data", str(DATA), "--weights", str(tiny), "--n", "3", "--curves", "1", "--per-category", "1",
            "--width", "256", "--quiet"]
    assert main([*args, "--json"]) == 0  # once (each run is ~10 s); the text is report() of the same document
    doc = json.loads(capsys.readouterr().out)
    out = gate_report(doc)
    assert "IDRiD training photographs called gradable: 3 of 3" in out
    assert "Generated ungradable corpus called ungradable" in out
    for kind in DEGRADATIONS:
        assert f"   {kind.name} " in out
    assert doc["gradable"]["n"] == 3 and doc["corpus"]["n"] == len(CORPUS_CATEGORIES)
    assert doc["degradation"]["photographs"] == 1 and len(doc["degradation"]["kinds"]) == len(DEGRADATIONS)


def test_the_command_refuses_a_missing_folder_in_one_line(tmp_path: Path, tiny, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "--data", str(tmp_path / "nowhere"), "--weights", str(tiny), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not a folder" in err and "\n" not in err
    assert main(["gate", "--data", str(tmp_path), "--weights", str(tiny), "--curves", "-1"]) == 2
