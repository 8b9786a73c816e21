"""Drawing only: every number comes from the Explanation (or its conservation report).

Functions here never decide what the user chose (controls.py does) and never
compute scores (core does); they lay out text, charts and pictures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import core
from core import pictures as draw
from core import views
from core.serialise import dumps

from . import pictures as pic
from . import state
from .controls import DisplayChoice, ExplainChoice, Reference, grade_label
from .state import Result

RED = "#b2182b"
BLUE = "#2166ac"
GREY = "#8c8c8c"
CHART_CONFIG = {"displayModeBar": False}
MAP_COLUMNS = (5, 5, 3)
# One grade's rows of the conservation report: by layer (1..15), and the grade's own sums under "grade".
Rows = dict[int | str, dict[str, Any]]


# --------------------------------------------------------------------- formatting
def fmt_score(v: float) -> str:
    """Scores and sums: one decimal (never "-0.0")."""
    text = f"{v:.1f}"
    return "0.0" if text == "-0.0" else text


def fmt_probability(p: float) -> str:
    if p < 0.001:
        return "< 0.1 %"
    if p > 0.999:
        return "> 99.9 %"
    return f"{100 * p:.1f} %"


def fmt_error(e: float) -> str:
    return "0" if e == 0 else f"{e:.0e}"


def layer_title(layer: int | str) -> str:
    if layer == "input":
        return f"Input · the pixels ({core.INPUT_SIZE}×{core.INPUT_SIZE})"
    spec = core.layer(int(layer))
    if spec.kind == "linear":
        return "Layer 16 · linear: the score is the sum of 64 feature scores (w·f) plus a bias"
    kind = "3×3 convolution" if spec.kind == "conv3x3" else "2×2 convolution (classification layer)"
    return (f"Layer {spec.index} · {kind}, {spec.channels} filters · hidden grid {spec.hidden}×{spec.hidden}"
            f" · receptive field {spec.rf_paper} px")


# --------------------------------------------------------------------- header
def draw_style() -> None:
    """Less empty space above the title; the model's output for an ungradable photograph greyed."""
    st.html(
        "<style>[data-testid='stMainBlockContainer']{padding-top:2.2rem;padding-left:1.5rem;padding-right:1.5rem;}"
        ".st-key-ungradable_output, .st-key-ungradable_maps{filter:grayscale(1);opacity:0.6;}</style>"
    )


def draw_ungradable(quality: core.Assessment) -> None:
    """No grade: what is wrong with the photograph, with the measured values, and what to do."""
    first, *others = quality.reasons or ("the photograph failed the quality checks",)
    st.error(f"**Ungradable: {first}** — retake the photograph.", icon=":material/block:")
    for reason in others:
        st.markdown(f"- also: {reason}")
    st.caption("A grader would not grade this picture, so the model's grade is not shown. "
               "Each reason gives the measured value and the threshold it failed.")


def draw_title() -> None:
    st.title("Diabetic retinopathy grading, explained layer by layer", anchor=False)


def draw_research_note() -> None:
    st.markdown(
        ":orange-badge[Research tool · not a medical device] "
        "Do not use it to diagnose or to decide treatment. Maps show what the model relied on, "
        "not where lesions are."
    )


def draw_model_line(model: core.LoadedModel) -> None:
    meta = model.meta
    bits = [f"**Model:** {_cell(meta.get('title', model.name))}", _cell(core.card.headline(meta)),
            f"weights sha256 `{model.sha256[:12]}…`"]
    if model.device.type != "cpu":
        bits.append(f"running on {core.device.describe(model.device)}")
    st.markdown(" · ".join(bits))


