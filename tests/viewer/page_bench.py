"""How fast the page answers in a real browser: a benchmark command, not a test (pytest never collects it).

    python -m tests.viewer.page_bench                       # 5 photographs, the bundled model
    python -m tests.viewer.page_bench --photos 3 --model paper
    python -m tests.viewer.page_bench --images ../shared/data/idrid-segmentation-train   # 4288 x 2848 originals

Runs from the repository root: starts ``streamlit run viewer/app.py`` on a free port with the
chosen model (``idrid`` as on a fresh clone; ``paper`` the published weights, looked for as the
tests do; ``demo`` the synthetic demo model, made the page's choice by a launcher), then, in
Debian's Chromium (never ``playwright install``) at 1400x900, for each of N real IDRiD
photographs (skipping those bundled in assets/samples, whose results a warm cache might hold)
in a fresh browser session:

- upload -> the scores table is visible;
- upload -> the reading figure is rendered (its layout images exist and the page has settled);
- after the server's background work is done (every layer's maps in input space), each control
  ``--repeat`` times, each until the page has settled on its new state: the k slider one step
  by keyboard, the view to 16 px, the evidence to "Pixels only", the grade to explain to another
  grade, the layer slider one step by keyboard. The toggles go back unmeasured between repeats
  (so repeats after the first find their pictures made).

Prints one line per measure (median and worst over the photographs and repeats) and the
server's peak RSS, then the same as a markdown table. Exit status 0, or 2 with one line on
stderr when something is missing or a wait ran out. Every wait ends on a condition of the
page or fails at a deadline; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.viewer.page_models import BUNDLED, ENV, PAPER_FILE, REPO, find_paper_weights, model_env

PHOTOS = REPO.parent / "shared" / "data" / "idrid-grading-train" / "images"
SAMPLES = REPO / "assets" / "samples"
VIEWPORT = {"width": 1400, "height": 900}
TIMEOUT_MS = 180_000
READING = ".st-key-reading"
FIGURE_DRAWN = f"""() => document.querySelectorAll('{READING} .stPlotlyChart image').length > 0"""
# What a control changes: the reading figure's two titles and the threshold's heading (h5).
SIGNATURE = f"""() => {{
  const g = document.querySelector('{READING} .js-plotly-plot');
  const a = (g && g._fullLayout && g._fullLayout.annotations) || [];
  return a.slice(0, 2).map(x => x.text).join(' | ') + ' || ' + [...document.querySelectorAll('h5')].map(h => h.innerText).join(' | ');
}}"""
# Launcher for --model demo: the page's fallback made the synthetic demo model (core.default_name()).
DEMO_LAUNCHER = r"""
import sys
import core.weights as w
w.FALLBACK = w.REGISTRY["demo"]
sys.argv = ["streamlit", *sys.argv[1:]]
from streamlit.web.cli import main
main(prog_name="streamlit")
"""

MEASURES = (
    ("scores", "upload → scores table visible"),
    ("figure", "upload → reading figure rendered"),
    ("k", "k slider, one step (keyboard)"),
    ("view", "view → 16 px"),
    ("evidence", "evidence → Pixels only"),
    ("grade", "grade to explain → another grade"),
    ("layer", "layer slider, one step (keyboard)"),
)


class BenchError(Exception):
    """Something the benchmark needs is missing: one line for stderr."""


def photographs(folder: Path, n: int) -> list[Path]:
    """The first ``n`` photographs of ``folder`` (sorted by name) that are not bundled in assets/samples."""
    bundled = {p.name.lower() for p in SAMPLES.rglob("*")}
    found = [p for p in sorted(folder.glob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")
             and p.name.lower() not in bundled]
    if len(found) < n:
        raise BenchError(f"{folder} holds {len(found)} photographs not bundled in assets/samples, {n} asked for")
    return found[:n]


def server_setup(model: str, scratch: Path) -> tuple[dict[str, str], list[str] | None]:
    """The server's environment and launcher for ``model``."""
    if model == "paper":
        paper_dir = find_paper_weights()
        if paper_dir is None:
            raise BenchError(f"the published weights are not on this machine: set {ENV} to a folder holding {PAPER_FILE}")
        return dict(os.environ, **model_env("paper", scratch, paper_dir)), None
    env = dict(os.environ, **model_env(BUNDLED, scratch))  # no published weights where the page looks
    return env, ([sys.executable, "-c", DEMO_LAUNCHER] if model == "demo" else None)


