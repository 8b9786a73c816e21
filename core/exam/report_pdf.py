"""The exam's printable report: one exam, A4, as bytes (the caller decides where they go).

Page 1 says what a clinician needs first: the disclaimer, who, when, the patient's
referral with its operating point, each eye's result with the clinician's word, and
which model said so. Each photograph then gets its own page, large enough to see
lesions: the model's input with its five strongest evidence regions, the k-sigma
overlay of the eye's grade, the scores and the gradability.

fpdf2 with its core fonts (Helvetica, Courier): no network, no font files, no browser.
The core fonts cover Latin-1 only; other characters are shown as "?", and the report
says so where it happens (a patient's name).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

import numpy as np
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace
from PIL import Image, ImageDraw

from .. import card
from ..model import GRADE_NAMES
from ..pictures import font, jpeg_bytes, mask_overlay
from ..regions import BLOCK, Region, strongest_regions
from ..version import __version__
from .exam import Exam, EyeResult, Photo
from .laterality import ABBREVIATION, EYES
from .referral import MACULAR_OEDEMA, OPERATING_POINT, grade_text

TITLE = "Diabetic retinopathy screening report"
DISCLAIMER_HEAD = "NOT A MEDICAL DEVICE - RESEARCH USE ONLY"
DISCLAIMER = ("This report was made by research software. It is not cleared or approved for clinical use and its "
              "grades are not a diagnosis: a qualified clinician must review the photographs before any decision.")
NOT_GIVEN = "not given"
LESION_VIEW = ("Lesion view (layer 8's total map in 4 px regions, which lay best on hand-drawn lesions among the exact "
               "views studied): in the viewer, not in this report.")
REGIONS_NOTE = (f"Evidence regions are {BLOCK} x {BLOCK}-pixel blocks of the model's 640 x 640 input, not lesion outlines. "
                "The blocks of a grade's total map add up exactly to its score (an exact decomposition), so each "
                "contribution is a share of the score in score units.")
N_REGIONS = 5

MARGIN = 15.0
WIDTH = 210.0 - 2 * MARGIN
RED, AMBER, GREEN, GREY = (170, 20, 20), (150, 85, 0), (20, 105, 40), (90, 90, 90)
OUTCOME_COLOUR = {"refer": RED, "ungradable": AMBER, "incomplete": AMBER, "rescreen": GREEN}
BOX_COLOUR = (255, 214, 0)  # yellow: apart from the overlay's cyan and from the retina's orange

_ASCII = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2265": ">=", "\u2264": "<=", "\u03c3": "sigma",
                        "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2192": "->"})


def latin1(text: str) -> str:
    """``text`` as the core fonts can print it: typographic marks spelled out, the rest "?"."""
    return str(text).translate(_ASCII).encode("latin-1", "replace").decode("latin-1")


class _Pdf(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(*GREY)
        self.cell(WIDTH / 2, 5, latin1(f"{DISCLAIMER_HEAD.lower()} - dr-grader {__version__}"))
        self.cell(WIDTH / 2, 5, f"page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0, 0, 0)


# ------------------------------------------------------------------------------ pictures
def evidence_picture(image: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
    """The model's input with each region's block drawn as a numbered box (1 = strongest)."""
    img = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    draw = ImageDraw.Draw(img)
    label_font = font(18)
    for i, r in enumerate(regions, 1):
        left, top, right, bottom = r.box
        draw.rectangle([left - 1, top - 1, right, bottom], outline=(0, 0, 0), width=5)
        draw.rectangle([left, top, right - 1, bottom - 1], outline=BOX_COLOUR, width=3)
        tw = draw.textlength(str(i), font=label_font)
        lx, ly = left, top - 22 if top >= 22 else bottom + 1
        draw.rectangle([lx, ly, lx + tw + 8, ly + 21], fill=(0, 0, 0))
        draw.text((lx + 4, ly + 1), str(i), fill=BOX_COLOUR, font=label_font)
    return np.asarray(img)


def shown_grade(eye: EyeResult, photo: Photo) -> int:
    """The grade whose evidence a photograph's pictures show: the model's grade of the eye,
    or the photograph's own top score when the eye has no gradable photograph."""
    return eye.model_grade if eye.model_grade is not None else int(photo.explanation.grade)


