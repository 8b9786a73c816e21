"""Per-image measures of one attribution map: do its strong pixels sit on the lesions
(pixel AUC, pointing game, k-sigma mask precision/recall, lesion instances touched), and
does the score depend on them (deletion and insertion curves)?

Everything here works on one image at a time and knows nothing of workers, bootstrap
or reports; each function is checked on hand-made maps with a known answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..explanation import threshold_mask
from .peers import Context, Maps
from .sources import Sample

HIGHER_IS_BETTER = {
    "auc": True, "auc_abs": True, "pointing": True, "precision": True, "recall": True, "deletion": False, "insertion": True,
    "deletion_drop": True, "insertion_gain": True,
}
Key = tuple[str, str, str]  # (method, role, metric) or (method, role, curve kind)


# ------------------------------------------------------------------------------ localisation
def pixel_auc(values: np.ndarray, positives: np.ndarray, region: np.ndarray) -> float:
    """AUC-ROC of ``values`` for ``positives`` within ``region``; ties count one half.

    Mann-Whitney form with average ranks, so a constant map gives exactly 0.5. NaN when
    the region holds no positive or no negative pixel. A positive's average rank is read
    off the sorted values by binary search (a plain sort is many times faster than the
    stable argsort this once used; the result is the same).
    """
    v = values[region]
    p = positives[region]
    n_pos = int(p.sum())
    n_neg = p.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    sv = np.sort(v)
    vp = v[p]
    below = np.searchsorted(sv, vp, side="left")  # values smaller than each positive
    upto = np.searchsorted(sv, vp, side="right")  # ... smaller or equal
    rank_sum = float((below + upto + 1).sum()) / 2.0  # 1-based mean rank of each positive's tie group
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def near(positives: np.ndarray, tolerance: float) -> np.ndarray:
    """Pixels within ``tolerance`` px (Euclidean) of a positive pixel."""
    if not positives.any():
        return np.zeros(positives.shape, bool)
    dist = cv2.distanceTransform((~positives).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist <= tolerance


def pointing_hit(values: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    """Share of the map's maximal FOV pixels that fall in ``target`` (lesions grown by the
    tolerance): 1 or 0 for a unique maximum; for ties, the chance that a random pick of the
    tied maxima hits, so a flat map is not rewarded."""
    v = np.where(region, values, -np.inf)
    top = v == v.max()
    return float(target[top].mean())


def mask_precision_recall(mask: np.ndarray, positives: np.ndarray) -> tuple[float, float]:
    """Pixel precision and recall of a binary mask (precision NaN for an empty mask)."""
    hit = int((mask & positives).sum())
    n_mask, n_pos = int(mask.sum()), int(positives.sum())
    precision = hit / n_mask if n_mask else float("nan")
    recall = hit / n_pos if n_pos else float("nan")
    return precision, recall


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components (lesion instances): labels (0 = background) and their count."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return labels, n - 1


def instances_hit(mask: np.ndarray, labels: np.ndarray, count: int) -> int:
    """How many of the ``count`` labelled instances share at least one pixel with ``mask``."""
    if count == 0:
        return 0
    return int((np.bincount(labels[mask], minlength=count + 1)[1:] > 0).sum())


def pearson(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Pearson correlation of two maps over ``region`` (NaN if either is constant there)."""
    x, y = a[region].astype(np.float64), b[region].astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else float("nan")