def _cell(text: Any) -> str:
    """Text safe inside a markdown table cell (metadata may come from a user's checkpoint)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def draw_model_card(model: core.LoadedModel) -> None:
    meta: Mapping[str, Any] = model.meta
    with st.expander(f"Model card: {meta.get('title', model.name)}", expanded=False):
        rows = [
            ("Weights", f"`{model.name}`" + (" (trained on synthetic images)" if model.is_synthetic else "")),
            ("Training data", str(meta.get("training_data", "not stated"))),
        ]
        measured = core.card.evaluations(meta)
        rows += [(f"Measured on {'real photographs' if e.get('real') else 'drawings'}", core.card.statement(e, detail=True))
                 for e in measured]
        if not any(e.get("real") for e in measured):
            rows.append(("Real photographs", "never measured on real photographs"))
        rows += [
            ("Licence", str(meta.get("licence", "not stated"))),
            ("Intended use", str(meta.get("intended_use", "research"))),
            ("Parameters", f"{int(meta['num_params']):,}" if meta.get("num_params") else "?"),
            ("sha256", f"`{model.sha256}`"),
            ("Input normalisation", f"RGB / 255, mean {model.normalisation.mean}, std {model.normalisation.std}"),
        ]
        if meta.get("_source"):
            rows.append(("Source", str(meta["_source"])))
        if meta.get("_paper"):
            rows.append(("Paper", str(meta["_paper"])))
        (head, first), rest = rows[0], rows[1:]  # the first row is the table's header: no empty row above it
        st.markdown("\n".join([f"| {head} | {_cell(first)} |", "|---|---|", *[f"| **{a}** | {_cell(b)} |" for a, b in rest]]))


def draw_bundled_banner(model: core.LoadedModel) -> None:
    """The standing warning above a page that runs on a model of ours, not the published one."""
    if model.is_synthetic:
        head = ("**Demo model trained on synthetic images only: not for clinical use.** "
                "Its grades and maps only illustrate the method.")
    else:
        head = (f"**{_cell(model.meta.get('title', model.name))}: not for clinical use.** "
                "What each of its figures was measured on is on the model line below.")
    paper = core.card.statement(core.card.evaluations(core.REGISTRY["paper"].meta)[0])
    st.error(
        f"{head} The published weights, trained on 75,650 EyePACS photographs, are one download "
        f"away (verified against their sha256): {paper}.",
        icon="⚠️",
    )


def draw_no_weights() -> None:
    st.error("**No model weights are available on this machine.** The page needs the published weights.", icon="⚠️")
    st.markdown(
        "- click the button below to download them (1.6 MB, verified against their sha256, then cached), or\n"
        "- run `python -m core weights fetch paper`, or\n"
        "- set the environment variable `DR_WEIGHTS_DIR` to a folder holding "
        f"`{core.REGISTRY['paper'].filename}`, then reload this page."
    )


# --------------------------------------------------------------------- input and scores
def draw_retina(fundus: core.Fundus) -> None:
    st.markdown(f"**Model input** (trimmed, {core.INPUT_SIZE}×{core.INPUT_SIZE})")
    w, h = fundus.original_size
    st.image(draw.jpeg_bytes(fundus.image), width="stretch",
             caption=f"{fundus.source or 'image'} · original {w}×{h} px")
    for note in fundus.warnings:
        st.warning(note)


def scores_table(exp: core.Explanation) -> str:
    lines = ["| Grade | Score | Probability |", "|:---|---:|---:|"]
    for g, (s, p) in enumerate(zip(exp.scores, exp.probabilities, strict=True)):
        cells = [grade_label(g), fmt_score(float(s)), fmt_probability(float(p))]
        if g == exp.grade:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scores_chart(exp: core.Explanation) -> go.Figure:
    labels = [str(g) for g in range(len(core.GRADE_NAMES))]
    scores = [float(s) for s in exp.scores]
    fig = go.Figure(go.Bar(
        x=labels, y=scores,
        marker_color=[RED if g == exp.grade else GREY for g in range(len(scores))],
        text=[fmt_score(s) for s in scores], textposition="outside", cliponaxis=False,
        customdata=[[grade_label(g), fmt_probability(float(p))] for g, p in enumerate(exp.probabilities)],
        hovertemplate="%{customdata[0]}<br>score %{y:.1f}<br>probability %{customdata[1]}<extra></extra>",
    ))
    lo, hi = min(0.0, min(scores)), max(0.0, max(scores))
    pad = 0.18 * (hi - lo or 1.0)
    fig.update_layout(
        height=260, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
        title=dict(text="Scores before softmax: the highest wins", font=dict(size=14)),
        xaxis=dict(title="grade", type="category"),
        yaxis=dict(title="score", range=[lo - pad, hi + pad], zeroline=True, zerolinecolor="#444"),
    )
    return fig


def reference_line(reference: Reference, model_grade: int) -> str:
    """The sample's reference grade beside the model's, in words."""
    gap = model_grade - reference.grade
    verdict = ("the model agrees" if gap == 0 else
               f"the model is {abs(gap)} grade{'s' if abs(gap) > 1 else ''} {'higher' if gap > 0 else 'lower'}")
    return f"**Reference** ({reference.source}): {grade_label(reference.grade)} · {verdict}."


def draw_scores(exp: core.Explanation, model: core.LoadedModel, reference: Reference | None = None) -> None:
    if model.is_synthetic:
        st.markdown(":red-badge[:material/warning: Demo model, trained on synthetic images: not a diagnosis]")
    elif not model.is_published:
        st.markdown(":red-badge[:material/warning: Bundled research model, not the published one: not a diagnosis]")
    if not exp.gradable:
        st.markdown(":grey-badge[:material/block: Model output for an ungradable photograph: not a grade]")
    heading = "The model's grade" if exp.gradable else "The model's output (ungradable photograph)"
    st.markdown(
        f"#### {heading}: {grade_label(exp.grade)}\n"
        f"Softmax probability {fmt_probability(float(exp.probabilities[exp.grade]))}; "
        f"score {fmt_score(float(exp.scores[exp.grade]))}, "
        f"{fmt_score(float(exp.scores[exp.grade] - np.sort(exp.scores)[-2]))} above the next grade."
    )
    if reference is not None:
        st.markdown(reference_line(reference, exp.grade))
    left, right = st.columns([1.35, 1], gap="medium")
    with left:
        st.markdown(scores_table(exp))
        st.caption("Scores are the network's outputs before softmax (layer 16); the model's grade is in bold.")
    with right:
        st.plotly_chart(scores_chart(exp), key="scores_chart", config=CHART_CONFIG)


# --------------------------------------------------------------------- maps
def draw_legend() -> None:
    st.caption(
        "Score propagation (de la Torre, Valls & Puig): the grade's score is split over the network, layer by "
        "layer, down to the pixels. :red[**Red**] = evidence for the grade, :blue[**blue**] = against, white = none; "
        "each picture has its own colour scale (bar underneath). Hidden layers are shown in the photograph's "
        "coordinates, each unit spread over its receptive field."
    )


def _scale(values: np.ndarray, disp: DisplayChoice, region: np.ndarray | None) -> draw.Scale:
    return draw.make_scale(values, log=disp.log, positive_only=disp.positive_only, region=region)


def _look(disp: DisplayChoice) -> tuple:
    """The display options a map's picture depends on (a cache key)."""
    return (disp.log, disp.positive_only, disp.overlay, round(disp.opacity, 2) if disp.overlay else None)


