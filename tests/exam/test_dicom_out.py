"""Issue 13, DICOM out: a grade's total map as a DICOM Parametric Map over its source photograph.

The source is an Ophthalmic Photography 8-bit file built in memory with pydicom from a real
IDRiD photograph (CC BY 4.0) brought to 1024 x 680, with a made-up patient. It is read with
``core.read_fundus``, explained with the bundled default model, and its map is written to bytes
and read back with pydicom and highdicom. Checked: the SOP class, the references to the source
instance, the study and patient copied, the source's Rows/Columns, the values against the total
map (sums kept exactly; placement over the photograph), the real world value mapping, and the
one-line refusals. Nothing is written to disk.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import logging
import warnings

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

import core
from core.errors import CoreError
from core.exam.dicom_out import PARAMETRIC_MAP, DicomOutError, parametric_map, parametric_map_bytes, to_photograph
from core.fundus.dicom import OPHTHALMIC_8BIT, OPHTHALMIC_16BIT, SECONDARY_CAPTURE, VL_PHOTOGRAPHIC
from core.fundus.geometry import to_input
from core.version import __version__
from tests.conftest import RETINA, require_real_data
from tests.dicom_files import dataset, save

PATIENT = "Fictitious^Mapper"  # made up
PATIENT_ID = "MAP-0042"


def ophthalmic_photograph(rgb: np.ndarray, **extra: object) -> bytes:
    """An Ophthalmic Photography 8-bit file (uncompressed RGB) holding ``rgb``, as bytes."""
    ds = dataset(rgb)
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PatientName, ds.PatientID, ds.PatientSex = PATIENT, PATIENT_ID, "O"
    ds.StudyTime, ds.StudyID, ds.AccessionNumber = "101500", "S1", "A1"
    ds.ImageLaterality = "L"
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return save(ds)


@pytest.fixture(scope="module")
def source() -> bytes:
    with Image.open(require_real_data() / "idrid-grading-train" / "images" / "IDRiD_001.jpg") as im:
        im.draft("RGB", (1072, 712))  # JPEG's DCT scaling, then a proper resize: fast
        rgb = np.asarray(im.convert("RGB").resize((1024, 680), Image.Resampling.LANCZOS))
    return ophthalmic_photograph(rgb)


@pytest.fixture(scope="module")
def model():
    return core.load_weights(None)


@pytest.fixture(scope="module")
def exp(model, source):
    return core.explain(model, core.read_fundus(source, name="IMG0001.dcm"))


@pytest.fixture(scope="module")
def written(exp) -> bytes:
    return parametric_map_bytes(exp)


@pytest.fixture(scope="module")
def read_back(written) -> Dataset:
    return pydicom.dcmread(io.BytesIO(written))


def map_values(ds: Dataset) -> np.ndarray:
    """The real world values, through highdicom's own reading of the mapping."""
    pm = hd.pm.ParametricMap.from_dataset(ds)
    return pm.get_frame(1, apply_real_world_transform=True).astype(np.float64)


def with_header(exp, header: Dataset):
    """The same explanation, its photograph's DICOM header replaced (no second run of the model)."""
    other = copy.copy(exp)
    info = dataclasses.replace(exp.fundus.dicom, header=header)
    other.fundus = dataclasses.replace(exp.fundus, dicom=info)
    return other


# ----------------------------------------------------------------------------- the file


def test_it_is_a_parametric_map_in_the_source_study_with_the_patient_copied(exp, read_back, source) -> None:
    src = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)
    ds = read_back
    assert ds.SOPClassUID == PARAMETRIC_MAP == ds.file_meta.MediaStorageSOPClassUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
    assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.PatientSex) == (PATIENT, PATIENT_ID, "19491231", "O")
    assert (ds.StudyDate, ds.StudyID, ds.AccessionNumber) == ("20240315", "S1", "A1")
    assert ds.ImageLaterality == "L"
    assert (ds.Rows, ds.Columns) == (src.Rows, src.Columns) == (680, 1024)
    assert ds.NumberOfFrames == 1 and ds.BitsAllocated == 32 and "FloatPixelData" in ds
    assert ds.ContentQualification == "RESEARCH"
    assert "FrameOfReferenceUID" in ds and ds.FrameOfReferenceUID != src.get("FrameOfReferenceUID")


