"""Issue 13, the viewer's screening exam, driven headless through Streamlit's AppTest.

Two eyes (a JPEG for the right, a DICOM photograph whose header says left and names a
made-up patient), an ungradable photograph, a bad upload, the clinician's override (refused
without a reason), and the downloads' bytes (a PDF, a FHIR R4 DiagnosticReport). Every grade
and wording is compared with what core's exam says about the same photographs.

The bundled model only: the exam's logic does not depend on the weights, and the published
weights' page is covered by test_app.py. Each picture is explained once for the whole file
(``explain_once``); the page's own caching is checked by counting.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import core
from core.exam import MACULAR_OEDEMA, OPERATING_POINT, Review, make_exam, photograph
from tests.dicom_files import PATIENT_ID, dataset, save
from tests.viewer.app_helpers import catch_downloads
from tests.viewer.conftest import APP, RETINA

pytestmark = pytest.mark.parametrize("page_model", ["idrid"], indirect=True)

RIGHT_NAME, DICOM_NAME = "eye1.jpg", "IMG0001.dcm"  # neither name says which eye


# ----------------------------------------------------------------------------- photographs
def flipped_pixels() -> np.ndarray:
    """The retina mirrored: another picture (another sha256) with the same real content."""
    return np.ascontiguousarray(np.asarray(Image.open(RETINA).convert("RGB"))[:, ::-1])


def dicom_left() -> bytes:
    """An Ophthalmic Photography 8-bit file, ImageLaterality L, with a made-up patient."""
    ds = dataset(flipped_pixels())
    ds.ImageLaterality = "L"
    return save(ds)


def black_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((600, 800, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


_EXPLAINED: dict[tuple, core.Explanation] = {}
_EXPLAIN = core.explain


def explained(model: core.LoadedModel, fundus: core.Fundus) -> core.Explanation:
    """core's Explanation, computed once per picture, weights and source for the whole file."""
    key = (model.sha256, fundus.sha256, fundus.source, getattr(fundus, "dicom", None) is not None)
    if key not in _EXPLAINED:
        _EXPLAINED[key] = _EXPLAIN(model, fundus)
    return _EXPLAINED[key]


@pytest.fixture
def explain_once(monkeypatch) -> list[str]:
    """The page's core.explain made ``explained``; returns the pictures the page asked for (its own
    caching is counted on them)."""
    asked: list[str] = []

    def once(model, fundus):
        asked.append(fundus.sha256)
        return explained(model, fundus)

    monkeypatch.setattr(core, "explain", once)
    return asked


@pytest.fixture
def downloads(monkeypatch) -> dict[str, object]:
    """The download buttons' makers (Streamlit's deferred callables), by file name."""
    return catch_downloads(monkeypatch)


def expected(model_name: str, right: list[tuple[bytes, str]], left: list[tuple[bytes, str]], reviews=None):
    """core's exam of the same photographs (the eye given where neither header nor name says)."""
    model = core.load_weights(model_name)
    photos = []
    for eye, files in (("right", right), ("left", left)):
        for data, name in files:
            fundus = core.read_fundus(data, name=name)
            exp = explained(model, fundus)
            photos.append(photograph(exp, None if name.endswith(".dcm") else eye, name))
    return make_exam(photos, reviews=reviews)


# ----------------------------------------------------------------------------- the page
def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def exam_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    run(at)
    at.segmented_control(key="mode").set_value("Screening exam")
    return run(at)


def upload(at: AppTest, eye: str, files: list[tuple[str, bytes, str]]) -> AppTest:
    at.file_uploader(key=f"exam_upload_{eye}").set_value(files)
    return run(at)


def texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def patient_heading(at: AppTest) -> str:
    hits = [t for t in texts(at) if t.startswith("### :") and "Patient: " in t]
    assert len(hits) == 1, texts(at)
    return hits[0]


def eye_heading(at: AppTest, eye: str) -> str:
    label = f"{eye.capitalize()} eye ({'OD' if eye == 'right' else 'OS'}): "
    hits = [t for t in texts(at) if t.startswith("#### :") and label in t]
    assert len(hits) == 1, texts(at)
    return hits[0]


def eye_controls(at: AppTest) -> dict[str, object]:
    """Each photograph's eye control, by its label's source ("DICOM header", ...)."""
    return {c.label: c for c in at.segmented_control if c.key and c.key.startswith("exam_eye_")}


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error if "not for clinical use" not in e.value]


def download_buttons(at: AppTest) -> dict[str, object]:
    """The exam's report downloads (not the photographs' DICOM maps)."""
    return {b.key: b for b in at.get("download_button") if b.key in ("exam_dl_pdf", "exam_dl_fhir")}


