"""Evidence regions: a grade's total map summed over square blocks of the input.

Pixel maps are speckle: neighbouring pixels cancel, so one pixel's colour says little
about "for" or "against". Summing over a block is still exact, because the total map
adds up to the score: the blocks of one grade add up to it too, and a region's
contribution is a share of the score in score units, not a visual impression. The
block's image evidence (the input map's sum) is kept beside it, because most of a score
can come from the constants that the total map spreads over receptive fields.

These are fixed blocks, not lesions: a lesion cut by a block edge splits between two.
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


def strongest_regions(exp: Explanation, grade: int, n: int = 5, size: int = BLOCK) -> list[Region]:
    """The ``n`` blocks that add most to ``grade``'s score, strongest first.

    Only blocks with a positive contribution are evidence for the grade, so fewer than
    ``n`` come back when fewer are positive. Ties keep reading order (top row first).
    """
    total = block_sums(exp.total()[grade], size)
    image = block_sums(exp.input_map[grade], size)
    fov = block_sums(exp.fundus.fov.astype(np.float64), size) / (size * size)
    flat = total.ravel()
    order = np.argsort(-flat, kind="stable")[:n]
    left, top, right, _ = exp.fundus.crop_box
    width, height = exp.fundus.original_size
    scale = (right - left) / INPUT_SIZE
    regions = []
    for i in order:
        if flat[i] <= 0:
            break
        r, c = divmod(int(i), total.shape[1])
        box = (c * size, r * size, (c + 1) * size, (r + 1) * size)
        orig = (
            max(0, math.floor(left + box[0] * scale)),
            max(0, math.floor(top + box[1] * scale)),
            min(width, math.ceil(left + box[2] * scale)),
            min(height, math.ceil(top + box[3] * scale)),
        )
        regions.append(Region(box, orig, float(flat[i]), float(image[r, c]), float(fov[r, c])))
    return regions


__all__ = ["BLOCK", "Region", "block_sums", "strongest_regions"]
