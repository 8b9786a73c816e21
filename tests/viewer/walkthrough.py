"""The page walked through in a real browser, for tests/viewer/test_browser.py and for the
README's screenshots (``python -m tests.viewer.screenshots``).

``full_scenario`` uploads the real photograph, checks the scores shown against core, walks
the layer slider from 16 down three steps and to "input" with the keyboard, changes k, lays the maps over the
retina, downloads scores.json and the current map, and saves two full-page screenshots into a
given folder. ``smoke_scenario`` is its first part: the upload, the scores and the first maps,
and one trip along the slider. Timings are printed, never asserted.

Every wait ends on a condition of the page (a text, the script's state, the pictures loaded),
or fails at a deadline.
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import core
from tests.viewer.live_server import CHROMIUM_ARGS, HAS_TEXT, REPO, SETTLED, UPLOAD, download
from viewer import render

RETINA = REPO / "tests" / "data" / "retina.jpg"
SHOT_NAMES = ("viewer-scores.png", "viewer-layer-input-overlay.png")
MAX_SHOT_BYTES = 400_000
WIDTH = 1400
# Resolves once the fonts are loaded and two frames have been painted since: what the page
# shows is what a screenshot takes.
PAINTED = """() => document.fonts.ready.then(() => new Promise(done =>
  requestAnimationFrame(() => requestAnimationFrame(() => done(true)))))"""


@contextlib.contextmanager
def browser_page(chromium: str) -> Iterator:
    """A Playwright page in Debian's Chromium (never ``playwright install``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": WIDTH, "height": 900}, accept_downloads=True)
        finally:
            browser.close()


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


def full_page_shot(page, folder: Path, name: str) -> Path:
    """The whole page into ``folder/name`` (Streamlit scrolls inside the app, so the viewport grows to fit it)."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]')]"
        ".map(e => e.scrollHeight), document.body.scrollHeight)"
    )
    assert height < 6000, f"the page is {height} px long: something unexpected is printed on it"
    page.set_viewport_size({"width": WIDTH, "height": int(height) + 16})
    page.mouse.move(WIDTH - 5, 5)  # no hover buttons in the picture
    settle(page)
    page.wait_for_function(PAINTED)
    png = page.screenshot(full_page=True, animations="disabled")
    page.set_viewport_size({"width": WIDTH, "height": 900})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(small_png(png))
    assert path.stat().st_size < MAX_SHOT_BYTES, f"{name} is {path.stat().st_size} bytes"
    return path


def map_sources(page) -> list[str]:
    return page.eval_on_selector_all("[data-testid=stImage] img", "els => els.map(e => e.src)")


def upload_and_check_scores(page, url: str, exp: core.Explanation) -> None:
    """Open the page, upload the photograph; the model, scores and grade shown are core's."""
    page.goto(url)
    page.wait_for_selector(UPLOAD, state="attached", timeout=90_000)
    settle(page)
    # the page uses the weights that core's numbers come from
    wait_text(page, "p", f"weights sha256 {exp.weights_sha256[:12]}")
    wait_text(page, "p", str(core.REGISTRY[exp.weights_name].meta["title"]))

    t0 = time.perf_counter()
    page.set_input_files(UPLOAD, str(RETINA))
    wait_text(page, "p", "Conservation:")
    page.wait_for_function("() => document.querySelectorAll('.st-key-reading .stPlotlyChart image').length >= 2"
                           " && document.querySelectorAll('[data-testid=stImage] img').length >= 4")
    settle(page)
    print(f"TIMING model={exp.weights_name} upload_to_first_maps_s={time.perf_counter() - t0:.2f}")

    table = page.locator("table", has=page.locator("th", has_text="Probability"))
    rows = table.locator("tbody tr")
    assert rows.count() == 5
    for g in range(5):
        cells = [c.strip() for c in rows.nth(g).locator("td").all_inner_texts()]
        assert cells[0] == f"{g} · {core.GRADE_NAMES[g]}"
        assert cells[1] == render.fmt_score(float(exp.scores[g])), (g, cells)
    wait_text(page, "h4", f"The model's grade: {exp.grade} · {exp.grade_name}")


def slider_to_layer_16(page):
    """The layer slider, which starts at the pixels, moved by keyboard to layer 16; returns its thumb."""
    thumb = page.locator(".st-key-layer input[type=range]")
    assert thumb.get_attribute("aria-valuetext") == "input"
    thumb.focus()
    thumb.press("Home")
    wait_text(page, "h5", "Layer 16 ·")
    settle(page)
    return thumb


def smoke_scenario(page, url: str, exp: core.Explanation) -> None:
    """The upload, the scores and the first maps; layer 16 and back to the pixels."""
    upload_and_check_scores(page, url, exp)
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "cannot be graded" not in body
    thumb = slider_to_layer_16(page)
    thumb.press("End")
    wait_text(page, "p", "input map ")
    settle(page)
    assert thumb.get_attribute("aria-valuetext") == "input"


