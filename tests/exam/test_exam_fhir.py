"""The FHIR R4 DiagnosticReport: parsed back with fhir.resources, per-eye Observations
with their body sites, the PDF as presentedForm, the patient only with what was given."""

from __future__ import annotations

import datetime as dt
import json

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from core.exam import PatientDetails, Review, make_exam, photograph
from core.exam.fhir import fhir_json
from core.model import GRADE_NAMES
from tests.exam.stubs import Result, photo

ISSUED = dt.datetime(2025, 3, 14, 9, 30, tzinfo=dt.UTC)


def parsed(exam, pdf=None):
    text = fhir_json(exam, pdf, issued=ISSUED)
    return DiagnosticReport.model_validate_json(text), json.loads(text)


def contained(report, kind):
    return {c.id: c for c in report.contained if c.get_resource_type() == kind}


def test_a_real_exam_round_trips_with_its_pdf(exam_explanations, left_grade):
    from core.exam.report_pdf import report_pdf

    exam = make_exam([photograph(exam_explanations[n], None, n) for n in ("jane_R.jpg", "jane_left.jpg")],
                     patient=PatientDetails("Jane Roe", "MRN-0042", dt.date(1961, 4, 2)), exam_date=dt.date(2025, 3, 13))
    pdf = report_pdf(exam)
    report, raw = parsed(exam, pdf)
    assert raw["resourceType"] == "DiagnosticReport" and report.status == "preliminary"
    form = report.presentedForm[0]
    assert form.contentType == "application/pdf" and form.data == pdf
    assert report.effectiveDateTime.isoformat() == "2025-03-13" and report.subject.reference == "#patient"
    assert "Patient: referable DR: refer" in report.conclusion and "macular oedema: not assessed by this model" in report.conclusion.lower()
    obs = contained(report, "Observation")
    assert sorted(obs) == sorted(f"{e}-{k}" for e in ("right", "left") for k in ("grade", "referable", "gradable"))
    assert [r.reference for r in report.result] == [f"#{i}" for i in obs]
    sites = {i: (o.bodySite.coding[0].system, o.bodySite.coding[0].code, o.bodySite.coding[0].display) for i, o in obs.items()}
    assert sites["right-grade"] == ("http://snomed.info/sct", "362502000", "Entire right eye")
    assert sites["left-referable"] == ("http://snomed.info/sct", "362503005", "Entire left eye")
    assert obs["right-grade"].valueCodeableConcept.text == "ICDR grade 0: No apparent DR"
    assert obs["left-grade"].valueCodeableConcept.text == f"ICDR grade {left_grade}: {GRADE_NAMES[left_grade]}"
    assert obs["right-referable"].valueBoolean is False and obs["left-referable"].valueBoolean is True
    assert obs["left-gradable"].valueBoolean is True
    device = contained(report, "Device")["model"]
    assert device.version[1].value == exam.model.sha256 and all(o.device.reference == "#model" for o in obs.values())


def test_the_clinicians_override_is_kept_beside_the_models_grade():
    exam = make_exam([photo(1, "right"), photo(0, "left")],
                     reviews={"right": Review(2, "venous beading", "Dr A"), "left": Review()})
    report, _ = parsed(exam)
    assert report.status == "final"
    grade = contained(report, "Observation")["right-grade"]
    assert grade.valueCodeableConcept.text == "ICDR grade 2: Moderate NPDR"
    parts = {c.code.text: c.valueCodeableConcept.text for c in grade.component}
    assert parts == {"model's grade": "ICDR grade 1: Mild NPDR", "clinician's grade (override)": "ICDR grade 2: Moderate NPDR"}
    assert grade.note[0].text == "clinician's reason: venous beading" and grade.note[0].authorString == "Dr A"
    assert "clinician" in grade.method.text


def test_an_ungradable_eye_has_no_grade_and_no_referable_value():
    report, _ = parsed(make_exam([photo(0, "right"), photo(3, "left", gradable=False)]))
    obs = contained(report, "Observation")
    assert obs["left-grade"].valueCodeableConcept is None and obs["left-grade"].dataAbsentReason.text == "ungradable: retake or refer"
    assert obs["left-referable"].valueBoolean is None and obs["left-referable"].dataAbsentReason.coding[0].code == "unknown"
    assert obs["left-gradable"].valueBoolean is False
    assert "ungradable: retake or refer" in report.conclusion


def test_the_patient_carries_only_the_fields_given():
    report, raw = parsed(make_exam([photo(0, "right")], patient=PatientDetails(name="Jane Roe")))
    patient = raw["contained"][0]
    assert patient == {"resourceType": "Patient", "id": "patient", "name": [{"text": "Jane Roe"}]}
    assert "left eye not photographed" in report.conclusion
    report, raw = parsed(make_exam([photograph(Result(0), "right", "a.jpg")]))
    assert not contained(report, "Patient") and report.subject is None and "subject" not in json.dumps(raw)