def settle(page, timeout_ms: int = TIMEOUT_MS) -> None:
    from tests.viewer.live_server import SETTLED

    page.wait_for_function(SETTLED, timeout=timeout_ms)


def changed(page, action) -> float:
    """Seconds from ``action()`` until the page shows a new state (SIGNATURE changed) and has settled."""
    from tests.viewer.live_server import SETTLED

    before = page.evaluate(SIGNATURE)
    t = time.perf_counter()
    action()
    page.wait_for_function(f"(old) => ({SIGNATURE})() !== old && ({SETTLED})()", arg=before, timeout=TIMEOUT_MS)
    return time.perf_counter() - t


def click(page, key: str, label: str):
    return lambda: page.locator(f".st-key-{key} button", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")).click()


def key_press(page, key: str, name: str):
    def act() -> None:
        thumb = page.locator(f".st-key-{key} input[type=range]")
        thumb.focus()
        thumb.press(name)

    return act


def value(page, key: str) -> str:
    """A slider's value as it says it (aria-valuetext: "2.1", "input", "15")."""
    return page.locator(f".st-key-{key} input[type=range]").get_attribute("aria-valuetext") or ""


def titles(page) -> str:
    return page.evaluate(SIGNATURE)


def expect(page, ok: bool, what: str) -> None:
    """A control did what it is measured for, or the benchmark stops (it would time something else)."""
    if not ok:
        raise BenchError(f"{what} did not show as expected; the page shows: {titles(page)!r}")


def grade_now(page) -> int:
    return int(page.locator(".st-key-grade input").input_value().strip()[0])  # "1 · Mild NPDR ◀ model"


def choose_grade(page, grade: int) -> float:
    """The grade selectbox opened (by keyboard: a click on its text does not open it), then timed
    from the click on ``grade``'s option."""
    page.locator(".st-key-grade input").focus()
    page.keyboard.press("ArrowDown")
    option = page.locator("[role=option]", has_text=re.compile(rf"^\s*{grade} · "))
    option.wait_for(state="visible", timeout=TIMEOUT_MS)
    return changed(page, option.click)


def one_photograph(browser, url: str, photo: Path, pid: int, repeat: int, times: dict[str, list[float]]) -> None:
    from tests.viewer.live_server import UPLOAD, wait_quiet

    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector(UPLOAD, state="attached", timeout=TIMEOUT_MS)
        settle(page)
        wait_quiet(pid, timeout=600)  # the previous session's background work is over
        t0 = time.perf_counter()
        page.set_input_files(UPLOAD, str(photo))
        page.locator("table", has=page.locator("th", has_text="Probability")).wait_for(state="visible", timeout=TIMEOUT_MS)
        times["scores"].append(time.perf_counter() - t0)
        page.wait_for_function(FIGURE_DRAWN, timeout=TIMEOUT_MS)
        settle(page)
        times["figure"].append(time.perf_counter() - t0)
        body = page.locator("body").inner_text()
        if "Traceback" in body or "cannot be graded" in body:
            raise BenchError(f"{photo.name}: the page shows an error or refuses the photograph")
        page.locator(READING).evaluate("e => e.scrollIntoView({block: 'start'})")
        wait_quiet(pid, timeout=600)  # every layer's maps taken to input space (the warm-up)

        for _ in range(repeat):
            k = float(value(page, "k"))
            times["k"].append(changed(page, key_press(page, "k", "ArrowRight")))
            expect(page, f"{k + 0.1:.1f}" in value(page, "k") and f"k = {k + 0.1:.1f}" in titles(page), "the k step")
            times["view"].append(changed(page, click(page, "view", "16 px")))
            expect(page, "16×16 px regions" in titles(page), "the 16 px view")
            changed(page, click(page, "view", "Pixels"))
            times["evidence"].append(changed(page, click(page, "evidence", "Pixels only")))
            expect(page, "pixel evidence only" in titles(page), "the pixel evidence")
            changed(page, click(page, "evidence", "Total"))
            target = (grade_now(page) + 1) % 5
            times["grade"].append(choose_grade(page, target))
            expect(page, grade_now(page) == target and f"grade {target}" in titles(page), f"grade {target}")
            layer = value(page, "layer")
            times["layer"].append(changed(page, key_press(page, "layer", "ArrowLeft")))
            expect(page, value(page, "layer") != layer and "layer " in titles(page), "the layer step")
        print(f"  {photo.name}: upload → scores {times['scores'][-1]:.2f} s, → figure {times['figure'][-1]:.2f} s",
              flush=True)
    finally:
        context.close()


def report(times: dict[str, list[float]], peak_mb: float, rss_mb: float, header: str) -> str:
    lines, rows = [], []
    for key, name in MEASURES:
        v = times[key]
        med, worst = statistics.median(v), max(v)
        lines.append(f"{name}: median {med:.2f} s, worst {worst:.2f} s (n={len(v)})")
        rows.append(f"| {name} | {med:.2f} | {worst:.2f} | {len(v)} |")
    lines.append(f"server peak RSS: {peak_mb:.0f} MB (now {rss_mb:.0f} MB)")
    table = ["| measure | median (s) | worst (s) | n |", "|---|---:|---:|---:|", *rows,
             f"| server peak RSS | {peak_mb:.0f} MB | | |"]
    return "\n".join([header, *lines, "", *table])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.viewer.page_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=5, help="how many photographs (default 5)")
    parser.add_argument("--model", choices=("idrid", "paper", "demo"), default="idrid",
                        help="the weights the page uses (default idrid, the bundled model)")
    parser.add_argument("--repeat", type=int, default=2, help="each control this many times per photograph (default 2)")
    parser.add_argument("--images", type=Path, default=PHOTOS, help=f"the photographs' folder (default {PHOTOS})")
    args = parser.parse_args(argv)
    if args.photos < 1 or args.repeat < 1:
        parser.error("--photos and --repeat must be at least 1")

    chromium = shutil.which("chromium")
    try:
        if not chromium:
            raise BenchError("no `chromium` on PATH (Debian: apt-get install chromium)")
        try:
            from playwright.sync_api import Error as PlaywrightError
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise BenchError("Playwright's Python package is not installed (pip install -r requirements-dev.txt)") from None
        photos = photographs(args.images, args.photos)

        import core
        from tests.viewer.live_server import CHROMIUM_ARGS, HAS_TEXT, UPLOAD, peak_rss_mb, serve

        times: dict[str, list[float]] = {key: [] for key, _ in MEASURES}
        with tempfile.TemporaryDirectory(prefix="dr-page-bench-") as scratch:
            env, launcher = server_setup(args.model, Path(scratch))
            sha = core.REGISTRY[args.model].sha256
            print(f"page bench: model {args.model}, {len(photos)} photographs from {args.images} "
                  f"({', '.join(p.name for p in photos)}), {args.repeat} repeats of each control, "
                  f"{os.cpu_count()} CPUs", flush=True)
            try:
                with serve(env, Path(scratch) / "server.log", launcher=launcher) as (proc, port), sync_playwright() as pw:
                    url = f"http://127.0.0.1:{port}/"
                    browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
                    try:
                        page = browser.new_page(viewport=VIEWPORT)  # the page runs on the asked-for weights
                        page.goto(url)
                        page.wait_for_selector(UPLOAD, state="attached", timeout=TIMEOUT_MS)
                        page.wait_for_function(HAS_TEXT, arg=["p", f"weights sha256 {sha[:12]}"], timeout=TIMEOUT_MS)
                        page.close()
                        for photo in photos:
                            one_photograph(browser, url, photo, proc.pid, args.repeat, times)
                    finally:
                        browser.close()
                    rss, peak = peak_rss_mb(proc.pid)
            except PlaywrightError as e:
                tail = (Path(scratch) / "server.log").read_text(errors="replace")[-2000:]
                raise BenchError(f"the browser gave up: {str(e).splitlines()[0]}; server log ends: {tail!r}") from None
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except pytest.fail.Exception as e:  # live_server's waits: a server that exits, never starts or never settles
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report(times, peak, rss, "\nresults (controls measured after the server's background warm-up):"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
