"""The reading view: its figure as data, and the page driven headless through AppTest.

The figure (``viewer.reading_figure``) is plain Plotly data, tested without a page. On the
page every number the reading view shows is compared with what ``core`` computes on the
same bytes: the k-sigma counts of every view and evidence, the marks' exact contributions,
the strongest regions outside them, and what scores.json carries.

A clinician's mark is a selection in the figure. AppTest does not model Plotly charts
(they are ``UnknownElement``s) and a chart's selection cannot be written through
``session_state`` (Streamlit forbids it for selection widgets), so ``select`` sends what
the browser sends: the chart's widget state, a JSON selection under the chart's element id,
with the other widgets' values, through AppTest's own run (``_tree.get_widget_states`` and
``_run``, private but the very path ``AppTest.run`` takes).
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import core
from core import pictures as draw
from core import views
from core.fundus.detail import detail_side
from core.marks import Mark, measure_marks, union_mask, unmarked_regions
from core.regions import block_sums, block_threshold
from tests.viewer.app_helpers import catch_downloads, find, texts
from viewer import pictures as vpic
from viewer import reading, state
from viewer.reading_figure import DRAGMODE, POINT_GRID, TOOLS, Pictures, reading_figure, selection_marks

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "viewer" / "app.py"
RETINA = REPO / "tests" / "data" / "retina.jpg"
IDRID = pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the page's wiring, one model is enough

fmt = reading.fmt


# ============================================================================ the figure, as data
def _uri(tag: str) -> str:
    return f"data:image/png;base64,{tag}"


def pictures(marked: bool = False, block: int = 4) -> Pictures:
    n = 640 // block
    return Pictures(retina=_uri("RETINA"), map=_uri("MAP"), marked=_uri("MARKED") if marked else None,
                    colourbar=_uri("BAR"), hover=np.arange(n * n, dtype=np.float32).reshape(n, n), hover_block=block,
                    hover_label="sum of the total map")


MARKS = [
    Mark("box", "haemorrhage", ((390, 190), (420, 240))),
    Mark("lasso", "hard exudate", ((100, 300), (180, 280), (200, 360), (120, 390))),
    Mark("point", "microaneurysm", ((410.3, 215.8),)),
]


def test_a_box_selection_is_a_box_mark_in_either_corner_order():
    a = selection_marks({"box": [{"xref": "x", "yref": "y", "x": [300, 340], "y": [280, 320]}]}, "haemorrhage")
    b = selection_marks({"box": [{"xref": "x2", "yref": "y2", "x": [340, 300], "y": [320, 280]}]}, "haemorrhage")
    assert [m.kind for m in a] == [m.kind for m in b] == ["box"]
    assert a[0].lesion == "haemorrhage" and a[0].points == ((300.0, 280.0), (340.0, 320.0))
    assert b[0].points == ((340.0, 320.0), (300.0, 280.0))
    np.testing.assert_array_equal(a[0].mask(), b[0].mask())
    assert int(a[0].mask().sum()) == 40 * 40 and a[0].bounds() == (300, 280, 340, 320)


def test_a_lasso_selection_is_a_lasso_mark():
    xs, ys = [100.5, 180, 200, 120], [300, 280.25, 360, 390]
    (m,) = selection_marks({"lasso": [{"xref": "x", "yref": "y", "x": xs, "y": ys}]}, "hard exudate")
    assert m.kind == "lasso" and m.lesion == "hard exudate"
    assert m.points == tuple(zip(map(float, xs), map(float, ys), strict=True))


def test_several_shapes_in_one_selection_are_several_marks():
    sel = {"box": [{"x": [0, 10], "y": [0, 10]}, {"x": [20, 30], "y": [20, 30]}],
           "lasso": [{"x": [1, 5, 3], "y": [1, 1, 6]}], "points": [{"x": 7, "y": 7}]}
    assert [m.kind for m in selection_marks(sel, "other")] == ["box", "box", "lasso"]


def test_a_point_is_taken_only_without_a_box_or_a_lasso():
    click = {"points": [{"x": 402.0, "y": 218.0, "curve_number": 2, "point_index": 7}], "box": [], "lasso": []}
    (m,) = selection_marks(click, "microaneurysm")
    assert m.kind == "point" and m.points == ((402.0, 218.0),) and m.lesion == "microaneurysm"
    # a box selection also lists the points inside it: the box is the mark
    with_box = dict(click, box=[{"x": [390, 420], "y": [200, 230]}])
    assert [m.kind for m in selection_marks(with_box, "microaneurysm")] == ["box"]
    with_lasso = dict(click, lasso=[{"x": [390, 420, 400], "y": [200, 200, 230]}])
    assert [m.kind for m in selection_marks(with_lasso, "microaneurysm")] == ["lasso"]
    # only the first of several points
    two = {"points": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}
    assert [m.points for m in selection_marks(two, "other")] == [((1.0, 2.0),)]


@pytest.mark.parametrize("selection", [
    {},
    {"points": [], "point_indices": [], "box": [], "lasso": []},
    {"box": [{"x": [300, 300.2], "y": [280, 320]}]},  # no width
    {"box": [{"x": [300, 340], "y": [280, 280.4]}]},  # no height
    {"box": [{"x": [300], "y": [280, 320]}]},  # one corner
    {"box": [{"xref": "x"}]},
    {"lasso": [{"x": [1, 5], "y": [1, 6]}]},  # two vertices
    {"lasso": [{"x": [], "y": []}]},
    {"points": [{"curve_number": 0}]},  # a point without its position
], ids=["empty", "nothing-selected", "box-no-width", "box-no-height", "box-one-corner", "box-no-geometry",
        "lasso-two-vertices", "lasso-empty", "point-no-position"])
def test_degenerate_selections_are_dropped(selection):
    assert selection_marks(selection, "other") == []


def test_a_degenerate_box_beside_a_good_one_is_dropped_alone():
    sel = {"box": [{"x": [300, 300], "y": [280, 320]}, {"x": [10, 30], "y": [40, 20]}]}
    (m,) = selection_marks(sel, "other")
    assert m.points == ((10.0, 40.0), (30.0, 20.0))


def test_a_straight_lasso_is_dropped_and_a_figure_eight_kept():
    """A straight drag has no area (dropped, never a traceback); a figure eight's signed area is 0
    but it encloses two loops, which the even-odd fill keeps."""
    assert selection_marks({"lasso": [{"x": [10, 20, 30], "y": [50, 50, 50]}]}, "other") == []
    (eight,) = selection_marks({"lasso": [{"x": [0, 40, 40, 0], "y": [0, 40, 0, 40]}]}, "other")
    assert eight.mask().sum() > 0


def test_the_two_subplots_are_linked():
    fig = reading_figure(pictures())
    lay = fig.layout
    assert lay.xaxis2.matches == "x" and lay.yaxis2.matches == "y"
    # square pixels: the left y axis is anchored to its x axis, the right one follows it through `matches`
    # (Plotly ignores a scaleanchor beside a matches constraint, and warns)
    assert lay.yaxis.scaleanchor == "x" and lay.yaxis2.scaleanchor is None
    assert lay.xaxis.domain[1] < lay.xaxis2.domain[0]  # side by side, not overlapping
    # the hover surfaces: one per subplot, on its axes, with the blocks' exact sums
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert [(t.xaxis, t.yaxis) for t in heat] == [("x", "y"), ("x2", "y2")]
    for t in heat:
        np.testing.assert_array_equal(np.asarray(t.z), pictures().hover)
        assert (t.x0, t.dx, t.y0, t.dy) == (2, 4, 2, 4)  # block centres in input pixels


@pytest.mark.parametrize("marked", [False, True])
def test_the_pictures_lie_on_their_subplots(marked):
    p = pictures(marked=marked)
    images = reading_figure(p).layout.images
    where = {im.source: (im.xref, im.yref) for im in images}
    expected = {p.retina: ("x", "y"), p.map: ("x2", "y2"), p.colourbar: ("paper", "paper")}
    if marked:
        expected[p.marked] = ("x", "y")  # the k-sigma pixels over the photograph
    assert where == expected and len(images) == len(expected)
    for im in images:
        if im.xref != "paper":  # each stretched over the whole 640 x 640 square, y downwards
            assert (im.x, im.y, im.sizex, im.sizey, im.sizing) == (0, 0, 640, 640, "stretch")
            assert (im.xanchor, im.yanchor) == ("left", "top")
    # the photograph and the map panel are opaque, under the marks and the k-sigma pixels
    assert {im.layer for im in images if im.source in (p.retina, p.map)} == {"below"}


def test_one_shape_per_mark_on_each_subplot():
    assert reading_figure(pictures()).layout.shapes == ()
    shapes = reading_figure(pictures(), MARKS).layout.shapes
    assert len(shapes) == 2 * len(MARKS)
    for axis in ("x", "x2"):
        mine = [s for s in shapes if s.xref == axis]
        assert [s.type for s in mine] == ["rect", "path", "circle"]
        assert all(s.yref == axis.replace("x", "y") for s in mine)
        rect, path, circle = mine
        assert (rect.x0, rect.y0, rect.x1, rect.y1) == (390, 190, 420, 240)
        assert path.path.startswith("M 100.00,300.00 L ") and path.path.endswith(" Z")
        assert (circle.x0 + circle.x1) / 2 == pytest.approx(410.3) and (circle.y0 + circle.y1) / 2 == pytest.approx(215.8)
    labels = [a.text for a in reading_figure(pictures(), MARKS).layout.annotations if a.text.startswith("#")]
    assert labels == ["#1", "#2", "#3"] * 2


@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_sets_the_mouse_and_only_point_mode_has_the_grid(tool):
    fig = reading_figure(pictures(), tool=tool)
    assert fig.layout.dragmode == DRAGMODE[tool]
    assert fig.layout.dragmode == {"zoom": "zoom", "pan": "pan", "box": "select", "lasso": "lasso", "point": "pan"}[tool]
    grid = [t for t in fig.data if t.type == "scattergl"]
    if tool == "point":  # a grid of click targets on each picture
        assert [(g.xaxis, g.yaxis) for g in grid] == [("x", "y"), ("x2", "y2")]
        for g in grid:
            assert len(g.x) == (640 // POINT_GRID) ** 2 and min(g.x) == POINT_GRID / 2 and max(g.y) == 640 - POINT_GRID / 2
        assert fig.layout.clickmode == "event+select"
    else:
        assert grid == []
        assert fig.layout.clickmode == "event"


def test_a_zoom_sets_both_subplots_ranges_y_downwards():
    lay = reading_figure(pictures()).layout
    assert tuple(lay.xaxis.range) == (0, 640) and tuple(lay.yaxis.range) == (640, 0)
    lay = reading_figure(pictures(), zoom=(10, 20, 110, 220)).layout
    assert tuple(lay.xaxis.range) == tuple(lay.xaxis2.range) == (10, 110)
    assert tuple(lay.yaxis.range) == tuple(lay.yaxis2.range) == (220, 20)
    # a new zoom (or photograph) is a new ui revision: the browser takes the ranges given
    assert reading_figure(pictures(), zoom=(0, 0, 64, 64)).layout.uirevision != lay.uirevision


@pytest.mark.parametrize("tool", ["select", "Zoom", "", "brush"])
def test_an_unknown_tool_raises(tool):
    with pytest.raises(ValueError, match="tool must be one of"):
        reading_figure(pictures(), tool=tool)


# ============================================================================ the page
def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart(at: AppTest):
    hits = [c for c in at.get("plotly_chart") if c.key == state.CHART]
    assert len(hits) == 1, [c.key for c in at.get("plotly_chart")]
    return hits[0]


def spec(at: AppTest) -> dict:
    return json.loads(chart(at).proto.spec)


def select(at: AppTest, **selection) -> AppTest:
    """What the browser sends when the user draws on the reading figure (see the module's docstring)."""
    ws = at._tree.get_widget_states()
    w = ws.widgets.add()
    w.id = chart(at).proto.id
    w.string_value = json.dumps({"selection": {"points": [], "point_indices": [], "box": [], "lasso": [], **selection}})
    at._run(ws)
    assert not at.exception, [e.value for e in at.exception]
    return at


def box(x0, y0, x1, y1, axis: str = "") -> dict:
    return {"xref": f"x{axis}", "yref": f"y{axis}", "x": [x0, x1], "y": [y0, y1]}


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    at.file_uploader(key="upload").set_value((name, data, mime))
    return run(at)


def reading_line(at: AppTest) -> tuple[int, int | None]:
    """The reading line's k-sigma count, and the regions' side it names (None: pixels)."""
    m = re.search(r"The cyan marks \(([\d,]+) pixels(?: in (\d+) px regions)?\) hold", find(at, "**Grade "))
    assert m, find(at, "**Grade ")
    return int(m.group(1).replace(",", "")), None if m.group(2) is None else int(m.group(2))


def threshold_count(at: AppTest) -> int:
    m = re.search(r"\*\*([\d,]+) pixels\*\* are above", "\n".join(texts(at)))
    assert m, "the threshold section's count is not shown"
    return int(m.group(1).replace(",", ""))


def marks_rows(at: AppTest) -> list[list[str]]:
    tables = [t for t in texts(at) if t.startswith("| # | finding |")]
    if not tables:
        return []
    (table,) = tables
    return [[c.strip().strip("*") for c in line.strip().strip("|").split("|")] for line in table.splitlines()[2:]]


def regions_listed(at: AppTest) -> list[str]:
    return [t for t in texts(at) if re.match(r"\d+\. [+-]?\d", t) and "pixel evidence) · input x" in t]


def no_marks(at: AppTest) -> bool:
    return any(c.value.startswith("No marks yet.") for c in at.caption)


def array(value) -> np.ndarray:
    """An array of a figure's JSON: a list, or Plotly's typed array ({"dtype", "bdata", "shape"})."""
    if isinstance(value, dict):
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return out.reshape([int(v) for v in str(value.get("shape", out.size)).split(",")])
    return np.asarray(value)


def decoded(uri: str) -> np.ndarray:
    head, data = uri.split(",", 1)
    assert head.startswith("data:image/") and head.endswith(";base64")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def layout_images(at: AppTest) -> dict[str, dict]:
    """The figure's pictures by role: the first on x is the photograph, the second (if any) the k-sigma pixels."""
    ims = spec(at)["layout"]["images"]
    on_x = [im for im in ims if im["xref"] == "x"]
    on_x2 = [im for im in ims if im["xref"] == "x2"]
    out = {"retina": on_x[0], "map": on_x2[0]}
    if len(on_x) > 1:
        out["marked"] = on_x[1]
    assert len(on_x) <= 2 and len(on_x2) == 1 and len(ims) == len(out) + 1  # + the colour bar
    return out


@pytest.fixture
def downloads(monkeypatch) -> dict:
    """The page's deferred downloads by file name, each the callable the browser's click would run."""
    return catch_downloads(monkeypatch)


@pytest.fixture
def page(page_model, retina_bytes, downloads) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    run(at)
    return upload(at, RETINA.name, retina_bytes)


def flipped_photograph() -> bytes:
    buf = io.BytesIO()
    Image.open(RETINA).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------- views and evidence
def test_regions_and_pixel_evidence_views_count_what_core_counts(page, core_result):
    exp = core_result
    fov = exp.fundus.fov
    g = exp.grade
    assert page.segmented_control(key="view").value == 1 and page.segmented_control(key="evidence").value == "total"
    n, side = reading_line(page)
    assert side is None and n == int(core.threshold_mask(exp.total()[g], fov, 2.0).sum()) == threshold_count(page)

    page.segmented_control(key="view").set_value(16)
    run(page)
    n, side = reading_line(page)
    expected = int(block_threshold(views.level_map(exp, g, "input", "total")[0], fov, 2.0, 16).sum())
    assert side == 16 and n == expected == threshold_count(page) and expected > 0
    assert "in 16 px regions" in find(page, "**Grade ")
    hover = array(spec(page)["data"][0]["z"]).astype(np.float64)  # the exact region sums under the pointer
    assert hover.shape == (40, 40)
    np.testing.assert_allclose(hover, block_sums(exp.total()[g], 16), rtol=1e-4, atol=1e-4)

    other = (g + 2) % 5
    page.selectbox(key="grade").set_value(other)
    page.select_slider(key="layer").set_value(8)
    page.slider(key="k").set_value(3.0)
    run(page)
    expected = int(block_threshold(views.level_map(exp, other, 8, "total")[0], fov, 3.0, 16).sum())
    assert reading_line(page) == (expected, 16) and threshold_count(page) == expected

    page.segmented_control(key="evidence").set_value("pixels")
    page.segmented_control(key="view").set_value(1)
    page.select_slider(key="layer").set_value("input")
    run(page)
    expected = int(core.threshold_mask(exp.input_map[other], fov, 3.0).sum())
    assert reading_line(page) == (expected, None) and threshold_count(page) == expected and expected > 0
    assert "input map (pixel evidence only)" in find(page, "##### Pixels above k = 3.0")

    page.segmented_control(key="view").set_value(4)
    page.select_slider(key="layer").set_value(5)
    run(page)
    values = exp.in_input_space(5, "input_dependent")[other]
    expected = int(block_threshold(values, fov, 3.0, 4).sum())
    assert reading_line(page) == (expected, 4) and threshold_count(page) == expected

    # the lesion view: the button sets layer, view and evidence to core's choice, and the page says what it is
    assert views.LESION_VIEW.levels == (8,) and views.LESION_VIEW.pool == 4
    page.button(key="lesion_view").click()
    run(page)
    assert page.select_slider(key="layer").value == 8 and page.segmented_control(key="view").value == 4
    assert page.segmented_control(key="evidence").value == "total"
    expected = int(block_threshold(views.level_map(exp, other, 8, "total")[0], fov, 3.0, 4).sum())
    assert reading_line(page) == (expected, 4) and threshold_count(page) == expected
    assert spec(page)["layout"]["annotations"][1]["text"].startswith("Lesion view: total map at layer 8")
    assert "This is the lesion view" in find(page, "**Grade ")
    page.select_slider(key="layer").set_value(7)
    run(page)
    assert "This is the lesion view" not in find(page, "**Grade ")


@IDRID
def test_every_tool_sets_the_figures_mouse(page):
    for tool in ("pan", "box", "lasso", "point", "zoom"):
        page.segmented_control(key="tool").set_value(tool)
        run(page)
        fig = spec(page)
        assert fig["layout"]["dragmode"] == DRAGMODE[tool], tool
        assert any(t["type"] == "scattergl" for t in fig["data"]) == (tool == "point"), tool


# ---------------------------------------------------------------------------- the popover's options
@IDRID
def test_display_options_change_the_figure(page, core_result):
    exp = core_result
    g = exp.grade
    values, fov = exp.total()[g], exp.fundus.fov
    ims = layout_images(page)
    # defaults: the photograph at full resolution, the k-sigma pixels on it, the faint retina under the map
    assert page.toggle(key="show_marked").value and page.radio(key="detail").value == "full"
    assert "marked" in ims
    full = decoded(ims["retina"]["source"])
    assert full.shape == (detail_side(exp.fundus), detail_side(exp.fundus), 3)
    marked = decoded(ims["marked"]["source"])
    np.testing.assert_array_equal(marked[..., 3] > 0, core.threshold_mask(values, fov, 2.0))
    left_title = spec(page)["layout"]["annotations"][0]["text"]
    assert left_title.startswith("Photograph, full resolution") and "cyan: above k = 2.0" in left_title

    def expected_map(*, log=False, positive_only=False, overlay=True, opacity=0.85) -> np.ndarray:
        scale = draw.make_scale(values, log=log, positive_only=positive_only, region=fov)
        return vpic.map_picture(values, scale, exp.fundus.image if overlay else None, opacity,
                                fov=None if overlay else fov).astype(np.int16)

    def map_error(**look) -> float:
        shown = decoded(layout_images(page)["map"]["source"]).astype(np.int16)
        return float(np.abs(shown - expected_map(**look)).mean())

    # the map panel is the map over the faint colour retina, as the viewer's picture functions draw it
    assert map_error() < 2.0 and map_error(overlay=False) > 10  # (JPEG: nearly; and not the map on white)

    page.toggle(key="show_marked").set_value(False)
    page.radio(key="detail").set_value("input")
    page.toggle(key="overlay").set_value(False)
    run(page)
    ims = layout_images(page)
    assert "marked" not in ims
    small = decoded(ims["retina"]["source"])
    assert small.shape == (640, 640, 3)  # exactly the pixels the model saw (JPEG: nearly)
    assert np.abs(small.astype(np.int16) - exp.fundus.image.astype(np.int16)).mean() < 3
    left_title = spec(page)["layout"]["annotations"][0]["text"]
    assert left_title == "Model input (640 px)"
    assert map_error(overlay=False) < 2.0  # the map on white, grey outside the field of view

    page.toggle(key="positive_only").set_value(True)
    page.slider(key="opacity").set_value(0.4)
    run(page)
    assert map_error(overlay=False, positive_only=True, opacity=0.4) < 2.0
    assert map_error(overlay=False) > 2 * map_error(overlay=False, positive_only=True, opacity=0.4)

    page.toggle(key="positive_only").set_value(False)
    page.slider(key="opacity").set_value(0.85)
    page.toggle(key="log").set_value(True)
    run(page)
    assert map_error(overlay=False, log=True) < 5.0 and map_error(overlay=False, log=True) < 0.5 * map_error(overlay=False)


# ---------------------------------------------------------------------------- marks
def test_marks_table_shows_cores_exact_contributions(page, core_result):
    exp = core_result
    g = exp.grade
    fov = exp.fundus.fov
    assert no_marks(page) and marks_rows(page) == []
    page.segmented_control(key="tool").set_value("box")
    page.selectbox(key="lesion").set_value("haemorrhage")
    run(page)
    select(page, box=[box(340, 320, 300, 280)])  # drawn from the bottom right corner
    lasso = Mark("lasso", "hard exudate", ((100, 300), (180, 280), (200, 360), (120, 390)))
    page.segmented_control(key="tool").set_value("lasso")
    page.selectbox(key="lesion").set_value("hard exudate")
    run(page)
    select(page, lasso=[{"xref": "x2", "yref": "y2", "x": [100, 180, 200, 120], "y": [300, 280, 360, 390]}])
    page.segmented_control(key="tool").set_value("point")
    page.selectbox(key="lesion").set_value("microaneurysm")
    run(page)
    select(page, points=[{"x": 402, "y": 218, "curve_number": 2, "point_number": 5, "point_index": 5}])
    run(page)  # the selection stays in the chart's state: it is not taken twice

    box_mask = np.zeros((640, 640), bool)
    box_mask[280:320, 300:340] = True  # pixel centres inside [300, 340) x [280, 320)
    point_mask = Mark("point", "microaneurysm", ((402, 218),)).mask()
    masks = [box_mask, lasso.mask(), point_mask]
    assert all(m.any() for m in masks)

    def expected_rows(grade: int, marked: np.ndarray) -> list[list[str]]:
        total, image = exp.total()[grade], exp.input_map[grade]
        rows = []
        for label, m in zip(["1", "2", "3", "all"], [*masks, masks[0] | masks[1] | masks[2]], strict=True):
            c = float(total[m].sum(dtype=np.float64))
            p = float(image[m].sum(dtype=np.float64))
            share = int((m & marked).sum()) / int(marked.sum())
            rows.append([label, c, p, c - p, reading.verdict(c), share])
        return rows

    def check(grade: int, marked: np.ndarray) -> None:
        rows = marks_rows(page)
        assert [r[1] for r in rows] == ["haemorrhage (box)", "hard exudate (lasso)", "microaneurysm (point)",
                                        "union of your marks"]
        for shown, (label, c, p, const, net, inside) in zip(rows, expected_rows(grade, marked), strict=True):
            assert shown[0] == label
            assert shown[2:] == [fmt(c), fmt(p), fmt(const), net, f"{inside:.1%}"], (shown, label)
            assert net == ("for the grade" if c > 0 else "against")

    check(g, core.threshold_mask(exp.total()[g], fov, 2.0))
    shapes = spec(page)["layout"]["shapes"]
    assert len(shapes) == 6 and [s["type"] for s in shapes[:3]] == ["rect", "path", "circle"]

    # the marks stay; their numbers follow the grade explained and the view's k-sigma pixels
    other = (g + 1) % 5
    page.selectbox(key="grade").set_value(other)
    page.segmented_control(key="view").set_value(8)
    run(page)
    check(other, block_threshold(exp.total()[other], fov, 2.0, 8))

    page.button(key="undo_mark").click()
    run(page)
    assert [r[1] for r in marks_rows(page)] == ["haemorrhage (box)", "hard exudate (lasso)", "union of your marks"]
    assert marks_rows(page)[-1][2] == fmt(float(exp.total()[other][masks[0] | masks[1]].sum(dtype=np.float64)))
    assert len(spec(page)["layout"]["shapes"]) == 4
    page.button(key="clear_marks").click()
    run(page)
    assert marks_rows(page) == [] and no_marks(page)
    assert not spec(page)["layout"].get("shapes")
    assert not [b for b in page.button if b.key in ("undo_mark", "clear_marks")]


@IDRID
def test_zoom_buttons_of_the_regions_outside_the_marks(page, core_result):
    exp = core_result
    g = exp.grade

    def listed(exclude: np.ndarray) -> list[str]:
        return [f"{i + 1}. {fmt(r.contribution)} ({fmt(r.image_evidence)} pixel evidence) · input x {r.box[0]}–{r.box[2]}, "
                f"y {r.box[1]}–{r.box[3]}" for i, r in enumerate(unmarked_regions(exp, g, exclude))]

    nothing = np.zeros((640, 640), bool)
    assert regions_listed(page) == listed(nothing) and len(listed(nothing)) == 5
    assert "_reading_zoom" not in page.session_state
    assert not [b for b in page.button if b.key == "zoom_reset"]

    first = unmarked_regions(exp, g, nothing)[0]
    x0, y0, x1, y1 = first.box
    page.button(key="zoom_region_0").click()
    run(page)
    pad = max(x1 - x0, y1 - y0)
    zoom = (max(0, x0 - pad), max(0, y0 - pad), min(640, x1 + pad), min(640, y1 + pad))
    assert tuple(page.session_state["_reading_zoom"]) == zoom
    lay = spec(page)["layout"]
    assert lay["xaxis"]["range"] == lay["xaxis2"]["range"] == [zoom[0], zoom[2]]
    assert lay["yaxis"]["range"] == lay["yaxis2"]["range"] == [zoom[3], zoom[1]]

    # marking the strongest region takes it off the list: the next ones are core's, outside the mark
    select(page, box=[box(x0, y0, x1, y1)])
    assert regions_listed(page) == listed(union_mask([Mark("box", "microaneurysm", ((x0, y0), (x1, y1)))]))
    assert regions_listed(page)[0] != listed(nothing)[0]
    assert tuple(page.session_state["_reading_zoom"]) == zoom  # a mark does not move the view

    page.button(key="zoom_reset").click()  # "Whole retina"
    run(page)
    assert "_reading_zoom" not in page.session_state
    lay = spec(page)["layout"]
    assert lay["xaxis"]["range"] == [0, 640] and lay["yaxis"]["range"] == [640, 0]
    assert not [b for b in page.button if b.key == "zoom_reset"]


# ---------------------------------------------------------------------------- scores.json
@IDRID
def test_scores_json_carries_the_clinicians_grade_marks_and_view(page, core_result, downloads):
    exp = core_result
    g = exp.grade
    fov = exp.fundus.fov
    before = json.loads(downloads["scores.json"]())
    assert before["clinician"] == {"grade": None, "grade_name": None}
    assert before["marks"]["items"] == [] and before["marks"]["union"] is None
    assert before["scores"] == pytest.approx([float(s) for s in exp.scores])

    own = (g + 3) % 5
    page.selectbox(key="own_grade").set_value(own)
    page.select_slider(key="layer").set_value(8)
    page.slider(key="k").set_value(2.5)
    page.segmented_control(key="view").set_value(8)
    page.segmented_control(key="evidence").set_value("pixels")
    page.toggle(key="log").set_value(True)
    page.toggle(key="positive_only").set_value(True)
    page.selectbox(key="lesion").set_value("cotton-wool spot")
    run(page)
    select(page, box=[box(200.5, 150, 260, 215.5)])
    page.selectbox(key="lesion").set_value("other")
    run(page)
    select(page, points=[{"x": 330, "y": 330}])

    record = json.loads(downloads["scores.json"]())
    assert record["clinician"] == {"grade": own, "grade_name": core.GRADE_NAMES[own]}
    marks = [Mark("box", "cotton-wool spot", ((200.5, 150), (260, 215.5))), Mark("point", "other", ((330, 330),))]
    values, name = views.level_map(exp, g, 8, "pixels")
    marked = block_threshold(values, fov, 2.5, 8)
    per, union = measure_marks(exp, g, marks, marked)
    items = record["marks"]["items"]
    assert record["marks"]["explained_grade"] == g
    assert [Mark.from_dict(i) for i in items] == marks
    for item, stats in zip(items, per, strict=True):
        assert item["stats"] == pytest.approx(stats.as_dict())
    assert record["marks"]["union"] == pytest.approx(union.as_dict())
    assert "640 x 640" in record["marks"]["coordinates"]
    assert record["view"] == {"grade": g, "layer": 8, "k": 2.5, "map": f"{name}, summed over 8×8 px regions",
                              "regions_px": 8, "evidence": "pixels", "log": True, "positive_only": True,
                              "marked_pixels": int(marked.sum())}
    # core's summary is all there too
    summary = exp.summary()
    assert record["grade"] == summary["grade"] and record["image"] == json.loads(json.dumps(summary["image"]))


# ---------------------------------------------------------------------------- a new photograph
@IDRID
def test_a_new_photograph_drops_the_marks_and_a_selection_left_in_the_chart(page):
    select(page, box=[box(300, 280, 340, 320)])
    assert len(marks_rows(page)) == 2
    old_key = page.session_state["_marks"][0]

    # the new photograph arrives with a selection still in the chart: it was drawn on the old one
    page.file_uploader(key="upload").set_value(("flipped.png", flipped_photograph(), "image/png"))
    select(page, box=[box(100, 100, 200, 200)], lasso=[{"x": [10, 60, 30], "y": [10, 10, 50]}])
    key, held = page.session_state["_marks"]
    assert key != old_key and key == page.session_state["_result"].key
    assert held == [] and marks_rows(page) == [] and no_marks(page)
    assert not spec(page)["layout"].get("shapes")
    run(page)
    assert marks_rows(page) == [] and page.session_state["_marks"][1] == []

    # a selection drawn on the new photograph is taken
    select(page, box=[box(100, 100, 200, 200)])
    assert [r[1] for r in marks_rows(page)] == ["microaneurysm (box)", "union of your marks"]
    assert page.session_state["_marks"][0] == key


@IDRID
def test_a_new_photograph_opens_on_the_whole_retina(page):
    page.button(key="zoom_region_0").click()
    run(page)
    assert "_reading_zoom" in page.session_state
    upload(page, "flipped.png", flipped_photograph(), "image/png")
    lay = spec(page)["layout"]
    assert lay["xaxis"]["range"] == [0, 640] and lay["yaxis"]["range"] == [640, 0]
    assert "_reading_zoom" not in page.session_state
