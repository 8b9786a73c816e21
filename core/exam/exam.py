"""A screening exam: one or two photographs per eye, a result per eye and for the patient.

Screening grades people, not pictures: an eye takes the highest grade among its
gradable photographs, the patient the worse eye, and the referral follows ICDR at the
operating point of ``referral``. The model decides nothing alone: a clinician may confirm
each eye's grade or override it with a reason, and the exam keeps both.

An eye whose photographs are all ungradable is never read as healthy: the patient is
then not sent back to routine rescreening, whatever the other eye shows, unless that eye
is referable anyway. Plain data, no pictures and no UI: ``report_pdf`` and ``fhir`` write it out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import CoreError
from ..model import GRADE_NAMES
from .laterality import EYES, Eye, eye_from_dicom, eye_from_name, parse_eye
from .referral import UNGRADABLE, WORDING, Outcome, grade_text, is_referable, outcome_for

MAX_PHOTOS_PER_EYE = 2


class ExamError(CoreError):
    """An exam that cannot be put together as given (one line, for the user to fix)."""


class Graded(Protocol):
    """What the exam reads of a photograph's result (an ``Explanation`` has it all)."""

    @property
    def grade(self) -> int: ...

    @property
    def gradable(self) -> bool: ...


# --------------------------------------------------------------------- patient and dates
def parse_date(value: Any, what: str) -> dt.date | None:
    """A date from a ``date``, ``YYYY-MM-DD`` or DICOM's ``YYYYMMDD``; None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ExamError(f"{what} must be a date as YYYY-MM-DD, not {text!r}")


@dataclass(frozen=True)
class PatientDetails:
    """Who was examined, as typed by the user or read from DICOM: kept in memory only."""

    name: str | None = None
    patient_id: str | None = None
    birth_date: dt.date | None = None

    @property
    def empty(self) -> bool:
        return not (self.name or self.patient_id or self.birth_date)

    def filled_from(self, other: PatientDetails) -> PatientDetails:
        """These fields, with the empty ones taken from ``other`` (typed beats DICOM)."""
        return PatientDetails(self.name or other.name, self.patient_id or other.patient_id,
                              self.birth_date or other.birth_date)


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def person_name(value: Any) -> str | None:
    """A DICOM person name (``Roe^Jane^M^Dr``) as people write it: ``Roe, Jane M``."""
    text = _text(value)
    if text is None or "^" not in text:
        return text
    family, *rest = [part.strip() for part in text.split("=")[0].split("^")]
    given = " ".join(p for p in rest[:2] if p)
    return ", ".join(p for p in (family, given) if p) or None


def _dicom_date(value: Any) -> dt.date | None:
    """A DICOM date, or None where the header's is missing or malformed (then "not given")."""
    try:
        return parse_date(value, "a DICOM date")
    except ExamError:
        return None


def dicom_patient(photos: Sequence[Photo]) -> PatientDetails:
    """The patient fields of the DICOM photographs; refused when they name two patients."""
    first: tuple[tuple[str | None, str | None], str] | None = None
    details = PatientDetails()
    for p in photos:
        info = getattr(p.fundus, "dicom", None)
        if info is None:
            continue
        mine = PatientDetails(person_name(getattr(info, "patient_name", None)), _text(getattr(info, "patient_id", None)),
                              _dicom_date(getattr(info, "birth_date", None)))
        key = (mine.patient_id, mine.name)
        if mine.patient_id or mine.name:
            if first is not None and key != first[0]:
                raise ExamError(f"{p.name}: its DICOM header names another patient than {first[1]}'s: "
                                "an exam covers one patient")
            first = first or (key, p.name)
        details = details.filled_from(mine)
    return details


def dicom_exam_date(photos: Sequence[Photo]) -> dt.date | None:
    """The earliest DICOM study date among the photographs, if any has one."""
    dates = [_dicom_date(getattr(getattr(p.fundus, "dicom", None), "study_date", None)) for p in photos]
    dates = [d for d in dates if d is not None]
    return min(dates) if dates else None


