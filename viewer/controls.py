"""The page's controls: each ``*_ui()`` draws its widgets and returns the user's choices.

Widget keys are stable; the tests drive the page through them:
``upload``, ``sample``, ``grade``, ``own_grade``, ``layer``, ``k``, ``overlay``,
``opacity``, ``log``, ``positive_only``, ``download_weights``, ``mode``; the reading view's
``view``, ``evidence``, ``tool``, ``lesion``, ``detail``, ``show_marked``.
The screening exam's controls are in exam_controls.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

import core
from core.marks import LESION_TYPES
from core.regions import POOL_SIZES
from core.views import LESION_VIEW

UPLOAD_TYPES = tuple(sorted(s.lstrip(".") for s in core.IMAGE_SUFFIXES))
MAX_UPLOAD_MB = core.MAX_BYTES // 2**20  # the reader's limit; .streamlit/config.toml says the same
# The layer slider: 16 (the 64 features) down to 1, then the pixels.
LAYER_OPTIONS: tuple[int | str, ...] = (*range(16, 0, -1), "input")
DEFAULT_LAYER: int | str = "input"
K_MIN, K_MAX, K_STEP, K_DEFAULT = 0.5, 5.0, 0.1, 2.0


ONE_PHOTOGRAPH, EXAM = "One photograph", "Screening exam"
MODES = (ONE_PHOTOGRAPH, EXAM)


def grade_label(g: int) -> str:
    return f"{g} · {core.GRADE_NAMES[g]}"


@dataclass(frozen=True)
class InputChoice:
    """The photograph to grade: an upload or a bundled sample."""

    kind: str  # "upload" or "sample"
    name: str
    ident: str  # changes whenever the file does (upload id or sample path)
    data: bytes | None = None  # upload bytes (kept in memory only)
    path: Path | None = None  # sample file


@dataclass(frozen=True)
class ExplainChoice:
    grade: int  # the grade whose maps are shown
    own_grade: int | None  # the clinician's grade, if entered
    layer: int | str  # 16..1 or "input"


@dataclass(frozen=True)
class DisplayChoice:
    log: bool
    positive_only: bool
    k: float
    overlay: bool
    opacity: float


@dataclass(frozen=True)
class Reference:
    """A sample's reference grade and who gave it ("IDRiD graders", "drawn as")."""

    grade: int
    source: str

    @property
    def text(self) -> str:
        return f"{self.source}: grade {self.grade}"


def sample_label(name: str, reference: Reference | None = None) -> str:
    """``synthetic/grade3.jpg`` -> ``Synthetic drawing · grade3.jpg``; others are photographs.
    With a reference: ``Photograph · IDRiD_005.jpg · IDRiD graders: grade 2``."""
    folder, _, file = name.rpartition("/")
    label = f"Synthetic drawing · {file}" if folder.split("/")[0].lower() == "synthetic" else f"Photograph · {name}"
    return f"{label} · {reference.text}" if reference is not None else label


def _mark_source(kind: str) -> None:
    """The input changed last is the one shown. A new upload, or its removal, also clears the
    sample picker: removing an upload must never silently show another eye instead."""
    st.session_state["_source"] = kind
    if kind == "upload":
        st.session_state["sample"] = None


def input_ui(samples: dict[str, Path], references: dict[str, Reference] | None = None) -> InputChoice | None:
    """Upload or sample picker; the one changed last wins. ``references``: samples' reference grades."""
    references = references or {}
    upload = st.file_uploader(
        "Fundus photograph",
        type=list(UPLOAD_TYPES),
        key="upload",
        max_upload_size=MAX_UPLOAD_MB,
        on_change=_mark_source,
        args=("upload",),
        help=f"PNG, JPEG, TIFF, BMP, WebP or DICOM, up to {MAX_UPLOAD_MB} MB. Kept in memory only, never written to disk.",
    )
    sample = st.selectbox(
        "… or a sample image",
        options=list(samples),
        format_func=lambda name: sample_label(name, references.get(name)),
        index=None,
        placeholder="Choose a sample" if samples else "No sample images installed",
        key="sample",
        on_change=_mark_source,
        args=("sample",),
        disabled=not samples,
    )
    source = st.session_state.get("_source", "upload")
    use_sample = sample is not None and (source == "sample" or upload is None)
    if use_sample:
        if upload is not None:
            st.caption(f"Showing the sample; the uploaded {upload.name} is not in use: clear the sample (its ×) to grade it.")
        path = samples[sample]
        return InputChoice("sample", sample, f"sample:{sample}", path=path)
    if upload is not None:
        return InputChoice("upload", upload.name, f"upload:{upload.file_id}:{upload.size}", data=upload.getvalue())
    return None


