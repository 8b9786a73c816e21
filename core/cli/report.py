"""``python -m core report``: grade a screening exam (one or two photographs per eye) into a
PDF report and, on request, a FHIR R4 DiagnosticReport.

Every input is checked before the model runs, and each bad one gets its own line:
unreadable photographs, photographs whose eye cannot be told, more than two of one eye,
unusable dates or output paths. Patient fields go into the files the user names and
nowhere else: the summary printed here leaves them out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from pathlib import Path

from ..card import headline
from ..errors import CoreError
from ..exam import (
    EYES,
    MACULAR_OEDEMA,
    MAX_PHOTOS_PER_EYE,
    OPERATING_POINT,
    Exam,
    ExamError,
    Eye,
    PatientDetails,
    Photo,
    Review,
    make_exam,
    parse_date,
    parse_eye,
    resolve_eye,
)
from ..explanation import explain
from ..fundus import Fundus, FundusReadError, read_fundus
from ..model import GRADE_NAMES
from ..weights import load_weights
from .common import EXIT_USER_ERROR, add_weights_argument, fail, unique_stem


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("report", help="grade a screening exam (1-2 photographs per eye) into a PDF report and FHIR")
    r.add_argument("photos", nargs="+", metavar="PHOTO", help="fundus photographs, at most two per eye")
    r.add_argument("--eye", action="append", default=[], metavar="left|right",
                   help="the eye of each photograph, once per photograph in order; default: from DICOM or the file name")
    r.add_argument("--pdf", required=True, metavar="OUT.pdf", help="the report to write")
    r.add_argument("--fhir", metavar="OUT.json", help="also write a FHIR R4 DiagnosticReport (the PDF inside)")
    r.add_argument("--dicom-out", metavar="DIR",
                   help="also write, for each gradable DICOM photograph, its grade's total map as a DICOM Parametric Map")
    add_weights_argument(r)
    r.add_argument("--k", type=float, default=2.0, help="overlay threshold in standard deviations (default 2)")
    r.add_argument("--patient-name", help="printed in the report (never logged)")
    r.add_argument("--patient-id")
    r.add_argument("--birth-date", metavar="YYYY-MM-DD")
    r.add_argument("--exam-date", metavar="YYYY-MM-DD", help="default: the DICOM study date, else not given")
    r.add_argument("--confirm", action="append", default=[], metavar="EYE", help="a clinician confirms the model's grade of EYE")
    r.add_argument("--override", action="append", default=[], nargs=3, metavar=("EYE", "GRADE", "REASON"),
                   help="a clinician sets EYE's grade (0-4), with the reason")
    r.add_argument("--reviewer", default="", help="the clinician's name, for the confirmations and overrides")
    r.set_defaults(func=run)


def _outputs(args: argparse.Namespace) -> list[str]:
    """Problems with the output paths, found before any work is done."""
    problems = []
    inputs = {Path(p).resolve() for p in args.photos}
    if args.dicom_out and not Path(args.dicom_out).is_dir():
        problems.append(f"--dicom-out {args.dicom_out}: not an existing folder")
    outs = [(o, Path(getattr(args, o))) for o in ("pdf", "fhir") if getattr(args, o)]
    for opt, path in outs:
        if not path.parent.is_dir():
            problems.append(f"--{opt} {path}: the folder {path.parent} does not exist")
        elif path.is_dir():
            problems.append(f"--{opt} {path}: is a folder, not a file")
        elif path.resolve() in inputs:
            problems.append(f"--{opt} {path}: is one of the photographs; it would be overwritten")
    if len(outs) == 2 and outs[0][1].resolve() == outs[1][1].resolve():
        problems.append(f"--pdf and --fhir name the same file ({outs[0][1]})")
    return problems


def _reviews(args: argparse.Namespace, problems: list[str]) -> dict[str, Review]:
    """The clinician's --confirm and --override options; problems are added to ``problems``."""
    reviews: dict[str, Review] = {}
    seen: set[str] = set()
    wanted = [(eye, None, "") for eye in args.confirm] + [tuple(o) for o in args.override]
    for eye, grade, reason in wanted:
        opt = "--confirm" if grade is None else "--override"
        side = parse_eye(eye)
        if side is None:
            problems.append(f"{opt} {eye}: the eye must be left or right")
            continue
        if side in seen:
            problems.append(f"{opt} {eye}: the {side} eye is reviewed twice; give one --confirm or --override per eye")
            continue
        seen.add(side)
        if grade is not None and (not grade.strip().isdigit() or not 0 <= int(grade) < len(GRADE_NAMES)):
            problems.append(f"--override {eye}: the grade must be 0-{len(GRADE_NAMES) - 1}, not {grade!r}")
            continue
        if grade is not None and not reason.strip():
            problems.append(f"--override {eye} {grade}: an override needs a reason (the third value)")
            continue
        reviews[side] = Review(None if grade is None else int(grade), reason.strip(), args.reviewer)
    return reviews


