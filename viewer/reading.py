"""The reading view: the photograph beside the map, the clinician's marks, and what they hold.

The comparison the page is for: where did the model find its evidence, and does that
match the findings the clinician sees? Numbers come from core (``core.views`` for the
map shown, ``core.marks`` for the marks, ``core.regions`` for the regions); this module
lays them out, turns figure selections into marks and keeps the pictures it encoded.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import core
from core import pictures as draw
from core import views
from core.fundus.detail import detail_image, detail_side
from core.marks import Mark, MarkStats, measure_marks, union_mask, unmarked_regions
from core.regions import block_sums, block_threshold, pooled

from . import pictures as pic
from . import state
from .controls import PIXELS, DisplayChoice, ExplainChoice, ReadingChoice, grade_label, is_lesion_view
from .reading_figure import CONFIG, Pictures, data_uri, reading_figure, selection_marks
from .state import Result

HOVER_BLOCK = 8  # pixel view: the hover tells the exact sum over 8x8 input pixels (80x80 cells: light to redraw)


def fmt(v: float) -> str:
    text = f"{v:+.2f}"
    return "0.00" if text in ("+0.00", "-0.00") else text


# ------------------------------------------------------------------ what is shown
def _level(res: Result, grade: int, layer: int | str, evidence: str) -> tuple[np.ndarray, str]:
    """core's map of the level, made once per rerun-independent key (the figure, the threshold,
    the line under the figure and the export all ask for it)."""
    return res.picture(("level", grade, layer, evidence), lambda: views.level_map(res.exp, grade, layer, evidence))  # type: ignore[arg-type]


def shown_map(res: Result, grade: int, layer: int | str, rc: ReadingChoice) -> tuple[np.ndarray, str]:
    """The map of the view (the pixels' or the regions'), and its name."""
    values, name = _level(res, grade, layer, rc.evidence)
    if rc.view == PIXELS:
        return values, name
    pooled_values = res.picture(("pooled", grade, layer, rc.evidence, rc.view), lambda: pooled(values, rc.view))
    lens = "lesion view: " if is_lesion_view(layer, rc.view, rc.evidence) else ""
    return pooled_values, f"{lens}{name}, summed over {rc.view}×{rc.view} px regions"


def marked_pixels(res: Result, grade: int, layer: int | str, rc: ReadingChoice, k: float) -> np.ndarray:
    """The k-sigma mask of the view: pixels, or whole regions when the view pools."""

    def make() -> np.ndarray:
        values, _ = _level(res, grade, layer, rc.evidence)
        fov = res.exp.fundus.fov
        mask = core.threshold_mask(values, fov, k) if rc.view == PIXELS else block_threshold(values, fov, k, rc.view)
        mask.setflags(write=False)
        return mask

    return res.picture(("marked", grade, layer, rc.view, rc.evidence, k), make)


def _retina_uri(res: Result, rc: ReadingChoice) -> str:
    exp = res.exp
    if rc.detail == "input":
        return res.picture(("retina", "input"), lambda: data_uri(draw.jpeg_bytes(exp.fundus.image), "image/jpeg"))

    def make() -> str:
        src = state.source()
        if src is None:
            return data_uri(draw.jpeg_bytes(exp.fundus.image), "image/jpeg")
        try:
            image = detail_image(src if isinstance(src, bytes) else str(src), exp.fundus, detail_side(exp.fundus))
        except core.FundusReadError:
            image = exp.fundus.image
        return data_uri(draw.jpeg_bytes(image, quality=88), "image/jpeg")

    return res.picture(("retina", "full", res.key), make)


def pictures(res: Result, choice: ExplainChoice, disp: DisplayChoice, rc: ReadingChoice) -> Pictures:
    """The figure's pictures for these choices, each encoded once (walking back costs nothing)."""
    exp, g, layer = res.exp, choice.grade, choice.layer
    look = (disp.log, disp.positive_only, disp.overlay, round(disp.opacity, 2))

    def map_parts() -> tuple[str, str, np.ndarray, int, str]:
        values, name = shown_map(res, g, layer, rc)
        if rc.view == PIXELS:
            scale = draw.make_scale(values, log=disp.log, positive_only=disp.positive_only, region=exp.fundus.fov)
            hover_block, label = HOVER_BLOCK, "sum"
            hover = block_sums(values, HOVER_BLOCK)
        else:
            hover = block_sums(_level(res, g, layer, rc.evidence)[0], rc.view)  # each region's sum
            inside = block_sums(exp.fundus.fov.astype(np.float64), rc.view) >= 0.5 * rc.view * rc.view
            scale = draw.make_scale(hover, log=disp.log, positive_only=disp.positive_only, region=inside, percentile=99.0)
            hover_block, label = rc.view, "region's net contribution"
        # One picture for the map panel, the faint colour retina under the map composed here:
        # a JPEG a seventh of the RGBA PNG the browser would otherwise decode on every redraw.
        retina = exp.fundus.image if disp.overlay else None
        picture = pic.map_picture(values, scale, retina, disp.opacity, fov=None if disp.overlay else exp.fundus.fov)
        bar_label = "score per pixel" if rc.view == PIXELS else f"score per {rc.view} x {rc.view} px region"
        bar = draw.colourbar(scale, 900, bar_label, font_px=26)
        return (data_uri(draw.jpeg_bytes(picture), "image/jpeg"), data_uri(pic.png_fast(bar), "image/png"),
                hover.astype(np.float32), hover_block, f"{label} of the {name.split(',')[0]}")

    map_uri, bar_uri, hover, block, label = res.picture(("reading_map", g, layer, rc.view, rc.evidence, look), map_parts)
    marked = None
    if rc.show_marked:
        mask = marked_pixels(res, g, layer, rc, disp.k)
        marked = res.picture(("marked_png", g, layer, rc.view, rc.evidence, disp.k),
                             lambda: data_uri(pic.png_fast(pic.mask_rgba(mask, outline=0 if rc.view == PIXELS else 1)), "image/png"))
    return Pictures(retina=_retina_uri(res, rc), map=map_uri, marked=marked, colourbar=bar_uri,
                    hover=hover, hover_block=block, hover_label=label)