def map_composite(exp: core.Explanation, values: np.ndarray, disp: DisplayChoice, scale: draw.Scale | None = None) -> np.ndarray:
    """The picture of an input-space map (over the retina if asked) with its colour bar."""
    scale = scale or _scale(values, disp, exp.fundus.fov)
    retina = exp.fundus.image if disp.overlay else None
    return draw.with_colourbar(pic.map_picture(values, scale, retina, disp.opacity), scale)


def hidden_composite(values: np.ndarray, disp: DisplayChoice) -> np.ndarray:
    """A hidden grid as blocks (colours made on the grid, then repeated) with its colour bar."""
    scale = _scale(values, disp, None)
    picture = pic.grid_lines(pic.nearest_up(draw.colourise(values, scale).transpose(2, 0, 1)).transpose(1, 2, 0),
                             values.shape[-1])
    # shown at about half the size of the big maps: larger tick labels
    return draw.with_colourbar(np.ascontiguousarray(picture), scale, label="score per unit", font_px=36)


def _show(jpeg: bytes, heading: str, note: str | None = None) -> None:
    st.markdown(heading)
    st.image(jpeg, width="stretch")
    if note:
        st.caption(note)


def _map_jpeg(res: Result, key: tuple, values: Callable[[], np.ndarray], disp: DisplayChoice) -> bytes:
    """A map's picture, encoded once per (map, look); ``values`` is called only when needed."""
    return res.picture(("map", *key, _look(disp)), lambda: draw.jpeg_bytes(map_composite(res.exp, values(), disp)))


