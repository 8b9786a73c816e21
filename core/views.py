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

A ``ViewSpec`` names a lesion-scale view built from these: the mean of the level maps
of some levels (each sums to the score, so their mean does), summed over square
regions, optionally cut to its positive part (which no longer sums to the score).
``LESION_VIEW`` is the one the quality study chose on the 54 IDRiD training photographs
(``python -m core quality --views``); the viewer's regions view starts from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from .model import CONV_LAYERS
from .regions import pooled

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


@dataclass(frozen=True)
class ViewSpec:
    """A lesion-scale view: the mean of the ``evidence`` maps of ``levels`` ("input" or
    1..15), summed over ``pool`` x ``pool`` px regions (1: single pixels), and with
    ``positive`` only the regions' positive part."""

    levels: tuple[int | str, ...] = ("input",)
    evidence: Evidence = "total"
    pool: int = 1
    positive: bool = False

    @property
    def exact(self) -> bool:
        """Whether the view sums to the grade's score (total evidence, nothing cut)."""
        return self.evidence == "total" and not self.positive

    @property
    def name(self) -> str:
        """A short key: "L5+8-total-16px", "input-pixels-1px-pos"."""
        lv = "input" if self.levels == ("input",) else "L" + "+".join(str(v) for v in self.levels)
        return f"{lv}-{self.evidence}-{self.pool}px" + ("-pos" if self.positive else "")

    @property
    def short(self) -> str:
        """The label in a few words: "layer 8, 4 px", "input, pixels, pixel evidence"."""
        lv = "input" if self.levels == ("input",) else ("layer " if len(self.levels) == 1 else "layers ") + "+".join(
            str(v) for v in self.levels)
        return ", ".join([lv, "pixels" if self.pool == 1 else f"{self.pool} px"]
                         + ([] if self.evidence == "total" else ["pixel evidence"]) + (["positive"] if self.positive else []))

    @property
    def label(self) -> str:
        """What the view is, in words."""
        lv = ("the input" if self.levels == ("input",) else
              ("layer " if len(self.levels) == 1 else "the mean of layers ") + ", ".join(str(v) for v in self.levels))
        ev = "total map" if self.evidence == "total" else "pixel evidence"
        where = "pixels" if self.pool == 1 else f"{self.pool} px regions"
        return f"{ev} at {lv}, {where}" + (", positive part" if self.positive else "")


def view_map(exp: Explanation, grade: int, spec: ViewSpec) -> np.ndarray:
    """(640, 640) float32 map of ``spec`` for ``grade``. Pooled, each pixel holds its region's
    mean (the region's sum spread evenly over it), so the array still sums to the score and
    ranks, thresholds and signs exactly as the region sums do."""
    if not spec.levels:
        raise ValueError("a view needs at least one level")
    acc = np.zeros(exp.fundus.fov.shape, np.float64)
    for level in spec.levels:
        acc += level_map(exp, grade, level, spec.evidence)[0]
    values = (acc / len(spec.levels)).astype(np.float32)
    if spec.pool > 1:
        values = pooled(values, spec.pool) / np.float32(spec.pool * spec.pool)
    return np.maximum(values, 0) if spec.positive else values


LESION_VIEW = ViewSpec((8,), "total", 4)  # chosen by the rule of core.study.candidates on the 54 IDRiD training photographs
# What the committed study measured for it and for the paper's total map (assets/quality/quality_paper_idrid.json,
# predicted grade's map, published weights; a test keeps these equal to that file), for the page to say.
LESION_VIEW_MEASURED = {"photographs": 54, "auc": 0.662, "pointing": 0.946, "paper_auc": 0.521, "paper_pointing": 0.704}


def lesion_view(exp: Explanation, grade: int) -> tuple[np.ndarray, str]:
    """The view the quality study chose (``LESION_VIEW``) for ``grade``, and its name."""
    return view_map(exp, grade, LESION_VIEW), f"lesion view: {LESION_VIEW.label}"


__all__ = ["EVIDENCE", "LESION_VIEW", "LESION_VIEW_MEASURED", "Evidence", "Shares", "ViewSpec", "level_map", "lesion_view", "shares", "view_map"]