# ------------------------------------------------------------------------------ writing
class _Writer:
    """Keeps the document and the small layout helpers together."""

    def __init__(self, exam: Exam, k: float, created: dt.datetime) -> None:
        self.exam, self.k, self.created = exam, k, created
        pdf = _Pdf(orientation="portrait", unit="mm", format="A4")
        pdf.set_margins(MARGIN, MARGIN, MARGIN)
        pdf.set_auto_page_break(True, margin=16)
        pdf.set_title(TITLE)
        pdf.set_creator(f"dr-grader {__version__}")
        pdf.set_creation_date(created)
        self.pdf = pdf

    # -- helpers
    def font(self, size: float, style: str = "", family: str = "Helvetica") -> None:
        self.pdf.set_font(family, style, size)

    def text(self, text: str, size: float = 10, style: str = "", colour: tuple[int, int, int] = (0, 0, 0), h: float | None = None,
             w: float = 0, family: str = "Helvetica") -> None:
        self.font(size, style, family)
        self.pdf.set_text_color(*colour)
        self.pdf.multi_cell(w, h or size * 0.5, latin1(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pdf.set_text_color(0, 0, 0)

    def heading(self, text: str, size: float = 13) -> None:
        self.pdf.ln(2)
        self.text(text, size, "B")
        y = self.pdf.get_y()
        self.pdf.set_draw_color(160, 160, 160)
        self.pdf.line(MARGIN, y, MARGIN + WIDTH, y)
        self.pdf.ln(1.5)

    def pairs(self, rows: Sequence[tuple[str, str]], key_w: float = 38, size: float = 10) -> None:
        for key, value in rows:
            self.font(size, "B")
            self.pdf.cell(key_w, size * 0.55, latin1(key))
            self.font(size, "")
            self.pdf.multi_cell(0, size * 0.55, latin1(value), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float], size: float = 9,
              bold_row: int | None = None, x: float | None = None) -> None:
        pdf = self.pdf
        left = pdf.l_margin
        if x is not None:
            pdf.set_left_margin(x)
            pdf.set_x(x)
        self.font(size)
        bold = FontFace(emphasis="BOLD")
        with pdf.table(col_widths=tuple(widths), width=sum(widths), align="LEFT", line_height=size * 0.5, text_align="LEFT",
                       first_row_as_headings=True, headings_style=FontFace(emphasis="BOLD", fill_color=(236, 236, 236))) as t:
            t.row([latin1(c) for c in header])
            for i, cells in enumerate(rows):
                t.row([latin1(c) for c in cells], style=bold if i == bold_row else None)
        self.font(size)
        pdf.set_left_margin(left)
        pdf.set_x(left)

    def room(self, needed: float) -> None:
        if self.pdf.get_y() + needed > self.pdf.page_break_trigger:
            self.pdf.add_page()

    # -- page 1
    def summary_page(self) -> None:
        exam, pdf = self.exam, self.pdf
        pdf.add_page()
        self.text(TITLE, 18, "B", h=9)
        self.text(f"dr-grader {__version__}: interpretable DR grading after de la Torre, Valls & Puig", 9, colour=GREY)
        pdf.ln(2)
        # the disclaimer, boxed, before anything else
        y = pdf.get_y()
        pdf.set_fill_color(253, 235, 233)
        pdf.set_draw_color(*RED)
        pdf.set_line_width(0.6)
        self.font(9)
        lines = len(pdf.multi_cell(WIDTH - 8, 4.6, latin1(DISCLAIMER), dry_run=True, output="LINES"))
        height = 7 + 4.6 * lines + 5
        pdf.rect(MARGIN, y, WIDTH, height, style="DF")
        pdf.set_xy(MARGIN + 4, y + 2.5)
        self.font(12, "B")
        pdf.set_text_color(*RED)
        pdf.cell(WIDTH - 8, 6, DISCLAIMER_HEAD, new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)
        self.font(9)
        pdf.multi_cell(WIDTH - 8, 4.6, latin1(DISCLAIMER), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_line_width(0.2)
        pdf.set_fill_color(255, 255, 255)
        pdf.set_y(y + height + 2)

        self.heading("Patient")
        p = exam.patient
        name = p.name or NOT_GIVEN
        if latin1(name) != name:
            name = latin1(name) + "  (characters outside this PDF font are shown as ?)"
        self.pairs([
            ("Name", name),
            ("Patient ID", p.patient_id or NOT_GIVEN),
            ("Birth date", p.birth_date.isoformat() if p.birth_date else NOT_GIVEN),
            ("Exam date", exam.exam_date.isoformat() if exam.exam_date else NOT_GIVEN),
            ("Report date", self.created.strftime("%Y-%m-%d %H:%M")),
        ])

        self.heading("Result")
        r = exam.result
        self.text(f"Patient: {r.wording}", 14, "B", OUTCOME_COLOUR[r.outcome], h=7)
        self.text(r.detail[:1].upper() + r.detail[1:] + ".", 10, h=5)
        pdf.ln(1)
        self.text(OPERATING_POINT[:1].upper() + OPERATING_POINT[1:], 9, "I", GREY, h=4.5)
        pdf.ln(1)
        self.text(MACULAR_OEDEMA[:1].upper() + MACULAR_OEDEMA[1:] + ".", 11, "B", h=6)
        pdf.ln(1.5)
        rows = []
        for eye in EYES:
            e = exam.eyes[eye]
            n_ok = sum(p.gradable for p in e.photos)
            clinician = ("not reviewed" if e.review is None else
                         f"override: {grade_text(e.review.grade)}" if e.overridden else "confirmed")
            rows.append([f"{eye} ({ABBREVIATION[eye]})", f"{n_ok} of {len(e.photos)} gradable" if e.photos else "none",
                         e.model_text if e.photos else "-", clinician if e.photos else "-", e.grade_label, e.wording])
        self.table(["Eye", "Photographs", "Model", "Clinician", "Eye grade", "Eye result"], rows,
                   (18, 25, 37, 32, 35, 33), size=8.5)
        pdf.ln(2)
        self.heading("Clinician review", 11)
        for eye in EYES:
            self.text(f"{eye.capitalize()} eye: {self.review_text(exam.eyes[eye])}", 9.5, h=4.8)

        self.heading("Model and software", 11)
        meta = exam.model.meta
        measured = [card.statement(ev, detail=True) for ev in card.evaluations(meta)]
        self.pairs([
            ("Weights", f"{exam.model.name}: {meta.get('title', exam.model.name)}"),
            ("Trained on", str(meta.get("training_data", "not stated"))),
            ("Measured", card.headline(meta)),
        ], key_w=26, size=8.5)
        if measured:
            self.text("At this report's operating point (grades 2-4 referable), per photograph, each figure with its data: "
                      + "; ".join(measured) + ".", 8, colour=GREY, h=3.8)
        self.font(8.5, "B")
        pdf.cell(26, 4.7, "sha256")
        self.font(8, "", "Courier")
        pdf.cell(0, 4.7, exam.model.sha256, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.pairs([("Software", f"dr-grader {__version__}")], key_w=26, size=8.5)
        pdf.ln(1)
        self.text("Pictures on the next pages: " + REGIONS_NOTE + " " + LESION_VIEW, 8, colour=GREY, h=3.8)

    def review_text(self, e: EyeResult) -> str:
        if not e.photos:
            return "not photographed"
        r = e.review
        if r is None:
            return f"not reviewed; the eye's grade is the model's ({e.model_text})"
        who = f" by {r.reviewer}" if r.reviewer else ""
        if e.overridden:
            return f"model's {e.model_text} overridden{who} with {grade_text(r.grade)}; reason: {r.reason}"
        return f"model's {e.model_text} confirmed{who}" + (f"; note: {r.reason}" if r.reason else "")

    # -- one page per photograph
    def photo_page(self, e: EyeResult, index: int, photo: Photo) -> None:
        pdf, exp = self.pdf, photo.explanation
        pdf.add_page()
        if index == 0:
            self.text(f"{e.eye.capitalize()} eye ({ABBREVIATION[e.eye]}): {e.grade_label} - {e.wording}", 14, "B",
                      OUTCOME_COLOUR[e.outcome], h=7)
            self.text(f"Clinician: {self.review_text(e)}.", 9.5, h=4.8)
            pdf.ln(1)
        grade = shown_grade(e, photo)
        self.text(f"Photograph {index + 1} of {len(e.photos)}, {e.eye} eye: {photo.name}   (eye from {photo.eye_source})",
                  11, "B", h=6)
        fundus = exp.fundus
        regions = strongest_regions(exp, grade, N_REGIONS)
        mask = exp.mask(grade, self.k)
        side, gap = (WIDTH - 4) / 2, 4
        what = "the model's grade of this eye" if e.model_grade is not None else "the model's top score; no grade given"
        titles = (f"Model input: {len(regions)} strongest evidence regions for grade {grade} ({what})",
                  f"k-sigma overlay, k = {self.k:g}: pixels of grade {grade}'s total map above mean + {self.k:g} sd (cyan)")
        y = pdf.get_y() + 1
        self.font(8)
        heights = [len(pdf.multi_cell(side, 3.6, latin1(t), dry_run=True, output="LINES")) for t in titles]
        for i, t in enumerate(titles):
            pdf.set_xy(MARGIN + i * (side + gap), y)
            pdf.multi_cell(side, 3.6, latin1(t), align="L")
        y += 3.6 * max(heights) + 1
        for i, picture in enumerate((evidence_picture(fundus.image, regions), mask_overlay(fundus.image, mask))):
            pdf.image(io.BytesIO(jpeg_bytes(picture)), x=MARGIN + i * (side + gap), y=y, w=side, h=side)
        pdf.set_y(y + side + 3)

        top = pdf.get_y()
        col = side
        # left column: the verdict, the scores
        if photo.gradable:
            self.text(f"Gradable. Model: {photo.verdict}", 10, "B", h=5, w=col)
        else:
            self.text("UNGRADABLE: no grade is given from this photograph.", 10, "B", RED, h=5, w=col)
            for reason in photo.reasons or ("the quality assessment refused it",):
                self.text(f"- {reason}", 8.5, colour=RED, h=4.2, w=col)
        pdf.ln(1)
        probs = getattr(exp, "probabilities", None)
        rows = [[str(g), GRADE_NAMES[g], f"{float(exp.scores[g]):+.1f}", f"{float(probs[g]):.3f}" if probs is not None else ""]
                for g in range(len(GRADE_NAMES))]
        self.table(["Grade", "ICDR", "Score", "Softmax"], rows, (12, 36, 17, 17), size=8.5, bold_row=int(exp.grade))
        self.text(f"Bold: the highest score (grade {int(exp.grade)})"
                  + ("." if photo.gradable else ": the model's output, not a grade (the photograph is ungradable)."),
                  7.5, colour=GREY, h=3.6, w=col)
        left_end = pdf.get_y()
        # right column: the evidence regions
        x = MARGIN + side + gap
        pdf.set_xy(x, top)
        pdf.set_left_margin(x)
        self.text(f"Strongest evidence for grade {grade} (score {float(exp.scores[grade]):+.1f})", 10, "B", h=5, w=col)
        pdf.ln(1)
        rows = [[str(i), f"x {r.box[0]}-{r.box[2]}, y {r.box[1]}-{r.box[3]}", f"{r.contribution:+.2f}", f"{r.image_evidence:+.2f}"]
                for i, r in enumerate(regions, 1)]
        if rows:
            self.table(["#", "Block (input pixels)", "Contribution", "of it: image"], rows, (7, 37, 21, 21), size=8.5, x=x)
        else:
            self.text(f"No block adds positively to grade {grade}.", 9, w=col)
        pdf.set_left_margin(x)
        self.text("Contribution: the block's exact share of the score; image: the part from the pixels themselves "
                  "(the rest comes from the network's constant terms spread over the block).", 7.5, colour=GREY, h=3.6, w=col)
        pdf.set_left_margin(MARGIN)
        pdf.set_y(max(left_end, pdf.get_y()) + 2)
        notes = list(photo.warnings) + list(getattr(fundus, "warnings", ()))
        for n in notes:
            self.text(f"Warning: {n}", 8.5, colour=AMBER, h=4.2)
        self.text(f"{REGIONS_NOTE} {LESION_VIEW} {MACULAR_OEDEMA[:1].upper() + MACULAR_OEDEMA[1:]}.", 7.5, colour=GREY, h=3.6)

    def write(self) -> bytes:
        self.summary_page()
        for eye in EYES:
            e = self.exam.eyes[eye]
            for i, photo in enumerate(e.photos):
                self.photo_page(e, i, photo)
        return bytes(self.pdf.output())


def report_pdf(exam: Exam, *, k: float = 2.0, created: dt.datetime | None = None) -> bytes:
    """The exam's report as PDF bytes; ``k`` is the overlay's threshold in standard deviations.

    Nothing is written to disk: the caller saves the bytes (or serves them) where the user said.
    """
    return _Writer(exam, float(k), created or dt.datetime.now().astimezone()).write()


__all__ = ["DISCLAIMER", "DISCLAIMER_HEAD", "LESION_VIEW", "NOT_GIVEN", "REGIONS_NOTE", "TITLE", "evidence_picture",
           "latin1", "report_pdf", "shown_grade"]