def _rows(res: Result, grade: int) -> Rows:
    g = res.conservation(grade)["grades"][0]
    return {row["layer"]: row for row in g["layers"]} | {"grade": g}


def draw_features(exp: core.Explanation, grade: int, key: str, y_range: tuple[float, float] | None = None,
                  title: str | None = None, selectable: bool = False) -> int | None:
    """The 64 feature scores and the bias as bars; with ``selectable``, the feature clicked (or None)."""
    feats = [float(v) for v in exp.features[grade]]
    bias = float(exp.bias[grade])
    x = [str(j) for j in range(len(feats))] + ["bias"]
    y = feats + [bias]
    colours = [RED if v > 0 else BLUE for v in feats] + [GREY]
    fig = go.Figure(go.Bar(x=x, y=y, marker_color=colours,
                           hovertemplate="feature %{x}<br>w·f = %{y:.2f}<extra></extra>"))
    fig.update_layout(
        height=330, margin=dict(l=10, r=10, t=36, b=10), showlegend=False, bargap=0.15,
        title=dict(text=title or f"Grade {grade_label(grade)}: score of each feature (w·f) and the bias", font=dict(size=14)),
        xaxis=dict(title="feature j of layer 15 (64 filters), then the bias", type="category", tickangle=0,
                   tickmode="array", tickvals=[str(j) for j in range(0, 64, 8)] + ["bias"]),
        yaxis=dict(title="score", zeroline=True, zerolinecolor="#444", range=list(y_range) if y_range else None),
    )
    if not selectable:
        st.plotly_chart(fig, key=key, config=CHART_CONFIG)
        return None
    fig.update_layout(clickmode="event+select", dragmode=False)
    event = st.plotly_chart(fig, key=key, config=CHART_CONFIG, on_select="rerun", selection_mode="points")
    points = (event.selection.points if event else None) or []
    x = str(points[0].get("x", "")) if points else ""
    return int(x) if x.isdigit() and int(x) < len(feats) else None


def draw_feature_map(res: Result, model: core.LoadedModel, grade: int, feature: int, disp: DisplayChoice) -> None:
    """Where one feature lies: its own score propagated to the pixels (one backward pass, on demand)."""
    exp = res.exp

    def make() -> tuple[bytes, float, float]:
        with state.EXPLAIN_SLOTS:
            fm = core.feature_map(model, exp.fundus, grade, feature)
        return draw.jpeg_bytes(map_composite(exp, fm.total, disp)), fm.score, fm.relative_error

    with st.spinner(f"Propagating feature {feature} alone down to the pixels…"):
        jpeg, score, err = res.picture(("feature", grade, feature, _look(disp)), make)
    c1, c2 = st.columns([1, 1.4], gap="large")
    with c1:
        _show(jpeg, f"**Feature {feature}** for grade {grade_label(grade)} · w·f = {fmt_score(score)}")
    with c2:
        st.markdown(
            f"Feature {feature}'s own share of the score, **{fmt_score(score)}**, propagated alone from layer 16 down to "
            f"the pixels (its input map plus its constants in input space; they add up to {fmt_score(score)}, "
            f"relative error {fmt_error(err)})."
        )
        st.caption("Summed over all 64 features these maps give the grade's total map without the bias. "
                   "Click another bar to see another feature; click the same bar again to deselect it.")


