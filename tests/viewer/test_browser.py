"""End to end in a real browser: Debian's Chromium driven by Playwright's Python package.

Starts ``streamlit run viewer/app.py`` on a free port, uploads the real photograph,
checks the scores shown against core, walks the layer slider to "input" with the
keyboard, changes k, lays the maps over the retina and saves the screenshots used by
the README (assets/screenshots/). Timings are printed, not asserted
(targets with the published weights: first maps <= 3 s, slider move <= 300 ms).

Never runs ``playwright install``: the browser is the system's ``chromium``.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import time
from pathlib import Path

import pytest
from PIL import Image

import core
from tests.viewer.live_server import CHROMIUM_ARGS, HAS_TEXT, SETTLED, chromium_path, serve

sync_playwright = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed").sync_playwright

REPO = Path(__file__).resolve().parents[2]
RETINA = REPO / "tests" / "data" / "retina.jpg"
SHOTS = REPO / "assets" / "screenshots"
MAX_SHOT_BYTES = 400_000
WIDTH = 1400

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path()


@pytest.fixture
def server(paper_weights_dir, tmp_path):
    """The page served on a free port; always terminated through its own handle."""
    with serve(dict(os.environ, DR_WEIGHTS_DIR=str(paper_weights_dir)), tmp_path / "server.log") as (_, port):
        yield f"http://127.0.0.1:{port}/"


def settle(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(SETTLED, timeout=timeout_ms)


def wait_text(page, selector: str, text: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(HAS_TEXT, arg=[selector, text], timeout=timeout_ms)


def small_png(png: bytes, limit: int = MAX_SHOT_BYTES) -> bytes:
    """A screenshot as a palette PNG, scaled down only as far as needed to fit ``limit``."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    for scale in (1.0, 0.85, 0.75, 0.65, 0.55, 0.45):
        im = img if scale == 1.0 else img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
        q = im.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        buf = io.BytesIO()
        q.save(buf, format="PNG", optimize=True)
        if buf.tell() < limit:
            return buf.getvalue()
    return buf.getvalue()


def full_page_shot(page, name: str) -> Path:
    """The whole page (Streamlit scrolls inside the app, so the viewport grows to fit it)."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    assert height < 6000, f"the page is {height} px long: something unexpected is printed on it"
    page.set_viewport_size({"width": WIDTH, "height": int(height) + 16})
    page.mouse.move(WIDTH - 5, 5)  # no hover buttons in the picture
    settle(page)
    page.wait_for_timeout(300)
    png = page.screenshot(full_page=True, animations="disabled")
    page.set_viewport_size({"width": WIDTH, "height": 900})
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    path.write_bytes(small_png(png))
    assert path.stat().st_size < MAX_SHOT_BYTES, f"{name} is {path.stat().st_size} bytes"
    return path


def map_sources(page) -> list[str]:
    return page.eval_on_selector_all("[data-testid=stImage] img", "els => els.map(e => e.src)")


def test_upload_scores_slider_threshold_overlay(chromium, server, core_result):
    exp = core_result
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900}, accept_downloads=True)
            page.goto(server)
            page.wait_for_selector('[data-testid="stFileUploader"] input[type=file]', state="attached", timeout=90_000)
            settle(page)

            # ---- upload -> scores and first maps
            t0 = time.perf_counter()
            page.set_input_files('[data-testid="stFileUploader"] input[type=file]', str(RETINA))
            wait_text(page, "p", "Conservation:")
            page.wait_for_function("() => document.querySelectorAll('[data-testid=stImage] img').length >= 5")
            settle(page)
            first_maps = time.perf_counter() - t0
            print(f"TIMING upload_to_first_maps_s={first_maps:.2f}")

            table = page.locator("table", has=page.locator("th", has_text="Probability"))
            rows = table.locator("tbody tr")
            assert rows.count() == 5
            for g in range(5):
                cells = [c.strip() for c in rows.nth(g).locator("td").all_inner_texts()]
                assert cells[0] == f"{g} · {core.GRADE_NAMES[g]}"
                shown = f"{float(exp.scores[g]):.1f}"
                assert cells[1] == ("0.0" if shown == "-0.0" else shown), (g, cells)
            wait_text(page, "h4", f"The model's grade: {exp.grade} · {exp.grade_name}")
            full_page_shot(page, "viewer-scores.png")

            # ---- scores.json as the CLI writes it
            with page.expect_download() as dl:
                page.get_by_role("button", name="scores.json").click()
            saved = json.loads(Path(dl.value.path()).read_text())
            assert saved["scores"] == pytest.approx([float(s) for s in exp.scores], rel=1e-6)
            settle(page)

            # ---- the layer slider, by keyboard: 16 first, then step by step down to the pixels
            thumb = page.locator(".st-key-layer input[type=range]")
            assert thumb.get_attribute("aria-valuetext") == "input"
            thumb.focus()
            thumb.press("Home")
            wait_text(page, "h5", "Layer 16 ·")
            settle(page)
            moves = []
            for index in [*range(15, 0, -1), "input"]:
                t = time.perf_counter()
                thumb.press("ArrowRight")
                if index == "input":
                    wait_text(page, "p", "input map ")
                else:
                    wait_text(page, "p", f"input-dependent (layer {index})")
                settle(page)
                moves.append(time.perf_counter() - t)
                assert thumb.get_attribute("aria-valuetext") == str(index)
            print(f"TIMING slider_move_s median={statistics.median(moves):.3f} max={max(moves):.3f} "
                  f"first={moves[0]:.3f} n={len(moves)}")

            # ---- threshold: k from 2.0 to 2.5 with the keyboard
            k = page.locator(".st-key-k input[type=range]")
            k.focus()
            for _ in range(5):
                k.press("ArrowRight")
            wait_text(page, "h5", "k = 2.5 standard deviations")
            settle(page)
            expected = int(exp.mask(exp.grade, 2.5, values=exp.total()[exp.grade]).sum())
            wait_text(page, "p", f"{expected:,} pixels are above the mean + 2.5 SD")

            # ---- overlay on the retina
            before = map_sources(page)
            t = time.perf_counter()
            page.locator(".st-key-overlay label").click()
            page.wait_for_function("(old) => { const now = [...document.querySelectorAll('[data-testid=stImage] img')]"
                                   ".map(e => e.src); return now.length > 1 && now[1] !== old[1]; }", arg=before)
            settle(page)
            print(f"TIMING overlay_toggle_s={time.perf_counter() - t:.3f}")
            assert page.locator(".st-key-overlay input[type=checkbox]").is_checked()
            # the current map as a PNG (made only when clicked)
            with page.expect_download() as dl:
                page.get_by_role("button", name="Current map (PNG)").click()
            assert dl.value.suggested_filename == f"map-grade{exp.grade}-layerinput.png"
            with Image.open(dl.value.path()) as png:
                assert png.format == "PNG" and png.width == 640
            settle(page)
            full_page_shot(page, "viewer-layer-input-overlay.png")
        finally:
            browser.close()