JPEG = (RIGHT_NAME, RETINA.read_bytes(), "image/jpeg")
DICOM = (DICOM_NAME, dicom_left(), "application/dicom")


@pytest.fixture
def two_eyes(page_model, explain_once) -> AppTest:
    """The exam with the JPEG under the right eye and the DICOM (left) under the left."""
    at = exam_app()
    assert any("Upload one or two photographs" in i.value for i in at.info)
    upload(at, "right", [JPEG])
    return upload(at, "left", [DICOM])


# ----------------------------------------------------------------------------- tests
def test_two_eyes_give_cores_results_patient_from_dicom_and_the_downloads(downloads, two_eyes, page_model, explain_once):
    at = two_eyes
    assert len(explain_once) == len(set(explain_once)) == 2
    want = expected(page_model.name, [(JPEG[1], RIGHT_NAME)], [(DICOM[1], DICOM_NAME)])
    assert not errors(at) and not at.warning, [w.value for w in at.warning]
    # per photograph, per eye and for the patient: core's words
    for photo in want.photos:
        assert any(f"[Model: {photo.verdict}]" in t for t in texts(at) if t.startswith("##### :")), (photo.verdict, texts(at))
    for eye in ("right", "left"):
        assert want.eyes[eye].wording[1:] in eye_heading(at, eye)
    assert want.result.wording in patient_heading(at)
    assert any(want.result.detail[1:] in t for t in texts(at))
    assert f"**{MACULAR_OEDEMA[0].upper()}{MACULAR_OEDEMA[1:]}.**" in "\n".join(texts(at))
    assert any(OPERATING_POINT[1:] in c.value for c in at.caption)
    # the DICOM's eye from its header, the JPEG's from its uploader
    controls = eye_controls(at)
    assert controls["Eye (the DICOM header says left)"].value == "left"
    assert controls["Eye (uploaded as the right eye)"].value == "right"
    # the patient fields filled from the DICOM header, and said so
    assert at.text_input(key="exam_name").value == "Fictitious, Testpatient" == want.patient.name
    assert at.text_input(key="exam_patient_id").value == PATIENT_ID
    assert at.date_input(key="exam_birth_date").value == dt.date(1949, 12, 31)
    assert at.date_input(key="exam_date").value == dt.date(2024, 3, 15)
    assert any(c.value.startswith("Filled from the DICOM header: name, patient ID, birth date, exam date") for c in at.caption)

    # the downloads: made in memory when clicked; a PDF, and a valid FHIR report holding it
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    downloads.clear()
    run(at)  # the makers of this run only
    buttons = download_buttons(at)
    assert set(buttons) == {"exam_dl_pdf", "exam_dl_fhir"} and not any(b.proto.disabled for b in buttons.values())
    names = sorted(n for n in downloads if n and n.startswith("dr-screening-report-"))
    assert names == ["dr-screening-report-2024-03-15.fhir.json", "dr-screening-report-2024-03-15.pdf"]
    assert "Testpatient" not in "".join(names)
    pdf = downloads["dr-screening-report-2024-03-15.pdf"]()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    text = downloads["dr-screening-report-2024-03-15.fhir.json"]()
    report = DiagnosticReport.model_validate_json(text)
    assert report.status == "preliminary"  # no eye reviewed yet
    assert base64.b64decode(json.loads(text)["presentedForm"][0]["data"]).startswith(b"%PDF-")

    # the DICOM photograph's map as a DICOM Parametric Map, where core can make one (core.exam.dicom_out)
    makers = [n for n in downloads if n and n.endswith(".dcm")]
    try:
        import core.exam.dicom_out  # noqa: F401
    except ImportError:
        assert not makers
    else:
        grade = want.eyes["left"].model_grade
        assert makers == [f"IMG0001-dr-map-grade{grade}.dcm"]
        import pydicom

        pm = pydicom.dcmread(io.BytesIO(downloads[makers[0]]()))
        assert pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
        assert "Testpatient" not in makers[0]

    # each picture explained once, however often the page reruns
    at.radio(key="exam_review_left").set_value("Confirm")
    run(at)
    at.text_input(key="exam_reviewer").input("Dr Test")
    run(at)
    assert len(explain_once) == 2


