"""A screening exam: photographs of both eyes, a result per eye and for the patient, the
referral at a stated operating point, and its PDF report and FHIR export.

    photos = [photograph(core.explain(model, f), eye="right", name="a.jpg"), ...]
    exam = make_exam(photos, reviews={"left": Review(3, "IRMA seen")}, patient=PatientDetails("Jane Roe"))
    exam.result.wording                           # "referable DR: refer"
    pdf = report_pdf.report_pdf(exam)             # bytes; the caller writes them
    text = fhir.fhir_json(exam, pdf)              # FHIR R4 DiagnosticReport, the PDF inside

``report_pdf`` (fpdf2) and ``fhir`` (fhir.resources) are imported on their own, so the
exam logic loads without them.
"""

from .exam import (
    MAX_PHOTOS_PER_EYE,
    Exam,
    ExamError,
    EyeResult,
    ModelIdentity,
    PatientDetails,
    PatientResult,
    Photo,
    Review,
    dicom_exam_date,
    dicom_patient,
    make_exam,
    parse_date,
    photograph,
    resolve_eye,
)
from .laterality import EYES, Eye, eye_from_dicom, eye_from_name, parse_eye
from .referral import MACULAR_OEDEMA, OPERATING_POINT, REFER, REFERABLE_FROM, RESCREEN, UNGRADABLE

__all__ = [
    "EYES",
    "MACULAR_OEDEMA",
    "MAX_PHOTOS_PER_EYE",
    "OPERATING_POINT",
    "REFER",
    "REFERABLE_FROM",
    "RESCREEN",
    "UNGRADABLE",
    "Exam",
    "ExamError",
    "Eye",
    "EyeResult",
    "ModelIdentity",
    "PatientDetails",
    "PatientResult",
    "Photo",
    "Review",
    "dicom_exam_date",
    "dicom_patient",
    "eye_from_dicom",
    "eye_from_name",
    "make_exam",
    "parse_date",
    "parse_eye",
    "photograph",
    "resolve_eye",
]
