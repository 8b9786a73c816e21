"""The screening exam page: both eyes, one or two photographs each, a result per eye and for the patient.

Composition only, in the order of core's ``python -m core report``: read each photograph,
tell its eye, explain it, put the exam together with the clinician's reviews, then offer
the report. exam_controls.py returns the choices, exam_state.py keeps the session's
photographs, exam_render.py draws. The patient's result is drawn at the top, above the
photographs, once everything below it is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import core
from core.exam import (
    EYES,
    MAX_PHOTOS_PER_EYE,
    Exam,
    ExamError,
    Eye,
    EyeResult,
    PatientDetails,
    Photo,
    Review,
    dicom_exam_date,
    dicom_patient,
    make_exam,
    photograph,
    resolve_eye,
)

from . import exam_controls as controls
from . import exam_render as render
from . import exam_state as state
from .controls import K_DEFAULT

UPLOADER = "uploader"  # where a photograph's eye came from when neither its header nor its name says
FIELD_NAMES = dict(zip(controls.PATIENT_KEYS, ("name", "patient ID", "birth date", "exam date"), strict=True))


@dataclass(frozen=True)
class Placed:
    """An uploaded photograph, read and explained, with the eye its header or name says (else its uploader's)."""

    upload: controls.ExamUpload
    graded: state.Explained
    prefill: Eye
    source: str  # "DICOM header", "file name" or UPLOADER

    @property
    def source_text(self) -> str:
        """What said the prefilled eye, true whatever the user then chooses."""
        if self.source == UPLOADER:
            return f"uploaded as the {self.prefill} eye"
        return f"the {self.source} says {self.prefill}"

    def photo(self, eye: Eye) -> Photo:
        """core's photograph for ``eye``: its eye counts as the header's or the name's while it is theirs."""
        theirs = self.source != UPLOADER and eye == self.prefill
        return photograph(self.graded.exp, None if theirs else eye, self.upload.name)


Refusals = dict[Eye, list[tuple[str, str]]]


def place(model: core.LoadedModel, uploads: dict[Eye, list[controls.ExamUpload]]) -> tuple[list[Placed], Refusals]:
    """Each usable upload read and explained once; the others refused with why, under their uploader."""
    placed: list[Placed] = []
    refused: Refusals = {eye: [] for eye in EYES}
    seen: dict[str, str] = {}
    for eye in EYES:
        used = 0
        for up in uploads[eye]:
            if used >= MAX_PHOTOS_PER_EYE:
                refused[eye].append((up.name, f"an eye takes at most {MAX_PHOTOS_PER_EYE} photographs: remove one"))
                continue
            try:
                fundus = state.read_upload(up)
            except core.FundusReadError as e:
                refused[eye].append((up.name, f"it cannot be read: {e}"))
                continue
            if fundus.sha256 in seen:
                refused[eye].append((up.name, f"the same picture as {seen[fundus.sha256]}: give each photograph once"))
                continue
            seen[fundus.sha256] = up.name
            try:
                prefill, source, _ = resolve_eye(fundus, None, up.name)
            except ExamError:  # neither the header nor the name says: the uploader's eye
                prefill, source = eye, UPLOADER
            placed.append(Placed(up, state.explain(model, fundus, f"{up.name} ({eye} eye)"), prefill, source))
            used += 1
    state.keep_only([p.upload.ident for p in placed], [p.graded.key for p in placed])
    return placed, refused


def review(choice: controls.ReviewChoice, reviewer: str) -> Review | None:
    """The review core takes, or None (not reviewed, or an override still lacking its grade or reason)."""
    if choice.kind == "confirm":
        return Review(None, "", reviewer)
    if choice.kind == "override" and choice.problem is None:
        return Review(choice.grade, choice.reason, reviewer)
    return None


def patient_section(photos: list[Photo]) -> tuple[controls.PatientChoice, str | None]:
    """The patient fields, the DICOM headers filling the empty ones; a header problem (two patients) is returned."""
    try:
        filled, problem = state.prefill_patient(dicom_patient(photos), dicom_exam_date(photos)), None
    except ExamError as e:
        filled, problem = [], str(e)
    choice = controls.patient_ui()
    if filled:
        st.caption(f"Filled from the DICOM header: {', '.join(FIELD_NAMES[k] for k in filled)} (what you type wins).")
    return choice, problem


def photo_card(p: Placed, photo: Photo, eye: EyeResult) -> None:
    """One photograph: its thumbnail, its grade or why it has none, its eye (editable) and, for a
    gradable DICOM photograph, its map as DICOM (of the eye's grade, as in the report)."""
    with st.container(border=True, key=f"exam_photo_{p.upload.ident}"):
        thumb, text = st.columns([1, 1.45], gap="small")
        with thumb:
            render.draw_thumbnail(p.graded.thumbnail(photo.grade, K_DEFAULT), photo, K_DEFAULT)
        with text:
            render.draw_photo_verdict(photo, p.upload.column, eye.deciding is photo)
            controls.photo_eye_ui(p.upload.ident, p.prefill, p.source_text)
            if photo.gradable and eye.model_grade is not None:
                maker = state.parametric_map(p.graded.exp, eye.model_grade)
                if maker is not None:
                    render.draw_parametric_map(maker, p.upload.ident, p.upload.name, eye.model_grade)


def show(model: core.LoadedModel) -> None:
    """The exam page, graded with ``model``."""
    render.draw_style()
    render.draw_intro()
    patient_box = st.container(key="exam_patient")
    result_box = st.container(key="exam_result", border=True)
    columns = dict(zip(EYES, st.columns(2, gap="large"), strict=True))
    uploads: dict[Eye, list[controls.ExamUpload]] = {}
    for eye in EYES:
        with columns[eye]:
            render.draw_eye_heading(eye)
            uploads[eye] = controls.uploads_ui(eye)
    with result_box:  # the spinners show where the result will be
        placed, refused = place(model, uploads)

    # each photograph under the eye it counts for: as chosen on the page, else as prefilled
    by_eye: dict[Eye, list[tuple[Placed, Photo]]] = {eye: [] for eye in EYES}
    for p in placed:
        eye = controls.chosen_eye(p.upload.ident) or p.prefill
        by_eye[eye].append((p, p.photo(eye)))
    every = [photo for eye in EYES for _, photo in by_eye[eye]]

    with patient_box:
        patient, problem = patient_section(every)

    reviews: dict[Eye, Review] = {}
    waiting: list[str] = []
    slots = {}
    for eye in EYES:
        with columns[eye]:
            for name, why in refused[eye]:
                render.draw_refused(name, why)
            model_eye = EyeResult(eye, tuple(photo for _, photo in by_eye[eye]))
            for p, photo in by_eye[eye]:
                photo_card(p, photo, model_eye)
            slots[eye] = st.container(key=f"exam_verdict_{eye}")
            if not by_eye[eye]:
                continue
            state.review_basis(eye, tuple(photo.fundus.sha256 for _, photo in by_eye[eye]))
            choice = controls.review_ui(eye, model_eye.model_text)
            if choice.problem:
                render.draw_review_problem(eye, choice.problem)
                waiting.append(f"the {eye} eye's override: {choice.problem}")
            if (r := review(choice, patient.reviewer)) is not None:
                reviews[eye] = r

    exam: Exam | None = None
    if every and problem is None:
        try:
            exam = make_exam(every, reviews=reviews, exam_date=patient.exam_date,
                             patient=PatientDetails(patient.name or None, patient.patient_id or None, patient.birth_date))
        except ExamError as e:
            problem = str(e)
    for eye in EYES:
        with slots[eye]:
            if not by_eye[eye]:
                render.draw_no_photographs(eye, [p.upload.name for p in placed if p.upload.column == eye])
            else:
                render.draw_eye_result(exam.eyes[eye] if exam is not None else EyeResult(eye, tuple(ph for _, ph in by_eye[eye])))
    with result_box:
        if not every:
            render.draw_waiting()
        elif exam is None:
            render.draw_exam_problem(problem or "no usable photograph")
        else:
            render.draw_patient_result(exam)
            render.draw_downloads(exam, lambda: state.report_pdf(exam, K_DEFAULT), lambda: state.fhir_json(exam, K_DEFAULT),
                                  "; ".join(waiting) or None)


def leave() -> None:
    """The user left the exam: drop its photographs and explanations."""
    state.forget()