# ------------------------------------------------------------------ the view
def draw_reading(res: Result, choice: ExplainChoice, disp: DisplayChoice, rc: ReadingChoice) -> None:
    """The figure, its one-line reading, and the marks' table under it."""
    g = choice.grade
    state.take_selection(res, rc.lesion, selection_marks)
    marks = state.marks(res)
    _, name = shown_map(res, g, choice.layer, rc)
    p = pictures(res, choice, disp, rc)
    zoom = st.session_state.get(state.ZOOM)
    left_title = ("Photograph, full resolution" if rc.detail == "full" else "Model input (640 px)") + (
        f" · cyan: above k = {disp.k:.1f}" if rc.show_marked else "")
    fig = reading_figure(p, marks, tool=rc.tool, zoom=zoom, revision=res.key,
                         titles=(left_title, f"{name[0].upper()}{name[1:]} · grade {g}"))
    st.plotly_chart(fig, key=state.CHART, on_select="rerun", selection_mode=("box", "lasso", "points"),
                    config=CONFIG, width="stretch")
    draw_reading_line(res, choice, rc, disp.k)
    draw_marks(res, choice, rc, disp.k, marks)


LESION_VIEW_NOTE = (
    f"*This is the lesion view ({views.LESION_VIEW.label}): of the views that add up to the score, the one that "
    f"lay best on hand-drawn lesions in {views.LESION_VIEW_MEASURED['photographs']} IDRiD photographs. Its strongest region lay within "
    f"5 px of a lesion on {views.LESION_VIEW_MEASURED['pointing']:.0%} of them ({views.LESION_VIEW_MEASURED['paper_pointing']:.0%} for the paper's total map), "
    f"and it ranks lesion pixels above the rest with an AUC of {views.LESION_VIEW_MEASURED['auc']:.2f} ({views.LESION_VIEW_MEASURED['paper_auc']:.2f}; 0.5 is "
    "chance). It still misses many lesions and marks places that are none: compare it with what you see, not "
    "the other way round.*"
)


def draw_reading_line(res: Result, choice: ExplainChoice, rc: ReadingChoice, k: float) -> None:
    """How much of the score is the photograph, and what the cyan pixels are."""
    exp, g = res.exp, choice.grade
    sh = views.shares(exp, g)
    mask = marked_pixels(res, g, choice.layer, rc, k)
    total = exp.total(g)
    in_mask = float(total[mask].sum(dtype=np.float64))
    pixels_in_mask = float(exp.input_map[g][mask].sum(dtype=np.float64))
    what = f"{int(mask.sum()):,} pixels" if rc.view == PIXELS else f"{int(mask.sum()):,} pixels in {rc.view} px regions"
    st.markdown(
        f"**Grade {grade_label(g)}: score {sh.score:.1f} = pixel evidence {sh.pixels:+.1f} + constants "
        f"{sh.constants:+.1f} + bias {sh.bias:+.1f}.** By size, **{sh.pixel_share:.0%}** of these parts comes from this "
        f"photograph's pixels and {1 - sh.pixel_share:.0%} from the constants and the bias (terms that are the same for "
        "every photograph, spread over receptive fields). "
        f"The cyan marks ({what}) hold {fmt(in_mask)} of the score (the total map at the pixels), {fmt(pixels_in_mask)} "
        "of it pixel evidence; "
        "red and blue pixels nearby cancel much of it."
        + (f" {LESION_VIEW_NOTE}" if is_lesion_view(choice.layer, rc.view, rc.evidence) else "")
    )


