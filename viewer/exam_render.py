"""Drawing the screening exam: every grade and every word comes from core's exam.

Functions here never decide what the user chose (exam_controls.py does) and never grade
(core does); they lay out the photographs, the eyes' results and the patient's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import streamlit as st

from core.exam import MACULAR_OEDEMA, OPERATING_POINT, Exam, EyeResult, Photo
from core.exam.referral import is_referable

from .exam_controls import eye_label
from .render import fmt_probability

# An outcome's colours (text, background): red to refer, amber to retake or complete, green to rescreen,
# as in the PDF report; and its icon and markdown colour.
COLOURS = {"refer": ("#a51d24", "#fde8e8"), "ungradable": ("#8a4b00", "#fff1d6"), "incomplete": ("#8a4b00", "#fff1d6"),
           "rescreen": ("#14662f", "#e4f4e8")}
TEXT = {"refer": "red", "ungradable": "orange", "incomplete": "orange", "rescreen": "green"}
ICON = {"refer": ":material/error:", "ungradable": ":material/replay:", "incomplete": ":material/help:",
        "rescreen": ":material/check_circle:"}


def draw_style() -> None:
    """Each outcome as a coloured band (Streamlit's own alerts are too faint to be the page's answer)."""
    rules = "".join(
        f"[class*='st-key-exam_outcome_{o}']{{background:{bg};border-left:0.5rem solid {fg};border-radius:0.5rem;"
        "padding:0.7rem 1rem 0.5rem 1rem;}"
        for o, (fg, bg) in COLOURS.items())
    st.html(f"<style>{rules}[class*='st-key-exam_outcome_'] h3{{padding-top:0.1rem;}}</style>")


def outcome_box(outcome: str, who: str):
    """A container coloured for ``outcome``; ``who`` is "patient" or an eye."""
    return st.container(key=f"exam_outcome_{outcome}_{who}")


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def draw_intro() -> None:
    st.caption(
        "One or two photographs per eye. Each eye takes the highest grade among its gradable photographs, the "
        "patient the worse eye; an eye without a gradable photograph is never read as healthy. A clinician "
        "confirms or overrides each eye. Photographs, results and patient fields stay in this session's memory."
    )


def draw_eye_heading(eye: str) -> None:
    st.markdown(f"### {eye_label(eye)}")


def draw_refused(name: str, why: str) -> None:
    """An upload that is not part of the exam, and why; the rest of the exam is unchanged."""
    st.error(f"**{name}** is not used: {why}", icon=":material/block:")


def draw_thumbnail(jpeg: bytes, photo: Photo, k: float) -> None:
    if photo.gradable:
        caption = f"cyan: pixels above mean + {k:g} SD of grade {photo.grade}'s total map"
    else:
        caption = "ungradable: no grade, no map"
    st.image(jpeg, width="stretch", caption=caption)


def draw_photo_verdict(photo: Photo, uploaded_under: str, deciding: bool) -> None:
    """The photograph's name, where its eye came from, and its grade or why it has none."""
    info = getattr(photo.fundus, "dicom", None)
    kind = f" · DICOM {info.sop_class}" if info is not None else ""
    st.markdown(f"**{photo.name}**{kind}")
    if photo.gradable:
        exp = photo.explanation
        badge = " :blue-badge[decides this eye]" if deciding else ""
        colour = "red" if is_referable(photo.grade) else "green"
        st.markdown(f"##### :{colour}[Model: {photo.verdict}]{badge}")
        st.caption(f"Gradable. Softmax probability of the grade {fmt_probability(float(exp.probabilities[exp.grade]))}.")
    else:
        first, *others = photo.reasons or ("the photograph failed the quality checks",)
        st.markdown("##### :red[Ungradable: retake]")
        st.markdown("\n".join(f"- {r}" for r in (first, *others)))
    if photo.eye != uploaded_under:
        st.warning(f"Uploaded as the {uploaded_under} eye; counted for the **{photo.eye} eye** "
                   + (f"(from the {photo.eye_source})." if photo.eye_source != "given" else "(as chosen below)."),
                   icon=":material/swap_horiz:")
    for note in (*photo.warnings, *getattr(photo.fundus, "warnings", ())):
        st.warning(note)


