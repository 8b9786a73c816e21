"""DICOM out: a grade's total map as a DICOM Parametric Map that lies over its source photograph.

For a photograph read from DICOM, ``parametric_map`` writes the explained grade's total map
(``Explanation.total()``) as a Parametric Map (highdicom) in the source's study, in a new
series, referencing the source instance, with the source's Rows and Columns: a PACS viewer
can lay it over the photograph pixel for pixel. Nothing is written to disk; the caller
saves ``parametric_map_bytes`` where the user asked.

Choices, and why:

- **Float pixel data** (FloatPixelData, 32-bit), not integers with a slope. The total maps
  are exact (they add up to the score to 1e-4) and heavy-tailed: on IDRiD_001 the peak
  pixel is ~360 times the median one, so a 16-bit linear scale would quantise a typical
  pixel to about 1%. A Parametric Map's integers must be unsigned with an identity
  Modality LUT, so signed values would also need an offset intercept. Floats keep every
  value as computed; the Real World Value Mapping is then the identity (slope 1,
  intercept 0). The cost: no palette colour LUT and no lossless compression, and some
  older viewers show float Parametric Maps poorly or not at all.
- **Values are score per photograph pixel**, resampled with exact area weights
  (``to_photograph``): each input pixel's value is shared among the photograph pixels
  its footprint covers, in proportion to the area covered. So any region of the map sums
  to that region's contribution to the score, as in the viewer, and the whole map sums
  to the score less what lay on the padding beyond the photograph's edge (that part
  has no photograph pixel to go to; ``ImageComments`` states both sums). Exactness
  matters: a total map is large values that cancel (sum of |value| ~150 x |sum| on
  IDRiD_001), so point sampling or bilinear resampling would miss the sum by far more
  than 1%.
- **Background 0** outside the crop box: no contribution there. Inside the crop box the
  map is kept outside the field of view too (the constant maps spread there, a third of
  a score on some photographs), so the sum is not cut.
- **No invented geometry.** A fundus photograph has no frame of reference nor patient
  coordinates; the map is tied to it by the Derivation Image Sequence with Spatial
  Locations Preserved = YES and equal Rows/Columns (how a derived image refers to a
  source without a frame of reference). Pixel spacing is copied when the source is
  calibrated (PixelSpacing); else the (required) Pixel Measures item is empty. The
  Parametric Map IOD requires a Frame of Reference module, so the map gets a new Frame
  of Reference UID of its own, which relates it to nothing else (a source that has one
  gives its own). A source's plane position and orientation, rare on a photograph, are
  not used: highdicom would then want a 3-D slice geometry; the pixel grid is the tie.

What highdicom 0.28.2 needs that a fundus photograph does not have (added to a private
copy of the source header, never to ``DicomInfo.header``):

- Ophthalmic Photography is a multi-frame IOD to highdicom, which then reads
  NumberOfFrames and the pixel measures from a SharedFunctionalGroupsSequence: given
  NumberOfFrames 1 where absent and a Shared Functional Groups item whose Pixel Measures
  item holds the PixelSpacing if there is one, else nothing.
- The type 2 patient and study attributes highdicom reads without a default (PatientSex,
  AccessionNumber, StudyID, StudyTime, ...) are given empty (DICOM's "unknown") where
  absent. No patient value is ever made up.
- Without a frame of reference, highdicom indexes the frame by Frame Label but fills the
  label in only when no channel is given, which a Parametric Map always gives; its own
  consistency check then fails. ``_PhotographMap`` fills the one frame's Frame Label and
  index before that check.

The patient's fields reach the returned dataset (it belongs to the patient's study) and
nothing else: while the map is built, pydicom's and highdicom's log records (pydicom's
warnings can quote values, highdicom logs the source's UIDs) and warnings are dropped, and
a failure is one ``DicomOutError`` line naming no value.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import threading
import warnings
from collections.abc import Iterator

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ..errors import CoreError
from ..explanation import Explanation
from ..fundus.geometry import Box
from ..model import GRADE_NAMES
from ..version import __version__

PARAMETRIC_MAP = "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
# Derived series sort after the camera's own (which number from 1).
SERIES_NUMBER = 9001
MANUFACTURER = "dr-grader (open source research software)"
# UCUM annotations are dimensionless: a score contribution per pixel of the photograph.
UNIT = Code("{score}/{pixel}", "UCUM", "DR score contribution per pixel")
DISCLAIMER = "A research explanation, not a diagnosis; this software is not a medical device."
_FRAME_LABEL = 0x00209453
# The patient and study attributes (type 2) that highdicom reads with no default.
_TYPE2_READ = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
               "StudyID", "StudyDate", "StudyTime")


class DicomOutError(CoreError):
    """A Parametric Map cannot be made for this explanation (no DICOM source, no grade, ...)."""


def parametric_map(exp: Explanation, grade: int | None = None, *, series_number: int = SERIES_NUMBER,
                   instance_number: int = 1, series_instance_uid: str | None = None) -> Dataset:
    """The total map of ``grade`` (default: the explained grade) as a Parametric Map over the source photograph.

    Same study and patient as the source (copied by highdicom), a new series (pass the same
    ``series_instance_uid`` to put the maps of one exam in one series) and new instance UIDs.
    Refused with one ``DicomOutError`` line when the photograph did not come from DICOM, when
    it is ungradable and no ``grade`` is asked for (no grade was given, so none is explained:
    an exam skips it by ``exp.gradable``), when the grade is not 0..4, or when the header
    holds a value highdicom cannot copy (the message names no value).
    """
    info = exp.fundus.dicom
    if info is None:
        raise DicomOutError("a DICOM Parametric Map needs a DICOM source photograph; this one was not read from DICOM")
    if grade is None:
        if not exp.gradable:
            raise DicomOutError("the photograph is ungradable: no grade to explain (ask for a grade's map explicitly)")
        grade = exp.grade
    if isinstance(grade, bool) or not isinstance(grade, (int, np.integer)) or not 0 <= grade < len(GRADE_NAMES):
        raise DicomOutError(f"grade must be 0..{len(GRADE_NAMES) - 1}, not {grade!r}")
    grade = int(grade)
    header = info.header
    rows, columns = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
    if (columns, rows) != tuple(exp.fundus.original_size):
        raise DicomOutError(f"the source header says {columns} x {rows} pixels but the photograph read was "
                            f"{exp.fundus.original_size[0]} x {exp.fundus.original_size[1]}")
    total = exp.total(grade)
    values = to_photograph(total, exp.fundus.crop_box, exp.fundus.original_size).astype(np.float32)
    with _quiet():
        try:
            pm = _build(exp, grade, values, _source_for_highdicom(header), series_number=series_number,
                        instance_number=instance_number, series_instance_uid=series_instance_uid or generate_uid())
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RuntimeError) as exc:
            # The message may quote a header value (a patient's name among them): not shown.
            raise DicomOutError(f"the source's DICOM header holds a value a Parametric Map cannot take ({type(exc).__name__})") from None
        pm.ImageComments = _comments(exp, grade, values)
    return pm


def parametric_map_bytes(exp: Explanation, grade: int | None = None, *, series_number: int = SERIES_NUMBER,
                         instance_number: int = 1, series_instance_uid: str | None = None) -> bytes:
    """``parametric_map`` as the bytes of a DICOM file (Part 10, with preamble), made in memory."""
    pm = parametric_map(exp, grade, series_number=series_number, instance_number=instance_number,
                        series_instance_uid=series_instance_uid)
    buf = io.BytesIO()
    with _quiet():
        pm.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def to_photograph(values: np.ndarray, box: Box, original_size: tuple[int, int]) -> np.ndarray:
    """A (640, 640) per-input-pixel map -> (height, width) per-photograph-pixel, in float64.

    Exact area weighting, separable by axis: photograph pixel (x, y) gets each input pixel's
    value times the share of that input pixel's footprint it covers (Pillow's box convention:
    input pixel i spans ``left + i * s .. left + (i + 1) * s``, ``s = (right - left) / 640``).
    Sums are kept: the result sums to the map's sum over the part of the box inside the
    photograph. Outside the box: 0.
    """
    width, height = original_size
    size = values.shape[0]
    if values.shape != (size, size):
        raise ValueError(f"a square map is expected, not {values.shape}")
    left, top, right, bottom = box
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    out = np.zeros((height, width), np.float64)
    if x1 <= x0 or y1 <= y0:
        return out
    wy = _coverage(top, bottom - top, y0, y1, size)
    wx = _coverage(left, right - left, x0, x1, size)
    out[y0:y1, x0:x1] = wy @ np.asarray(values, np.float64) @ wx.T
    return out


def _coverage(start: int, side: int, lo: int, hi: int, size: int) -> np.ndarray:
    """(hi - lo, size): the share of input pixel j's extent along one axis inside photograph pixel lo + i."""
    scale = side / size
    edges = start + scale * np.arange(size + 1, dtype=np.float64)
    px = np.arange(lo, hi, dtype=np.float64)[:, None]
    overlap = np.minimum(px + 1, edges[None, 1:]) - np.maximum(px, edges[None, :-1])
    return np.clip(overlap, 0.0, None) / scale