# --------------------------------------------------------------------------- photographs
@dataclass(frozen=True)
class Photo:
    """One photograph of the exam: its result (an ``Explanation``), its eye and whence that came."""

    explanation: Graded
    eye: Eye
    eye_source: str  # "given", "DICOM header" or "file name"
    name: str
    warnings: tuple[str, ...] = ()

    @property
    def fundus(self) -> Any:
        return getattr(self.explanation, "fundus", None)

    @property
    def gradable(self) -> bool:
        return bool(self.explanation.gradable)

    @property
    def grade(self) -> int | None:
        """The model's grade; None when the quality assessment refused the photograph."""
        return int(self.explanation.grade) if self.gradable else None

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the quality assessment refused it (empty when gradable)."""
        quality = getattr(self.explanation, "quality", None)
        return tuple(quality.reasons) if quality is not None and not self.gradable else ()

    @property
    def verdict(self) -> str:
        if self.gradable:
            return grade_text(int(self.explanation.grade))
        return "ungradable: retake" + (f" ({'; '.join(self.reasons)})" if self.reasons else "")


def resolve_eye(fundus: Any, eye: str | None = None, name: str = "") -> tuple[Eye, str, tuple[str, ...]]:
    """Which eye ``fundus`` shows: the one given, else the DICOM header's, else the file name's.

    Returns the eye, whence it came ("given", "DICOM header", "file name") and warnings
    for a source that says otherwise (a given eye is kept over a header or a name that
    contradicts it). Raises ``ExamError`` when nothing says, or when ``eye`` is not an eye.
    """
    name = name or str(getattr(fundus, "source", "") or "photograph")
    given = parse_eye(eye)
    if eye is not None and given is None:
        raise ExamError(f"{name}: the eye must be left or right, not {eye!r}")
    from_dicom, from_name = eye_from_dicom(fundus), eye_from_name(name)
    chosen, source = next(((e, s) for e, s in ((given, "given"), (from_dicom, "DICOM header"), (from_name, "file name"))
                           if e is not None), (None, ""))
    if chosen is None:
        raise ExamError(f"{name}: cannot tell which eye it shows (no DICOM laterality, no left/right/L/R/OD/OS "
                        "in the file name): pass --eye left or --eye right for it")
    warnings = tuple(f"the {what} says {other} eye; the {source} eye ({chosen}) was used"
                     for what, other in (("DICOM header", from_dicom), ("file name", from_name))
                     if other is not None and other != chosen and source != what)
    return chosen, source, warnings


def photograph(explanation: Graded, eye: str | None = None, name: str = "") -> Photo:
    """A photograph of the exam with its eye (``resolve_eye``); ``ExamError`` when unknown."""
    fundus = getattr(explanation, "fundus", None)
    name = name or str(getattr(fundus, "source", "") or "photograph")
    chosen, source, warnings = resolve_eye(fundus, eye, name)
    return Photo(explanation, chosen, source, name, warnings)


# ------------------------------------------------------------------------------- eyes
@dataclass(frozen=True)
class Review:
    """A clinician's word on one eye: ``grade`` None confirms the model's result; a grade
    other than the model's overrides it and needs a ``reason``."""

    grade: int | None = None
    reason: str = ""
    reviewer: str = ""


