"""The clinical grading rules of the synthetic generator: each level, the 4-2-1 rule's
thresholds, the order of the rules, bad input, and monotonicity in the lesions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.synthetic import LESION_TYPES, grade_from_lesions


def test_grade_rules_each_level() -> None:
    assert grade_from_lesions({}) == 0
    assert grade_from_lesions({"microaneurysm": 1}) == 1
    assert grade_from_lesions({"microaneurysm": 40}) == 1
    for t in ("haemorrhage", "hard_exudate", "cotton_wool_spot", "venous_beading"):
        assert grade_from_lesions({t: 1}) == 2, t
        assert grade_from_lesions({"microaneurysm": 3, t: 1}) == 2, t
    assert grade_from_lesions({"irma": 1}) == 3
    assert grade_from_lesions({"neovascularisation": 1}) == 4
    assert grade_from_lesions({"preretinal_haemorrhage": 1}) == 4


def test_grade_rule_haemorrhages_20_vs_21_per_quadrant() -> None:
    assert grade_from_lesions({"haemorrhage": 84}, (21, 21, 21, 21)) == 3
    assert grade_from_lesions({"haemorrhage": 83}, (21, 21, 21, 20)) == 2
    assert grade_from_lesions({"haemorrhage": 80}, (20, 20, 20, 20)) == 2
    # many, but not in every quadrant
    assert grade_from_lesions({"haemorrhage": 300}, (100, 100, 100, 0)) == 2


def test_grade_rule_beading_1_vs_2_quadrants() -> None:
    assert grade_from_lesions({"venous_beading": 3}, venous_beading_quadrants=1) == 2
    assert grade_from_lesions({"venous_beading": 2}, venous_beading_quadrants=2) == 3
    assert grade_from_lesions({"venous_beading": 4}, venous_beading_quadrants=4) == 3


def test_grade_rule_proliferative_overrides_severe() -> None:
    severe = {"haemorrhage": 100, "irma": 2, "venous_beading": 4, "microaneurysm": 9}
    assert grade_from_lesions(severe, (25, 25, 25, 25), 4) == 3
    assert grade_from_lesions({**severe, "neovascularisation": 1}, (25, 25, 25, 25), 4) == 4
    assert grade_from_lesions({**severe, "preretinal_haemorrhage": 1}, (25, 25, 25, 25), 4) == 4


@pytest.mark.parametrize(
    "args",
    [
        ({"drusen": 1},),  # unknown type
        ({"microaneurysm": -1},),
        ({"haemorrhage": 3}, (1, 1, 1)),  # not 4 quadrants
        ({"haemorrhage": 3}, (1, 1, 1, 1)),  # more in quadrants than counted
        ({"venous_beading": 1}, (0, 0, 0, 0), 2),  # more quadrants than segments
        ({"venous_beading": 9}, (0, 0, 0, 0), 5),
    ],
)
def test_grade_rejects_inconsistent_input(args: tuple) -> None:
    with pytest.raises(ValueError):
        grade_from_lesions(*args)


counts_st = st.fixed_dictionaries({t: st.integers(0, 30) for t in LESION_TYPES})


@settings(max_examples=200, deadline=None)
@given(counts=counts_st, extra=st.sampled_from(LESION_TYPES), hpq=st.lists(st.integers(0, 30), min_size=4, max_size=4),
       vbq=st.integers(0, 4))
def test_grade_is_monotonic_in_lesions(counts: dict, extra: str, hpq: list, vbq: int) -> None:
    """Adding a lesion never lowers the grade (the scale is a severity order)."""
    counts = {**counts, "haemorrhage": max(counts["haemorrhage"], sum(hpq)),
              "venous_beading": max(counts["venous_beading"], vbq)}
    g = grade_from_lesions(counts, hpq, vbq)
    assert 0 <= g <= 4
    more = {**counts, extra: counts[extra] + 1}
    assert grade_from_lesions(more, hpq, vbq) >= g