def draw_marks(res: Result, choice: ExplainChoice, rc: ReadingChoice, k: float, marks: list[Mark]) -> None:
    exp, g = res.exp, choice.grade
    left, right = st.columns([1.55, 1], gap="large")
    mask = marked_pixels(res, g, choice.layer, rc, k)
    with left:
        st.markdown(f"**Your marks** · what grade {grade_label(g)}'s score owes to them (total map at the pixels)")
        if not marks:
            st.caption("No marks yet. Choose Box, Lasso or Point above the figure and the type of the finding, then "
                       "draw on either picture: each mark's exact share of the score appears here. Points snap to a 4 px grid "
                       "of the model input.")
        else:
            per, union = measure_marks(exp, g, marks, mask)
            st.markdown(marks_table(marks, per, union))
            b1, b2, _ = st.columns([1, 1, 2])
            b1.button("Undo last mark", key="undo_mark", icon=":material/undo:", on_click=_undo, args=(res,),
                      width="stretch")
            b2.button("Clear marks", key="clear_marks", icon=":material/delete:", on_click=_clear, args=(res,),
                      width="stretch")
    with right:
        st.markdown("**Where the model relied on what you did not mark**")
        exclude = union_mask(marks) if marks else np.zeros(exp.fundus.fov.shape, bool)
        regions = unmarked_regions(exp, g, exclude)
        if not regions:
            st.caption("No region outside your marks adds to this grade's score.")
        for i, r in enumerate(regions):
            c1, c2 = st.columns([3, 1], vertical_alignment="center")
            x0, y0, x1, y1 = r.box
            c1.markdown(f"{i + 1}. {fmt(r.contribution)} ({fmt(r.image_evidence)} pixel evidence) · input "
                        f"x {x0}–{x1}, y {y0}–{y1}")
            c2.button("Zoom", key=f"zoom_region_{i}", icon=":material/zoom_in:", on_click=_zoom_to,
                      args=(r.box,), width="stretch")
        if st.session_state.get(state.ZOOM):
            st.button("Whole retina", key="zoom_reset", icon=":material/zoom_out_map:", on_click=_zoom_to, args=(None,))
        st.caption("The 32×32 px blocks that add most to the score, counting only their pixels outside your marks.")


def session_record(res: Result, choice: ExplainChoice, disp: DisplayChoice, rc: ReadingChoice,
                   marks: list[Mark]) -> dict:
    """What scores.json adds to core's summary: the clinician's grade, their ``marks`` with what the
    explained grade owes to each, and the view's settings (so the file says what was looked at).
    It reads no session state, so a download may make it after the page's run."""
    exp, g = res.exp, choice.grade
    mask = marked_pixels(res, g, choice.layer, rc, disp.k)
    per, union = measure_marks(exp, g, marks, mask) if marks else ([], None)
    return {
        "clinician": {"grade": choice.own_grade,
                      "grade_name": None if choice.own_grade is None else core.GRADE_NAMES[choice.own_grade]},
        "marks": {
            "explained_grade": g,
            "coordinates": "model input pixels (640 x 640; x right, y down); fundus.crop_box maps them to the photograph",
            "items": [m.as_dict() | {"stats": s.as_dict()} for m, s in zip(marks, per, strict=True)],
            "union": union.as_dict() if union is not None else None,
        },
        "view": {"grade": g, "layer": choice.layer, "k": disp.k, "map": shown_map(res, g, choice.layer, rc)[1],
                 "regions_px": None if rc.view == PIXELS else rc.view, "evidence": rc.evidence, "log": disp.log,
                 "positive_only": disp.positive_only, "marked_pixels": int(mask.sum())},
    }


def verdict(contribution: float) -> str:
    """For or against the explained grade, in words: a share of a negative score would mislead
    (-1.5 of a score of -17.8 reads "8 %" though it counts against the grade)."""
    if fmt(contribution) == "0.00":
        return "none"
    return "for the grade" if contribution > 0 else "against"


def marks_table(marks: list[Mark], per: list[MarkStats], union: MarkStats) -> str:
    head = ("| # | finding | contribution | pixel evidence | constants | net | k-σ pixels inside |\n"
            "|---|---|---:|---:|---:|---:|---:|")
    rows = [f"| {i} | {m.lesion} ({m.kind}) | {fmt(s.contribution)} | {fmt(s.image_evidence)} | {fmt(s.constants)} | "
            f"{verdict(s.contribution)} | {s.marked_share:.1%} |" for i, (m, s) in enumerate(zip(marks, per, strict=True), 1)]
    rows.append(f"| **all** | union of your marks | **{fmt(union.contribution)}** | {fmt(union.image_evidence)} | "
                f"{fmt(union.constants)} | {verdict(union.contribution)} | {union.marked_share:.1%} |")
    return "\n".join([head, *rows])


def _undo(res: Result) -> None:
    held = state.marks(res)
    if held:
        held.pop()


def _clear(res: Result) -> None:
    state.marks(res).clear()


def _zoom_to(box: tuple[int, int, int, int] | None) -> None:
    if box is None:
        st.session_state.pop(state.ZOOM, None)
        return
    x0, y0, x1, y1 = box
    pad = max(x1 - x0, y1 - y0)  # the region with as much again around it
    st.session_state[state.ZOOM] = (max(0, x0 - pad), max(0, y0 - pad), min(core.INPUT_SIZE, x1 + pad), min(core.INPUT_SIZE, y1 + pad))


__all__ = ["draw_reading", "marked_pixels", "pictures", "session_record", "shown_map"]
