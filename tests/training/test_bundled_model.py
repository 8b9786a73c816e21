"""The bundled default model (``idrid``): present, verified, honestly described, trained on
real photographs without touching its held-out test set, and grading real photographs it
never saw close to their reference grades.

Bounds come from measuring this checkpoint on these files (assets/weights/MODEL_CARD_IDRID.md);
grading is deterministic, so a drop below them means the checkpoint, the reading or the
network changed, not chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core import card
from core import weights as W
from core.model import DRNet, count_parameters
from core.training.datasets import parse_idrid, read_id_list
from core.training.metrics import quadratic_weighted_kappa
from tests.conftest import require_real_data
from tests.training.grading import grade_files

ROOT = Path(__file__).resolve().parents[2]
HELD_OUT = ROOT / "assets" / "splits" / "idrid-grading-heldout.txt"
SAMPLES = ROOT / "assets" / "samples"
KAPPA_BOUND = 0.65  # the goal; measured 0.822 on the 103 held-out photographs (the card)
SENSITIVITY_BOUND = 0.85  # the goal; measured 0.875


def entry() -> W.WeightsEntry:
    return W.REGISTRY["idrid"]


def test_it_is_the_offline_default_bundled_small_and_verified():
    e = entry()
    assert W.FALLBACK is e and W.DEFAULT is W.REGISTRY["paper"]
    assert e.bundled is not None and e.bundled.is_file()
    assert e.bundled.stat().st_size == e.size < 5 * 1024 * 1024
    assert W.sha256_of(e.bundled) == e.sha256 and W.locate(e) is not None
    m = e.meta
    assert m["clinical_use"] is False and not m.get("synthetic")
    assert m["num_params"] == count_parameters(DRNet(m["widths"]))
    card_file = ROOT / m["_model_card"]
    text = card_file.read_text()
    assert e.sha256 in text and f"{e.size:,}" in text  # the card names the very file


def test_its_checkpoint_records_how_it_was_trained_and_never_saw_the_held_out_set():
    saved = torch.load(entry().bundled, map_location="cpu", weights_only=True)["meta"]
    command = saved["command"]
    assert command.startswith("python -m core train --dataset idrid") and "--exclude assets/splits/idrid-grading-heldout.txt" in command
    assert command in (ROOT / entry().meta["_model_card"]).read_text()  # the card gives the command exactly
    assert saved["data"]["train"]["excluded"] == {"held out by idrid-grading-heldout.txt": 103}
    assert saved["data"]["init"]["weights"] == "demo"  # our own synthetic model: never the published weights
    assert saved["data"]["init"]["sha256"] != W.PAPER.sha256


def test_its_figures_are_stated_with_their_data():
    evs = card.evaluations(entry().meta)
    assert evs[0]["real"] and "held-out IDRiD" in evs[0]["data"] and evs[0]["n"] == 103
    assert any(not e["real"] and "synthetic" in e["data"] for e in evs)
    assert "103 held-out IDRiD photographs (real" in card.headline(entry().meta)


@pytest.fixture(scope="module")
def real():
    return require_real_data()


def _grade(files, tmp_path, name):
    return {r["file"]: r for r in grade_files(files, tmp_path, name, "idrid")}


def test_it_grades_the_bundled_samples_close_to_their_reference(tmp_path):
    """A fresh clone's first impression: the normal eye graded 0, and three of the four IDRiD
    samples within one grade of IDRiD's graders (measured: 1, 2, 4 against 0, 2, 3; the
    proliferative IDRiD_005 is graded 1, a miss the card reports)."""
    refs = {}
    for line in (SAMPLES / "reference_grades.csv").read_text().splitlines()[1:]:
        file, grade, _ = line.split(",", 2)
        if "/" not in file:  # the photographs, not the synthetic drawings
            refs[file] = int(grade)
    rows = _grade([SAMPLES / f for f in refs], tmp_path, "samples")
    graded = {f: int(r["grade"]) for f, r in rows.items()}
    print("bundled samples: model", graded, "reference", refs)
    assert graded["retina-normal.jpg"] == 0
    close = [f for f, ref in refs.items() if abs(graded[f] - ref) <= 1]
    assert len(refs) == 5 and len(close) >= 4, (graded, refs)


def test_kappa_on_the_held_out_idrid_photographs(real, tmp_path):
    labels = dict(parse_idrid((real / "idrid-grading-train" / "Training_Labels.csv").read_text(encoding="utf-8-sig")))
    names = read_id_list(HELD_OUT)
    rows = _grade([real / "idrid-grading-train" / "images" / f"{n}.jpg" for n in names], tmp_path, "held-out")
    assert len(rows) == 103 and not any(r["error"] for r in rows.values())
    truth = np.array([labels[f.removesuffix(".jpg")] for f in rows])
    pred = np.array([int(r["grade"]) for r in rows.values()])
    kappa = float(quadratic_weighted_kappa(truth, pred))
    stated = card.evaluations(entry().meta)[0]["quadratic_weighted_kappa"]
    print(f"REAL idrid held-out n=103 kappa={kappa:.3f} (card: {stated})")
    assert kappa == pytest.approx(stated, abs=0.0005)  # the card's figure is this measurement
    assert kappa >= KAPPA_BOUND
    referable, called = truth >= 2, pred >= 2
    assert (called & referable).sum() / referable.sum() >= SENSITIVITY_BOUND  # measured 56 of 64