# ------------------------------------------------------------------------------ faithfulness
def descending_ranks(values: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each FOV pixel from the highest value (0) down; ties in random order.
    Pixels outside the region get a rank no step reaches."""
    idx = rng.permutation(np.flatnonzero(region))  # a stable sort of a shuffled list breaks ties at random
    v = np.nan_to_num(values.ravel()[idx], nan=-np.inf)
    order = np.argsort(-v, kind="stable")
    ranks = np.full(values.size, np.iinfo(np.int32).max, np.int32)
    ranks[idx[order]] = np.arange(idx.size, dtype=np.int32)
    return ranks.reshape(values.shape)


def blurred(image: np.ndarray, fov: np.ndarray, sigma: float) -> np.ndarray:
    """The image blurred with a Gaussian of ``sigma`` px inside the FOV only (normalised
    convolution, so the black surround does not bleed in): lesions, vessels and texture
    are gone, the retina's colour and illumination stay. Black outside the FOV."""
    f = fov.astype(np.float32)
    num = cv2.GaussianBlur(image.astype(np.float32) * f[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(f, (0, 0), sigma)
    out = num / np.maximum(den, 1e-6)[..., None]
    out[~fov] = 0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def perturbation_scores(
    score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, base: torch.Tensor, ranks: Sequence[np.ndarray],
    counts: Sequence[int], batch: int,
) -> np.ndarray:
    """Scores (len(ranks), 2, len(counts), N_GRADES) of deletion (0) and insertion (1) images.

    Deletion puts ``base`` on the ``count`` top-ranked pixels of ``x``; insertion puts
    ``x`` on them over ``base``. Images are built and scored ``batch`` at a time.
    """
    specs = [(r, kind, c) for r in range(len(ranks)) for kind in (0, 1) for c in counts]
    rank_t = [torch.from_numpy(r) for r in ranks]
    out = []
    for s in range(0, len(specs), batch):
        chunk = specs[s:s + batch]
        sel = torch.stack([rank_t[r] < c for r, _, c in chunk])
        on_base = sel ^ torch.tensor([kind == 1 for _, kind, _ in chunk]).view(-1, 1, 1)
        out.append(score(torch.where(on_base[:, None], base, x)).numpy())
    return np.concatenate(out).reshape(len(ranks), 2, len(counts), -1)


def curve_area(y: np.ndarray) -> float:
    """Area under a curve whose steps are equally spaced on the x axis (trapezoid / steps)."""
    return float(np.trapezoid(y, dx=1.0) / (len(y) - 1))


@dataclass
class Faithfulness:
    """Deletion/insertion of one image: (method, role, kind) -> area and curve, and the
    roles left out of the normalised areas because blurring the whole FOV did not lower
    their grade's score by ``min_gap`` (their score-change areas and raw curves stay)."""

    areas: dict[Key, float] = field(default_factory=dict)
    curves: dict[Key, np.ndarray] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)


def faithfulness(ctx: Context, maps: dict[str, Maps], roles: dict[str, int], *, seed: int, fractions: Sequence[float],
                 blur_sigma: float, min_gap: float, batch: int) -> Faithfulness:
    """Deletion and insertion curves of every method's map, once per distinct grade.

    Two readings of the same scores (logits of the grade after each step):

    - ``deletion_drop`` / ``insertion_gain``: the mean score change over the steps
      (trapezoid), in logits, from the original score (deletion: original minus the
      curve) or from the fully blurred image's score (insertion: curve minus it).
      Higher is better for both, nothing is divided, so it stays readable when
      blurring the whole field of view raises the score (common on real photographs).
      Curves ``deletion_raw`` / ``insertion_raw`` hold those changes per step.
    - ``deletion`` / ``insertion``: the curve normalised to 1 at the original score and
      0 at the fully blurred one; only for grades whose score that blur lowers by at
      least ``min_gap`` (otherwise the division flips or explodes the curve).
    """
    out = Faithfulness()
    fundus = ctx.fundus
    rng = np.random.default_rng([seed, 1, ctx.index])  # ties: same order whatever the workers
    base = ctx.peers.lm.normalisation.to_tensor(blurred(fundus.image, fundus.fov, blur_sigma))[0]
    s0 = ctx.shared("scores", lambda: ctx.peers.scores(ctx.x))[0].numpy().astype(np.float64)
    sb = ctx.peers.scores(base[None])[0].numpy().astype(np.float64)
    n_fov = int(fundus.fov.sum())
    counts = [max(1, round(f * n_fov)) for f in fractions]
    names = list(maps)
    for g in sorted(set(roles.values())):
        gap = float(s0[g] - sb[g])
        their = [r for r, rg in roles.items() if rg == g]
        normalised = gap >= min_gap
        if not normalised:
            out.excluded += their
        ranks = [descending_ranks(maps[m][g], fundus.fov, rng) for m in names]
        sc = perturbation_scores(ctx.peers.scores, ctx.x[0], base, ranks, counts, batch)[..., g].astype(np.float64)
        for i, m in enumerate(names):
            deletion = np.r_[s0[g], sc[i, 0], sb[g]]  # from the photograph to the blurred image
            insertion = np.r_[sb[g], sc[i, 1], s0[g]]  # and back
            found = {"deletion_drop": s0[g] - curve_area(deletion), "insertion_gain": curve_area(insertion) - sb[g]}
            curves = {"deletion_raw": deletion - s0[g], "insertion_raw": insertion - sb[g]}
            if normalised:
                for name, y in (("deletion", (deletion - sb[g]) / gap), ("insertion", (insertion - sb[g]) / gap)):
                    found[name], curves[name] = curve_area(y), y
            for role in their:
                out.areas.update({(m, role, k): v for k, v in found.items()})
                out.curves.update({(m, role, k): v for k, v in curves.items()})
    return out


# ------------------------------------------------------------------------------ mask metrics
@dataclass
class Truth:
    """Per-image ground truth, prepared once for all methods."""

    fov: np.ndarray
    union: np.ndarray
    near: np.ndarray
    labels: dict[str, tuple[np.ndarray, int]]

    @classmethod
    def of(cls, sample: Sample, tolerance: float) -> Truth | None:
        """The sample's lesion union, its tolerance band and instances; None without masks."""
        if sample.lesions is None:
            return None
        fov = sample.fundus.fov
        union = np.zeros(fov.shape, bool)
        for m in sample.lesions.values():
            union |= m
        union &= fov
        return cls(fov, union, near(union, tolerance) & fov, {t: components(m & fov) for t, m in sample.lesions.items()})


def mask_metrics(values: np.ndarray, truth: Truth, k: float) -> dict[str, tuple[float, float]]:
    """metric -> (numerator, denominator) for one map; {} if the image has no lesion.

    Most metrics are a per-image value with denominator 1 (averaged over images);
    ``hit_<type>`` is (instances hit, instances), pooled over images.
    """
    if not truth.union.any():
        return {}
    mask = threshold_mask(values, truth.fov, k)
    precision, recall = mask_precision_recall(mask, truth.union)
    out = {
        "auc": (pixel_auc(values, truth.union, truth.fov), 1.0),
        "auc_abs": (pixel_auc(np.abs(values), truth.union, truth.fov), 1.0),
        "pointing": (pointing_hit(values, truth.near, truth.fov), 1.0),
        "recall": (recall, 1.0),
        "mask_share": (mask.sum() / max(int(truth.fov.sum()), 1), 1.0),
    }
    if not np.isnan(precision):
        out["precision"] = (precision, 1.0)
    for t, (labels, count) in truth.labels.items():
        if count:
            out[f"hit_{t}"] = (float(instances_hit(mask, labels, count)), float(count))
    return {m: v for m, v in out.items() if not np.isnan(v[0])}


__all__ = [
    "HIGHER_IS_BETTER", "Faithfulness", "Key", "Truth", "blurred", "components", "curve_area", "descending_ranks",
    "faithfulness", "instances_hit", "mask_metrics", "mask_precision_recall", "near", "pearson", "perturbation_scores",
    "pixel_auc", "pointing_hit",
]
