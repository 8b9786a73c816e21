"""``python -m core report``: the files it writes, its summary, and exit status 2 with one
line for every bad input. Run in-process through ``core.cli.main`` with the command
registered for the test (the ``cli`` fixture of conftest)."""

from __future__ import annotations

import json
import shutil

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from core.exam.referral import grade_text


def test_an_exam_becomes_a_pdf_and_fhir_and_a_summary(cli, exam_files, tmp_path, left_grade, override_grade):
    pdf, fhir = tmp_path / "exam.pdf", tmp_path / "exam.json"
    status, out, err = cli(exam_files["jane_R.jpg"], exam_files["jane_left.jpg"], exam_files["jane_OS_dark.jpg"],
                           "--pdf", pdf, "--fhir", fhir, "--patient-name", "Jane Roe", "--patient-id", "MRN-7",
                           "--birth-date", "1960-01-31", "--exam-date", "2025-03-14",
                           "--override", "left", override_grade, "IRMA, no new vessels", "--confirm", "right", "--reviewer", "Dr A")
    assert status == 0, err
    assert pdf.read_bytes().startswith(b"%PDF-")
    doc = DiagnosticReport.model_validate_json(fhir.read_text())
    assert doc.presentedForm[0].data == pdf.read_bytes() and doc.status == "final"
    assert "right eye: grade 0 (No apparent DR): rescreen in 12 months; confirmed by a clinician" in out
    assert f"left eye: {grade_text(override_grade)}: referable DR: refer; clinician override of the model's {grade_text(left_grade)}" in out
    assert "jane_OS_dark.jpg ungradable: retake (under-exposed" in out
    assert "patient: referable DR: refer" in out and "macular oedema: not assessed by this model" in out
    assert f"wrote {pdf}, {fhir}" in out
    assert "Jane Roe" not in out + "".join(err) and "MRN-7" not in out  # patient data only in the files named
    assert json.loads(fhir.read_text())["contained"][0]["name"] == [{"text": "Jane Roe"}]


def test_the_eye_is_given_once_per_photograph_when_the_name_does_not_say(cli, exam_files, tmp_path, left_grade):
    idrid = tmp_path / "IDRiD_010.jpg"
    shutil.copy(exam_files["jane_left.jpg"], idrid)
    status, _, err = cli(idrid, "--pdf", tmp_path / "r.pdf")
    assert status == 2 and len(err) == 1
    assert err[0].startswith("error: IDRiD_010.jpg: cannot tell which eye") and "--eye" in err[0]
    assert not (tmp_path / "r.pdf").exists()
    status, out, err = cli(idrid, exam_files["jane_R.jpg"], "--eye", "left", "--eye", "right", "--pdf", tmp_path / "r.pdf")
    assert status == 0, err
    assert f"left eye: {grade_text(left_grade)}: referable DR: refer" in out and (tmp_path / "r.pdf").is_file()


def test_every_bad_input_gets_one_line_and_status_2(cli, exam_files, tmp_path):
    bad = tmp_path / "notes_left.jpg"
    bad.write_text("not an image")
    status, out, err = cli(bad, tmp_path / "gone_R.jpg", exam_files["jane_left.jpg"], "--pdf", tmp_path / "no" / "r.pdf",
                           "--birth-date", "31/01/1960", "--override", "left", "3", "")
    assert status == 2 and out == ""
    assert len(err) == 5 and all(line.startswith("error: ") for line in err), err
    text = "\n".join(err)
    for part in ("--pdf", "--birth-date", "an override needs a reason", "notes_left.jpg", "gone_R.jpg"):
        assert part in text
    assert "Traceback" not in text


@pytest.mark.parametrize(("extra", "expect"), [
    (["--eye", "left"], "--eye was given 1 time(s) for 3 photograph(s)"),
    (["--eye", "left", "--eye", "left", "--eye", "up"], "the eye must be left or right, not 'up'"),
    (["--eye", "left", "--eye", "left", "--eye", "left"], "left eye: 3 photographs"),
    (["--override", "right", "9", "x"], "the grade must be 0-4"),
    (["--confirm", "left", "--confirm", "L"], "reviewed twice"),
])
def test_one_line_each(cli, exam_files, tmp_path, extra, expect):
    photos = [exam_files[n] for n in ("jane_R.jpg", "jane_left.jpg", "jane_OS_dark.jpg")]
    status, out, err = cli(*photos, "--pdf", tmp_path / "r.pdf", *extra)
    assert status == 2 and len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "r.pdf").exists()


def test_outputs_that_would_overwrite_an_input_are_refused(cli, exam_files, tmp_path):
    status, _, err = cli(exam_files["jane_R.jpg"], "--pdf", exam_files["jane_R.jpg"])
    assert status == 2 and len(err) == 1 and "would be overwritten" in err[0]
    status, _, err = cli(exam_files["jane_R.jpg"], exam_files["jane_R.jpg"], "--pdf", tmp_path / "r.pdf")
    assert status == 2 and len(err) == 1 and "given twice" in err[0]
    status, _, err = cli(exam_files["jane_R.jpg"], "--pdf", tmp_path / "r.x", "--fhir", tmp_path / "r.x")
    assert status == 2 and len(err) == 1 and "the same file" in err[0]