# Grids of at most this many input pixels a unit (layers 1-4) are not drawn beside their maps.
FINE_GRID = 2


def draw_hidden_layer(res: Result, grade: int, index: int, disp: DisplayChoice, rows: Rows) -> None:
    exp = res.exp
    spec = core.layer(index)
    row = rows[index]
    maps = exp.layer(index)
    c1, c2, c3 = st.columns(MAP_COLUMNS, gap="medium")
    with c1:
        _show(_map_jpeg(res, (index, "input_dependent", grade), lambda: exp.in_input_space(index, "input_dependent", grade), disp),
              f"**Input-dependent part** of layer {index} · Σ {fmt_score(row['input_dependent'])}",
              f"Each of the {spec.hidden}×{spec.hidden} units' scores spread over its {spec.rf_paper} px receptive field.")
    with c2:
        _show(_map_jpeg(res, (index, "constant", grade), lambda: exp.in_input_space(index, "constant", grade), disp),
              f"**Constant part** of layer {index} (bias and batch norm) · Σ {fmt_score(row['constant'])}",
              "The share of the score this layer adds itself; it does not depend on the pixels below.")
    with c3:
        dep_head = f"**Hidden {spec.hidden}×{spec.hidden}, input-dependent**  \nΣ {fmt_score(row['input_dependent'])}"
        const_head = f"**Hidden {spec.hidden}×{spec.hidden}, constant**  \nΣ {fmt_score(row['constant'])}"
        if spec.hidden * FINE_GRID >= core.INPUT_SIZE:
            # One or two input pixels a unit and a field of a few pixels: the grid would be the
            # maps beside it drawn again.
            st.markdown(dep_head)
            st.markdown(const_head)
            st.caption(f"At {core.INPUT_SIZE // spec.hidden} input pixel(s) a unit and a {spec.rf_paper} px field, the "
                       "layer's own grid looks like the two maps beside it, so it is not drawn twice.")
            return
        look = (disp.log, disp.positive_only)
        _show(res.picture(("hidden", index, "input_dependent", grade, look),
                          lambda: draw.jpeg_bytes(hidden_composite(maps.input_dependent[grade], disp))),
              dep_head)
        _show(res.picture(("hidden", index, "constant", grade, look),
                          lambda: draw.jpeg_bytes(hidden_composite(maps.constant[grade], disp))),
              const_head,
              "The layer's own grid, one square per unit (channels summed), before spreading.")


def draw_input_layer(res: Result, grade: int, disp: DisplayChoice, rows: Rows) -> None:
    exp = res.exp
    g = rows["grade"]
    c1, c2, c3 = st.columns(3, gap="medium")
    with c1:
        _show(_map_jpeg(res, ("input", "input_map", grade), lambda: exp.input_map[grade], disp),
              f"**Input map** (pixels) · Σ {fmt_score(g['input_map_sum'])}",
              "What each pixel contributes, the RGB channels summed.")
    with c2:
        _show(_map_jpeg(res, ("input", "constants", grade), lambda: exp.constants(grade), disp),
              f"**All layers' constants**, in input space · Σ {fmt_score(g['constants_sum'])}",
              "Layers 1–15, each spread over its receptive fields.")
    with c3:
        _show(_map_jpeg(res, ("input", "total", grade), lambda: exp.total(grade), disp),
              f"**Total** = input map + constants + bias · Σ {fmt_score(g['total_map_sum'])}",
              f"The bias {fmt_score(g['bias'])} is spread evenly over the field of view.")


