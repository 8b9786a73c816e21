"""The PDF report of a real exam: rendered by poppler, its text checked for what a
clinician must find on it (disclaimer, patient, referral, model identity)."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest

from core.exam import PatientDetails, Review, make_exam, photograph
from core.exam.referral import grade_text
from core.exam.report_pdf import evidence_picture, latin1, report_pdf
from core.regions import strongest_regions
from tests.exam.conftest import need_tool

CREATED = dt.datetime(2025, 3, 14, 9, 30, tzinfo=dt.UTC)


def exam_of(explanations, names, **kw):
    return make_exam([photograph(explanations[n], None, n) for n in names], **kw)


def pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    out = subprocess.run([need_tool("pdftotext"), "-layout", str(path), "-"], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


@pytest.fixture(scope="module")
def full_exam(exam_explanations, override_grade):
    """Right eye grade 0; left eye one referable and one ungradable photograph, overridden by a clinician."""
    return exam_of(exam_explanations, ["jane_R.jpg", "jane_left.jpg", "jane_OS_dark.jpg"],
                   reviews={"left": Review(override_grade, "IRMA in four quadrants; no new vessels", "Dr A. Example")},
                   patient=PatientDetails("Jane Roe", "MRN-0042", dt.date(1961, 4, 2)))


@pytest.fixture(scope="module")
def full_pdf(full_exam):
    return report_pdf(full_exam, created=CREATED)


def test_the_report_states_what_a_clinician_must_find(full_exam, full_pdf, tmp_path, left_grade, override_grade):
    assert full_pdf.startswith(b"%PDF-")
    text = pdf_text(full_pdf, tmp_path)
    flat = " ".join(text.split())
    low = flat.lower()
    assert "NOT A MEDICAL DEVICE - RESEARCH USE ONLY" in flat
    assert "macular oedema: not assessed by this model" in low
    assert full_exam.model.sha256 in flat and len(full_exam.model.sha256) == 64
    assert "Jane Roe" in flat and "MRN-0042" in flat and "1961-04-02" in flat
    assert "Exam date not given" in flat and "Report date 2025-03-14 09:30" in flat
    assert "Patient: referable DR: refer" in flat
    assert "operating point: icdr grade 2 (moderate npdr) or worse is referable" in low
    assert (f"model's {grade_text(left_grade)} overridden by Dr A. Example with {grade_text(override_grade)}; "
            "reason: IRMA in four quadrants; no new vessels") in flat  # the model's grade is kept beside the clinician's
    assert "UNGRADABLE" in flat and "under-exposed" in flat  # the refused photograph says why
    assert "32 x 32-pixel blocks" in flat and "exact decomposition" in flat
    assert "lesion view (layer 8's total map in 4 px regions" in low and "in the viewer, not in this report" in low
    assert "dr-grader 0.1.0" in flat and "page 1 of 4" in flat and "page 4 of 4" in flat


def test_the_report_renders_one_a4_page_for_the_summary_and_one_per_photograph(full_pdf, tmp_path):
    from PIL import Image

    (tmp_path / "r.pdf").write_bytes(full_pdf)
    subprocess.run([need_tool("pdftoppm"), "-png", "-r", "40", str(tmp_path / "r.pdf"), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 4
    for p in pages:
        w, h = Image.open(p).size
        assert abs(w / h - 210 / 297) < 0.01


def test_an_ungradable_eye_is_not_reported_as_rescreen(exam_explanations, tmp_path):
    exam = exam_of(exam_explanations, ["jane_R.jpg", "jane_OS_dark.jpg"])
    flat = " ".join(pdf_text(report_pdf(exam, created=CREATED), tmp_path).split())
    assert "Patient: ungradable: retake or refer (left eye could not be graded)" in flat
    assert "Patient: rescreen" not in flat
    # no patient fields given: each shown as not given, never left out
    assert "Name not given" in flat and "Patient ID not given" in flat and "Birth date not given" in flat


def test_the_report_writes_no_file_and_survives_names_outside_latin1(exam_explanations, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    exam = exam_of(exam_explanations, ["jane_R.jpg"], patient=PatientDetails("Zoë Łukasz 李"))
    pdf = report_pdf(exam, created=CREATED)
    assert list(cwd.iterdir()) == []
    text = " ".join(pdf_text(pdf, tmp_path).split())
    assert "Zoë ?ukasz ?" in text and "shown as ?" in text
    assert latin1("0.75–0.84 ≥ 2σ") == "0.75-0.84 >= 2sigma"


def test_evidence_boxes_are_drawn_where_the_regions_are(exam_explanations, left_grade):
    exp = exam_explanations["jane_left.jpg"]
    regions = strongest_regions(exp, left_grade, 5)
    assert len(regions) == 5 and evidence_picture(exp.fundus.image, regions).shape == exp.fundus.image.shape
    picture = evidence_picture(exp.fundus.image, regions[:1])
    left, top, right, bottom = regions[0].box
    assert (picture[top + 1, left:right] == (255, 214, 0)).all(axis=1).sum() >= right - left - 2  # the box's yellow edge
    assert (picture[top + 8:bottom - 8, left + 8:right - 8] == exp.fundus.image[top + 8:bottom - 8, left + 8:right - 8]).all()
