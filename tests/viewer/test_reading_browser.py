"""The reading view in a real browser: Debian's Chromium driven by Playwright's Python package.

One ``streamlit run viewer/app.py`` for the module, with the bundled model (as on a fresh
clone), and one browser page that uploads a real photograph (assets/samples/IDRiD_005.jpg)
once. Then:

- the view fits a 1400x900 screen with its controls: two square subplots of >= 620 px,
  the figure and its colour bar within 900 px of the reading container's top, the
  controls row above the figure, on screen and not covered;
- a box drawn with the Box tool on the map becomes a mark whose contribution and pixel
  evidence, as the table shows them, are core's sums over ``core.marks.Mark(...).mask()``
  (the mark's exact corners read back from scores.json), within 2 input px of the drag;
- Point and Lasso add marks, "Undo last mark" removes the last one;
- a zoom rectangle on the photograph zooms both subplots to the same range.

Every wait ends on a condition of the page (a text, a count, the script's state), or fails
at a deadline. Nothing is written into the repository (downloads go to Playwright's temp).
Never runs ``playwright install``: the browser is the system's ``chromium``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import core
from core.marks import Mark
from tests.viewer.live_server import CHROMIUM_ARGS, HAS_TEXT, REPO, SETTLED, UPLOAD, chromium_path, download, serve
from tests.viewer.page_models import BUNDLED, model_env
from viewer.reading import fmt

pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")

pytestmark = pytest.mark.browser

PHOTO = REPO / "assets" / "samples" / "IDRiD_005.jpg"
VIEWPORT = {"width": 1400, "height": 900}
SIDE = core.INPUT_SIZE
READING = ".st-key-reading"
CHART = f"{READING} .stPlotlyChart"
DRAG = f"{CHART} .nsewdrag"  # one per subplot: 0 the photograph, 1 the map
GRAPH = f"document.querySelectorAll('{READING} .js-plotly-plot')[0]"
# The marks' table ("Your marks") and its body rows: one per mark plus the union's row.
MARK_ROWS = f"""() => {{
  const t = [...document.querySelectorAll('{READING} table')].find(t => t.innerText.includes('pixel evidence'));
  return t ? t.querySelectorAll('tbody tr').length : 0;
}}"""
TIMEOUT_MS = 60_000


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The page on a free port with the bundled model (no published weights where the page looks)."""
    scratch = tmp_path_factory.mktemp("reading-server")
    with serve(dict(os.environ, **model_env(BUNDLED, scratch)), scratch / "server.log") as (_, port):
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def exp() -> core.Explanation:
    """core's Explanation of the photograph with the page's weights: the numbers the page must show."""
    return core.explain(core.load_weights(BUNDLED), core.read_fundus(PHOTO.read_bytes(), name=PHOTO.name))