def conservation_line(rows: Rows, layer: int | str, tolerance: float) -> tuple[str, bool]:
    """'a + b + bias = sum = score ✓ (relative error e)' for the view of ``layer``.

    The error is core's (relative to the largest number in the sum).
    """
    g = rows["grade"]
    score, bias = g["score"], g["bias"]
    if layer == 16:
        terms = [("feature scores", g["features_sum"])]
        err = g["features_relative_error"]
    elif layer == "input":
        terms = [("input map", g["input_map_sum"]), ("constants of all layers", g["constants_sum"])]
        err = g["input_relative_error"]
    else:
        row = rows[int(layer)]
        terms = [(f"input-dependent (layer {layer})", row["input_dependent"]),
                 (f"constants of layers ≥ {layer}", row["constants_from_layer"])]
        err = row["relative_error"]
    terms.append(("bias", bias))
    total = float(sum(v for _, v in terms))
    ok = err <= tolerance
    text = (" + ".join(f"{name} {fmt_score(v)}" for name, v in terms)
            + f" = {fmt_score(total)} = score {fmt_score(score)} {'✓' if ok else '✗'} (relative error {fmt_error(err)})")
    return text, ok


def draw_conservation(res: Result, grade: int, layer: int | str) -> None:
    text, ok = conservation_line(_rows(res, grade), layer, res.conservation(grade)["tolerance"])
    if ok:
        st.markdown(f"**Conservation:** {text}", help="At every layer the maps shown, the constants of the layers "
                    "above and the layer-16 bias add up exactly to the grade's score (the method's check).")
    else:
        st.warning(f"Conservation check failed: {text}")


def draw_layer_view(res: Result, choice: ExplainChoice, disp: DisplayChoice, model: core.LoadedModel) -> None:
    """The maps of the chosen grade at the chosen layer, with their sums and the check."""
    exp = res.exp
    g = choice.grade
    st.markdown(f"##### Grade {grade_label(g)} (score {fmt_score(float(exp.scores[g]))}) · {layer_title(choice.layer)}")
    rows = _rows(res, g)
    if choice.layer == 16:
        feature = draw_features(exp, g, key="features_chart", selectable=True,
                                title=f"Grade {grade_label(g)}: score of each feature (w·f) and the bias · click a bar "
                                "to see where that feature lies")
        if feature is not None:
            draw_feature_map(res, model, g, feature, disp)
    elif choice.layer == "input":
        draw_input_layer(res, g, disp, rows)
    else:
        draw_hidden_layer(res, g, int(choice.layer), disp, rows)
    draw_conservation(res, g, choice.layer)


