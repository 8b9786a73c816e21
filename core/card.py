"""How a model's figures are stated: never a metric without the data it was measured on.

A kappa of 0.97 on synthetic drawings and one of 0.80 on real photographs are
different claims; a bare "kappa 0.97" beside a grade misleads. Every place that
names a model (the page's banner and card, ``scores.json``, the grade CSV, the
model cards) states its figures through these functions, real photographs first.

A registry entry lists its ``evaluations`` (each: ``data``, ``n``, ``real``, the
metrics, who measured it); a checkpoint trained here by ``python -m core train``
carries only its validation figures, which are stated with its validation split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

METRIC_NAMES = (
    ("quadratic_weighted_kappa", "kappa"),
    ("accuracy", "accuracy"),
    ("referable_dr_sensitivity", "referable sensitivity"),
    ("referable_dr_specificity", "referable specificity"),
)


def evaluations(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model's measured figures, each with its data; real photographs first.

    Figures whose data is not stated (a bare ``metrics`` entry) are left out.
    """
    listed = meta.get("evaluations")
    out: list[dict[str, Any]] = []
    if isinstance(listed, Sequence) and not isinstance(listed, str):
        out = [dict(e) for e in listed if isinstance(e, Mapping) and e.get("data") and e.get("n")]
    else:
        metrics = meta.get("metrics") if isinstance(meta.get("metrics"), Mapping) else {}
        kappa, n = metrics.get("validation_quadratic_weighted_kappa"), metrics.get("validation_n")
        data = meta.get("data") if isinstance(meta.get("data"), Mapping) else {}
        train = data.get("train") if isinstance(data.get("train"), Mapping) else {}
        if isinstance(kappa, (int, float)) and isinstance(n, int) and n > 0 and train.get("dataset"):
            synthetic = bool(meta.get("synthetic"))
            kind = "synthetic validation drawings" if synthetic else f"{train['dataset']} validation photographs (real)"
            out = [{"data": kind,
                    "n": n, "real": not synthetic, "quadratic_weighted_kappa": float(kappa),
                    "accuracy": metrics.get("validation_accuracy")}]
    return sorted(out, key=lambda e: not e.get("real"))


def _number(v: Any) -> str | None:
    return f"{float(v):.3f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def statement(ev: Mapping[str, Any], detail: bool = False) -> str:
    """``kappa 0.71 (95% CI 0.60-0.80) on 103 held-out IDRiD photographs (real)``; with
    ``detail``, accuracy, referable sensitivity and specificity and who measured it too."""
    parts = []
    for key, name in METRIC_NAMES[: None if detail else 1]:
        v = _number(ev.get(key))
        if v is None:
            continue
        ci = ev.get(f"{key}_ci95")
        if isinstance(ci, Sequence) and len(ci) == 2 and all(_number(c) for c in ci):
            v += f" (95% CI {_number(ci[0])}–{_number(ci[1])})"
        parts.append(f"{name} {v}")
    text = (", ".join(parts) or "measured") + f" on {int(ev['n']):,} {ev['data']}"
    if detail and ev.get("by"):
        text += f" [{ev['by']}]"
    return text


def headline(meta: Mapping[str, Any]) -> str:
    """One line for the page's model line and the exports: each kappa with its data."""
    evs = evaluations(meta)
    if not evs:
        return "no measured figures stated"
    text = "; ".join(statement(e) for e in evs)
    if not any(e.get("real") for e in evs):
        text += "; never measured on real photographs"
    return text


def summary(name: str, sha256: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """What an export says of the model that produced it."""
    return {
        "name": name,
        "sha256": sha256,
        "title": meta.get("title", name),
        "trained_on": meta.get("training_data", "not stated"),
        "measured": [statement(e, detail=True) for e in evaluations(meta)],
        "clinical_use": bool(meta.get("clinical_use", False)),
    }
