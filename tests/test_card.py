"""A model's figures are always stated with their data, real photographs first."""

from __future__ import annotations

from core import card
from core import weights as W

REAL = {"data": "held-out IDRiD photographs (real)", "n": 103, "real": True, "quadratic_weighted_kappa": 0.7104,
        "quadratic_weighted_kappa_ci95": [0.6, 0.8], "referable_dr_sensitivity": 0.9, "by": "measured here"}
DRAWN = {"data": "synthetic drawings", "n": 500, "real": False, "quadratic_weighted_kappa": 0.976}


def test_real_photographs_come_first_and_every_figure_names_its_data():
    meta = {"evaluations": [DRAWN, REAL]}
    assert card.headline(meta) == ("kappa 0.710 (95% CI 0.600–0.800) on 103 held-out IDRiD photographs (real); "
                                   "kappa 0.976 on 500 synthetic drawings")
    assert card.statement(REAL, detail=True) == ("kappa 0.710 (95% CI 0.600–0.800), referable sensitivity 0.900 on 103 "
                                                 "held-out IDRiD photographs (real) [measured here]")


def test_a_model_only_measured_on_drawings_says_so():
    assert card.headline({"evaluations": [DRAWN]}).endswith("never measured on real photographs")


def test_a_bare_metric_is_never_shown():
    assert card.evaluations({"metrics": {"validation_quadratic_weighted_kappa": 0.97}}) == []
    assert card.headline({"metrics": {"validation_quadratic_weighted_kappa": 0.97}}) == "no measured figures stated"
    assert card.evaluations({"evaluations": [{"quadratic_weighted_kappa": 0.9}]}) == []


def test_a_trained_checkpoint_states_its_validation_split():
    meta = {"metrics": {"validation_quadratic_weighted_kappa": 0.62, "validation_n": 37, "validation_accuracy": 0.5},
            "data": {"train": {"dataset": "idrid"}}, "synthetic": False}
    (ev,) = card.evaluations(meta)
    assert ev["n"] == 37 and ev["real"] and card.statement(ev) == "kappa 0.620 on 37 idrid validation photographs (real)"
    meta["synthetic"] = True
    assert card.headline(meta) == "kappa 0.620 on 37 synthetic validation drawings; never measured on real photographs"


def test_every_registry_entry_states_a_figure_on_real_photographs():
    for entry in W.REGISTRY.values():
        evs = card.evaluations(entry.meta)
        assert evs and evs[0]["real"], entry.name  # measured on real photographs, and that comes first
        summary = card.summary(entry.name, entry.sha256, entry.meta)
        assert summary["measured"] and summary["trained_on"] != "not stated" and summary["clinical_use"] is False