# --------------------------------------------------------------------- comparison
def draw_comparison(res: Result, own: int, disp: DisplayChoice, layer: int | str, evidence: str = "total") -> None:
    exp = res.exp
    model_g = exp.grade
    st.subheader(f"Your grade {grade_label(own)} beside the model's grade {grade_label(model_g)}", anchor=False)
    if own == model_g:
        st.info("Your grade agrees with the model's grade.")
        return
    s_own, s_mod = float(exp.scores[own]), float(exp.scores[model_g])
    ro, rm = _rows(res, own), _rows(res, model_g)
    if layer == 16:
        parts = [("feature scores", rm["grade"]["features_sum"] - ro["grade"]["features_sum"])]
    elif layer == "input":
        parts = [("input map", rm["grade"]["input_map_sum"] - ro["grade"]["input_map_sum"]),
                 ("constants", rm["grade"]["constants_sum"] - ro["grade"]["constants_sum"])]
    else:
        parts = [(f"input-dependent (layer {layer})", rm[int(layer)]["input_dependent"] - ro[int(layer)]["input_dependent"]),
                 (f"constants of layers ≥ {layer}", rm[int(layer)]["constants_from_layer"] - ro[int(layer)]["constants_from_layer"])]
    parts.append(("bias", rm["grade"]["bias"] - ro["grade"]["bias"]))
    st.markdown(
        f"The model's grade scores **{fmt_score(s_mod)}**, your grade **{fmt_score(s_own)}**: "
        f"a difference of **{fmt_score(s_mod - s_own)}** in favour of the model's grade. "
        "At this layer it splits into " + " + ".join(f"{n} {fmt_score(v)}" for n, v in parts) + "."
    )
    if layer == 16:
        left, right = st.columns(2, gap="large")
        ys = [float(v) for v in exp.features[[own, model_g]].ravel()] + [float(exp.bias[own]), float(exp.bias[model_g])]
        lo, hi = min(0.0, *ys), max(0.0, *ys)
        pad = 0.08 * (hi - lo or 1.0)
        with left:
            draw_features(exp, own, key="features_own", y_range=(lo - pad, hi + pad),
                          title=f"Your grade {grade_label(own)} · score {fmt_score(s_own)}")
        with right:
            draw_features(exp, model_g, key="features_model", y_range=(lo - pad, hi + pad),
                          title=f"Model's grade {grade_label(model_g)} · score {fmt_score(s_mod)}")
        return
    name = views.level_map(exp, own, layer, evidence)[1]

    def three() -> tuple[bytes, bytes, bytes]:
        a = views.level_map(exp, own, layer, evidence)[0]
        b = views.level_map(exp, model_g, layer, evidence)[0]
        diff = b.astype(np.float64) - a
        fov = exp.fundus.fov
        scale = _scale(np.stack([a, b, diff]), disp, np.stack([fov, fov, fov]))
        return tuple(draw.jpeg_bytes(map_composite(exp, m, disp, scale)) for m in (a, b, diff))  # type: ignore[return-value]

    own_jpeg, model_jpeg, diff_jpeg = res.picture(("compare", layer, evidence, own, model_g, _look(disp)), three)
    c1, c2, c3 = st.columns(3, gap="medium")
    with c1:
        _show(own_jpeg, f"**Your grade {grade_label(own)}** · score {fmt_score(s_own)}")
    with c2:
        _show(model_jpeg, f"**Model's grade {grade_label(model_g)}** · score {fmt_score(s_mod)}")
    with c3:
        _show(diff_jpeg, f"**Difference: model's − yours** · Σ {fmt_score(s_mod - s_own)}",
              "Red: where the photograph pushed the model towards its own grade rather than yours; blue: towards yours.")
    st.caption(f"All three show the {name} on one shared colour scale, so their colours compare directly.")


# --------------------------------------------------------------------- threshold, overlay, downloads
def draw_threshold(res: Result, choice: ExplainChoice, disp: DisplayChoice, mask: np.ndarray, name: str,
                   settings: Callable[[], Mapping[str, Any]], values: np.ndarray) -> None:
    """The reading view's k-sigma pixels (``mask`` of the map ``name``): their count, the flicker
    view on request, and the downloads (``settings()``: what the reading view showed, for scores.json,
    made only when it is downloaded).

    The marked pixels themselves are on the reading view's photograph; the GIF is made only when
    shown or downloaded, so moving k redraws no picture here."""
    exp = res.exp
    g = choice.grade

    def gif() -> bytes:
        # keyed by the map's name: levels that threshold the same map (16 and "input") share the picture
        return res.picture(("flicker", name, g, disp.k, round(disp.opacity, 2)), lambda: draw.flicker_gif(
            [exp.fundus.image, pic.mask_picture(exp.fundus.image, mask, disp.opacity)]))

    n = int(mask.sum())
    fov_n = int(exp.fundus.fov.sum())
    share = n / fov_n if fov_n else 0.0
    st.markdown(f"##### Pixels above k = {disp.k:.1f} standard deviations of the {name} (grade {grade_label(g)})")
    c1, c2 = st.columns([1, 2], gap="large")
    with c1:
        if st.toggle("**Flicker view**: retina ↔ marked pixels", key="flicker",
                     help="The blog's comparison: the retina and the same retina with the marked pixels, alternating."):
            st.image(gif(), width="stretch")
        else:
            st.caption("The marked pixels are cyan on the reading view's photograph; the flicker view alternates the "
                       "retina with and without them.")
    with c2:
        st.markdown(
            f"**{n:,} pixels** are above the mean + {disp.k:.1f} SD of the {name}: "
            f"**{share:.2%}** of the field of view ({fov_n:,} pixels)."
        )
        if choice.layer == 16:
            st.caption(f"Layer 16 has no map: the threshold acts on the {name}, as at the input.")
        st.markdown("**Downloads**")
        draw_downloads(res, choice, disp, gif, name, settings, values)


