"""Candidate lesion-scale views (``core.views.ViewSpec``) and the rule that picks one.

The paper's total map is exact (it sums to the score) but speckled: its sign does not
separate lesion from background. The candidates keep exactness where they can: hidden
layers' level maps in input space, their means across layers, each summed over square
regions; the pixel-evidence-only and positive-part variants are measured too, but
cannot win, because they no longer sum to the score.

The rule, fixed before any run: among the exact candidates, the highest mean over
photographs of (signed pixel AUC + pointing) / 2 for the predicted grade's map; ties go
to the first in ``CANDIDATES`` order (fewer layers, smaller regions first). Because it
is chosen on the same photographs it is reported on, ``select`` also splits the
photographs by index parity, chooses on one half and scores on the other: the gap is
the optimism of choosing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..views import LESION_VIEW, ViewSpec
from .peers import Method, view_fn

LEVELS: tuple[int | str, ...] = ("input", 3, 5, 6, 7, 8, 9, 11)
POOLS = (1, 4, 8, 16, 32)
COMBINATIONS: tuple[tuple[int | str, ...], ...] = ((5, 8), ("input", 5, 8), (3, 5, 8, 11))


def candidate_specs() -> list[ViewSpec]:
    """Every candidate, in tie-breaking order."""
    out = [ViewSpec((lv,), "total", p) for lv in LEVELS for p in POOLS]
    out += [ViewSpec(c, "total", p) for c in COMBINATIONS for p in (1, 16, 32)]
    out += [ViewSpec((lv,), "pixels", p) for lv in LEVELS for p in (1, 16)]
    out += [ViewSpec((lv,), "total", p, positive=True) for lv in ("input", 8) for p in (1, 16)]
    return out


def method_name(spec: ViewSpec) -> str:
    return "view_" + spec.name.replace("+", "_").replace("-", "_")


def candidate_methods() -> list[Method]:
    """The candidates as study methods (localisation only: no deletion/insertion)."""
    return [Method(method_name(s), f"View: {s.label}", view_fn(s), "view", faith=False) for s in candidate_specs()]


RULE = ("among exact candidates (they sum to the score), the highest mean over photographs of "
        "(signed pixel AUC + pointing) / 2, map of the predicted grade; ties to the earlier candidate")


def select(arrays: Callable[[tuple[str, str, str]], tuple[np.ndarray, np.ndarray]], specs: Sequence[ViewSpec],
           n_images: int) -> dict[str, Any]:
    """The rule applied to the per-image (numerator, denominator) arrays of each
    candidate: the ranking, the winner, and the two-fold check of its optimism."""

    def per_image(spec: ViewSpec) -> np.ndarray:
        """(AUC + pointing) / 2 per image, NaN where either is undefined."""
        name = method_name(spec)
        a, da = arrays((name, "predicted", "auc"))
        p, dp = arrays((name, "predicted", "pointing"))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((da > 0) & (dp > 0), (a / np.where(da > 0, da, 1) + p / np.where(dp > 0, dp, 1)) / 2, np.nan)

    scores = {s: per_image(s) for s in specs}

    def mean(spec: ViewSpec, rows: np.ndarray | slice = slice(None)) -> float | None:
        v = scores[spec][rows]
        return float(np.nanmean(v)) if np.isfinite(v).any() else None

    def best(rows: np.ndarray) -> ViewSpec | None:
        exact = [s for s in specs if s.exact and mean(s, rows) is not None]
        return max(exact, key=lambda s: (mean(s, rows), -specs.index(s)), default=None)

    every = np.arange(n_images)
    winner = best(every)
    folds = []
    for half, other in ((every[::2], every[1::2]), (every[1::2], every[::2])):
        chosen = best(half) if half.size else None
        if chosen is None or winner is None or not other.size:
            continue
        folds.append({"chosen_on": [int(i) for i in half], "chosen": chosen.name,
                      "score_on_other_half": mean(chosen, other), "overall_winner_on_other_half": mean(winner, other)})
    ranking = sorted(specs, key=lambda s: -(m if (m := mean(s)) is not None else -1.0))
    return {
        "rule": RULE,
        "winner": winner.name if winner else None,
        "winner_label": winner.label if winner else None,
        "winner_method": method_name(winner) if winner else None,
        "in_core": LESION_VIEW.name,
        "ranking": [{"name": s.name, "method": method_name(s), "label": s.label, "exact": s.exact,
                     "score": mean(s)} for s in ranking],
        "folds": folds,
    }


__all__ = [
    "COMBINATIONS", "LEVELS", "POOLS", "RULE", "candidate_methods", "candidate_specs", "method_name", "select",
]