def test_a_dicom_header_beats_the_uploader_and_the_eye_can_be_changed(page_model, explain_once):
    at = upload(exam_app(), "right", [DICOM])  # dropped on the right eye, but its header says left
    shown = [w.value for w in at.warning]
    assert any(w.startswith("Uploaded as the right eye; counted for the **left eye** (from the DICOM header)") for w in shown)
    assert "Left eye (OS): " in eye_heading(at, "left")
    assert "incomplete exam: the right eye was not photographed" in patient_heading(at)
    assert any(i.value.startswith(f"No photograph counts for the right eye: {DICOM_NAME} shows the other eye") for i in at.info)
    control = eye_controls(at)["Eye (the DICOM header says left)"]
    assert control.value == "left"
    control.set_value("right")  # the user says otherwise: it counts for the right eye
    run(at)
    assert "incomplete exam: the left eye was not photographed" in patient_heading(at)
    assert "Right eye (OD): " in eye_heading(at, "right")
    assert not any(w.value.startswith("Uploaded as") for w in at.warning)
    assert any("the DICOM header says left eye" in w.value for w in at.warning)  # core's warning
    assert at.text_input(key="exam_name").value == "Fictitious, Testpatient"
    at.file_uploader(key="exam_upload_right").set_value(None)  # the photograph removed: its patient goes too
    run(at)
    assert at.text_input(key="exam_name").value == "" and at.date_input(key="exam_birth_date").value is None
    assert any("Upload one or two photographs" in i.value for i in at.info)


def test_an_override_without_a_reason_is_refused(two_eyes, page_model):
    at = two_eyes
    before = patient_heading(at)
    model_right = expected(page_model.name, [(JPEG[1], RIGHT_NAME)], [(DICOM[1], DICOM_NAME)]).eyes["right"]
    target = 4 if model_right.model_grade != 4 else 0
    at.radio(key="exam_review_right").set_value("Override")
    run(at)
    assert "The override of the right eye is not applied: choose the clinician's grade." in errors(at)
    at.selectbox(key="exam_override_grade_right").set_value(target)
    run(at)
    assert "The override of the right eye is not applied: an override needs a reason." in errors(at)
    assert patient_heading(at) == before  # the model's result stands
    assert all(b.proto.disabled for b in download_buttons(at).values())
    assert any("Downloads wait: the right eye's override: an override needs a reason" in c.value for c in at.caption)
    # with a reason: the clinician's grade decides, and the page says whose it is
    at.text_input(key="exam_override_reason_right").input("IRMA seen in the superior arcade")
    run(at)
    assert not errors(at)
    want = expected(page_model.name, [(JPEG[1], RIGHT_NAME)], [(DICOM[1], DICOM_NAME)],
                    reviews={"right": Review(target, "IRMA seen in the superior arcade")})
    assert want.eyes["right"].overridden
    assert want.result.wording in patient_heading(at)
    assert want.eyes["right"].wording[1:] in eye_heading(at, "right")
    assert any("decided by: clinician (override of the model)" in t and "IRMA seen" in t for t in texts(at))
    assert not any(b.proto.disabled for b in download_buttons(at).values())
    # new photographs of the eye: the override was for the old ones, so it is dropped
    upload(at, "right", [JPEG, ("black.png", black_png(), "image/png")])
    assert at.radio(key="exam_review_right").value == "Not reviewed"


def test_bad_uploads_are_refused_and_change_nothing_and_ungradable_is_said(page_model, explain_once):
    at = upload(exam_app(), "right", [JPEG])
    before = patient_heading(at)
    garbage = b"\x89PNG\r\n\x1a\n this is not a picture" + bytes(200)
    with pytest.raises(core.FundusReadError) as err:
        core.read_fundus(garbage, name="broken.png")
    upload(at, "right", [JPEG, ("broken.png", garbage, "image/png"), ("copy.jpg", JPEG[1], "image/jpeg")])
    shown = errors(at)
    assert f"**broken.png** is not used: it cannot be read: {err.value}" in shown
    assert "**copy.jpg** is not used: the same picture as eye1.jpg: give each photograph once" in shown
    assert patient_heading(at) == before
    # an ungradable photograph: no grade, its reasons, and the eye is not read as healthy
    black = black_png()
    upload(at, "left", [("black.png", black, "image/png")])
    quality = core.read_fundus(black, name="black.png").quality
    assert not quality.gradable
    assert "##### :red[Ungradable: retake]" in texts(at)
    assert any(quality.reasons[0] in t for t in texts(at))
    want = expected(page_model.name, [(JPEG[1], RIGHT_NAME)], [(black, "black.png")])
    assert want.eyes["left"].wording[1:] in eye_heading(at, "left")
    assert want.result.wording in patient_heading(at) and want.result.outcome == "ungradable"