@dataclass(frozen=True)
class EyeResult:
    eye: Eye
    photos: tuple[Photo, ...]
    review: Review | None = None

    @property
    def photographed(self) -> bool:
        return bool(self.photos)

    @property
    def deciding(self) -> Photo | None:
        """The gradable photograph with the highest grade (the first of equals), or None."""
        gradable = [p for p in self.photos if p.gradable]
        return max(gradable, key=lambda p: p.grade) if gradable else None

    @property
    def model_grade(self) -> int | None:
        """The highest grade among the eye's gradable photographs; None when none is gradable."""
        best = self.deciding
        return best.grade if best is not None else None

    @property
    def overridden(self) -> bool:
        return self.review is not None and self.review.grade is not None and self.review.grade != self.model_grade

    @property
    def grade(self) -> int | None:
        """The eye's grade: the clinician's where they overrode the model, else the model's."""
        return self.review.grade if self.overridden else self.model_grade

    @property
    def outcome(self) -> Outcome:
        return outcome_for(self.grade) if self.photographed else "incomplete"

    @property
    def wording(self) -> str:
        return WORDING[self.outcome] if self.photographed else "not photographed"

    @property
    def decided_by(self) -> str:
        if self.review is None:
            return "model, not reviewed by a clinician"
        return "clinician (override of the model)" if self.overridden else "model, confirmed by a clinician"

    @property
    def model_text(self) -> str:
        return grade_text(self.model_grade) if self.model_grade is not None else "no gradable photograph"

    @property
    def grade_label(self) -> str:
        """The eye's final grade in words, or why it has none."""
        if not self.photographed:
            return "not photographed"
        return grade_text(self.grade) if self.grade is not None else UNGRADABLE


def _check_review(eye: EyeResult) -> None:
    r = eye.review
    if r is None:
        return
    if not eye.photographed:
        raise ExamError(f"{eye.eye} eye: there is no photograph of it to review")
    if r.grade is not None and (isinstance(r.grade, bool) or not isinstance(r.grade, int) or not 0 <= r.grade < len(GRADE_NAMES)):
        raise ExamError(f"{eye.eye} eye: the clinician's grade must be 0-{len(GRADE_NAMES) - 1}, not {r.grade!r}")
    if eye.overridden and not r.reason.strip():
        raise ExamError(f"{eye.eye} eye: overriding the model's grade ({eye.model_text}) with grade {r.grade} needs a reason")


# ---------------------------------------------------------------------------- patient
@dataclass(frozen=True)
class PatientResult:
    """The exam's outcome: the referral line, why, and the worse eye's grade."""

    outcome: Outcome
    wording: str
    detail: str
    grade: int | None
    deciding_eyes: tuple[Eye, ...]


def _and(eyes: Sequence[str]) -> str:
    return " and ".join(eyes)


def patient_result(eyes: Mapping[Eye, EyeResult]) -> PatientResult:
    """The worse eye decides; an ungradable or missing eye never lets the patient off as "rescreen"."""
    shown = [eyes[e] for e in EYES if e in eyes]
    graded = [e for e in shown if e.grade is not None]
    ungradable = [e.eye for e in shown if e.photographed and e.grade is None]
    missing = [e.eye for e in shown if not e.photographed]
    worst = max((e.grade for e in graded), default=None)
    deciding = tuple(e.eye for e in graded if e.grade == worst)
    about = f"worse eye: {_and(deciding)}, {grade_text(worst)}" if worst is not None else ""
    if len(deciding) == 2:
        about = f"both eyes {grade_text(worst)}"
    caveats = [f"{e} eye ungradable" for e in ungradable] + [f"{e} eye not photographed" for e in missing]
    if worst is not None and is_referable(worst):
        detail = "; ".join([about, *caveats])
        return PatientResult("refer", WORDING["refer"], detail, worst, deciding)
    if ungradable:
        which = f"{_and(ungradable)} eye" + ("s" if len(ungradable) == 2 else "")
        if graded:
            detail = (f"the {which} could not be graded; the {_and([e.eye for e in graded])} eye shows no referable DR "
                      f"({grade_text(worst)}), which does not clear the patient: retake the photographs of the {which} "
                      "or refer (not a 12-month rescreen on this exam)")
        else:
            detail = "no eye has a gradable photograph: retake the photographs or refer"
        detail = "; ".join([detail] + [f"{e} eye not photographed" for e in missing])
        return PatientResult("ungradable", f"{UNGRADABLE} ({which} could not be graded)", detail, worst, deciding)
    if missing:
        detail = (f"the {_and(missing)} eye was not photographed; the {_and([e.eye for e in graded])} eye shows no "
                  f"referable DR ({grade_text(worst)}), but one eye does not clear the patient")
        return PatientResult("incomplete", f"incomplete exam: the {_and(missing)} eye was not photographed: "
                             "photograph it or refer", detail, worst, deciding)
    return PatientResult("rescreen", WORDING["rescreen"], f"{about}; neither eye shows referable DR", worst, deciding)