def export_title(exp: core.Explanation, grade: int, layer: int | str, map_name: str, today: str | None = None,
                 k: float | None = None) -> str:
    """The caption a downloaded map carries, so the file says on its own what it shows: the
    photograph, the grade and its score, the layer and map (at layer 16, that it is the total
    map, because layer 16's features have no place), k, the model and the date."""
    what = "total map (layer 16's 64 features have no place in the image)" if layer == 16 else map_name
    level = "input" if layer == "input" else f"layer {layer}"
    threshold = f" · k = {k:.1f}" if k is not None else ""
    return (f"{exp.fundus.source or 'photograph'} · grade {grade_label(grade)}, score {float(exp.scores[grade]):+.2f} · "
            f"{level}: {what}{threshold} · model {exp.weights_name} · {today or dt.date.today().isoformat()}")


def draw_downloads(res: Result, choice: ExplainChoice, disp: DisplayChoice, gif: Callable[[], bytes], map_name: str,
                   settings: Callable[[], Mapping[str, Any]], values: np.ndarray) -> None:
    exp = res.exp
    g = choice.grade
    tag = f"grade{g}-layer{choice.layer}"
    title = export_title(exp, g, choice.layer, map_name, k=disp.k)

    def map_png() -> bytes:  # made only when clicked
        return draw.png_bytes(draw.titled(map_composite(exp, values, disp), title))

    def scores_json() -> str:
        return dumps(exp.summary() | dict(settings()), indent=2)

    st.download_button("scores.json (with your grade and marks)", data=scores_json, file_name="scores.json",
                       mime="application/json", on_click="ignore", key="dl_scores", icon=":material/download:",
                       width="stretch")
    st.download_button("Current map (PNG)", data=map_png, file_name=f"map-{tag}.png",
                       mime="image/png", on_click="ignore", key="dl_map", icon=":material/download:", width="stretch")
    st.download_button("Flicker view (GIF)", data=gif, file_name=f"flicker-{tag}-k{disp.k:.1f}.gif", mime="image/gif",
                       on_click="ignore", key="dl_gif", icon=":material/download:", width="stretch")
    draw_npz(res)


def draw_npz(res: Result) -> None:
    """explanation.npz (every map, ~50 MB) is built only when asked for, with its progress shown;
    the built file is kept for this photograph only (a new one drops it)."""
    built = state.npz(res)
    slot = st.empty()  # the button, then in its place the download
    if built is None and slot.button("Prepare explanation.npz (all maps, ~50 MB)", key="make_npz",
                                     icon=":material/build:", width="stretch",
                                     help="Builds the file with every layer's maps (several seconds), then offers it."):
        bar = slot.progress(0.0, text="Building explanation.npz…")
        built = state.build_npz(res, lambda share, what: bar.progress(min(max(share, 0.0), 1.0),
                                                                     text=f"explanation.npz: {what}"))
    if built is not None:
        slot.download_button(f"explanation.npz ({len(built) / 2**20:.0f} MB)", data=built, file_name="explanation.npz",
                             mime="application/octet-stream", on_click="ignore", key="dl_npz",
                             icon=":material/download:", width="stretch")