def test_it_references_the_source_instance_with_spatial_locations_preserved(read_back, source) -> None:
    src = pydicom.dcmread(io.BytesIO(source), stop_before_pixels=True)
    ds = read_back
    (series,) = ds.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == src.SeriesInstanceUID
    assert [(r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID) for r in series.ReferencedInstanceSequence] == [
        (OPHTHALMIC_8BIT, src.SOPInstanceUID)]
    assert [r.ReferencedSOPInstanceUID for r in ds.SourceImageSequence] == [src.SOPInstanceUID]
    (frame,) = ds.PerFrameFunctionalGroupsSequence
    (derived,) = frame.DerivationImageSequence[0].SourceImageSequence
    assert derived.ReferencedSOPInstanceUID == src.SOPInstanceUID and derived.SpatialLocationsPreserved == "YES"


def test_it_names_the_grade_and_the_model_and_says_it_is_no_diagnosis(exp, read_back) -> None:
    ds, sha = read_back, exp.weights_sha256
    assert ds.ContentLabel == f"DR_GRADE{exp.grade}_TOTAL"
    text = ds.ContentDescription
    assert f"grade {exp.grade}" in text and exp.weights_name in text and sha[:8] in text and "not a diagnosis" in text
    assert len(text) <= 64
    comments = " ".join(ds.ImageComments.split())
    assert f"DR grade {exp.grade}" in comments and sha in comments and "not a diagnosis" in comments
    assert ds.DeviceSerialNumber == sha and ds.SoftwareVersions == __version__


def test_the_real_world_value_mapping_is_the_identity_in_score_per_pixel(read_back) -> None:
    shared = read_back.SharedFunctionalGroupsSequence[0]
    (mapping,) = shared.RealWorldValueMappingSequence
    (unit,) = mapping.MeasurementUnitsCodeSequence
    assert (unit.CodingSchemeDesignator, unit.CodeValue) == ("UCUM", "{score}/{pixel}")
    assert "score" in unit.CodeMeaning and "score" in mapping.LUTExplanation
    assert (mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept) == (1.0, 0.0)
    stored = read_back.pixel_array.astype(np.float64)  # pydicom's reading of the floats
    assert mapping.DoubleFloatRealWorldValueFirstValueMapped == stored.min()
    assert mapping.DoubleFloatRealWorldValueLastValueMapped == stored.max()
    np.testing.assert_array_equal(map_values(read_back), stored)  # highdicom applies the mapping: same floats
    (window,) = shared.FrameVOILUTSequence
    assert window.WindowCenter == 0 and window.WindowWidth > 0


# ----------------------------------------------------------------------------- the values


def coverage(start: int, side: int, length: int, size: int = core.INPUT_SIZE) -> np.ndarray:
    """(size,): the share of each input pixel's extent that lies inside the photograph (0..length)."""
    s = side / size
    lo = start + s * np.arange(size)
    return np.clip(np.minimum(lo + s, length) - np.maximum(lo, 0), 0, s) / s