@pytest.fixture(scope="module")
def page(chromium, server, exp):
    """One browser page for the module, the photograph uploaded and the reading figure drawn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            pg = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            pg.goto(server)
            pg.wait_for_selector(UPLOAD, state="attached", timeout=90_000)
            settle(pg)
            # the page runs on the weights core's numbers come from
            pg.wait_for_function(HAS_TEXT, arg=["p", f"weights sha256 {exp.weights_sha256[:12]}"], timeout=TIMEOUT_MS)
            pg.set_input_files(UPLOAD, str(PHOTO))
            pg.wait_for_function(f"() => document.querySelectorAll('{CHART} image').length > 0 && "
                                 f"document.querySelectorAll('{DRAG}').length === 2", timeout=180_000)
            settle(pg, 180_000)
            body = pg.locator("body").inner_text()
            assert "Traceback" not in body and "cannot be graded" not in body
            yield pg
        finally:
            browser.close()


# ----------------------------------------------------------------------------- driving the view
def settle(pg, timeout_ms: int = TIMEOUT_MS) -> None:
    pg.wait_for_function(SETTLED, timeout=timeout_ms)


def to_top(pg) -> None:
    """The reading container scrolled to the top of the viewport (as a clinician would look at it)."""
    pg.locator(READING).evaluate("e => e.scrollIntoView({block: 'start'})")
    pg.wait_for_function(f"() => Math.abs(document.querySelector('{READING}').getBoundingClientRect().top) < 2",
                         timeout=TIMEOUT_MS)


def choose_tool(pg, label: str) -> None:
    """The mouse tool ("Zoom", "Pan", "Box", "Lasso", "Point"), waited for until the figure has it."""
    dragmode = {"Zoom": "zoom", "Pan": "pan", "Box": "select", "Lasso": "lasso", "Point": "pan"}[label]
    pg.locator(".st-key-tool button", has_text=label).click()
    grid = "true" if label == "Point" else "false"  # point mode adds the grid of clickable points
    pg.wait_for_function(
        f"() => {{ const g = {GRAPH}; return !!g && !!g._fullLayout && g._fullLayout.dragmode === '{dragmode}' && "
        f"(g.data.length > 2) === {grid}; }}", timeout=TIMEOUT_MS)
    settle(pg)


def subplot(pg, i: int):
    """Viewport position of input pixel (x, y) on subplot ``i`` (0 photograph, 1 map)."""
    box = pg.locator(DRAG).nth(i).bounding_box()

    def at(ix: float, iy: float) -> tuple[float, float]:
        return box["x"] + ix / SIDE * box["width"], box["y"] + iy / SIDE * box["height"]

    return at


def drag(pg, at, path: list[tuple[float, float]], steps: int = 5) -> None:
    """Mouse down at the first input position, through the others, up at the last."""
    pg.mouse.move(*at(*path[0]))
    pg.mouse.down()
    for p in path[1:]:
        pg.mouse.move(*at(*p), steps=steps)
    pg.mouse.up()


def mark_count(pg) -> int:
    rows = pg.evaluate(MARK_ROWS)
    return max(rows - 1, 0)  # less the union's row


def wait_marks(pg, n: int) -> None:
    """Until the table holds ``n`` marks (``n`` = 0: the "No marks yet" caption) and the page has settled."""
    if n == 0:
        pg.wait_for_function(f"() => ({MARK_ROWS})() === 0", timeout=TIMEOUT_MS)
        pg.wait_for_function(HAS_TEXT, arg=[READING, "No marks yet"], timeout=TIMEOUT_MS)
    else:
        pg.wait_for_function(f"() => ({MARK_ROWS})() === {n + 1}", timeout=TIMEOUT_MS)
    settle(pg)


def no_marks(pg) -> None:
    """Start from an empty table (the tests share one page)."""
    if mark_count(pg):
        pg.get_by_role("button", name="Clear marks").click()
        wait_marks(pg, 0)


def table_rows(pg) -> list[list[str]]:
    table = pg.locator(f"{READING} table", has=pg.locator("th", has_text="pixel evidence"))
    head = [c.strip() for c in table.locator("thead th").all_inner_texts()]
    assert head == ["#", "finding", "contribution", "pixel evidence", "constants", "net",
                    "k-σ pixels inside"], head
    rows = table.locator("tbody tr")
    return [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(rows.count())]


def scores_json(pg) -> dict:
    data = json.loads(Path(download(pg, "scores.json (with your grade and marks)").path()).read_text())
    settle(pg)
    return data


def ranges(pg) -> dict[str, list[float]]:
    return pg.evaluate(f"() => {{ const l = {GRAPH}._fullLayout; return {{x: l.xaxis.range, x2: l.xaxis2.range, "
                       "y: l.yaxis.range, y2: l.yaxis2.range}; }")


def rect(pg, selector: str) -> dict:
    """The element's bounding client rectangle, and whether the element is what is hit at its centre."""
    return pg.evaluate("""(s) => { const e = document.querySelector(s); const r = e.getBoundingClientRect();
      const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height,
              hit: !!hit && e.contains(hit)}; }""", selector)


# ----------------------------------------------------------------------------- the tests
def test_view_fits_1400x900_with_its_controls(page):
    to_top(page)
    top = rect(page, READING)["top"]
    subplots = [page.locator(DRAG).nth(i).bounding_box() for i in range(page.locator(DRAG).count())]
    assert len(subplots) == 2, subplots
    for s in subplots:
        assert s["width"] >= 620, f"a subplot is {s['width']:.1f} px wide at 1400x900"
        assert abs(s["width"] - s["height"]) <= 2, f"a subplot is not square: {s['width']:.1f} x {s['height']:.1f}"
    assert subplots[0]["x"] + subplots[0]["width"] <= subplots[1]["x"], "the subplots are not side by side"
    assert abs(subplots[0]["y"] - subplots[1]["y"]) <= 1
    chart = rect(page, CHART)
    assert chart["bottom"] - top <= VIEWPORT["height"], (
        f"the figure and its colour bar end {chart['bottom'] - top:.0f} px below the reading view's top")
    # the pictures (the colour bar under the map is the lowest) are drawn inside the chart's box
    pictures = page.eval_on_selector_all(f"{CHART} image", "els => els.map(e => e.getBoundingClientRect().bottom)")
    assert len(pictures) >= 4 and max(pictures) <= chart["bottom"] + 0.5, (pictures, chart)
    for key in (".st-key-tool", ".st-key-view", ".st-key-k"):
        r = rect(page, key)
        assert r["bottom"] <= chart["top"], f"{key} is not above the figure: {r}"
        assert r["top"] >= 0 and r["bottom"] <= VIEWPORT["height"], f"{key} is off screen: {r}"
        assert r["left"] >= 0 and r["right"] <= VIEWPORT["width"], f"{key} is off screen: {r}"
        assert r["hit"], f"{key} is covered by something else at its centre"