# --------------------------------------------------------------------------- highdicom


class _PhotographMap(hd.pm.ParametricMap):
    """highdicom's Parametric Map, with the one frame indexed when the source has no frame of reference.

    highdicom 0.28.2 then writes a Frame Label dimension index but leaves the frame's label
    and index empty (it fills them only for maps without channels); this fills them before
    highdicom checks the two agree (``_build_luts``, its last step). Idempotent, and a no-op
    for any other dimension organisation.
    """

    def _build_luts(self) -> None:
        pointers = [item.get("DimensionIndexPointer") for item in self.get("DimensionIndexSequence", [])]
        if pointers == [_FRAME_LABEL]:
            for n, frame in enumerate(self.get("PerFrameFunctionalGroupsSequence", []), 1):
                content = frame.FrameContentSequence[0]
                if not content.get("DimensionIndexValues"):
                    content.DimensionIndexValues = [n]
                if "FrameLabel" not in content:
                    content.FrameLabel = self.get("ContentLabel", "MAP")
        super()._build_luts()


def _source_for_highdicom(header: Dataset) -> Dataset:
    """A copy of the source header with what highdicom reads from a source image (see the module's docstring)."""
    src = copy.deepcopy(header)
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient"):  # the pixel grid ties the map, not a plane
        if keyword in src:
            del src[keyword]
    for keyword in _TYPE2_READ:
        if keyword not in src:
            setattr(src, keyword, "")
    if "NumberOfFrames" not in src:
        src.NumberOfFrames = 1
    if "SharedFunctionalGroupsSequence" not in src:
        measures = Dataset()
        if src.get("PixelSpacing"):
            measures.PixelSpacing = src.PixelSpacing
        shared = Dataset()
        shared.PixelMeasuresSequence = [measures]
        src.SharedFunctionalGroupsSequence = [shared]
    return src


