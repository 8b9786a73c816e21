"""The screening exam's controls: each ``*_ui()`` draws its widgets and returns the user's choices.

Widget keys are stable; the tests drive the page through them:
``exam_upload_right``, ``exam_upload_left`` (one or two photographs each),
``exam_eye_<upload id>`` (a photograph's eye), ``exam_name``, ``exam_patient_id``,
``exam_birth_date``, ``exam_date``, ``exam_reviewer``, and per eye ``exam_review_<eye>``,
``exam_override_grade_<eye>``, ``exam_override_reason_<eye>``; the downloads are
``exam_dl_pdf`` and ``exam_dl_fhir``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import streamlit as st

import core
from core.exam import EYES, Eye
from core.exam.laterality import ABBREVIATION

from .controls import MAX_UPLOAD_MB, UPLOAD_TYPES, grade_label

PATIENT_KEYS = ("exam_name", "exam_patient_id", "exam_birth_date", "exam_date")
NOT_REVIEWED, CONFIRM, OVERRIDE = "Not reviewed", "Confirm", "Override"
REVIEW_OPTIONS = (NOT_REVIEWED, CONFIRM, OVERRIDE)
OLDEST = dt.date(1900, 1, 1)


def eye_label(eye: Eye) -> str:
    """``Right eye (OD)``."""
    return f"{eye.capitalize()} eye ({ABBREVIATION[eye]})"


def upload_key(eye: Eye) -> str:
    return f"exam_upload_{eye}"


def eye_key(ident: str) -> str:
    return f"exam_eye_{ident}"


def review_keys(eye: Eye) -> tuple[str, str, str]:
    return f"exam_review_{eye}", f"exam_override_grade_{eye}", f"exam_override_reason_{eye}"


@dataclass(frozen=True)
class ExamUpload:
    """One photograph as uploaded: the uploader (eye) it was dropped on, its name and bytes (memory only)."""

    column: Eye
    name: str
    ident: str  # the upload's id: changes whenever the file does
    data: bytes


@dataclass(frozen=True)
class PatientChoice:
    """The patient fields as the page shows them (typed, or filled from DICOM)."""

    name: str
    patient_id: str
    birth_date: dt.date | None
    exam_date: dt.date | None
    reviewer: str


@dataclass(frozen=True)
class ReviewChoice:
    """The clinician's word on one eye as entered (an override may still lack its grade or reason)."""

    kind: Literal["none", "confirm", "override"]
    grade: int | None = None
    reason: str = ""

    @property
    def problem(self) -> str | None:
        """Why the review cannot be applied yet, or None."""
        if self.kind != "override":
            return None
        if self.grade is None:
            return "choose the clinician's grade"
        if not self.reason.strip():
            return "an override needs a reason"
        return None


def uploads_ui(eye: Eye) -> list[ExamUpload]:
    """The eye's uploader: one or two photographs (any further ones are returned too; the page refuses them)."""
    files = st.file_uploader(
        f"Photographs of the {eye} eye ({ABBREVIATION[eye]}): one or two",
        type=list(UPLOAD_TYPES),
        accept_multiple_files=True,
        key=upload_key(eye),
        max_upload_size=MAX_UPLOAD_MB,
        help=f"PNG, JPEG, TIFF, BMP, WebP or DICOM, up to {MAX_UPLOAD_MB} MB each. The eye is taken from the DICOM "
        "header or the file name (_left, _R, OD ...) where they say, else from this uploader; you can change it "
        "under each photograph. Kept in memory only, never written to disk.",
    )
    return [ExamUpload(eye, f.name, f"{f.file_id}", f.getvalue()) for f in files or ()]


def photo_eye_ui(ident: str, prefill: Eye, said: str) -> Eye:
    """Which eye one photograph shows, prefilled as ``said`` ("the DICOM header says left", ...)."""
    chosen = st.segmented_control(
        f"Eye ({said})",
        options=list(EYES),
        format_func=lambda e: f"{e} ({ABBREVIATION[e]})",
        default=prefill,
        required=True,
        key=eye_key(ident),
        help="Which eye this photograph shows. A wrong eye moves a referral to the other side: check it.",
    )
    return chosen if chosen in EYES else prefill


def chosen_eye(ident: str) -> Eye | None:
    """A photograph's eye as last chosen on the page (before its control is drawn in this run), if any."""
    value = st.session_state.get(eye_key(ident))
    return value if value in EYES else None


def patient_ui() -> PatientChoice:
    """Name, patient ID, birth date, exam date and the reviewing clinician (DICOM fills empty fields first)."""
    today = dt.date.today()
    c1, c2, c3, c4, c5 = st.columns([1.5, 1.0, 0.9, 0.9, 1.3], gap="small")
    with c1:
        name = st.text_input("Patient name", key="exam_name", placeholder="not given",
                             help="Printed in the report you download; kept in this session's memory only, never logged.")
    with c2:
        pid = st.text_input("Patient ID", key="exam_patient_id", placeholder="not given")
    with c3:
        birth = st.date_input("Birth date", value=None, min_value=OLDEST, max_value=today, format="YYYY-MM-DD",
                              key="exam_birth_date")
    with c4:
        date = st.date_input("Exam date", value=None, min_value=OLDEST, max_value=today, format="YYYY-MM-DD",
                             key="exam_date", help="Default: the DICOM study date, else not given.")
    with c5:
        reviewer = st.text_input("Reviewing clinician", key="exam_reviewer", placeholder="not given",
                                 help="Named in the report beside each confirmation or override.")
    return PatientChoice((name or "").strip(), (pid or "").strip(), birth or None, date or None, (reviewer or "").strip())


def reset_review(eye: Eye) -> None:
    """Forget an eye's review (its photographs changed: a confirmation of other pictures means nothing)."""
    kind, grade, reason = review_keys(eye)
    st.session_state[kind] = NOT_REVIEWED
    st.session_state.pop(grade, None)
    st.session_state[reason] = ""


def review_ui(eye: Eye, model_text: str) -> ReviewChoice:
    """The clinician confirms the model's result for the eye, or overrides it with a grade and a reason."""
    kind_key, grade_key, reason_key = review_keys(eye)
    kind = st.radio(
        "Clinician's review",
        options=list(REVIEW_OPTIONS),
        format_func=lambda o: {CONFIRM: f"Confirm ({model_text})", OVERRIDE: "Override"}.get(o, o),
        horizontal=True,
        key=kind_key,
        help="Confirm the model's result for this eye, or set the eye's grade yourself (a reason is required).",
    )
    if kind == CONFIRM:
        return ReviewChoice("confirm")
    if kind != OVERRIDE:
        return ReviewChoice("none")
    c1, c2 = st.columns([1, 1.6], gap="small")
    with c1:
        grade = st.selectbox("Clinician's grade", options=list(range(len(core.GRADE_NAMES))), format_func=grade_label,
                             index=None, placeholder="Choose a grade", key=grade_key)
    with c2:
        reason = st.text_input("Reason (required)", key=reason_key, placeholder="e.g. IRMA seen in the superior arcade")
    return ReviewChoice("override", None if grade is None else int(grade), (reason or "").strip())
