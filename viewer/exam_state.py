"""What the exam page keeps between reruns, in this session's ``st.session_state`` only.

- Each uploaded photograph is read once per upload (a bad file's message too, so it is not
  decoded again on every rerun) and explained once per picture and weights (the pixels'
  and the weights' sha256), under the same process-wide limit as the one-photograph page.
- What no upload refers to any more is dropped at once; leaving the exam drops everything.
- The PDF and the FHIR JSON are made in memory when a download button is clicked, never
  written to disk; patient fields live in the page's widgets, nowhere else, and are never logged.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

import streamlit as st

import core
from core import pictures as draw
from core.allocator import release_free_memory
from core.exam import Exam, PatientDetails

from . import pictures as pic
from .exam_controls import PATIENT_KEYS, ExamUpload, reset_review
from .state import EXPLAIN_SLOTS

_READ = "_exam_read"  # upload id -> Fundus, or the reader's message
_EXPLAINED = "_exam_explained"  # "<pixels sha256>:<weights sha256>" -> Explained
_PREFILLED = "_exam_prefilled"  # patient widget key -> the DICOM value put there
_BASIS = "_exam_review_basis"  # eye -> the pictures its review was given for


@dataclass
class Explained:
    """One photograph's Explanation and its pictures, made once."""

    key: str
    exp: core.Explanation
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _pictures: dict[Hashable, bytes] = field(default_factory=dict, repr=False)

    def thumbnail(self, grade: int | None, k: float) -> bytes:
        """The model's input with grade ``grade``'s k-sigma pixels; ``None``: greyed and stamped UNGRADABLE."""
        with self.lock:
            key = ("thumb", grade, k)
            if key not in self._pictures:
                image = self.exp.fundus.image
                if grade is None:
                    picture = pic.stamped(pic.grey(image).round().astype("uint8"), "UNGRADABLE")
                else:
                    picture = pic.mask_picture(image, self.exp.mask(grade, k), 0.8)
                self._pictures[key] = draw.jpeg_bytes(pic.shrink(picture, 360), quality=88)
            return self._pictures[key]


def read_upload(upload: ExamUpload) -> core.Fundus:
    """The upload as a Fundus, read once per upload; raises ``core.FundusReadError`` (also from the cache)."""
    cache: dict[str, core.Fundus | str] = st.session_state.setdefault(_READ, {})
    if upload.ident not in cache:
        try:
            cache[upload.ident] = core.read_fundus(upload.data, name=upload.name)
        except core.FundusReadError as e:
            cache[upload.ident] = str(e)
    found = cache[upload.ident]
    if isinstance(found, str):
        raise core.FundusReadError(found)
    return found


def explain(model: core.LoadedModel, fundus: core.Fundus, what: str) -> Explained:
    """This session's Explanation of ``fundus``; computed only the first time (``what`` names it in the spinner)."""
    cache: dict[str, Explained] = st.session_state.setdefault(_EXPLAINED, {})
    key = f"{fundus.sha256}:{model.sha256}"
    if key not in cache:
        with st.spinner(f"The model is grading {what}…"), EXPLAIN_SLOTS:
            cache[key] = Explained(key, core.explain(model, fundus))
        release_free_memory()  # the propagation's temporaries go back to the kernel (state.explain)
    return cache[key]


def keep_only(idents: Iterable[str], keys: Iterable[str]) -> None:
    """Drop the reads and explanations of photographs no longer uploaded (memory, and privacy)."""
    idents, keys = set(idents), set(keys)
    for name, keep in ((_READ, idents), (_EXPLAINED, keys)):
        cache = st.session_state.get(name, {})
        for k in [k for k in cache if k not in keep]:
            del cache[k]


def forget() -> None:
    """Leave the exam: its photographs, explanations and filled-in fields are dropped."""
    for name in (_READ, _EXPLAINED, _PREFILLED, _BASIS):
        st.session_state.pop(name, None)


def prefill_patient(details: PatientDetails, exam_date: dt.date | None) -> list[str]:
    """Put the DICOM headers' patient fields into the empty patient widgets (before they are drawn).

    A value is put in once: a field the user cleared or typed over stays as they left it.
    A field still holding a DICOM value that no photograph carries any more is emptied.
    Returns the keys holding a DICOM value now.
    """
    found = dict(zip(PATIENT_KEYS, (details.name, details.patient_id, details.birth_date, exam_date), strict=True))
    done: dict[str, object] = st.session_state.setdefault(_PREFILLED, {})
    for key, value in found.items():
        current = st.session_state.get(key)
        if key in done and done[key] != value and current == done[key]:
            st.session_state[key] = None if key.endswith("date") else ""  # its photograph was removed
            del done[key]
            current = None
        if value and not current and done.get(key) != value:
            st.session_state[key] = value
            done[key] = value
    return [k for k, v in done.items() if st.session_state.get(k) == v]


def review_basis(eye: str, pictures: tuple[str, ...]) -> None:
    """Reset the eye's review when its pictures change: a confirmation was given for the others."""
    basis: dict[str, tuple[str, ...]] = st.session_state.setdefault(_BASIS, {})
    if eye in basis and basis[eye] != pictures:
        reset_review(eye)
    basis[eye] = pictures


def report_pdf(exam: Exam, k: float) -> bytes:
    """The exam's PDF report, made in memory (when its download button is clicked)."""
    from core.exam.report_pdf import report_pdf as make  # fpdf2 loads only when a report is asked for

    return make(exam, k=k)


def fhir_json(exam: Exam, k: float) -> bytes:
    """The exam as a FHIR R4 DiagnosticReport with its PDF inside, made in memory when clicked."""
    from core.exam.fhir import fhir_json as make

    return make(exam, report_pdf(exam, k)).encode("utf-8")


def parametric_map(exp: core.Explanation, grade: int) -> Callable[[], bytes] | None:
    """The maker of a DICOM photograph's Parametric Map of ``grade`` (run when clicked), or None
    where this installation cannot make one (core.exam.dicom_out or highdicom missing)."""
    if getattr(exp.fundus, "dicom", None) is None:
        return None
    try:
        from core.exam.dicom_out import parametric_map_bytes
    except ImportError:
        return None
    return lambda: parametric_map_bytes(exp, grade)
