"""End to end in a real browser: Debian's Chromium driven by Playwright's Python package.

Starts ``streamlit run viewer/app.py`` on a free port and walks the page through
(tests/viewer/walkthrough.py): with the bundled model, every control, as on a fresh
clone; with the published weights (``paper``), the upload, the scores and the first maps.
The screening exam: photographs of both eyes uploaded, the patient's result awaited.
Screenshots go to the test's temporary folder; the README's pictures (assets/screenshots/)
are refreshed only on purpose, by ``python -m tests.viewer.screenshots``.
Timings are printed, not asserted (targets with the published weights: first maps <= 3 s,
slider move <= 300 ms).

Never runs ``playwright install``: the browser is the system's ``chromium``.
"""

from __future__ import annotations

import os

import pytest
from PIL import Image

from core.exam import MACULAR_OEDEMA
from tests.viewer.live_server import REPO, chromium_path, serve
from tests.viewer.walkthrough import (
    EXAM_SHOT,
    MAX_SHOT_BYTES,
    RETINA,
    SHOT_NAMES,
    browser_page,
    exam_scenario,
    full_scenario,
    smoke_scenario,
)

pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path()


@pytest.fixture
def server(page_model, tmp_path):
    """The page served on a free port, choosing its model as for ``page_model``; always terminated."""
    with serve(dict(os.environ, **page_model.env), tmp_path / "server.log") as (_, port):
        yield f"http://127.0.0.1:{port}/"


README_SHOTS = (REPO / "assets" / "screenshots", REPO / "docs" / "images")


def tracked_shots() -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in README_SHOTS for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)
def test_upload_scores_slider_threshold_overlay(chromium, server, core_result, tmp_path):
    shots = tmp_path / "screenshots"
    readme_before = tracked_shots()
    with browser_page(chromium) as page:
        saved = full_scenario(page, server, core_result, shots)
    assert tracked_shots() == readme_before, "a test run rewrote the README's screenshots"
    assert [p.name for p in saved] == list(SHOT_NAMES)
    for path in saved:
        assert path.parent == shots and 0 < path.stat().st_size < MAX_SHOT_BYTES
        with Image.open(path) as im:
            assert im.format == "PNG" and im.width >= 600


@pytest.mark.parametrize("page_model", [pytest.param("paper", marks=pytest.mark.paper)], indirect=True)
def test_published_weights_smoke(chromium, server, core_result):
    with browser_page(chromium) as page:
        smoke_scenario(page, server, core_result)


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)
def test_exam_both_eyes_to_the_patients_result(chromium, server, core_result, tmp_path):
    """The right eye's photograph by its uploader, the left eye's by its file name; the patient's
    result, the macular-oedema line and the downloads are shown; the full page is photographed."""
    left = tmp_path / "patient_left.jpg"
    Image.open(RETINA).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(left, quality=92)
    readme_before = tracked_shots()
    with browser_page(chromium) as page:
        shot, result = exam_scenario(page, server, [RETINA], [left], tmp_path / "screenshots")
        body = page.locator("body").inner_text()
        photo = page.locator('[class*="st-key-exam_photo_"]', has_text=RETINA.name)
        assert f"Model: grade {core_result.grade} ({core_result.grade_name})" in photo.inner_text()
        assert "right (OD)" in photo.locator('button[aria-checked="true"]').inner_text()
    assert tracked_shots() == readme_before, "a test run rewrote the README's screenshots"
    assert "Patient: " in result and "Traceback" not in body
    assert f"{MACULAR_OEDEMA[0].upper()}{MACULAR_OEDEMA[1:]}." in result
    assert "PDF report" in result and "FHIR R4 (JSON)" in result
    for eye in ("Right eye (OD): ", "Left eye (OS): "):
        assert eye in body
    assert shot.name == EXAM_SHOT and shot.parent == tmp_path / "screenshots"
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.width == 1400 and 0 < shot.stat().st_size < MAX_SHOT_BYTES
