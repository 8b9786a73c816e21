"""Grading metrics with their uncertainty: quadratic weighted kappa, confusion matrix,
accuracy and referable-DR sensitivity/specificity (docs/method.md section 3).

Plain NumPy (no scikit-learn) so that the metric the model is judged by is the one
written here and tested against a hand computation. Confidence intervals: percentile
bootstrap for kappa (no closed form for a weighted, multi-class statistic), Wilson
score intervals for proportions (well behaved near 0 and 1, where ours live).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..model import N_GRADES

REFERABLE_FROM = 2  # referable DR: grades 2-4 vs 0-1
Z_95 = 1.959963984540054

KAPPA_CI_METHOD = "percentile bootstrap over images"
PROPORTION_CI_METHOD = "Wilson score interval"


def _as_labels(y: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    a = np.asarray(y, dtype=np.int64).ravel()
    if a.size and (a.min() < 0 or a.max() >= n_classes):
        raise ValueError(f"labels must be in 0..{n_classes - 1}")
    return a


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     n_classes: int = N_GRADES) -> np.ndarray:
    """Counts, rows = true grade, columns = predicted grade."""
    t, p = _as_labels(y_true, n_classes), _as_labels(y_pred, n_classes)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred differ in length")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def quadratic_weights(n_classes: int = N_GRADES) -> np.ndarray:
    """w_ij = (i - j)^2 / (C - 1)^2."""
    i = np.arange(n_classes, dtype=np.float64)
    return (i[:, None] - i[None, :]) ** 2 / (n_classes - 1) ** 2


def kappa_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Quadratic weighted kappa of one (C, C) or many (..., C, C) confusion matrices.

    kappa = 1 - sum(w O) / sum(w E), E the outer product of the marginals over n.
    NaN where it is undefined (sum(w E) = 0: every true and predicted label the same).
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    w = quadratic_weights(confusion.shape[-1])
    n = confusion.sum(axis=(-2, -1))
    expected = confusion.sum(axis=-1)[..., :, None] * confusion.sum(axis=-2)[..., None, :]
    num = (w * confusion).sum(axis=(-2, -1))
    den = (w * expected).sum(axis=(-2, -1)) / np.where(n > 0, n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 1.0 - num / np.where(den > 0, den, 1), np.nan)


def quadratic_weighted_kappa(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                             n_classes: int = N_GRADES) -> float:
    """Cohen's kappa with quadratic weights (the Kaggle 2015 / paper metric)."""
    return float(kappa_from_confusion(confusion_matrix(y_true, y_pred, n_classes)))


def bootstrap_kappa_ci(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                       n_classes: int = N_GRADES, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of kappa, resampling images with replacement.

    All resamples are counted at once with one ``bincount`` (no Python loop per
    resample); degenerate resamples (kappa undefined) are left out.
    """
    t, p = _as_labels(y_true, n_classes), _as_labels(y_pred, n_classes)
    n = t.size
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    cells = t * n_classes + p
    chunks = []
    per_chunk = max(1, 4_000_000 // n)  # bound memory to ~32 MB of indices
    for start in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = cells[idx] + (np.arange(b) * n_classes * n_classes)[:, None]
        cms = np.bincount(flat.ravel(), minlength=b * n_classes * n_classes).reshape(b, n_classes, n_classes)
        chunks.append(kappa_from_confusion(cms))
    kappas = np.concatenate(chunks)
    kappas = kappas[np.isfinite(kappas)]
    if kappas.size == 0:
        return (math.nan, math.nan)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(kappas, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def wilson_interval(successes: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (NaN bounds when total = 0)."""
    if total <= 0:
        return (math.nan, math.nan)
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def referable_counts(confusion: np.ndarray, threshold: int = REFERABLE_FROM) -> dict[str, int]:
    """True/false positives/negatives of 'referable' (grade >= threshold) from a confusion matrix."""
    confusion = np.asarray(confusion)
    pos = slice(threshold, None)
    neg = slice(0, threshold)
    return {
        "tp": int(confusion[pos, pos].sum()),
        "fn": int(confusion[pos, neg].sum()),
        "tn": int(confusion[neg, neg].sum()),
        "fp": int(confusion[neg, pos].sum()),
    }


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def summarise(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
              n_classes: int = N_GRADES, n_boot: int = 2000, level: float = 0.95,
              seed: int = 0) -> dict[str, Any]:
    """Every reported metric with its confidence interval, as plain JSON-able values.

    NaN marks what is undefined (e.g. sensitivity without any referable image).
    """
    confusion = confusion_matrix(y_true, y_pred, n_classes)
    n = int(confusion.sum())
    correct = int(np.trace(confusion))
    r = referable_counts(confusion)
    z = float(abs(np.sqrt(2) * _erfinv(level)))
    return {
        "n": n,
        "quadratic_weighted_kappa": float(kappa_from_confusion(confusion)),
        "quadratic_weighted_kappa_ci": list(bootstrap_kappa_ci(y_true, y_pred, n_classes, n_boot, level, seed)),
        "accuracy": _ratio(correct, n),
        "accuracy_ci": list(wilson_interval(correct, n, z)),
        "sensitivity": _ratio(r["tp"], r["tp"] + r["fn"]),
        "sensitivity_ci": list(wilson_interval(r["tp"], r["tp"] + r["fn"], z)),
        "specificity": _ratio(r["tn"], r["tn"] + r["fp"]),
        "specificity_ci": list(wilson_interval(r["tn"], r["tn"] + r["fp"], z)),
        "referable": r,
        "confusion_matrix": confusion.tolist(),
        "ci_level": level,
        "ci_methods": {
            "quadratic_weighted_kappa": f"{KAPPA_CI_METHOD} ({n_boot} resamples, seed {seed})",
            "proportions": PROPORTION_CI_METHOD,
        },
        "referable_definition": f"grades {REFERABLE_FROM}-{n_classes - 1} vs 0-{REFERABLE_FROM - 1}",
    }


def _erfinv(y: float) -> float:
    """Inverse error function by Newton's method (z of a two-sided level without SciPy)."""
    if not 0.0 < y < 1.0:
        raise ValueError("level must be in (0, 1)")
    x = 0.0
    for _ in range(60):
        err = math.erf(x) - y
        x -= err / (2.0 / math.sqrt(math.pi) * math.exp(-x * x))
        if abs(err) < 1e-15:
            break
    return x
