"""The exam as a FHIR R4 DiagnosticReport: per-eye Observations and the PDF, in one resource.

fhir.resources 8 ships R5 at its root and R4B in ``fhir.resources.R4B``; it has no R4
package. R4B (4.3.0) changed only the medication-definition, evidence and subscription
resources: DiagnosticReport, Observation, Patient and Device are as in R4 (4.0.1), and
only R4 elements are used here, so the JSON is R4.

Everything is contained in the one report (Patient, Device, Observations), so it can be
sent as it is. Codes are used only where they were verified in published value sets:
SNOMED CT 362502000 "Entire right eye" / 362503005 "Entire left eye" for the body site
(HL7's Eyecare Target Site Codes, expanded from SNOMED CT International 2023-09), HL7's
observation-category and data-absent-reason. No code system for the ICDR grade was
verified, so the grade is text only rather than an invented code.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from .. import card
from ..model import GRADE_NAMES
from ..version import __version__
from .exam import Exam, EyeResult
from .laterality import EYES
from .referral import MACULAR_OEDEMA, OPERATING_POINT, REFERABLE_FROM, UNGRADABLE

SNOMED = "http://snomed.info/sct"
BODY_SITE = {"right": ("362502000", "Entire right eye"), "left": ("362503005", "Entire left eye")}
CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging",
                        "display": "Imaging"}]}
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
NOTICE = "Not a medical device: research use only."


def body_site(eye: str) -> dict[str, Any]:
    code, display = BODY_SITE[eye]
    return {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": f"{eye} eye"}


def _grade(grade: int) -> dict[str, Any]:
    return {"text": f"ICDR grade {grade}: {GRADE_NAMES[grade]}"}


def _absent(text: str) -> dict[str, Any]:
    return {"coding": [{"system": DATA_ABSENT, "code": "unknown", "display": "Unknown"}], "text": text}


def eye_observations(exam: Exam, e: EyeResult, common: dict[str, Any]) -> list[dict[str, Any]]:
    """The eye's DR grade, its referable yes/no and its gradability, as Observations."""
    status = "final" if e.review is not None else "preliminary"
    base = {"resourceType": "Observation", "status": status, "category": [CATEGORY], "bodySite": body_site(e.eye), **common}
    grade: dict[str, Any] = {
        **base, "id": f"{e.eye}-grade",
        "code": {"text": "Diabetic retinopathy grade (ICDR 0-4) of the eye"},
        "method": {"text": f"decided by: {e.decided_by}"},
        "component": [{"code": {"text": "model's grade"},
                       **({"valueCodeableConcept": _grade(e.model_grade)} if e.model_grade is not None
                          else {"dataAbsentReason": _absent("no gradable photograph")})}],
    }
    if e.grade is not None:
        grade["valueCodeableConcept"] = _grade(e.grade)
    else:
        grade["dataAbsentReason"] = _absent(UNGRADABLE)
    if e.review is not None:
        clinician = e.review.grade if e.review.grade is not None else e.model_grade
        grade["component"].append({"code": {"text": "clinician's grade" + (" (override)" if e.overridden else " (confirmed)")},
                                   **({"valueCodeableConcept": _grade(clinician)} if clinician is not None
                                      else {"dataAbsentReason": _absent("confirmed ungradable")})})
        if e.review.reason:
            grade["note"] = [{"text": f"clinician's reason: {e.review.reason}",
                              **({"authorString": e.review.reviewer} if e.review.reviewer else {})}]
    referable: dict[str, Any] = {
        **base, "id": f"{e.eye}-referable",
        "code": {"text": f"Referable diabetic retinopathy (ICDR grade {REFERABLE_FROM} or worse)"},
        "note": [{"text": f"{e.wording}; {OPERATING_POINT}"}],
    }
    if e.grade is not None:
        referable["valueBoolean"] = e.grade >= REFERABLE_FROM
    else:
        referable["dataAbsentReason"] = _absent(UNGRADABLE)
    refused = [f"{p.name}: {'; '.join(p.reasons) or 'refused'}" for p in e.photos if not p.gradable]
    gradable: dict[str, Any] = {
        **base, "id": f"{e.eye}-gradable",
        "code": {"text": "Gradability: at least one photograph of the eye passed the quality assessment"},
        "valueBoolean": e.model_grade is not None,
        "note": [{"text": f"{sum(p.gradable for p in e.photos)} of {len(e.photos)} photographs gradable"
                          + (f"; ungradable: {' | '.join(refused)}" if refused else "")}],
    }
    return [grade, referable, gradable]