def _build(exp: Explanation, grade: int, values: np.ndarray, src: Dataset, *, series_number: int,
           instance_number: int, series_instance_uid: str) -> hd.pm.ParametricMap:
    sha = exp.weights_sha256
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="DR_SCORE",
        lut_explanation=_text(f"DR grade {grade} score contribution per photograph pixel", 64),
        unit=UNIT,
        value_range=(float(values.min()), float(values.max())),
        slope=1,
        intercept=0,
    )
    magnitude = np.abs(values[values != 0])
    spread = float(np.percentile(magnitude, 99)) if magnitude.size else 0.0
    window = hd.VOILUTTransformation(
        window_center=0.0, window_width=2 * spread if spread > 0 else 1.0,
        window_explanation="0 +/- 99th percentile of |value|",
    )
    pm = _PhotographMap(
        source_images=[src],
        pixel_array=values,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=_text(f"score propagation, weights {_model(exp, 28)}", 64),
        software_versions=__version__,
        device_serial_number=sha[:64] or "unknown",  # the weights identify the model instance
        # The map follows the retina pixel for pixel, and retinal vessels identify a person.
        contains_recognizable_visual_features=True,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[window],
        content_label=f"DR_GRADE{grade}_TOTAL",
        content_description=_text(f"DR grade {grade} map by {_model(exp, 10)}; research, not a diagnosis", 64),
        content_creator_name=None,
        series_description="DR explanation maps (research, not a diagnosis)",
    )
    # The Parametric Map IOD requires a Frame of Reference; the photograph has none to share.
    if "FrameOfReferenceUID" not in pm:
        pm.FrameOfReferenceUID = generate_uid()
        pm.PositionReferenceIndicator = None
    if src.get("ImageLaterality"):
        pm.ImageLaterality = src.ImageLaterality
    return pm


def _comments(exp: Explanation, grade: int, values: np.ndarray) -> str:
    """The full statement (ImageComments, LT): what the map is, from which model, what it sums to, and what it is not."""
    score, kept = float(exp.scores[grade]), float(values.sum(dtype=np.float64))
    ungradable = "" if exp.gradable else (
        "The photograph failed the quality check: no grade was given; this map explains a score only. ")
    return _text(
        f"Total map of DR grade {grade} ({GRADE_NAMES[grade]}), score {score:.6g}, from weights "
        f"{_text(exp.weights_name, 256)} (sha256 {exp.weights_sha256}) by score propagation (dr-grader "
        f"{__version__}). Each pixel holds its contribution to the grade's score; the map sums to {kept:.6g} "
        f"(the rest, {score - kept:.3g}, lay on padding beyond the photograph's edge). {ungradable}{DISCLAIMER}",
        10240)


def _model(exp: Explanation, name_limit: int) -> str:
    """``paper 730173b0``: the weights' name (shortened to ``name_limit``) and sha256 prefix."""
    return f"{_text(exp.weights_name, name_limit)} {exp.weights_sha256[:8]}"


def _text(text: str, limit: int) -> str:
    """A value safe for a DICOM text attribute (no backslash, which separates values; no control characters)."""
    text = "".join(c if c.isprintable() else " " for c in str(text).replace("\\", "/"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- quiet


class _DropWhileBuilding(logging.Filter):
    """pydicom's value warnings can quote a value and highdicom logs the source's UIDs: none while a map is built."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_building, "on", False)


_building = threading.local()
_drop = _DropWhileBuilding()
_lock = threading.RLock()  # warnings.catch_warnings swaps process-wide filters: one map at a time


def _silence_loggers() -> None:
    """Put the filter on pydicom's and highdicom's loggers (a logger's filter does not cover its children)."""
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in ("pydicom", "highdicom")]
    for name in {"pydicom", "highdicom", *names}:
        logging.getLogger(name).addFilter(_drop)  # a no-op when already there


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Build with pydicom's and highdicom's log records dropped and warnings hidden."""
    _silence_loggers()
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        was_on = getattr(_building, "on", False)
        _building.on = True
        try:
            yield
        finally:
            _building.on = was_on


__all__ = ["DISCLAIMER", "PARAMETRIC_MAP", "SERIES_NUMBER", "UNIT", "DicomOutError", "parametric_map",
           "parametric_map_bytes", "to_photograph"]
