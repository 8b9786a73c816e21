"""Evidence regions: a grade's total map summed over square blocks of the input.

Pixel maps are speckle: neighbouring pixels cancel, so one pixel's colour says little
about "for" or "against". Summing over a block is still exact, because the total map
adds up to the score: the blocks of one grade add up to it too, and a region's
contribution is a share of the score in score units, not a visual impression. The
block's image evidence (the input map's sum) is kept beside it, because most of a score
can come from the constants that the total map spreads over receptive fields.

These are fixed blocks, not lesions: a lesion cut by a block edge splits between two.
The pooled views (``pooled``, ``block_threshold``) show the same sums as pictures and masks,
at block sides down to a few pixels (lesion scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .model import INPUT_SIZE

if TYPE_CHECKING:  # the annotation only
    from .explanation import Explanation

# A 32 px block is 1/20 of the retina's diameter (the optic disc is about 1/6): a small
# cluster of haemorrhages or exudates, large enough that the pixels' speckle averages out.
BLOCK = 32
# The block sides the page's pooled views offer: each divides 640, from about a
# microaneurysm's neighbourhood (4 px) to BLOCK.
POOL_SIZES = (4, 8, 16, 32)


@dataclass(frozen=True)
class Region:
    """One block of the input and what it adds to one grade's score."""

    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the 640x640 input, right/bottom exclusive
    original_box: tuple[int, int, int, int]  # the same block in the photograph's pixels, clipped to it
    contribution: float  # the grade's total map summed over the block: its exact share of the score
    image_evidence: float  # the input map (input-dependent part) summed over the block
    fov_share: float  # how much of the block lies in the field of view

    def as_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "original_box": list(self.original_box),
            "contribution": self.contribution,
            "image_evidence": self.image_evidence,
            "fov_share": self.fov_share,
        }


def block_sums(values: np.ndarray, size: int = BLOCK) -> np.ndarray:
    """Sums of a (H, W) map over size x size blocks, in float64: (H // size, W // size)."""
    h, w = values.shape
    if size < 1 or h % size or w % size:
        raise ValueError(f"block size must divide the map's sides ({w} x {h}), not {size}")
    return values.astype(np.float64).reshape(h // size, size, w // size, size).sum(axis=(1, 3))


def strongest_regions(
    exp: Explanation, grade: int, n: int = 5, size: int = BLOCK, *, exclude: np.ndarray | None = None
) -> list[Region]:
    """The ``n`` blocks that add most to ``grade``'s score, strongest first.

    Only blocks with a positive contribution are evidence for the grade, so fewer than
    ``n`` come back when fewer are positive. Ties keep reading order (top row first).
    ``exclude`` (bool, the map's shape) leaves pixels out of every sum, so a block half
    covered by it counts its other half (``marks.unmarked_regions``); ``fov_share`` stays
    the whole block's.
    """
    total_map = exp.total(grade)
    image_map = exp.input_map[grade]
    if exclude is not None:
        keep = ~_bool_map(exclude, total_map.shape, "exclude")
        total_map = np.where(keep, total_map, total_map.dtype.type(0))
        image_map = np.where(keep, image_map, image_map.dtype.type(0))
    total = block_sums(total_map, size)
    image = block_sums(image_map, size)
    fov = block_sums(exp.fundus.fov.astype(np.float64), size) / (size * size)
    flat = total.ravel()
    order = np.argsort(-flat, kind="stable")[:n]
    regions = []
    for i in order:
        if flat[i] <= 0:
            break
        r, c = divmod(int(i), total.shape[1])
        regions.append(_region(exp, r, c, size, float(flat[i]), float(image[r, c]), float(fov[r, c])))
    return regions


def _region(exp: Explanation, row: int, col: int, size: int, contribution: float, image_evidence: float,
            fov_share: float) -> Region:
    """Block (row, col) as a Region: its input box and, through the crop, the photograph's."""
    left, top, right, _ = exp.fundus.crop_box
    width, height = exp.fundus.original_size
    scale = (right - left) / INPUT_SIZE
    box = (col * size, row * size, (col + 1) * size, (row + 1) * size)
    orig = (
        max(0, math.floor(left + box[0] * scale)),
        max(0, math.floor(top + box[1] * scale)),
        min(width, math.ceil(left + box[2] * scale)),
        min(height, math.ceil(top + box[3] * scale)),
    )
    return Region(box, orig, contribution, image_evidence, fov_share)


def _bool_map(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``mask`` as a bool array of ``shape``; anything else is a caller's mistake, said plainly."""
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != shape:
        raise ValueError(f"{name} must be a bool array of shape {shape}, not {mask.dtype} {mask.shape}")
    return mask


def pooled(values: np.ndarray, size: int) -> np.ndarray:
    """(H, W) float32 where every pixel holds the sum of its size x size block.

    A picture of it shows one colour per block, and a pixel read under the pointer is
    the block's exact contribution (block sums add up to the map's sum, so they stay
    exact where single pixels are speckle). ``size`` must divide the sides; the page
    offers ``POOL_SIZES``.
    """
    sums = block_sums(values, size)
    return np.repeat(np.repeat(sums, size, axis=0), size, axis=1).astype(np.float32)


def block_threshold(values: np.ndarray, fov: np.ndarray, k: float, size: int) -> np.ndarray:
    """The k-sigma rule of ``explanation.threshold_mask`` applied to block sums.

    Selects the blocks whose sum is positive and above mean + k std of the sums of the
    blocks at least half in the field of view (all blocks when none is), and returns
    their pixels, within the field of view when there is one. Pixel-level thresholds
    pick speckle; blocks pick places.
    """
    fov = _bool_map(fov, values.shape, "fov")
    sums = block_sums(values, size)
    in_view = block_sums(fov.astype(np.float64), size) >= 0.5 * size * size
    region = sums[in_view] if in_view.any() else sums.ravel()
    mu = float(region.mean())
    sd = float(region.std())
    chosen = (sums > 0) & (sums > mu + k * sd)
    pixels = np.repeat(np.repeat(chosen, size, axis=0), size, axis=1)
    return pixels & fov if fov.any() else pixels


__all__ = ["BLOCK", "POOL_SIZES", "Region", "block_sums", "block_threshold", "pooled", "strongest_regions"]
