"""The exam's decisions on hand-built cases: which eye, the eye's grade, the worse eye,
ungradable and missing eyes, the clinician's review, the patient fields."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from core.exam import (
    MACULAR_OEDEMA,
    OPERATING_POINT,
    REFER,
    RESCREEN,
    UNGRADABLE,
    ExamError,
    PatientDetails,
    Review,
    eye_from_name,
    make_exam,
    parse_date,
    parse_eye,
    photograph,
)
from core.exam.exam import person_name
from tests.exam.stubs import Result, photo


def test_the_wording_is_icdr_with_its_operating_point():
    assert (REFER, RESCREEN, UNGRADABLE) == ("referable DR: refer", "rescreen in 12 months", "ungradable: retake or refer")
    assert MACULAR_OEDEMA == "macular oedema: not assessed by this model"
    assert "grade 2 (Moderate NPDR) or worse is referable" in OPERATING_POINT and "0-1" in OPERATING_POINT


@pytest.mark.parametrize(("name", "eye"), [
    ("jane_left.jpg", "left"), ("jane_right.png", "right"), ("p7_R.jpg", "right"), ("p7_L.jpg", "left"),
    ("scan-OD-2.tif", "right"), ("scan.os.jpeg", "left"), ("LEFT eye.jpg", "left"), ("folder/x_Right.JPG", "right"),
    # never from letters inside a word, never from a name with both eyes
    ("IDRiD_001.jpg", None), ("IDRiD_55.jpg", None), ("ROSE_12.jpg", None), ("bold.jpg", None), ("leftover.jpg", None),
    ("l_and_r.jpg", None), ("retina.jpg", None), ("odd_2.jpg", None), ("", None),
])
def test_laterality_from_whole_tokens_of_the_file_name(name, eye):
    assert eye_from_name(name) == eye


def test_parse_eye():
    assert [parse_eye(t) for t in ("left", "RIGHT", "L", "r", "OS", "od", " left ")] == ["left", "right", "left", "right", "left", "right", "left"]
    assert parse_eye("both") is None and parse_eye(None) is None


def test_the_eye_given_beats_dicom_which_beats_the_file_name():
    dicom_right = SimpleNamespace(dicom=SimpleNamespace(laterality="right"), source="x")
    p = photograph(Result(0, fundus=dicom_right), None, "scan_left.jpg")
    assert (p.eye, p.eye_source) == ("right", "DICOM header") and "file name says left" in p.warnings[0]
    p = photograph(Result(0, fundus=dicom_right), "left", "scan_left.jpg")
    assert (p.eye, p.eye_source) == ("left", "given") and len(p.warnings) == 1 and "DICOM header says right" in p.warnings[0]
    p = photograph(Result(0, fundus=SimpleNamespace(dicom=None)), None, "a_OD.jpg")
    assert (p.eye, p.eye_source, p.warnings) == ("right", "file name", ())


def test_an_unknown_eye_is_refused_with_one_line_naming_the_photograph():
    with pytest.raises(ExamError) as e:
        photograph(Result(0), None, "IDRiD_001.jpg")
    msg = str(e.value)
    assert "IDRiD_001.jpg" in msg and "--eye" in msg and "\n" not in msg
    with pytest.raises(ExamError, match="left or right"):
        photograph(Result(0), "middle", "a.jpg")


def test_the_worse_eye_decides():
    exam = make_exam([photo(1, "right"), photo(3, "left")])
    assert exam.eyes["right"].wording == RESCREEN and exam.eyes["left"].wording == REFER
    r = exam.result
    assert (r.outcome, r.wording, r.grade, r.deciding_eyes) == ("refer", REFER, 3, ("left",))
    assert "worse eye: left, grade 3 (Severe NPDR)" in r.detail
    ok = make_exam([photo(0, "right"), photo(1, "left")]).result
    assert (ok.outcome, ok.wording, ok.grade) == ("rescreen", RESCREEN, 1)
    same = make_exam([photo(2, "right"), photo(2, "left")]).result
    assert same.deciding_eyes == ("right", "left") and "both eyes grade 2" in same.detail


def test_an_eye_takes_the_highest_grade_among_its_gradable_photographs():
    exam = make_exam([photo(1, "left", name="a_L.jpg"), photo(4, "left", gradable=False, name="b_L.jpg"),
                      photo(0, "right", name="c.jpg"), photo(2, "right", name="d.jpg")])
    assert exam.eyes["left"].model_grade == 1 and exam.eyes["left"].deciding.name == "a_L.jpg"
    assert exam.eyes["right"].model_grade == 2 and exam.result.outcome == "refer"


def test_an_ungradable_eye_never_passes_as_rescreen():
    exam = make_exam([photo(0, "right"), photo(0, "left", gradable=False), photo(1, "left", gradable=False, name="x_L.jpg")])
    assert exam.eyes["left"].grade is None and exam.eyes["left"].wording == UNGRADABLE
    r = exam.result
    assert r.outcome == "ungradable" and r.wording.startswith(UNGRADABLE) and "left eye" in r.wording
    assert RESCREEN not in r.wording and "does not clear the patient" in r.detail
    both = make_exam([photo(0, "right", gradable=False), photo(0, "left", gradable=False)]).result
    assert both.outcome == "ungradable" and both.grade is None and "right and left eyes" in both.wording
    # a referable eye refers whatever the other shows, and the report says the other was not graded
    refer = make_exam([photo(3, "right"), photo(0, "left", gradable=False)]).result
    assert refer.outcome == "refer" and "left eye ungradable" in refer.detail


def test_a_missing_eye_makes_an_incomplete_exam():
    r = make_exam([photo(0, "right")]).result
    assert r.outcome == "incomplete" and "left eye was not photographed" in r.wording and RESCREEN not in r.wording
    assert make_exam([photo(2, "right")]).result.outcome == "refer"


def test_more_than_two_photographs_of_an_eye_are_refused_in_one_line():
    with pytest.raises(ExamError) as e:
        make_exam([photo(0, "left", name=f"{i}_L.jpg") for i in range(3)])
    assert "left eye: 3 photographs" in str(e.value) and "at most 2" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ExamError, match="at least one photograph"):
        make_exam([])


def test_an_override_needs_a_reason_and_both_grades_are_kept():
    photos = [photo(0, "right"), photo(1, "left")]
    with pytest.raises(ExamError, match="needs a reason"):
        make_exam(photos, reviews={"left": Review(3)})
    with pytest.raises(ExamError, match="needs a reason"):
        make_exam(photos, reviews={"left": Review(3, "   ")})
    exam = make_exam(photos, reviews={"L": Review(3, "IRMA in two quadrants", "Dr A")})
    left = exam.eyes["left"]
    assert (left.model_grade, left.grade, left.overridden) == (1, 3, True)
    assert left.decided_by.startswith("clinician") and exam.result.outcome == "refer" and not exam.reviewed
    # confirming needs no reason, also by giving the model's own grade
    for review in (Review(), Review(1)):
        e = make_exam(photos, reviews={"left": review, "right": Review()})
        assert not e.eyes["left"].overridden and e.eyes["left"].decided_by == "model, confirmed by a clinician" and e.reviewed


def test_reviews_are_checked():
    photos = [photo(0, "right")]
    with pytest.raises(ExamError, match="0-4"):
        make_exam(photos, reviews={"right": Review(5, "x")})
    with pytest.raises(ExamError, match="no photograph of it"):
        make_exam(photos, reviews={"left": Review()})
    with pytest.raises(ExamError, match="left or right"):
        make_exam(photos, reviews={"up": Review()})
    # a clinician may grade an eye the model could not
    e = make_exam([photo(0, "right"), photo(0, "left", gradable=False)], reviews={"left": Review(0, "graded at the slit lamp")})
    assert e.eyes["left"].grade == 0 and e.result.outcome == "rescreen"


def test_one_model_and_one_picture_per_photograph():
    with pytest.raises(ExamError, match="different models"):
        make_exam([photo(0, "right"), photograph(Result(0, weights_sha256="1" * 64), "left", "b.jpg")])
    same = SimpleNamespace(sha256="ab" * 32, dicom=None, source="")
    with pytest.raises(ExamError, match="same picture"):
        make_exam([photograph(Result(0, fundus=same), "right", "a.jpg"), photograph(Result(0, fundus=same), "left", "b.jpg")])


def test_patient_fields_typed_beat_dicom_and_two_patients_are_refused():
    def dicom(**kw):
        info = dict(laterality="right", patient_name="Roe^Jane", patient_id="7", birth_date="19600131", study_date="20250314")
        info.update(kw)
        return SimpleNamespace(dicom=SimpleNamespace(**info), source="")

    a = photograph(Result(0, fundus=dicom()), None, "a.dcm")
    b = photograph(Result(0, fundus=dicom(laterality="L", study_date="20250315")), None, "b.dcm")
    exam = make_exam([a, b])
    assert exam.patient == PatientDetails("Roe, Jane", "7", dt.date(1960, 1, 31)) and exam.exam_date == dt.date(2025, 3, 14)
    typed = make_exam([a, b], patient=PatientDetails(name="Jane Roe"), exam_date=dt.date(2025, 1, 1))
    assert typed.patient == PatientDetails("Jane Roe", "7", dt.date(1960, 1, 31)) and typed.exam_date == dt.date(2025, 1, 1)
    other = photograph(Result(0, fundus=dicom(laterality="L", patient_id="8", patient_name="Doe^John")), None, "c.dcm")
    with pytest.raises(ExamError, match="another patient"):
        make_exam([a, other])
    # a malformed DICOM date is "not given", not a refusal
    odd = photograph(Result(0, fundus=dicom(birth_date="1960", study_date="2025-13-40")), None, "d.dcm")
    assert make_exam([odd]).patient.birth_date is None and make_exam([odd]).exam_date is None


def test_dicom_person_names_read_as_people_write_them():
    assert [person_name(n) for n in ("Roe^Jane", "Roe^Jane^M^Dr", "Roe", "^Jane", "", None, "Roe^Jane=ロー^ジェーン")] == [
        "Roe, Jane", "Roe, Jane M", "Roe", "Jane", None, None, "Roe, Jane"]


def test_dates():
    assert parse_date("2025-03-14", "x") == parse_date("20250314", "x") == dt.date(2025, 3, 14)
    assert parse_date("", "x") is None and parse_date(None, "x") is None
    with pytest.raises(ExamError, match="--birth-date must be a date as YYYY-MM-DD"):
        parse_date("14/03/2025", "--birth-date")

