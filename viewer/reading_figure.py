"""The reading view's figure: the photograph and the map side by side, zooming together.

A Plotly figure with two square subplots in the model input's coordinates (0..640,
y downwards) whose axes are linked (``matches``), so zoom and pan happen in the
browser and move both at once. Pictures are layout images stretched over the same
0..640 square: the photograph at full resolution on the left (it zooms without
pixelating), the map over a faint colour retina on the right (one JPEG); k-sigma pixels and the
clinician's marks are drawn in the same coordinates on both. One invisible heatmap
per subplot carries the shown map's exact block sums for the hover and gives the box
and lasso selections a surface; in point mode a grid of invisible points takes clicks.

Building the figure only: no Streamlit here, so it is tested as data.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

import core
from core.marks import Mark

SIDE = core.INPUT_SIZE
POINT_GRID = 4  # point mode: clicks snap to the centres of a 4 px grid of the input
TOOLS = ("zoom", "pan", "box", "lasso", "point")
DRAGMODE = {"zoom": "zoom", "pan": "pan", "box": "select", "lasso": "lasso", "point": "pan"}
# Lesion colours: none of them the map's red/blue, nor the k-sigma pixels' cyan.
LESION_COLOURS = {
    "microaneurysm": "#ffd92f",
    "haemorrhage": "#e7298a",
    "hard exudate": "#a6d854",
    "cotton-wool spot": "#ffffff",
    "neovascularisation": "#ff7f00",
    "IRMA / venous beading": "#b15928",
    "other": "#8da0cb",
}
HEIGHT = 700  # px: two 640 px squares side by side, the colour bar under the map
COLOURBAR_PX = 48


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Pictures:
    """What the two subplots show, encoded once per look (data URIs)."""

    retina: str  # the photograph (left), any resolution: stretched over 0..640
    map: str  # the map panel: the map over the faint colour retina (or on white), one opaque picture
    marked: str | None  # the k-sigma pixels, RGBA cyan, or None when not shown
    colourbar: str  # the map's colour bar
    hover: np.ndarray  # (n, n) the shown map summed over hover blocks (exact)
    hover_block: int  # input pixels per hover block side
    hover_label: str  # what the hover's number is, e.g. "total map"


def _image(source: str, axis: str, opacity: float = 1.0, layer: str = "above") -> dict:
    return dict(source=source, xref=f"x{axis}", yref=f"y{axis}", x=0, y=0, sizex=SIDE, sizey=SIDE,
                xanchor="left", yanchor="top", sizing="stretch", layer=layer, opacity=opacity)


def mark_shapes(marks: Sequence[Mark], axis: str) -> list[dict]:
    """Each mark as a Plotly shape on one subplot (``axis`` "" or "2"), in its lesion's colour."""
    shapes = []
    for m in marks:
        style = dict(xref=f"x{axis}", yref=f"y{axis}", line=dict(color=LESION_COLOURS.get(m.lesion, "#ffffff"), width=2),
                     fillcolor="rgba(0,0,0,0)", layer="above")
        if m.kind == "box":
            (x0, y0), (x1, y1) = m.points
            shapes.append(dict(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, **style))
        elif m.kind == "lasso":
            path = "M " + " L ".join(f"{x:.2f},{y:.2f}" for x, y in m.points) + " Z"
            shapes.append(dict(type="path", path=path, **style))
        else:
            (x, y), r = m.points[0], max(m.radius, 2.0)
            shapes.append(dict(type="circle", x0=x - r, y0=y - r, x1=x + r, y1=y + r, **style))
    return shapes


def mark_labels(marks: Sequence[Mark], axis: str) -> list[dict]:
    """The marks' numbers (#1, #2 ...) beside them, as in the table under the figure."""
    notes = []
    for i, m in enumerate(marks, start=1):
        left, top, _, _ = m.bounds()
        notes.append(dict(x=left, y=top, xref=f"x{axis}", yref=f"y{axis}", text=f"#{i}", showarrow=False,
                          xanchor="left", yanchor="bottom", font=dict(size=12, color="black"),
                          bgcolor=LESION_COLOURS.get(m.lesion, "#ffffff")))  # the mark's own colour: readable on any retina
    return notes


def _hover_trace(p: Pictures, axis: str) -> go.Heatmap:
    b = p.hover_block
    return go.Heatmap(
        z=p.hover.astype(np.float32), x0=b / 2, dx=b, y0=b / 2, dy=b, xaxis=f"x{axis}", yaxis=f"y{axis}",
        opacity=0, showscale=False, colorscale=[[0, "white"], [1, "white"]],
        hovertemplate=f"input x %{{x:.0f}}, y %{{y:.0f}}<br>{p.hover_label}, this {b}×{b} px block: "
                      "%{z:+.3f}<extra></extra>",
    )


def _point_grid(axis: str) -> go.Scattergl:
    c = np.arange(POINT_GRID / 2, SIDE, POINT_GRID, dtype=np.float32)
    xx, yy = np.meshgrid(c, c)
    return go.Scattergl(x=xx.ravel(), y=yy.ravel(), mode="markers", xaxis=f"x{axis}", yaxis=f"y{axis}",
                        marker=dict(size=POINT_GRID, opacity=0), selected=dict(marker=dict(opacity=0)),
                        unselected=dict(marker=dict(opacity=0)), hoverinfo="none", showlegend=False)