def test_the_map_keeps_the_total_maps_sum_over_the_photograph(exp, read_back) -> None:
    """Resampling moves value between pixels but loses none: the map's sum is the total map's
    sum weighted by how much of each input pixel lies inside the photograph (computed here on
    its own, per axis), to float32's precision (1e-5 relative).

    Why exact, not "within 1%": the total map is large values that cancel (on this photograph
    the sum of |value| is about 150 times |sum|), so a resampling that does not conserve area
    exactly (point sampling, bilinear) misses the sum by far more than 1%; the sum of its
    resampled map would say little. What lies on the padding beyond the photograph's edge has
    no pixel to go to; ``ImageComments`` states the map's sum beside the score."""
    values = map_values(read_back)
    total = exp.total()[exp.grade].astype(np.float64)
    (left, top, right, bottom), (w, h) = exp.fundus.crop_box, exp.fundus.original_size
    expected = coverage(top, bottom - top, h) @ total @ coverage(left, right - left, w)
    assert values.sum() == pytest.approx(expected, rel=1e-5)
    comments = " ".join(read_back.ImageComments.split())
    assert f"score {float(exp.scores[exp.grade]):.6g}" in comments and f"sums to {values.sum():.6g}" in comments
    inside = np.zeros((h, w), bool)
    inside[max(top, 0):bottom, max(left, 0):right] = True
    assert not values[~inside].any()  # outside the crop box: 0


def test_the_map_lies_over_the_photograph_where_the_geometry_says(exp, read_back) -> None:
    """An independent resampling: the total map point-sampled at each photograph pixel's centre
    (``geometry.to_input``, nearest input pixel) and spread over the input pixel's area (divided
    by s^2). The two differ only at input-pixel edges, so they correlate closely over the field
    of view (0.96 here); the map varies from pixel to pixel, so shifting the map one photograph
    pixel in any direction must lose much of that (to about 0.75 here): it lies where the
    geometry says, not a pixel off."""
    values = map_values(read_back)
    total = exp.total()[exp.grade].astype(np.float64)
    box, (w, h) = exp.fundus.crop_box, exp.fundus.original_size
    s = (box[2] - box[0]) / core.INPUT_SIZE
    ys, xs = np.mgrid[0:h, 0:w]
    ix, iy = np.round(to_input(np.stack([xs, ys], axis=-1), box)).astype(int).transpose(2, 0, 1)
    ok = (ix >= 0) & (ix < core.INPUT_SIZE) & (iy >= 0) & (iy < core.INPUT_SIZE)
    sampled = np.zeros((h, w))
    sampled[ok] = total[iy[ok], ix[ok]] / s**2
    fov = np.zeros((h, w), bool)
    fov[ok] = exp.fundus.fov[iy[ok], ix[ok]]
    fov[:2], fov[-2:], fov[:, :2], fov[:, -2:] = False, False, False, False  # so a shift wraps nothing in

    def correlation(dx: int, dy: int) -> float:
        return float(np.corrcoef(np.roll(values, (dy, dx), axis=(0, 1))[fov], sampled[fov])[0, 1])

    aligned = correlation(0, 0)
    assert aligned > 0.9
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        assert correlation(dx, dy) < aligned - 0.1, (dx, dy)


def test_to_photograph_shares_each_input_pixel_by_area() -> None:
    rng = np.random.default_rng(13)
    m = rng.normal(size=(4, 4))
    np.testing.assert_allclose(to_photograph(m, (0, 0, 4, 4), (4, 4)), m)  # same grid: unchanged
    np.testing.assert_allclose(to_photograph(m, (0, 0, 8, 8), (8, 8)), np.kron(m, np.ones((2, 2))) / 4)  # 2x: a quarter each
    np.testing.assert_allclose(to_photograph(m, (0, 0, 2, 2), (2, 2)), m.reshape(2, 2, 2, 2).sum(axis=(1, 3)))  # 1/2x: sums
    # A box (2 photograph pixels per input pixel) beyond the 5 x 4 photograph on three sides: input
    # column 0 and rows 2-3 fall outside, column 3 and row 1 half inside; photograph row 0 is above the box.
    cut = to_photograph(m, (-2, 1, 6, 9), (5, 4))
    assert not cut[0].any() and cut.sum() == pytest.approx(np.array([1, 0.5, 0, 0]) @ m @ np.array([0, 1, 1, 0.5]))


# ----------------------------------------------------------------------------- other sources


