"""The bootstrap of the quality study: intervals that contain the estimate and narrow
with more images, instance counts pooled as ratios, and paired differences."""

from __future__ import annotations

import numpy as np
import pytest

from core.study import statistics as q


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (40, 1000):
        x = rng.normal(0.7, 0.1, n)
        value, low, high, _ = q.ratio_ci(x, np.ones(n), q.resample_weights(n, 500, 0))
        assert low <= value <= high and value == pytest.approx(x.mean())
        widths.append(high - low)
    assert widths[1] < widths[0] / 3


def test_bootstrap_pools_ratios_and_skips_undefined_images():
    num, den = np.array([1.0, 3.0, 0.0]), np.array([2.0, 4.0, 0.0])  # the third image has no instance
    value, low, high, _ = q.ratio_ci(num, den, q.resample_weights(3, 200, 1))
    assert value == pytest.approx(4 / 6) and 0.5 <= low <= value <= high <= 0.75


def test_paired_difference_uses_only_images_where_both_are_defined():
    w = q.resample_weights(4, 300, 3)
    ones = np.ones(4)
    num, ref = np.array([0.9, 0.7, 0.95, 5.0]), np.array([0.5, 0.4, 0.45, 0.0])  # differences 0.4, 0.3, 0.5
    den, ref_den = ones, np.array([1.0, 1.0, 1.0, 0.0])  # the reference is undefined on image 4
    difference, low, high, n = q.paired_difference(num, den, ref, ref_den, w)
    assert n == 3 and difference == pytest.approx(0.4) and 0 < low <= difference <= high
    assert q.paired_difference(num, den, ref, np.zeros(4), w) is None