def draw_parametric_map(maker: Callable[[], bytes], ident: str, name: str, grade: int) -> None:
    """A DICOM photograph's explanation as a DICOM Parametric Map, made when clicked."""
    stem = name.rsplit(".", 1)[0]
    st.download_button("Parametric Map (DICOM)", data=maker, file_name=f"{stem}-dr-map-grade{grade}.dcm",
                       mime="application/dicom", on_click="ignore", key=f"exam_dl_pm_{ident}",
                       icon=":material/download:", width="content",
                       help=f"Grade {grade}'s total map over this photograph, in its study: a PACS viewer can lay it "
                       "over the photograph. Made in memory when clicked.")


def draw_no_photographs(eye: str, elsewhere: Sequence[str] = ()) -> None:
    """The eye has no photograph yet; ``elsewhere``: its uploader's photographs counted for the other eye."""
    if elsewhere:
        st.info(f"No photograph counts for the {eye} eye: {', '.join(elsewhere)} show{'s' if len(elsewhere) == 1 else ''} "
                "the other eye.", icon=":material/add_a_photo:")
    else:
        st.info(f"No photograph of the {eye} eye yet.", icon=":material/add_a_photo:")


def draw_eye_result(e: EyeResult) -> None:
    """The eye's grade and its result, and who decided it."""
    n_ok = sum(p.gradable for p in e.photos)
    said = e.grade_label if e.grade is not None else "no gradable photograph"
    with outcome_box(e.outcome, e.eye):
        st.markdown(f"#### :{TEXT[e.outcome]}[{ICON[e.outcome]} {eye_label(e.eye)}: {sentence(e.wording)}]")
        lines = [f"**{sentence(said)}** · {n_ok} of {len(e.photos)} photograph{'s' if len(e.photos) > 1 else ''} "
                 f"gradable · decided by: {e.decided_by}"]
        if e.overridden:
            lines.append(f"The model said {e.model_text}; the clinician's reason: {e.review.reason}")
        st.markdown("  \n".join(lines))


def draw_review_problem(eye: str, problem: str) -> None:
    st.error(f"The override of the {eye} eye is not applied: {problem}.", icon=":material/edit_off:")


def draw_waiting() -> None:
    st.info("Upload one or two photographs of each eye below: the patient's result appears here.",
            icon=":material/upload:")


def draw_exam_problem(problem: str) -> None:
    st.error(f"**No result: the exam cannot be put together.** {sentence(problem)}.", icon=":material/block:")


def draw_patient_result(exam: Exam) -> None:
    """The referral, why, the operating point and what the model does not assess: the page's first answer."""
    r = exam.result
    eyes = " · ".join(f"{eye_label(e)}: {exam.eyes[e].grade_label}" for e in exam.eyes)
    with outcome_box(r.outcome, "patient"):
        st.markdown(f"### :{TEXT[r.outcome]}[{ICON[r.outcome]} Patient: {r.wording}]")
        st.markdown(f"{sentence(r.detail)}.  \n{eyes}")
    st.markdown(f":material/info: **{sentence(MACULAR_OEDEMA)}.**")
    st.caption(sentence(OPERATING_POINT))
    if exam.reviewed:
        st.caption("Every photographed eye was reviewed by a clinician.")
    else:
        waiting = [e for e, res in exam.eyes.items() if res.photographed and res.review is None]
        st.caption(f"Not yet reviewed by a clinician: the {' and '.join(waiting)} eye{'s' if len(waiting) > 1 else ''}"
                   " (the grade shown is the model's).")


def draw_downloads(exam: Exam | None, pdf: Callable[[], bytes], fhir: Callable[[], bytes], blocked: str | None) -> None:
    """The report and its FHIR export, made only when clicked; disabled (with why) while the exam is not complete."""
    date = (exam.exam_date if exam is not None and exam.exam_date else dt.date.today()).isoformat()
    c1, c2, c3 = st.columns([1, 1, 2.2], gap="small", vertical_alignment="center")
    with c1:
        st.download_button("PDF report", data=pdf, file_name=f"dr-screening-report-{date}.pdf", mime="application/pdf",
                           on_click="ignore", key="exam_dl_pdf", icon=":material/picture_as_pdf:", type="primary",
                           disabled=blocked is not None, width="stretch")
    with c2:
        st.download_button("FHIR R4 (JSON)", data=fhir, file_name=f"dr-screening-report-{date}.fhir.json",
                           mime="application/fhir+json", on_click="ignore", key="exam_dl_fhir",
                           icon=":material/download:", disabled=blocked is not None, width="stretch")
    with c3:
        if blocked:
            st.caption(f"Downloads wait: {blocked}.")
        else:
            st.caption("Made in memory when clicked; the patient's name is in the files, not in their names.")
