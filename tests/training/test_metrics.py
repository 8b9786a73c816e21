"""Metrics (kappa, confusion, sensitivity/specificity, intervals) against hand
computations, and the paper's kappa loss against a direct NumPy reading of its formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.training import metrics as M
from core.training.losses import KappaLoss, kappa_loss, make_loss

# ------------------------------------------------------------------ kappa metric


def test_kappa_two_classes_by_hand():
    # O = [[1, 1], [0, 2]]; marginals rows (2, 2), columns (1, 3); E = [[.5, 1.5], [.5, 1.5]]
    # w = [[0, 1], [1, 0]]: sum wO = 1, sum wE = 2, kappa = 1 - 1/2
    assert M.quadratic_weighted_kappa([0, 0, 1, 1], [0, 1, 1, 1], n_classes=2) == pytest.approx(0.5)


def test_kappa_perfect_and_reversed():
    y = [0, 1, 2, 3, 4]
    assert M.quadratic_weighted_kappa(y, y) == pytest.approx(1.0)
    # reversed: sum wO = (16 + 4 + 0 + 4 + 16)/16 = 2.5; E = 0.2 everywhere, sum wE = 0.2 * 100/16 = 1.25
    assert M.quadratic_weighted_kappa(y, y[::-1]) == pytest.approx(-1.0)


def _kappa_loops(t, p, c=5):
    """Textbook double loop, independent of the vectorised code."""
    o = [[0.0] * c for _ in range(c)]
    for a, b in zip(t, p, strict=True):
        o[a][b] += 1
    n = len(t)
    rows = [sum(o[i]) for i in range(c)]
    cols = [sum(o[i][j] for i in range(c)) for j in range(c)]
    num = den = 0.0
    for i in range(c):
        for j in range(c):
            w = (i - j) ** 2 / (c - 1) ** 2
            num += w * o[i][j]
            den += w * rows[i] * cols[j] / n
    return 1 - num / den


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=2, max_size=60))
def test_kappa_matches_the_double_loop(pairs):
    t, p = zip(*pairs, strict=True)
    ref_den_zero = len(set(t) | set(p)) == 1
    got = M.quadratic_weighted_kappa(t, p)
    if ref_den_zero:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(_kappa_loops(t, p), abs=1e-12)


def test_confusion_matrix_rows_are_truth():
    cm = M.confusion_matrix([0, 0, 2, 4, 4], [0, 1, 2, 3, 4])
    expect = np.zeros((5, 5), int)
    expect[0, 0] = expect[0, 1] = expect[2, 2] = expect[4, 3] = expect[4, 4] = 1
    assert np.array_equal(cm, expect)
    with pytest.raises(ValueError):
        M.confusion_matrix([0, 5], [0, 1])
    with pytest.raises(ValueError):
        M.confusion_matrix([0, 1], [0])


def test_referable_sensitivity_specificity_by_hand():
    # referable = grade >= 2. truths: 0,1,1,2,3,4,4 ; predictions: 0,2,1,1,3,4,2
    t = [0, 1, 1, 2, 3, 4, 4]
    p = [0, 2, 1, 1, 3, 4, 2]
    r = M.summarise(t, p, n_boot=200)
    assert r["referable"] == {"tp": 3, "fn": 1, "tn": 2, "fp": 1}
    assert r["sensitivity"] == pytest.approx(3 / 4) and r["specificity"] == pytest.approx(2 / 3)
    assert r["accuracy"] == pytest.approx(4 / 7)
    assert r["n"] == 7 and np.asarray(r["confusion_matrix"]).sum() == 7
    for k in ("sensitivity", "specificity", "accuracy", "quadratic_weighted_kappa"):
        lo, hi = r[f"{k}_ci"]
        assert lo <= r[k] <= hi


def test_wilson_interval_known_values():
    lo, hi = M.wilson_interval(8, 10)
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert M.wilson_interval(0, 20)[0] == 0.0 and M.wilson_interval(20, 20)[1] == 1.0
    assert all(math.isnan(v) for v in M.wilson_interval(0, 0))


def test_undefined_metrics_are_nan_not_errors():
    r = M.summarise([0, 0, 1], [0, 0, 1], n_boot=50)  # nothing referable
    assert math.isnan(r["sensitivity"]) and r["specificity"] == 1.0


def test_bootstrap_is_seeded_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 5, 400)
    p = np.clip(t + rng.integers(-1, 2, 400), 0, 4)
    a = M.bootstrap_kappa_ci(t, p, n_boot=500, seed=1)
    assert a == M.bootstrap_kappa_ci(t, p, n_boot=500, seed=1)
    k = M.quadratic_weighted_kappa(t, p)
    assert a[0] < k < a[1]
    small = M.bootstrap_kappa_ci(t[:40], p[:40], n_boot=500, seed=1)
    assert (small[1] - small[0]) > (a[1] - a[0])


# -------------------------------------------------------------------- kappa loss


def _loss_numpy(logits: np.ndarray, t: np.ndarray) -> float:
    """docs/method.md section 3, term by term."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    b, c = p.shape
    w = np.array([[(i - j) ** 2 / (c - 1) ** 2 for j in range(c)] for i in range(c)])
    num = sum(w[t[k], cc] * p[k, cc] for k in range(b) for cc in range(c))
    share = np.array([(t == i).sum() / b for i in range(c)])
    den = sum(share[i] * sum(w[i, j] * p[:, j].sum() for j in range(c)) for i in range(c))
    return math.log(num / den)


@pytest.mark.parametrize("seed", range(6))
def test_kappa_loss_equals_the_formula(seed):
    rng = np.random.default_rng(seed)
    b = int(rng.integers(2, 20))
    logits = rng.normal(0, 3, (b, 5))
    t = rng.integers(0, 5, b)
    got = kappa_loss(torch.tensor(logits, dtype=torch.float32), torch.tensor(t))
    assert float(got) == pytest.approx(_loss_numpy(logits, t), abs=2e-5)


def test_kappa_loss_of_hard_predictions_is_log_one_minus_kappa():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 5, 30)
    pred = np.clip(t + rng.integers(-1, 2, 30), 0, 4)
    logits = torch.full((30, 5), -60.0)
    logits[torch.arange(30), torch.tensor(pred)] = 60.0
    loss = kappa_loss(logits, torch.tensor(t))
    assert 1 - math.exp(float(loss)) == pytest.approx(M.quadratic_weighted_kappa(t, pred), abs=1e-5)


def test_kappa_loss_gradients_are_finite_and_useful():
    torch.manual_seed(0)
    logits = torch.randn(15, 5, requires_grad=True)
    t = torch.randint(0, 5, (15,))
    loss = KappaLoss()(logits, t)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # a step against the gradient lowers the loss
    with torch.no_grad():
        assert kappa_loss(logits - 0.5 * logits.grad, t) < loss
    # even a perfect, saturated batch stays finite
    sure = torch.full((5, 5), -80.0)
    sure[range(5), range(5)] = 80.0
    sure.requires_grad_(True)
    kappa_loss(sure, torch.arange(5)).backward()
    assert torch.isfinite(sure.grad).all()


def test_loss_factory():
    assert isinstance(make_loss("kappa"), KappaLoss)
    assert isinstance(make_loss("ce"), torch.nn.CrossEntropyLoss)
    with pytest.raises(ValueError):
        make_loss("mse")
