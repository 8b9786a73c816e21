"""What a reading view shows at one level of the network, named, exact.

Every map here sums to a known part of the score, so a region's colour can be read
as a share of it:

- "total": at the input, the paper's total map (pixels + every layer's constants +
  the bias); at a hidden layer L, layer L's input-dependent map plus the constants of
  layers >= L plus the bias, all in input space. Both sum to the grade's score.
- "pixels" (pixel evidence only): the input map at the input, layer L's
  input-dependent map at layer L. The constants (bias and batch norm terms, which
  do not depend on the photograph) are left out of the picture and of the threshold.

Level 16 (the 64 feature scores) has no place in the image: its view is the input's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .model import CONV_LAYERS

if TYPE_CHECKING:
    from .explanation import Explanation

Evidence = Literal["total", "pixels"]
EVIDENCE: tuple[Evidence, ...] = ("total", "pixels")


@dataclass(frozen=True)
class Shares:
    """A grade's score split into pixel evidence, constants and bias (at the input)."""

    score: float
    pixels: float  # the input map's sum
    constants: float  # every layer's constants
    bias: float

    @property
    def pixel_share(self) -> float:
        """The pixels' share of the score's parts, by magnitude: |pixels| / (|pixels| + |constants| + |bias|).

        By magnitude because the parts can have opposite signs: 25.6 + 60.4 = 86 reads
        "30 % pixel evidence", and +50 - 45 = 5 is not "1000 %"."""
        whole = abs(self.pixels) + abs(self.constants) + abs(self.bias)
        return abs(self.pixels) / whole if whole > 0 else 0.0


def shares(exp: Explanation, grade: int) -> Shares:
    """Where ``grade``'s score comes from: the photograph's pixels or the constants."""
    inp = float(exp.input_map[grade].sum(dtype=np.float64))
    const = float(exp.constants(grade).sum(dtype=np.float64))
    return Shares(float(exp.scores[grade]), inp, const, float(exp.bias[grade]))


def level_map(exp: Explanation, grade: int, level: int | str, evidence: Evidence = "total") -> tuple[np.ndarray, str]:
    """(640, 640) float32 map of ``grade`` at ``level`` (1..16 or "input") and its name."""
    if evidence not in EVIDENCE:
        raise ValueError(f"evidence must be one of {EVIDENCE}, not {evidence!r}")
    if level in ("input", 16):
        if evidence == "pixels":
            return exp.input_map[grade], "input map (pixel evidence only)"
        return exp.total(grade), "total map"
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 1 <= level <= len(CONV_LAYERS):
        raise ValueError(f"level must be 1..16 or 'input', not {level!r}")
    index = int(level)
    dep = exp.in_input_space(index, "input_dependent", grade)
    if evidence == "pixels":
        return dep, f"input-dependent map of layer {index} (pixel evidence only)"
    acc = dep.astype(np.float64) + exp.constants_from(index, grade) + exp.bias_map(grade)
    return acc.astype(np.float32), f"total map at layer {index} (input-dependent + constants of layers ≥ {index} + bias)"


__all__ = ["EVIDENCE", "Evidence", "Shares", "level_map", "shares"]
