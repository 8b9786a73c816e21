"""The bundled demo model: present, verified, described, and it grades synthetic images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import weights as W
from core.model import DRNet, count_parameters
from core.training.datasets import synthetic_image
from core.training.metrics import bootstrap_kappa_ci, quadratic_weighted_kappa

ROOT = Path(__file__).resolve().parents[2]
# 25 synthetic images, 5 per grade (generate_many's balanced blocks), from a seed that
# neither training nor validation used.
TEST_SEED = 424242


def test_demo_is_registered_bundled_and_verified():
    e = W.REGISTRY["demo"]
    assert e.bundled is not None and e.bundled.is_file()
    assert e.bundled.stat().st_size < 5 * 1024 * 1024
    assert W.sha256_of(e.bundled) == e.sha256 and len(e.sha256) == 64
    assert W.locate(e) is not None
    m = e.meta
    assert m["synthetic"] is True and m["clinical_use"] is False
    assert "not" in m["intended_use"].lower() and "clinical" in m["intended_use"].lower()
    assert m["num_params"] == count_parameters(DRNet(m["widths"]))
    assert (ROOT / "assets" / "weights" / "MODEL_CARD.md").is_file()


def test_demo_loads_and_matches_its_card():
    lm = W.load_weights("demo")
    assert lm.is_synthetic and lm.sha256 == W.REGISTRY["demo"].sha256
    assert lm.meta["num_params"] == count_parameters(lm.network)
    widths = W.REGISTRY["demo"].meta["widths"]
    assert list(lm.network.widths) == (widths or [s for s in DRNet().widths])


@pytest.fixture(scope="module")
def graded():
    """(true grade, predicted grade) of 5 fixed images per grade."""
    lm = W.load_weights("demo")
    out = []
    for i in range(25):
        image, grade = synthetic_image(TEST_SEED, i)
        with torch.inference_mode():
            s = lm.network(lm.normalisation.to_tensor(image).contiguous(memory_format=torch.channels_last))
        out.append((grade, int(s.argmax())))
    return out


def test_demo_grades_each_grade(graded):
    truth = np.array([t for t, _ in graded])
    pred = np.array([p for _, p in graded])
    assert np.bincount(truth, minlength=5).tolist() == [5] * 5
    for g in range(5):
        hits = int((pred[truth == g] == g).sum())
        assert hits >= 4, f"grade {g}: {hits} of 5 right (predicted {pred[truth == g].tolist()})"


def test_demo_kappa_measured_on_unseen_images(graded):
    """The card claims kappa 0.976 on 500 held-out images; measure it here on 25 others
    (a small set, whose interval is wide: the bar is set below the claim)."""
    truth = [t for t, _ in graded]
    pred = [p for _, p in graded]
    kappa = float(quadratic_weighted_kappa(truth, pred))
    low, high = bootstrap_kappa_ci(truth, pred, n_boot=500, seed=0)
    assert kappa >= 0.9, f"kappa {kappa:.3f} (95% CI {low:.3f}-{high:.3f}) on 25 unseen synthetic images"


def test_evaluate_json_end_to_end():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "core", "evaluate", "--weights", "demo", "--synthetic", "10",
                        "--seed", "31337", "--json", "--device", "cpu", "--workers", "2", "--bootstrap", "200"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    for key in ("quadratic_weighted_kappa", "quadratic_weighted_kappa_ci", "confusion_matrix", "n", "accuracy",
                "sensitivity", "sensitivity_ci", "specificity", "specificity_ci", "ci_methods"):
        assert key in out, key
    assert out["n"] == 10 and np.asarray(out["confusion_matrix"]).sum() == 10
    assert out["weights"] == "demo" and out["data"]["dataset"] == "synthetic"