def mode_ui() -> str:
    """Quick look at one photograph, or a screening exam of both eyes (``ONE_PHOTOGRAPH`` or ``EXAM``)."""
    mode = st.segmented_control(
        "Mode",
        options=list(MODES),
        format_func=lambda m: f":material/image: {m}" if m == ONE_PHOTOGRAPH else f":material/visibility: {m} (both eyes)",
        default=ONE_PHOTOGRAPH,
        required=True,
        key="mode",
        label_visibility="collapsed",
        help="One photograph: its grade and every layer's maps. Screening exam: one or two photographs per eye, "
        "a result per eye and for the patient, and the report. Switching mode clears the other mode's photographs.",
    )
    return mode if mode in MODES else ONE_PHOTOGRAPH


def show_anyway_ui() -> bool:
    """For an ungradable photograph: reveal the model's output anyway (greyed, labelled)."""
    return st.toggle(
        "Show the model's output anyway",
        key="show_anyway",
        help="For research only: the model scores any picture, including ones no grader would grade.",
    )


def download_weights_ui(stretch: bool = False) -> bool:
    """The button that fetches the published weights; True when clicked."""
    return st.button(
        "Download the published weights (1.6 MB)",
        key="download_weights",
        type="primary",
        width="stretch" if stretch else "content",
        help="The checkpoint published by the paper's first author (trained on EyePACS), checked against "
        "its sha256 and cached on this machine.",
    )


def explain_ui(predicted: int) -> tuple[ExplainChoice, float]:
    """Grade to explain, the clinician's own grade, the layer slider and the threshold k."""
    c1, c2, c3, c4 = st.columns([1.2, 1.1, 2.75, 1.35], gap="medium")
    with c1:
        grade = st.selectbox(
            "Grade to explain",
            options=list(range(len(core.GRADE_NAMES))),
            format_func=lambda g: grade_label(g) + (" ◀ model" if g == predicted else ""),
            key="grade",
            help="Whose score the maps decompose. Starts at the model's grade.",
        )
    with c2:
        own = st.selectbox(
            "Your grade (optional)",
            options=list(range(len(core.GRADE_NAMES))),
            index=None,
            format_func=grade_label,
            placeholder="Not entered",
            key="own_grade",
            help="Enter your own grading to compare the maps of your grade with the model's.",
        )
    with c3:
        layer = st.select_slider(
            "Layer: 16 = the 64 features · 15 … 1 = hidden layers · input = pixels",
            options=list(LAYER_OPTIONS),
            value=DEFAULT_LAYER,
            format_func=str,
            key="layer",
            help="Follow the score down the network: at every layer the maps plus the constants of the "
            "layers above add up to the score.",
        )
    with c4:
        k = st.slider("Threshold k (standard deviations)", K_MIN, K_MAX, K_DEFAULT, K_STEP, format="%.1f", key="k",
                      help="Cyan marks what is positive and above the mean + k standard deviations of the map shown "
                      "(over the field of view; in a regions view, over the regions), as in the authors' binary maps.")
    return ExplainChoice(grade=int(grade), own_grade=None if own is None else int(own), layer=layer), round(float(k), 1)


PIXELS = 1  # the reading view's "view": 1 = single pixels, else the side of the pooled blocks
VIEWS: tuple[int, ...] = (PIXELS, *POOL_SIZES)
TOOL_LABELS = {"zoom": ":material/zoom_in: Zoom", "pan": ":material/pan_tool: Pan", "box": ":material/crop_square: Box",
               "lasso": ":material/gesture: Lasso", "point": ":material/adjust: Point"}
DETAILS = ("full", "input")


def lesion_preset() -> dict[str, object] | None:
    """The layer, view and evidence that show ``core.views.LESION_VIEW`` (the quality study's
    choice), or None if these controls cannot express it (a mean of layers, a positive part)."""
    v = LESION_VIEW
    if len(v.levels) != 1 or v.positive or v.pool not in VIEWS or v.levels[0] not in LAYER_OPTIONS:
        return None
    return {"layer": v.levels[0], "view": v.pool, "evidence": v.evidence}


def is_lesion_view(layer: int | str, view: int, evidence: str) -> bool:
    """Whether the controls show the lesion view now."""
    return lesion_preset() == {"layer": layer, "view": view, "evidence": evidence}


