"""Refresh the README's screenshots (assets/screenshots/) on purpose; the tests never write there.

    python -m tests.viewer.screenshots                 # the published weights, into assets/screenshots/
    python -m tests.viewer.screenshots --out /tmp/shots --exam-out /tmp/shots --model idrid
    python -m tests.viewer.screenshots --only exam     # assets/screenshots/exam-page.png only
    python -m tests.viewer.screenshots --only reading  # the reading view's two pictures only

Runs from the repository root: starts ``streamlit run viewer/app.py`` on a free port, walks the
page through in Debian's Chromium as tests/viewer/test_browser.py does (checking every number
against core on the way) and saves the two full-page pictures of the one-photograph page the
README shows, then the screening exam's (``walkthrough.demo_exam``: bundled IDRiD photographs,
one of them a DICOM file of a made-up patient). The published weights are looked for as the
tests do ($DR_WEIGHTS_DIR, ../shared/weights, the user's cache). Exit status 0 when every
picture was written, 2 with one line on stderr when something is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.viewer.page_models import ENV, PAPER_FILE, REPO, find_paper_weights, model_env

DEFAULT_OUT = REPO / "assets" / "screenshots"
DEFAULT_EXAM_OUT = DEFAULT_OUT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.viewer.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the pictures (default {DEFAULT_OUT})")
    parser.add_argument("--exam-out", type=Path, default=DEFAULT_EXAM_OUT,
                        help=f"folder for the exam page's picture (default {DEFAULT_EXAM_OUT})")
    parser.add_argument("--only", choices=("viewer", "exam", "reading"),
                        help="only the one-photograph page's pictures, the exam's, or the reading view's")
    parser.add_argument("--model", choices=("paper", "idrid"), default="paper",
                        help="the weights the page uses (default: paper, as in the README)")
    args = parser.parse_args(argv)

    chromium = shutil.which("chromium")
    if not chromium:
        print("error: no `chromium` on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        print("error: Playwright's Python package is not installed (pip install -r requirements-dev.txt)", file=sys.stderr)
        return 2
    paper_dir = find_paper_weights() if args.model == "paper" else None
    if args.model == "paper" and paper_dir is None:
        print(f"error: the published weights are not on this machine: set {ENV} to a folder holding {PAPER_FILE}"
              " or run `python -m core weights fetch paper`", file=sys.stderr)
        return 2

    import core
    from tests.viewer.live_server import serve
    from tests.viewer.walkthrough import RETINA, browser_page, demo_exam, exam_scenario, full_scenario

    with tempfile.TemporaryDirectory(prefix="dr-screenshots-") as scratch:
        env = model_env(args.model, Path(scratch), paper_dir)
        os.environ.update(env)  # core's numbers below come from the same weights as the page's
        if core.default_name() != args.model:
            print(f"error: with {env} the page would use {core.default_name()!r}, not {args.model!r}", file=sys.stderr)
            return 2
        saved = []
        with serve(dict(os.environ), Path(scratch) / "server.log") as (_, port), browser_page(chromium) as page:
            url = f"http://127.0.0.1:{port}/"
            if args.only in (None, "reading"):
                saved += reading_scenario(page, url, args.out)
            if args.only in (None, "viewer"):
                exp = core.explain(core.load_weights(args.model), core.read_fundus(RETINA, name=RETINA.name))
                saved += full_scenario(page, url, exp, args.out)
            if args.only in (None, "exam"):
                saved.append(exam_scenario(page, url, *demo_exam(), args.exam_out)[0])
    for path in saved:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


READING_PHOTO = REPO / "assets" / "samples" / "IDRiD_005.jpg"  # IDRiD, CC BY 4.0; graded 4 by IDRiD
READING_SHOTS = ("reading-view.jpg", "reading-regions.jpg", "reading-lesion-view.jpg")
DRAG = ".st-key-reading .stPlotlyChart .nsewdrag"  # the two subplots' drag surfaces (photograph, map)


def reading_scenario(page, url: str, out: Path) -> list[Path]:
    """The reading view of a real photograph at 1400x900 with a clinician's mark (a box over the
    haemorrhage left of the macula), then the same in 16 px regions with the marks' table, then
    the lesion view (its button: layer 8, 4 px regions)."""
    from PIL import Image

    from tests.viewer.live_server import UPLOAD
    from tests.viewer.walkthrough import settle

    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(url)
    page.wait_for_selector(UPLOAD, state="attached", timeout=90_000)
    page.set_input_files(UPLOAD, str(READING_PHOTO))
    page.wait_for_selector(".st-key-reading .stPlotlyChart .nsewdrag", timeout=180_000)
    settle(page, 180_000)
    reading = page.locator(".st-key-reading")
    reading.evaluate("e => e.scrollIntoView({block: 'start'})")

    def choose_lesion(name: str) -> None:
        page.locator(".st-key-lesion").click()
        page.get_by_role("option", name=f"Mark: {name}", exact=True).click()
        settle(page)

    def at(ix: float, iy: float) -> tuple[float, float]:
        page.wait_for_function(f"() => document.querySelectorAll('{DRAG}').length == 2")
        x, y, w, h = page.evaluate(f"() => {{ const r = document.querySelector('{DRAG}').getBoundingClientRect(); "
                                   "return [r.x, r.y, r.width, r.height]; }")
        return x + ix / 640 * w, y + iy / 640 * h

    choose_lesion("haemorrhage")
    page.locator(".st-key-tool button", has_text="Box").click()
    settle(page)
    page.wait_for_timeout(1500)  # Plotly takes the new drag mode after the rerun; a drag before it is lost
    page.mouse.move(*at(222, 282))
    page.mouse.down()
    page.mouse.move(*at(260, 330), steps=6)
    page.mouse.move(*at(300, 388), steps=6)
    page.mouse.up()
    page.wait_for_function("() => document.body.innerText.includes('union of your marks')", timeout=60_000)
    settle(page)
    reading.evaluate("e => e.scrollIntoView({block: 'start'})")
    saved = []
    for name, view in zip(READING_SHOTS, (None, "16 px", "lesion"), strict=True):
        if view == "lesion":  # the button sets layer, view and evidence; the line under the figure says what it is
            page.get_by_role("button", name="Lesion view", exact=True).click()
            settle(page)
            reading.evaluate("e => e.scrollIntoView({block: 'start'})")  # the controls, the figure and its titles
        elif view:  # the regions, scrolled so that the marks' table under the figure shows too
            page.locator(".st-key-view button", has_text=view).click()
            settle(page)
            reading.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.mouse.move(700, 450)
            page.mouse.wheel(0, 330)
        page.mouse.move(1395, 5)
        settle(page)
        png = page.screenshot(animations="disabled")
        out.mkdir(parents=True, exist_ok=True)
        path = out / name
        import io

        Image.open(io.BytesIO(png)).convert("RGB").save(path, format="JPEG", quality=85)
        saved.append(path)
    return saved


if __name__ == "__main__":
    sys.exit(main())
