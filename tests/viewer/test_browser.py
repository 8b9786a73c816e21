"""End to end in a real browser: Debian's Chromium driven by Playwright's Python package.

Starts ``streamlit run viewer/app.py`` on a free port and walks the page through
(tests/viewer/walkthrough.py): with the bundled model, every control, as on a fresh
clone; with the published weights (``paper``), the upload, the scores and the first maps.
Screenshots go to the test's temporary folder; the README's pictures
(assets/screenshots/) are refreshed only on purpose, by ``python -m tests.viewer.screenshots``.
Timings are printed, not asserted (targets with the published weights: first maps <= 3 s,
slider move <= 300 ms).

Never runs ``playwright install``: the browser is the system's ``chromium``.
"""

from __future__ import annotations

import os

import pytest
from PIL import Image

from tests.viewer.live_server import REPO, chromium_path, serve
from tests.viewer.walkthrough import MAX_SHOT_BYTES, SHOT_NAMES, browser_page, full_scenario, smoke_scenario

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


README_SHOTS = REPO / "assets" / "screenshots"


def tracked_shots() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(README_SHOTS.glob("*.png"))}


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
