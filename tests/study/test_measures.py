"""Per-image measures of the quality study, each on hand-made maps with a known answer:
pixel AUC, the pointing game, the k-sigma mask, lesion instances, and the deletion and
insertion curves on a toy linear model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import core
from core import synthetic
from core.model import N_GRADES
from core.study import measures as q

N = 64


def disc(n: int = N) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return (xx - (n - 1) / 2) ** 2 + (yy - (n - 1) / 2) ** 2 <= (n / 2) ** 2


def square(x0: int, y0: int, side: int, n: int = N) -> np.ndarray:
    m = np.zeros((n, n), bool)
    m[y0:y0 + side, x0:x0 + side] = True
    return m


# -- pixel AUC --------------------------------------------------------------------------
def test_auc_perfect_constant_inverted():
    fov, lesion = disc(), square(20, 20, 8)
    perfect = lesion.astype(np.float32)
    assert q.pixel_auc(perfect, lesion, fov) == 1.0
    assert q.pixel_auc(np.full((N, N), 3.0), lesion, fov) == 0.5
    assert q.pixel_auc(-perfect, lesion, fov) == 0.0
    assert np.isnan(q.pixel_auc(perfect, np.zeros((N, N), bool), fov))  # no positives: undefined


def test_auc_ignores_pixels_outside_the_fov():
    fov, lesion = disc(), square(28, 28, 6)
    values = lesion.astype(np.float32)
    values[0, 0] = 100.0  # a corner, outside the disc
    assert q.pixel_auc(values, lesion, fov) == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=4, max_size=40), st.data())
def test_auc_equals_the_pairwise_definition(values, data):
    v = np.array(values, np.float32).reshape(1, -1)
    pos = np.array(data.draw(st.lists(st.booleans(), min_size=v.size, max_size=v.size)), bool).reshape(1, -1)
    region = np.ones_like(pos)
    got = q.pixel_auc(v, pos, region)
    if pos.all() or not pos.any():
        assert np.isnan(got)
        return
    a, b = v[pos][:, None], v[~pos][None, :]
    assert got == pytest.approx(((a > b) + 0.5 * (a == b)).mean())


# -- pointing game ------------------------------------------------------------------------
@pytest.mark.parametrize(("peak", "hit"), [((22, 22), 1.0), ((27, 22), 1.0), ((30, 22), 0.0), ((50, 40), 0.0)])
def test_pointing_game_on_next_to_far(peak, hit):
    """Lesion: x, y in 20..24; tolerance 3 px: x = 27 is 3 px away (hit), x = 30 is 6 px (miss)."""
    fov, lesion = disc(), square(20, 20, 5)
    values = np.zeros((N, N), np.float32)
    values[peak[1], peak[0]] = 1.0
    assert q.pointing_hit(values, q.near(lesion, 3.0) & fov, fov) == hit


def test_pointing_game_ties_score_their_share_and_the_fov_limits_the_maximum():
    fov, lesion = disc(), square(20, 20, 5)
    target = q.near(lesion, 0.0) & fov
    flat = np.ones((N, N), np.float32)
    assert q.pointing_hit(flat, target, fov) == pytest.approx(lesion.sum() / fov.sum())
    values = lesion.astype(np.float32)
    values[0, 0] = 9.0  # outside the FOV: ignored
    assert q.pointing_hit(values, target, fov) == 1.0


# -- k-sigma mask ----------------------------------------------------------------------------
def test_precision_recall_of_the_k_sigma_mask():
    fov = np.ones((N, N), bool)
    lesion = square(10, 10, 4)  # 16 px
    values = np.zeros((N, N), np.float32)
    values[10:14, 10:12] = 10.0  # 8 px on the lesion
    values[40:42, 40:44] = 10.0  # 8 px off it
    mask = core.threshold_mask(values, fov, 2.0)
    assert mask.sum() == 16
    precision, recall = q.mask_precision_recall(mask, lesion)
    assert (precision, recall) == (0.5, 0.5)
    p, r = q.mask_precision_recall(np.zeros_like(mask), lesion)
    assert np.isnan(p) and r == 0.0


def test_instances_hit_counts_touched_components():
    lesions = square(5, 5, 3) | square(30, 30, 3) | square(50, 10, 2)
    lesions[8, 8] = True  # diagonal neighbour of (7, 7): the same instance (8-connected)
    labels, count = q.components(lesions)
    assert count == 3
    mask = np.zeros((N, N), bool)
    mask[8, 8] = True  # touches the first instance by one pixel
    mask[31, 31] = True
    assert q.instances_hit(mask, labels, count) == 2
    assert q.instances_hit(np.zeros_like(mask), labels, count) == 0


def test_mask_metrics_leave_out_images_without_lesions():
    fov = disc()
    truth = q.Truth(fov, np.zeros((N, N), bool), np.zeros((N, N), bool), {})
    assert q.mask_metrics(np.random.default_rng(0).random((N, N)), truth, 2.0) == {}


# -- deletion / insertion -------------------------------------------------------------------
def test_deletion_and_insertion_on_a_linear_model():
    """Score = sum of channel 0 over a region R of 10% of the FOV; x = 1, baseline = 0.

    With the perfect map (R first) deletion is 1 - min(f / 0.1, 1); insertion its mirror.
    """
    n = 40
    fov = np.ones((n, n), bool)
    region = np.zeros((n, n), bool)
    region.flat[: n * n // 10] = True
    r = torch.from_numpy(region)

    def score(batch: torch.Tensor) -> torch.Tensor:
        return (batch[:, 0] * r).sum((1, 2))[:, None].repeat(1, N_GRADES)

    x, base = torch.ones(3, n, n), torch.zeros(3, n, n)
    fractions = np.array([0.02, 0.05, 0.1, 0.2, 0.5])
    counts = [round(f * n * n) for f in fractions]
    rng = np.random.default_rng(0)
    maps = {"perfect": region.astype(np.float32), "inverted": -region.astype(np.float32)}
    ranks = [q.descending_ranks(m, fov, rng) for m in maps.values()]
    sc = q.perturbation_scores(score, x, base, ranks, counts, batch=3)[..., 0]
    s0, sb = float(region.sum()), 0.0
    y = (sc - sb) / (s0 - sb)
    np.testing.assert_allclose(y[0, 0], 1 - np.minimum(fractions / 0.1, 1))  # perfect map, deletion
    np.testing.assert_allclose(y[0, 1], np.minimum(fractions / 0.1, 1))  # perfect map, insertion
    np.testing.assert_allclose(y[1, 0], 1.0)  # inverted map removes R last: nothing lost up to 50%
    deletion = [q.curve_area(np.r_[1.0, y[i, 0], 0.0]) for i in range(2)]
    insertion = [q.curve_area(np.r_[0.0, y[i, 1], 1.0]) for i in range(2)]
    assert deletion[0] < deletion[1] and insertion[0] > insertion[1]
    assert q.curve_area(np.array([1.0, 1.0, 0.0])) == 0.75


def test_descending_ranks_order_ties_and_outside():
    values = np.array([[3.0, 1.0, 1.0], [2.0, 9.0, 1.0]])
    region = np.array([[True, True, True], [True, False, True]])
    ranks = q.descending_ranks(values, region, np.random.default_rng(1))
    assert ranks[0, 0] == 0 and ranks[1, 0] == 1
    assert sorted(ranks[values == 1.0]) == [2, 3, 4]
    assert ranks[1, 1] > 1000  # outside: never reached


def test_blurred_baseline_stays_black_outside_and_removes_detail():
    f = synthetic.generate(10_000_000, 2)
    b = q.blurred(f.image, f.fov, 20.0)
    assert (b[~f.fov] == 0).all()
    assert b[f.fov].std() < f.image[f.fov].std()


def test_faithfulness_keeps_the_score_change_when_blurring_raises_the_score():
    """Score = 10 + 9 * mean brightness over a bright region R + 1000 * the mean brightness
    elsewhere (black), so that blurring everything raises the score: the normalised areas
    are left out (the gap is negative), the logit changes stay, and the map that ranks R
    first drops the score more than the inverted one."""
    from types import SimpleNamespace

    n = 32
    fov = np.ones((n, n), bool)
    region = np.zeros((n, n), bool)
    region[12:20, 12:20] = True
    r = torch.from_numpy(region)

    def scores(batch: torch.Tensor) -> torch.Tensor:
        inside = (batch[:, 0] * r).sum((1, 2)) / r.sum()
        elsewhere = (batch[:, 0] * ~r).sum((1, 2)) / (~r).sum()
        return (10 + 9 * inside + 1000 * elsewhere)[:, None].repeat(1, N_GRADES)

    def to_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.moveaxis(a, -1, 0).astype(np.float32) / 255.0)[None]

    image = np.zeros((n, n, 3), np.uint8)
    image[region] = 255
    cache: dict = {}
    peers = SimpleNamespace(lm=SimpleNamespace(normalisation=SimpleNamespace(to_tensor=to_tensor)), scores=scores)
    ctx = SimpleNamespace(peers=peers, fundus=SimpleNamespace(image=image, fov=fov), index=0, x=to_tensor(image),
                          shared=lambda k, make: cache.setdefault(k, make()))
    maps = {"perfect": {2: region.astype(np.float32)}, "inverted": {2: -region.astype(np.float32)}}
    out = q.faithfulness(ctx, maps, {"predicted": 2}, seed=0, fractions=[0.0625, 0.25], blur_sigma=3.0, min_gap=1.0, batch=4)
    assert out.excluded == ["predicted"]  # blurring raised the score: no normalised area
    assert ("perfect", "predicted", "deletion") not in out.areas
    drop = {m: out.areas[(m, "predicted", "deletion_drop")] for m in maps}
    assert drop["perfect"] > drop["inverted"]
    raw = out.curves[("perfect", "predicted", "deletion_raw")]
    assert raw.shape == (4,) and raw[0] == 0.0 and raw[1] < 0 < raw[-1]  # removing R lowers it; blurring all raises it
    gain = out.curves[("perfect", "predicted", "insertion_raw")]
    assert gain[0] == 0.0 and gain[-1] == pytest.approx(-raw[-1])
    assert drop["perfect"] == pytest.approx(-q.curve_area(raw))