BOX = (400.0, 360.0, 480.0, 440.0)  # the input region the box is dragged over (x0, y0, x1, y1)


def test_box_mark_is_cores_sum_over_its_mask(page, exp):
    to_top(page)
    no_marks(page)
    choose_tool(page, "Box")
    x0, y0, x1, y1 = BOX
    drag(page, subplot(page, 1), [(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2), (x1, y1)])
    wait_marks(page, 1)
    rows = table_rows(page)
    assert len(rows) == 2 and rows[0][0] == "1" and rows[1][0] == "all", rows
    assert rows[0][1] == "microaneurysm (box)", rows[0]  # the lesion type the page starts with

    data = scores_json(page)
    items = data["marks"]["items"]
    assert len(items) == 1 and items[0]["kind"] == "box"
    g = data["marks"]["explained_grade"]
    assert g == exp.grade, "the marks are measured for the model's grade by default"
    (ax, ay), (bx, by) = items[0]["points"]
    got = (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
    assert np.allclose(got, BOX, atol=2.0), f"the box {got} is not the drag's {BOX}"

    mask = Mark("box", items[0]["lesion"], tuple(map(tuple, items[0]["points"]))).mask()
    contribution = float(exp.total()[g][mask].sum(dtype=np.float64))
    evidence = float(exp.input_map[g][mask].sum(dtype=np.float64))
    assert rows[0][2] == fmt(contribution), (rows[0], contribution)
    assert rows[0][3] == fmt(evidence), (rows[0], evidence)
    assert items[0]["stats"]["pixels"] == int(mask.sum())
    assert items[0]["stats"]["contribution"] == pytest.approx(contribution, rel=1e-5, abs=1e-4)


def polygon_area(pts: list[tuple[float, float]]) -> float:
    x, y = np.array(pts, dtype=float).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def test_point_and_lasso_add_marks_and_undo_removes_one(page, exp):
    to_top(page)
    no_marks(page)
    choose_tool(page, "Point")
    page.mouse.click(*subplot(page, 0)(200, 300))  # on the photograph
    wait_marks(page, 1)
    assert table_rows(page)[0][1] == "microaneurysm (point)"

    choose_tool(page, "Lasso")
    lasso = [(300, 300), (340, 300), (360, 340), (340, 380), (300, 380), (290, 340), (300, 305)]
    drag(page, subplot(page, 1), lasso, steps=4)  # on the map
    wait_marks(page, 2)
    rows = table_rows(page)
    assert [r[1] for r in rows] == ["microaneurysm (point)", "microaneurysm (lasso)", "union of your marks"], rows

    items = scores_json(page)["marks"]["items"]
    assert [m["kind"] for m in items] == ["point", "lasso"]
    (px, py), = items[0]["points"]  # clicks snap to the centres of the 4 px grid
    assert abs(px - 200) <= 3 and abs(py - 300) <= 3, items[0]["points"]
    lasso_mark = Mark.from_dict(items[1])
    assert lasso_mark.mask().sum() == pytest.approx(polygon_area(lasso), rel=0.1)
    g = exp.grade
    for row, mark in zip(rows, (Mark.from_dict(items[0]), lasso_mark), strict=False):
        assert row[2] == fmt(float(exp.total()[g][mark.mask()].sum(dtype=np.float64))), (row, mark)

    page.get_by_role("button", name="Undo last mark").click()
    wait_marks(page, 1)
    assert table_rows(page)[0][1].endswith("(point)"), "undo removed another mark than the last"


def test_zoom_on_the_photograph_zooms_both_subplots(page):
    to_top(page)
    choose_tool(page, "Zoom")
    before = ranges(page)
    assert sorted(before["x"]) == [0, SIDE] and before["x"] == before["x2"], before
    drag(page, subplot(page, 0), [(200, 200), (300, 280), (400, 400)])
    page.wait_for_function(f"() => {{ const r = {GRAPH}._fullLayout.xaxis.range; return r[1] - r[0] < {SIDE - 1}; }}",
                           timeout=TIMEOUT_MS)
    settle(page)
    r = ranges(page)
    assert r["x"] == r["x2"] and r["y"] == r["y2"], f"the subplots zoomed apart: {r}"
    lo, hi = sorted(r["x"])
    assert lo >= 0 and hi <= SIDE and hi - lo < SIDE - 1, r
    assert lo == pytest.approx(200, abs=3) and hi == pytest.approx(400, abs=3), r