def _show_lesion_view() -> None:
    preset = lesion_preset()
    if preset is not None:
        st.session_state.update(preset)


@dataclass(frozen=True)
class ReadingChoice:
    view: int  # PIXELS or a block side in input pixels
    evidence: str  # "total" or "pixels" (core.views.EVIDENCE)
    tool: str  # what a drag or click on the figure does (viewer.reading_figure.TOOLS)
    lesion: str  # the type the next mark gets (core.marks.LESION_TYPES)
    detail: str  # the photograph on the left: "full" resolution or the model's "input"
    show_marked: bool  # the k-sigma pixels over the photograph


def reading_ui(k: float) -> tuple[DisplayChoice, ReadingChoice]:
    """The reading view's second row: view, evidence, mouse tool, the next mark's type, and the
    display options (and what each control means) in a popover. Labels are inside the options,
    so the row is one line high and the figure fits the screen under it."""
    preset = lesion_preset()
    c_view, c_lens, c_ev, c_tool, c_lesion, c_more = st.columns([2.6, 0.9, 1.4, 3.45, 1.45, 0.5], gap="small",
                                                                vertical_alignment="center")
    with c_lens:
        st.button("Lesion view", key="lesion_view", on_click=_show_lesion_view, disabled=preset is None,
                  width="stretch",
                  help=f"Sets layer, view and evidence to the view the quality study chose for lying on lesions: "
                  f"{LESION_VIEW.label}. It still adds up to the score. How well it does on 54 IDRiD photographs "
                  "with hand-drawn lesion masks, and where it falls short: README, 'Do the maps point at lesions?'.")
    with c_view:
        view = st.segmented_control(
            "View", options=list(VIEWS), format_func=lambda v: "Pixels" if v == PIXELS else f"{v} px",
            default=PIXELS, required=True, key="view", label_visibility="collapsed")
    with c_ev:
        evidence = st.segmented_control(
            "Evidence", options=["total", "pixels"], format_func=lambda e: "Total" if e == "total" else "Pixels only",
            default="total", required=True, key="evidence", label_visibility="collapsed")
    with c_tool:
        tool = st.segmented_control(
            "Mouse", options=list(TOOL_LABELS), format_func=TOOL_LABELS.get, default="zoom", required=True, key="tool",
            label_visibility="collapsed")
    with c_lesion:
        lesion = st.selectbox("Next mark", options=list(LESION_TYPES), key="lesion", label_visibility="collapsed",
                              format_func=lambda t: f"Mark: {t}")
    with c_more, st.popover("", icon=":material/tune:", help="Display options, and what the controls mean"):
        st.markdown(READING_HELP)
        log = st.toggle("Log scale", key="log", help="Colours follow log(1 + |s|): weak regions become visible.")
        positive_only = st.toggle("Positive only", key="positive_only", help="Show only the evidence for the grade (red).")
        overlay = st.toggle("Retina under the map", value=True, key="overlay",
                            help="A faint colour retina under the map (off: the map on white).")
        opacity = st.slider("Map opacity", 0.0, 1.0, 0.85, 0.05, key="opacity")
        show_marked = st.toggle("k-σ pixels on the photograph", value=True, key="show_marked")
        detail = st.radio("Photograph", options=list(DETAILS), key="detail", horizontal=True,
                          format_func=lambda d: "Full resolution" if d == "full" else "Model input (640 px)",
                          help="Full resolution: the original photograph within the model's crop, so zooming in shows "
                          "its own detail. Model input: exactly the 640x640 pixels the model saw.")
    disp = DisplayChoice(log=bool(log), positive_only=bool(positive_only), k=k, overlay=bool(overlay), opacity=float(opacity))
    reading = ReadingChoice(view=int(view or PIXELS), evidence=str(evidence or "total"), tool=str(tool or "zoom"),
                            lesion=str(lesion), detail=str(detail), show_marked=bool(show_marked))
    return disp, reading


READING_HELP = """**View**: *Pixels* is the map as the paper draws it. *4–32 px* sums the map over square regions: a region's
colour is its exact net contribution, for (red) or against (blue), and the threshold acts on regions.

**Evidence**: *Total* is the photograph's pixels plus the constants (bias and batch-norm terms, the same for every
photograph) spread over receptive fields; it adds up to the score. *Pixels only* leaves the constants out of the
picture and of the threshold.

**Mouse**: *Zoom* drags a rectangle (scroll zooms too; double-click shows the whole retina), *Pan* drags.
*Box*, *Lasso* and *Point* mark a finding of your own on either picture, with the type chosen beside.
"""
