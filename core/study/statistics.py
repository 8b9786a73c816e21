"""Bootstrap intervals over images, shared by every method.

The same resamples (multiplicities of the images) serve every method and metric, so the
difference between two methods is paired: both are measured on the same resampled
images, and the interval of the difference is not the gap between two intervals.
"""

from __future__ import annotations

import numpy as np


def resample_weights(n: int, b: int, seed: int) -> np.ndarray:
    """(b, n) multiplicities of the images in ``b`` bootstrap resamples (seeded)."""
    if n == 0:
        return np.zeros((b, 0))
    return np.random.default_rng([seed, 2]).multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)


def ratio_ci(num: np.ndarray, den: np.ndarray, w: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """sum(num) / sum(den) and its 95% percentile interval over the resamples ``w``.

    With den = 1 per defined image (0 otherwise) it is the mean over images; with counts
    it pools instances. Returns (value, low, high, the resampled statistics).
    """
    d = den.sum()
    value = float(num.sum() / d) if d > 0 else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ num) / (w @ den)
    ok = boot[np.isfinite(boot)]
    if ok.size == 0:
        return value, float("nan"), float("nan"), boot
    low, high = np.percentile(ok, [2.5, 97.5])
    return value, float(low), float(high), boot


def paired_difference(num: np.ndarray, den: np.ndarray, ref_num: np.ndarray, ref_den: np.ndarray,
                      w: np.ndarray) -> tuple[float, float, float, int] | None:
    """(difference, low, high, n) of ratio(num/den) - ratio(ref), on the images where
    both are defined, with a 95% percentile interval over the same resamples ``w``.

    None when no image has both defined.
    """
    both = (den > 0) & (ref_den > 0)
    if not both.any():
        return None
    v1, _, _, b1 = ratio_ci(num * both, den * both, w)
    v0, _, _, b0 = ratio_ci(ref_num * both, ref_den * both, w)
    diff = (b1 - b0)[np.isfinite(b1 - b0)]
    lo, hi = np.percentile(diff, [2.5, 97.5]) if diff.size else (np.nan, np.nan)
    return v1 - v0, float(lo), float(hi), int(both.sum())


__all__ = ["paired_difference", "ratio_ci", "resample_weights"]