# -------------------------------------------------------------------------------- exam
@dataclass(frozen=True)
class ModelIdentity:
    name: str
    sha256: str
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Exam:
    """Everything the report and the exports state, decided once."""

    photos: tuple[Photo, ...]
    eyes: Mapping[Eye, EyeResult]  # both eyes, right first; an eye without photographs is "not photographed"
    result: PatientResult
    patient: PatientDetails
    exam_date: dt.date | None
    model: ModelIdentity

    @property
    def reviewed(self) -> bool:
        """A clinician confirmed or overrode every photographed eye."""
        return all(e.review is not None for e in self.eyes.values() if e.photographed)


def make_exam(photos: Sequence[Photo], reviews: Mapping[str, Review] | None = None,
              patient: PatientDetails | None = None, exam_date: dt.date | None = None) -> Exam:
    """Put the photographs together into an exam and decide each eye and the patient.

    ``reviews`` maps an eye (``"left"``, ``"R"``, ...) to the clinician's ``Review``.
    Typed patient fields and ``exam_date`` win over the DICOM headers'; empty ones are
    taken from them. Raises ``ExamError`` (one line) for an exam that cannot be graded as
    given: no photograph, more than two of one eye, photographs graded by two models,
    an override without a reason.
    """
    photos = tuple(photos)
    if not photos:
        raise ExamError("an exam needs at least one photograph")
    for eye in EYES:
        mine = [p.name for p in photos if p.eye == eye]
        if len(mine) > MAX_PHOTOS_PER_EYE:
            raise ExamError(f"{eye} eye: {len(mine)} photographs ({', '.join(mine)}); an exam takes at most "
                            f"{MAX_PHOTOS_PER_EYE} per eye")
    seen: dict[str, str] = {}
    for p in photos:
        digest = getattr(p.fundus, "sha256", None)
        if digest and digest in seen:
            raise ExamError(f"{p.name}: the same picture as {seen[digest]}: give each photograph once")
        if digest:
            seen[digest] = p.name
    shas = {getattr(p.explanation, "weights_sha256", "") for p in photos}
    if len(shas) > 1:
        raise ExamError("the photographs were graded by different models: grade the whole exam with one")
    by_eye: dict[Eye, Review] = {}
    for key, review in (reviews or {}).items():
        eye = parse_eye(key)
        if eye is None:
            raise ExamError(f"a review must name the left or right eye, not {key!r}")
        by_eye[eye] = review
    eyes = {eye: EyeResult(eye, tuple(p for p in photos if p.eye == eye), by_eye.get(eye)) for eye in EYES}
    for e in eyes.values():
        _check_review(e)
    first = photos[0].explanation
    model = ModelIdentity(str(getattr(first, "weights_name", "unknown")), str(getattr(first, "weights_sha256", "")),
                          dict(getattr(first, "weights_meta", {}) or {}))
    details = (patient or PatientDetails()).filled_from(dicom_patient(photos))
    return Exam(photos, eyes, patient_result(eyes), details, exam_date or dicom_exam_date(photos), model)


__all__ = ["MAX_PHOTOS_PER_EYE", "Exam", "ExamError", "EyeResult", "Graded", "ModelIdentity", "PatientDetails",
           "PatientResult", "Photo", "Review", "dicom_exam_date", "dicom_patient", "make_exam", "parse_date",
           "patient_result", "person_name", "photograph", "resolve_eye"]
