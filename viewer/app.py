"""The clinician's page: ``streamlit run viewer/app.py`` from the repository root.

Composition only: controls.py returns the user's choices, state.py keeps the
model and this session's result, render.py draws. The screening exam (both eyes) is
exam_page.py's, with its own controls, state and render modules.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Streamlit puts only this script's folder on the path; the packages live one up.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

import core  # noqa: E402
from viewer import controls, exam_page, reading, render, state  # noqa: E402


def model_section() -> core.LoadedModel | None:
    """The active weights, their card, the banners and the download button."""
    name = core.default_name()
    model, problem = None, None
    if name is not None:
        try:
            model = state.load_model(name)
        except core.DeviceError as e:
            st.error(f"The model cannot start on this server, so no photograph can be graded here: {e}. "
                     "Whoever runs the server can restart it with `--device cpu` or `--device auto`.")
            st.stop()
        except core.WeightsError as e:
            problem = str(e)
    clicked = False
    if model is None:
        render.draw_no_weights()
        if problem:
            st.error(f"The weights on this machine could not be loaded: {problem}")
        clicked = controls.download_weights_ui()
    elif not model.is_published:
        banner, button = st.columns([3.3, 1], vertical_alignment="center")
        with banner:
            render.draw_bundled_banner(model)
        with button:
            clicked = controls.download_weights_ui(stretch=True)
    if clicked:
        bar = st.progress(0.0, text="Downloading the published weights…")
        error = state.fetch_paper_weights(bar)
        bar.empty()
        if error:
            st.error(f"Download failed: {error}")
        else:
            st.rerun()
    if model is not None:
        render.draw_model_line(model)
        render.draw_model_card(model)
    return model


@st.fragment
def explore(res: state.Result, model: core.LoadedModel) -> None:
    """Everything that moves with the sliders: reruns alone, never the model."""
    with st.container(key="reading"):
        choice, k = controls.explain_ui(res.exp.grade)
        disp, rc = controls.reading_ui(k)
        reading.draw_reading(res, choice, disp, rc)
    render.draw_layer_view(res, choice, disp, model)
    if choice.own_grade is not None:
        render.draw_comparison(res, choice.own_grade, disp, choice.layer, rc.evidence)
    values, name = reading.shown_map(res, choice.grade, choice.layer, rc)
    mask = reading.marked_pixels(res, choice.grade, choice.layer, rc, disp.k)
    marks = list(state.marks(res))  # as they are now: the download may be made after this run
    render.draw_threshold(res, choice, disp, mask, name, lambda: reading.session_record(res, choice, disp, rc, marks), values)


def main() -> None:
    st.set_page_config(page_title="DR grader · explained", page_icon="👁️", layout="wide")
    state.keep_uploads_in_memory()
    render.draw_style()
    render.draw_title()
    render.draw_research_note()
    model = model_section()
    if model is None:
        return
    if controls.mode_ui() == controls.EXAM:
        state.forget()  # the one-photograph page's result is not kept behind the exam
        exam_page.show(model)
        return
    exam_page.leave()

    c_input, c_retina, c_scores = st.columns([0.95, 0.95, 2.3], gap="large")
    with c_input:
        st.markdown("**Photograph**")
        references = state.sample_references()
        choice = controls.input_ui(state.list_samples(), references)
        fundus = None
        if choice is None:
            state.forget()
            st.info("Upload a fundus photograph or choose a sample to see the model's grade and its maps.")
        else:
            try:
                fundus = state.read_input(choice)
            except core.FundusReadError as e:
                st.error(f"**{choice.name}** cannot be graded: {e}")
    if fundus is None:
        return
    with c_retina:
        render.draw_retina(fundus)
    ungradable = not fundus.gradable
    if ungradable:
        with c_scores:
            render.draw_ungradable(fundus.quality)
            if not controls.show_anyway_ui():
                return  # no grade, no maps: nothing is computed for a refused photograph
    st.divider()
    st.subheader("Where the score comes from", anchor=False)
    render.draw_legend()
    # Placeholders first: a new image's computation never runs beside the previous
    # image's (faded) scores and maps, they are cleared at once.
    explore_slot = st.empty()
    with c_scores, st.empty().container():
        res, new = state.explain(model, fundus)
        if new:
            st.session_state["grade"] = res.exp.grade
            st.session_state["own_grade"] = None
        reference = references.get(choice.name) if choice.kind == "sample" else None
        with st.container(key="ungradable_output" if ungradable else "scores"):
            render.draw_scores(res.exp, model, reference=reference)
    with explore_slot.container(key="ungradable_maps" if ungradable else "maps"):
        explore(res, model)
    state.warm_in_background(res)


main()