def _date(text: str | None, opt: str, problems: list[str]) -> dt.date | None:
    try:
        return parse_date(text, opt)
    except ExamError as e:
        problems.append(str(e))
        return None


def run(args: argparse.Namespace) -> int:
    from ..exam.fhir import fhir_json  # fhir.resources and fpdf2 load only for this command
    from ..exam.report_pdf import report_pdf

    photos = list(args.photos)
    problems = _outputs(args)
    if args.eye and len(args.eye) != len(photos):
        problems.append(f"--eye was given {len(args.eye)} time(s) for {len(photos)} photograph(s): give it once per "
                        "photograph, in order, or not at all")
    if not math.isfinite(args.k) or args.k < 0:
        problems.append(f"--k must be a finite number >= 0, not {args.k}")
    patient = PatientDetails(args.patient_name or None, args.patient_id or None, _date(args.birth_date, "--birth-date", problems))
    exam_date = _date(args.exam_date, "--exam-date", problems)
    reviews = _reviews(args, problems)

    read: list[tuple[str, Fundus, Eye, str, tuple[str, ...]]] = []
    given: dict[Path, str] = {}
    for i, path in enumerate(photos):
        name = Path(path).name
        if Path(path).resolve() in given:
            problems.append(f"{path}: given twice (also as {given[Path(path).resolve()]}); give each photograph once")
            continue
        given[Path(path).resolve()] = path
        try:
            fundus = read_fundus(path, name=name)
            eye, source, warnings = resolve_eye(fundus, args.eye[i] if len(args.eye) == len(photos) else None, name)
        except (FundusReadError, ExamError) as e:
            problems.append(str(e) if isinstance(e, ExamError) else f"{path}: {e}")
            continue
        read.append((path, fundus, eye, source, warnings))
    for eye in EYES:
        mine = [Path(p).name for p, _, e, _, _ in read if e == eye]
        if len(mine) > MAX_PHOTOS_PER_EYE:
            problems.append(f"{eye} eye: {len(mine)} photographs ({', '.join(mine)}); an exam takes at most "
                            f"{MAX_PHOTOS_PER_EYE} per eye")
        if eye in reviews and not mine and len(read) == len(photos):
            problems.append(f"{eye} eye: reviewed, but no photograph of it was given")
    if problems:
        for p in problems:
            fail(p)
        return EXIT_USER_ERROR

    model = load_weights(args.weights)
    exam = make_exam([Photo(explain(model, fundus), eye, source, Path(path).name, warnings)
                      for path, fundus, eye, source, warnings in read],
                     reviews=reviews, patient=patient, exam_date=exam_date)
    pdf = report_pdf(exam, k=args.k)
    written = [_write(Path(args.pdf), pdf)]
    if args.fhir:
        written.append(_write(Path(args.fhir), fhir_json(exam, pdf).encode("utf-8")))
    if args.dicom_out:
        written += _parametric_maps(exam, Path(args.dicom_out))
    _summary(exam, written)
    return 0


def _parametric_maps(exam: Exam, folder: Path) -> list[str]:
    """One Parametric Map per gradable DICOM photograph, of the grade the model gave it,
    named after the photograph's file (never after a patient field or a UID)."""
    from ..exam.dicom_out import parametric_map_bytes

    written, used = [], set()
    for photo in exam.photos:
        exp = photo.explanation
        if exp.fundus.dicom is None:
            print(f"note: {photo.name}: not a DICOM file, so no Parametric Map", file=sys.stderr)
            continue
        if not exp.gradable:
            print(f"note: {photo.name}: ungradable, so no Parametric Map", file=sys.stderr)
            continue
        stem = unique_stem(Path(photo.name).stem, used)
        written.append(_write(folder / f"{stem}.parametric-map.dcm", parametric_map_bytes(exp)))
    return written


def _write(path: Path, data: bytes) -> str:
    try:
        path.write_bytes(data)
    except OSError as e:
        raise CoreError(f"cannot write {path}: {e.strerror or e}") from None
    return str(path)


def _summary(exam: Exam, written: list[str]) -> None:
    for photo in exam.photos:
        for w in (*photo.warnings, *getattr(photo.fundus, "warnings", ())):
            print(f"warning: {photo.name}: {w}", file=sys.stderr)
    for eye in EYES:
        e = exam.eyes[eye]
        if not e.photos:
            print(f"{eye} eye: not photographed")
            continue
        each = ", ".join(f"{p.name} {p.verdict}" for p in e.photos)
        review = ("" if e.review is None else
                  f"; clinician override of the model's {e.model_text}" if e.overridden else "; confirmed by a clinician")
        print(f"{eye} eye: {e.grade_label}: {e.wording}{review} [{each}]")
    print(f"patient: {exam.result.wording} ({exam.result.detail})")
    print(OPERATING_POINT)
    print(MACULAR_OEDEMA)
    print(f"model: {exam.model.name} (sha256 {exam.model.sha256[:12]}...; {headline(exam.model.meta)})")
    print(f"wrote {', '.join(written)}")