def report_dict(exam: Exam, pdf: bytes | None = None, *, issued: dt.datetime | None = None) -> dict[str, Any]:
    """The DiagnosticReport as a JSON-ready dict (``diagnostic_report`` validates it)."""
    issued = issued or dt.datetime.now().astimezone()
    if issued.tzinfo is None:
        issued = issued.astimezone()
    contained: list[dict[str, Any]] = []
    common: dict[str, Any] = {"device": {"reference": "#model"}}
    p = exam.patient
    if not p.empty:
        patient: dict[str, Any] = {"resourceType": "Patient", "id": "patient"}
        if p.name:
            patient["name"] = [{"text": p.name}]
        if p.patient_id:
            patient["identifier"] = [{"value": p.patient_id}]
        if p.birth_date:
            patient["birthDate"] = p.birth_date.isoformat()
        contained.append(patient)
        common["subject"] = {"reference": "#patient"}
    if exam.exam_date:
        common["effectiveDateTime"] = exam.exam_date.isoformat()
    m = exam.model
    contained.append({
        "resourceType": "Device", "id": "model",
        "deviceName": [{"name": f"dr-grader {__version__}", "type": "user-friendly-name"},
                       {"name": m.name, "type": "model-name"}],
        "version": [{"type": {"text": "software"}, "value": __version__},
                    {"type": {"text": "weights sha256"}, "value": m.sha256}],
        "note": [{"text": f"{NOTICE} Weights '{m.name}': {card.headline(m.meta)}."}],
    })
    results = []
    for eye in EYES:
        e = exam.eyes[eye]
        if e.photographed:
            for obs in eye_observations(exam, e, common):
                contained.append(obs)
                results.append({"reference": f"#{obs['id']}"})
    r = exam.result
    missing = [f"{eye} eye not photographed" for eye in EYES if not exam.eyes[eye].photographed]
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "contained": contained,
        "status": "final" if exam.reviewed else "preliminary",
        "code": {"text": "Diabetic retinopathy screening of fundus photographs (dr-grader, research software)"},
        **({"subject": common["subject"]} if "subject" in common else {}),
        **({"effectiveDateTime": common["effectiveDateTime"]} if "effectiveDateTime" in common else {}),
        "issued": issued.isoformat(timespec="seconds"),
        "result": results,
        "conclusion": " ".join([f"Patient: {r.wording} ({r.detail}).", *(f"{m_}." for m_ in missing),
                                OPERATING_POINT[:1].upper() + OPERATING_POINT[1:],
                                MACULAR_OEDEMA[:1].upper() + MACULAR_OEDEMA[1:] + ".", NOTICE]),
    }
    if pdf is not None:
        report["presentedForm"] = [{"contentType": "application/pdf", "data": base64.b64encode(pdf).decode("ascii"),
                                    "title": "Diabetic retinopathy screening report (PDF)",
                                    "creation": issued.isoformat(timespec="seconds")}]
    return report


def diagnostic_report(exam: Exam, pdf: bytes | None = None, *, issued: dt.datetime | None = None) -> DiagnosticReport:
    """The exam as a validated fhir.resources DiagnosticReport (R4B classes, R4 content)."""
    return DiagnosticReport.model_validate(report_dict(exam, pdf, issued=issued))


def fhir_json(exam: Exam, pdf: bytes | None = None, *, issued: dt.datetime | None = None) -> str:
    """The DiagnosticReport as FHIR JSON text (the caller writes it)."""
    return diagnostic_report(exam, pdf, issued=issued).model_dump_json(indent=2, exclude_none=True, by_alias=True)


__all__ = ["BODY_SITE", "CATEGORY", "DATA_ABSENT", "NOTICE", "SNOMED", "body_site", "diagnostic_report",
           "eye_observations", "fhir_json", "report_dict"]