@pytest.mark.parametrize("sop", [OPHTHALMIC_16BIT, VL_PHOTOGRAPHIC, SECONDARY_CAPTURE])
def test_every_sop_class_read_makes_a_map_referencing_it(exp, sop: str) -> None:
    header = copy.deepcopy(exp.fundus.dicom.header)
    header.SOPClassUID = sop
    for keyword in ("NumberOfFrames", "PatientSex", "StudyTime", "AccessionNumber"):  # absent: fine
        del header[keyword]
    ds = parametric_map(with_header(exp, header))
    assert ds.SourceImageSequence[0].ReferencedSOPClassUID == sop
    assert ds.PatientSex == "" and ds.StudyTime == ""  # DICOM's "unknown", never invented


def test_a_source_with_a_frame_of_reference_and_a_plane_gives_the_frame_only(exp) -> None:
    header = copy.deepcopy(exp.fundus.dicom.header)
    header.SOPClassUID = SECONDARY_CAPTURE
    header.FrameOfReferenceUID = generate_uid()
    header.ImagePositionPatient, header.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds = parametric_map(with_header(exp, header))
    assert ds.FrameOfReferenceUID == header.FrameOfReferenceUID
    assert "PlanePositionSequence" not in ds.PerFrameFunctionalGroupsSequence[0]
    assert "ImagePositionPatient" in header  # dropped from highdicom's copy only


def test_a_calibrated_source_gives_its_pixel_spacing(exp) -> None:
    header = copy.deepcopy(exp.fundus.dicom.header)
    header.PixelSpacing = [0.0125, 0.0125]
    ds = pydicom.dcmread(io.BytesIO(parametric_map_bytes(with_header(exp, header))))
    assert [float(v) for v in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing] == [0.0125, 0.0125]


def test_the_source_header_is_not_changed_and_nothing_is_logged(exp, caplog) -> None:
    header = exp.fundus.dicom.header
    before = copy.deepcopy(header)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parametric_map_bytes(exp, 0, series_number=42, instance_number=3)
    assert header == before and "SharedFunctionalGroupsSequence" not in header
    said = " ".join([r.getMessage() for r in caplog.records] + [str(w.message) for w in caught])
    for secret in ("Fictitious", "Mapper", PATIENT_ID, exp.fundus.dicom.sop_instance_uid, exp.fundus.dicom.study_instance_uid):
        assert secret not in said


# ----------------------------------------------------------------------------- refusals


def test_a_photograph_not_read_from_dicom_is_refused_in_one_line(model) -> None:
    png = core.explain(model, core.read_fundus(RETINA))
    with pytest.raises(DicomOutError) as info:
        parametric_map_bytes(png)
    assert isinstance(info.value, CoreError) and "\n" not in str(info.value) and "DICOM" in str(info.value)


@pytest.mark.parametrize("grade", [5, -1, True, 2.0])
def test_a_grade_out_of_range_is_refused(exp, grade) -> None:
    with pytest.raises(DicomOutError, match="grade must be 0..4"):
        parametric_map(exp, grade)


def test_an_ungradable_photograph_has_no_grade_to_explain_unless_one_is_asked(exp, monkeypatch) -> None:
    monkeypatch.setattr(type(exp), "gradable", property(lambda self: False))
    with pytest.raises(DicomOutError, match="ungradable"):
        parametric_map(exp)
    ds = parametric_map(exp, 4)
    assert ds.ContentLabel == "DR_GRADE4_TOTAL" and "no grade was given" in ds.ImageComments


def test_a_header_value_highdicom_refuses_is_one_line_that_quotes_nothing(exp) -> None:
    header = copy.deepcopy(exp.fundus.dicom.header)
    with pydicom.config.disable_value_validation():
        header.PatientBirthDate = "31.12.1949"  # not a DICOM date: highdicom's message would quote it
    with pytest.raises(DicomOutError) as info:
        parametric_map(with_header(exp, header))
    assert "1949" not in str(info.value) and info.value.__cause__ is None and "\n" not in str(info.value)