def full_scenario(page, url: str, exp: core.Explanation, shots: Path) -> list[Path]:
    """Every control a clinician uses, checked against core; returns the two screenshots saved in ``shots``."""
    upload_and_check_scores(page, url, exp)
    saved = [full_page_shot(page, shots, SHOT_NAMES[0])]

    # ---- scores.json as the CLI writes it
    data = json.loads(Path(download(page, "scores.json").path()).read_text())
    assert data["scores"] == pytest.approx([float(s) for s in exp.scores], rel=1e-6)
    settle(page)

    # ---- the layer slider, by keyboard: 16 first, three steps down, then End to the pixels
    # (every value of the slider is AppTest's test_layer_slider_every_value; here the browser's keys)
    thumb = slider_to_layer_16(page)
    moves = []
    for index, key in ((15, "ArrowRight"), (14, "ArrowRight"), (13, "ArrowRight"), ("input", "End")):
        t = time.perf_counter()
        thumb.press(key)
        if index == "input":
            wait_text(page, "p", "input map ")
        else:
            wait_text(page, "p", f"input-dependent (layer {index})")
        settle(page)
        moves.append(time.perf_counter() - t)
        assert thumb.get_attribute("aria-valuetext") == str(index)
    print(f"TIMING model={exp.weights_name} slider_move_s median={statistics.median(moves):.3f} max={max(moves):.3f} "
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

    # ---- the retina under the maps (on by default; in the display options' popover): off
    before = map_sources(page)
    t = time.perf_counter()
    page.locator(".st-key-reading [data-testid=stPopover] button").first.click()
    page.locator(".st-key-overlay label").click()
    page.wait_for_function("(old) => { const now = [...document.querySelectorAll('[data-testid=stImage] img')]"
                           ".map(e => e.src); return now.length > 1 && now[1] !== old[1]; }", arg=before)
    settle(page)
    print(f"TIMING model={exp.weights_name} overlay_toggle_s={time.perf_counter() - t:.3f}")
    assert not page.locator(".st-key-overlay input[type=checkbox]").is_checked()
    page.keyboard.press("Escape")  # close the popover
    # the current map as a PNG (made only when clicked)
    dl = download(page, "Current map (PNG)")
    assert dl.suggested_filename == f"map-grade{exp.grade}-layerinput.png"
    with Image.open(dl.path()) as png:
        assert png.format == "PNG" and png.width == 640
    settle(page)
    saved.append(full_page_shot(page, shots, SHOT_NAMES[1]))
    return saved


# ----------------------------------------------------------------------------- the screening exam
EXAM_SHOT = "exam-page.png"


def exam_upload(eye: str) -> str:
    """The file input of the exam's uploader for ``eye`` ("right" or "left")."""
    return f".st-key-exam_upload_{eye} input[type=file]"


def open_exam(page, url: str) -> None:
    """Open the page and switch it to the screening exam."""
    page.goto(url)
    page.wait_for_selector(UPLOAD, state="attached", timeout=90_000)
    settle(page)
    page.locator(".st-key-mode button", has_text="Screening exam").click()
    page.wait_for_selector(exam_upload("right"), state="attached", timeout=60_000)
    settle(page)


def exam_scenario(page, url: str, right: list, left: list, shots: Path, name: str = EXAM_SHOT) -> tuple[Path, str]:
    """Both eyes' photographs uploaded (paths, or Playwright's name/mimeType/buffer dicts), the patient's
    result awaited; returns the full-page screenshot saved in ``shots`` and the result panel's text."""
    open_exam(page, url)
    t0 = time.perf_counter()
    for eye, files in (("right", right), ("left", left)):
        page.set_input_files(exam_upload(eye), files=[str(f) if isinstance(f, Path) else f for f in files])
        page.wait_for_function(
            "(n) => document.querySelectorAll('[class*=\"st-key-exam_photo_\"]').length >= n", arg=len(right) + (
                len(left) if eye == "left" else 0), timeout=180_000)
        settle(page, 180_000)
    wait_text(page, ".st-key-exam_result h3", "Patient:", 180_000)
    settle(page)
    print(f"TIMING exam_upload_to_patient_result_s={time.perf_counter() - t0:.2f}")
    result = page.locator(".st-key-exam_result").inner_text()
    return full_page_shot(page, shots, name), result


def demo_exam() -> tuple[list[dict], list[dict]]:
    """The README's exam: right eye, IDRiD_005 (IDRiD grade 4) and IDRiD_003 under-exposed to 8 %
    (ungradable), bundled samples (IDRiD, CC BY 4.0); left eye, tests/data/retina.jpg (CC0) as a
    DICOM file whose header says left and names a made-up patient. Playwright's name/mimeType/buffer dicts."""
    import numpy as np
    from PIL import ImageEnhance

    from tests.dicom_files import dataset, save

    samples = REPO / "assets" / "samples"

    def jpeg(im: Image.Image, name: str) -> dict:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=92)
        return {"name": name, "mimeType": "image/jpeg", "buffer": buf.getvalue()}

    grade4 = Image.open(samples / "IDRiD_005.jpg").convert("RGB")
    dark = ImageEnhance.Brightness(Image.open(samples / "IDRiD_003.jpg").convert("RGB")).enhance(0.08)
    ds = dataset(np.asarray(Image.open(RETINA).convert("RGB")))
    ds.PatientName, ds.PatientID, ds.ImageLaterality = "Roe^Jane", "DEMO-0001", "L"
    dicom = {"name": "IMG0002.dcm", "mimeType": "application/dicom", "buffer": save(ds)}
    return [jpeg(grade4, "demo_R_1.jpg"), jpeg(dark, "demo_R_2.jpg")], [dicom]
