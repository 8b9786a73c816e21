"""The rule that picks the lesion-scale view: only exact candidates can win, the best mean
of (AUC + pointing) / 2 wins, ties go to the earlier candidate, and the two-fold check
chooses on one half and scores on the other."""

from __future__ import annotations

import numpy as np

from core.study import candidates as c
from core.views import ViewSpec


def arrays_from(table: dict[str, dict[str, list[float]]]):
    def arrays(key):
        name, _, metric = key
        v = np.array(table[name][metric], np.float64)
        return v, np.ones_like(v)

    return arrays


def test_only_exact_candidates_win_and_ties_go_to_the_earlier():
    specs = [ViewSpec(("input",), "total", 1), ViewSpec((8,), "total", 16), ViewSpec((8,), "pixels", 1),
             ViewSpec((5,), "total", 1)]
    table = {
        c.method_name(specs[0]): {"auc": [0.5, 0.5], "pointing": [0.5, 0.5]},
        c.method_name(specs[1]): {"auc": [0.7, 0.7], "pointing": [0.9, 0.9]},
        c.method_name(specs[2]): {"auc": [0.9, 0.9], "pointing": [1.0, 1.0]},  # best, but not exact
        c.method_name(specs[3]): {"auc": [0.9, 0.5], "pointing": [0.9, 0.9]},  # same mean as specs[1]
    }
    sel = c.select(arrays_from(table), specs, 2)
    assert sel["winner"] == specs[1].name and sel["ranking"][0]["name"] == specs[2].name
    assert not sel["ranking"][0]["exact"] and sel["ranking"][1]["exact"]
    assert len(sel["folds"]) == 2
    first = sel["folds"][0]  # chosen on image 0, where specs[3] scores 0.9; on image 1 it scores 0.7
    assert first["chosen_on"] == [0] and first["chosen"] == specs[3].name
    assert np.isclose(first["score_on_other_half"], 0.7) and np.isclose(first["overall_winner_on_other_half"], 0.8)


def test_candidates_are_methods_without_deletion_and_insertion():
    ms = c.candidate_methods()
    assert len(ms) == len(c.candidate_specs()) and all(m.family == "view" and not m.faith for m in ms)
    assert len({m.name for m in ms}) == len(ms)
    assert any(s.exact for s in c.candidate_specs()) and any(not s.exact for s in c.candidate_specs())