def reading_figure(p: Pictures, marks: Sequence[Mark] = (), *, tool: str = "zoom",
                   zoom: tuple[float, float, float, float] | None = None, revision: str = "",
                   height: int = HEIGHT, titles: tuple[str, str] = ("Photograph", "Map")) -> go.Figure:
    """The figure; ``zoom`` = (left, top, right, bottom) in input pixels sets the view (e.g. a
    region the page jumps to), otherwise the user's own zoom survives reruns (``uirevision``)."""
    if tool not in TOOLS:
        raise ValueError(f"tool must be one of {TOOLS}, not {tool!r}")
    fig = go.Figure()
    traces: list = [_hover_trace(p, ""), _hover_trace(p, "2")]
    if tool == "point":
        traces += [_point_grid(""), _point_grid("2")]
    fig.add_traces(traces)
    images = [_image(p.retina, "", layer="below"), _image(p.map, "2", layer="below")]
    if p.marked is not None:
        images.append(_image(p.marked, ""))
    bar = COLOURBAR_PX / (height - 8)
    images.append(dict(source=p.colourbar, xref="paper", yref="paper", x=0.506, y=0, sizex=0.494, sizey=bar,
                       xanchor="left", yanchor="bottom", sizing="contain", layer="above"))
    xr = [zoom[0], zoom[2]] if zoom else [0, SIDE]
    yr = [zoom[3], zoom[1]] if zoom else [SIDE, 0]
    axis = dict(showgrid=False, zeroline=False, showticklabels=False, ticks="", showline=False)
    domain_y = [bar + 0.008, 1.0]
    fig.update_layout(
        xaxis=dict(domain=[0, 0.494], range=xr, constrain="domain", **axis),
        yaxis=dict(domain=domain_y, range=yr, scaleanchor="x", constrain="domain", **axis),
        xaxis2=dict(domain=[0.506, 1], range=xr, matches="x", constrain="domain", **axis),
        yaxis2=dict(domain=domain_y, range=yr, matches="y", constrain="domain", **axis),
        images=images,
        shapes=mark_shapes(marks, "") + mark_shapes(marks, "2"),
        # The titles sit in the squares' top-left corners, outside the round field of view.
        annotations=[
            dict(text=titles[0], x=0, y=1, xref="x domain", yref="y domain", xanchor="left", yanchor="top",
                 showarrow=False, font=dict(size=12, color="white"), bgcolor="rgba(0,0,0,0.6)"),
            dict(text=titles[1], x=0, y=1, xref="x2 domain", yref="y2 domain", xanchor="left", yanchor="top",
                 showarrow=False, font=dict(size=12, color="white"), bgcolor="rgba(0,0,0,0.6)"),
            *mark_labels(marks, ""), *mark_labels(marks, "2"),
        ],
        height=height, margin=dict(l=4, r=4, t=4, b=4), plot_bgcolor="white", paper_bgcolor="white",
        dragmode=DRAGMODE[tool], clickmode="event+select" if tool == "point" else "event",
        hovermode="closest", showlegend=False,
        uirevision=f"{revision}:{zoom}", selectionrevision=f"{revision}:{len(marks)}",
        newselection=dict(line=dict(color="#ffd92f", width=2, dash="dot")),
    )
    return fig


CONFIG = {
    "scrollZoom": True,
    "displaylogo": False,
    "modeBarButtonsToRemove": ["toImage", "autoScale2d", "select2d", "lasso2d"],
}


def selection_marks(selection: dict, lesion: str) -> list[Mark]:
    """The marks a Plotly selection event describes (Streamlit's ``on_select`` state).

    Boxes and lassos come with their geometry in axis units (input pixels, whichever
    subplot they were drawn on: both share the coordinates); a click in point mode
    comes as the selected grid point. Degenerate shapes (a zero-area box, a lasso of
    fewer than three vertices) are dropped rather than turned into empty marks.
    """
    out: list[Mark] = []

    def add(kind: str, points: tuple) -> None:
        with contextlib.suppress(TypeError, ValueError):  # a shape with no area, or coordinates that are not numbers
            out.append(Mark(kind, lesion, points))

    for box in selection.get("box") or []:
        xs, ys = box.get("x") or [], box.get("y") or []
        if len(xs) == 2 and len(ys) == 2 and abs(xs[1] - xs[0]) >= 0.5 and abs(ys[1] - ys[0]) >= 0.5:
            add("box", ((xs[0], ys[0]), (xs[1], ys[1])))
    for lasso in selection.get("lasso") or []:
        pts = tuple(zip(lasso.get("x") or [], lasso.get("y") or [], strict=False))
        if len(pts) >= 3:
            add("lasso", pts)
    if not out:
        for point in (selection.get("points") or [])[:1]:
            if "x" in point and "y" in point:
                add("point", ((point["x"], point["y"]),))
    return out


__all__ = ["CONFIG", "LESION_COLOURS", "POINT_GRID", "TOOLS", "Pictures", "data_uri", "mark_shapes", "reading_figure",
           "selection_marks"]
