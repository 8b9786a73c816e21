"""The referral decision and its wording, at one stated operating point (ICDR).

Screening programmes refer "more than mild DR": ICDR grade 2 (moderate NPDR) or worse.
The model's grade is its highest of five scores (no probability threshold is tuned),
so the operating point is the grade boundary itself, and every report says so.
"""

from __future__ import annotations

from typing import Literal

from ..model import GRADE_NAMES

REFERABLE_FROM = 2  # ICDR grade 2 (moderate NPDR) and worse are referable

Outcome = Literal["refer", "rescreen", "ungradable", "incomplete"]

REFER = "referable DR: refer"
RESCREEN = "rescreen in 12 months"
UNGRADABLE = "ungradable: retake or refer"
MACULAR_OEDEMA = "macular oedema: not assessed by this model"
OPERATING_POINT = (
    f"operating point: ICDR grade {REFERABLE_FROM} ({GRADE_NAMES[REFERABLE_FROM]}) or worse is referable "
    "(\"more than mild DR\"); grades 0-1: rescreen in 12 months. The grade is the highest of the model's "
    "five scores; no threshold on them was tuned."
)
WORDING: dict[Outcome, str] = {"refer": REFER, "rescreen": RESCREEN, "ungradable": UNGRADABLE,
                               "incomplete": "incomplete exam: photograph the missing eye or refer"}


def is_referable(grade: int) -> bool:
    return grade >= REFERABLE_FROM


def outcome_for(grade: int | None) -> Outcome:
    """One eye: refer at grade 2-4, rescreen at 0-1, ungradable without a grade."""
    if grade is None:
        return "ungradable"
    return "refer" if is_referable(grade) else "rescreen"


def grade_text(grade: int) -> str:
    """``grade 3 (Severe NPDR)``."""
    return f"grade {grade} ({GRADE_NAMES[grade]})"


__all__ = ["MACULAR_OEDEMA", "OPERATING_POINT", "REFER", "REFERABLE_FROM", "RESCREEN", "UNGRADABLE", "WORDING",
           "Outcome", "grade_text", "is_referable", "outcome_for"]
