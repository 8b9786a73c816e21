"""Issue 13, DICOM input: fundus photographs as DICOM files, built in memory with pydicom from a
real IDRiD photograph (CC BY 4.0) in every pixel format the reader takes. Each must give the
scores of the same pixels read from PNG (to 1e-3); lossless formats must give the photograph's
own pixels, lossy ones those of an independent decoder (Pillow on the bare codestream).

Also: laterality from either tag, the patient fields (read, kept out of repr, warnings and
logs), files without a preamble, and one-line refusals (multi-frame, OCT, CT, truncated,
deflated, other encodings), with the pixel limit checked from the header before any decoding.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
import tracemalloc
import warnings
from collections.abc import Callable

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image, JpegImagePlugin
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels.decoders.base import Decoder
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from core.fundus import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    UNEXPECTED_FAILURE,
    DicomInfo,
    FundusReadError,
    decode_image,
    is_dicom,
    read_dicom,
    read_fundus,
)
from core.fundus.dicom import OPHTHALMIC_8BIT, OPHTHALMIC_16BIT, SECONDARY_CAPTURE, VL_PHOTOGRAPHIC
from core.propagation import forward_scores
from core.weights import load_weights
from tests.conftest import RETINA, require_real_data
from tests.dicom_files import PATIENT, PATIENT_ID, dataset, save
from tests.fundus.hostile_corpus import WriteRecorder
from tests.image_bytes import cv2_encode, encode

OCT = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
CT = "1.2.840.10008.5.1.4.1.1.2"


# ----------------------------------------------------------------------------- building files


def encapsulated(ds: Dataset, codestream: bytes, syntax: str, photometric: str) -> Dataset:
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PhotometricInterpretation = photometric
    ds.LossyImageCompression = "01"
    return ds


def first_frame(ds: Dataset) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def pillow_decode(codestream: bytes) -> np.ndarray:
    """The independent decoder: Pillow on the bare JPEG or JPEG 2000 codestream."""
    with Image.open(io.BytesIO(codestream)) as im:
        return np.asarray(im.convert("RGB"))


def png(arr: np.ndarray) -> bytes:
    return encode(arr, "PNG", compress_level=1)


def real_photo() -> np.ndarray:
    """An IDRiD photograph (4288 x 2848) brought to 1024 x 680: the suite stays fast."""
    with Image.open(require_real_data() / "idrid-grading-train" / "images" / "IDRiD_001.jpg") as im:
        im.draft("RGB", (1072, 712))  # JPEG's DCT scaling: decode at an eighth... then resize
        return np.asarray(im.convert("RGB").resize((1024, 680), Image.Resampling.LANCZOS))


def small_photo(side: int = 96) -> np.ndarray:
    """A crop of the repository's real photograph, for the tests that only read headers."""
    with Image.open(RETINA) as im:
        return np.asarray(im.convert("RGB").resize((side, side)))


@dataclasses.dataclass(frozen=True)
class Built:
    dicom: bytes
    reference: np.ndarray  # the RGB pixels the DICOM must decode to
    reference_png: bytes  # the same pixels as PNG (16-bit PNG for 16-bit DICOM)
    tolerance: int = 0  # max per-pixel difference allowed against ``reference`` (lossy: other decoder)


def build_formats(rgb: np.ndarray) -> dict[str, Built]:
    grey = np.ascontiguousarray(rgb[..., 1])
    grey_rgb = np.repeat(grey[..., None], 3, axis=2)
    out: dict[str, Built] = {}
    out["rgb-planar0"] = Built(save(dataset(rgb)), rgb, png(rgb))

    ds = dataset(rgb, sop=VL_PHOTOGRAPHIC, modality="XC")
    ds.PlanarConfiguration = 1
    ds.PixelData = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
    out["rgb-planar1"] = Built(save(ds), rgb, png(rgb))

    out["monochrome2"] = Built(save(dataset(grey, sop=SECONDARY_CAPTURE, modality="OT")), grey_rgb, png(grey))
    out["monochrome1"] = Built(save(dataset(255 - grey, photometric="MONOCHROME1")), grey_rgb, png(grey))

    rgb16 = rgb.astype(np.uint16) * 257
    out["rgb-16bit"] = Built(save(dataset(rgb16, sop=OPHTHALMIC_16BIT, bits=16)), rgb, cv2_encode(rgb16[..., ::-1], ".png"))
    rgb12 = np.round(rgb * (4095 / 255)).astype(np.uint16)
    out["rgb-12-of-16bit"] = Built(save(dataset(rgb12, sop=OPHTHALMIC_16BIT, bits=16, stored=12)), rgb,
                                   cv2_encode(rgb12[..., ::-1], ".png"))

    jpeg = encode(rgb, "JPEG", quality=90, subsampling=1)  # subsampling=1: 4:2:2
    with Image.open(io.BytesIO(jpeg)) as im:
        assert JpegImagePlugin.get_sampling(im) == 1
    ds = encapsulated(dataset(rgb), jpeg, JPEGBaseline8Bit, "YBR_FULL_422")
    ref = pillow_decode(jpeg)
    out["jpeg-baseline-ybr422"] = Built(save(ds), ref, png(ref), tolerance=1)

    ds = dataset(rgb, photometric="YBR_RCT")  # RGB pixels, reversible colour transform in the codestream
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    out["jpeg2000-lossless"] = Built(save(ds), rgb, png(rgb))

    ds = dataset(rgb, photometric="YBR_ICT")
    ds.compress(JPEG2000, encoding_plugin="pylibjpeg", j2k_cr=[20])
    ref = pillow_decode(first_frame(ds))
    assert np.abs(ref.astype(int) - rgb).mean() > 0.1  # really lossy
    out["jpeg2000-lossy"] = Built(save(ds), ref, png(ref), tolerance=1)

    ds = dataset(rgb)
    ds.compress(RLELossless)
    out["rle"] = Built(save(ds), rgb, png(rgb))
    return out


@pytest.fixture(scope="module")
def formats() -> dict[str, Built]:
    return build_formats(real_photo())


@pytest.fixture(scope="module")
def model():
    return load_weights(None)


def scores(model, fundus) -> np.ndarray:
    with torch.no_grad():
        return forward_scores(model.network, model.normalisation.to_tensor(fundus.image))[0]


def refused(data: bytes, reader: Callable[[bytes], object] = read_dicom) -> str:
    with pytest.raises(FundusReadError) as excinfo:
        reader(data)
    message = str(excinfo.value)
    assert message and "\n" not in message and len(message) < 200, message
    assert not message.startswith(UNEXPECTED_FAILURE), message
    assert PATIENT.split("^")[0] not in message and PATIENT_ID not in message
    return message


# ----------------------------------------------------------------------------- every pixel format

FORMATS = ["rgb-planar0", "rgb-planar1", "monochrome2", "monochrome1", "rgb-16bit", "rgb-12-of-16bit",
           "jpeg-baseline-ybr422", "jpeg2000-lossless", "jpeg2000-lossy", "rle"]


@pytest.mark.parametrize("name", FORMATS)
def test_every_pixel_format_scores_as_the_same_pixels_read_from_png(formats, model, name: str) -> None:
    built = formats[name]
    rgb, info = read_dicom(built.dicom)
    diff = np.abs(rgb.astype(int) - built.reference)
    assert rgb.shape == built.reference.shape and rgb.dtype == np.uint8
    assert diff.max() <= built.tolerance, f"{name}: pixels differ by up to {diff.max()}"
    assert info.laterality == "right"

    from_dicom = read_fundus(built.dicom, name=f"{name}.dcm")
    from_png = read_fundus(built.reference_png)
    assert from_dicom.dicom is not None and from_png.dicom is None
    assert from_dicom.crop_box == from_png.crop_box and from_dicom.gradable == from_png.gradable
    np.testing.assert_allclose(scores(model, from_dicom), scores(model, from_png), rtol=0, atol=1e-3)


def test_ybr_is_converted_to_rgb_once(formats) -> None:
    """A YBR frame left unconverted (or converted twice) is far from the photograph's colours."""
    rgb, _ = read_dicom(formats["jpeg-baseline-ybr422"].dicom)
    original = formats["rgb-planar0"].reference
    assert np.abs(rgb.astype(int) - original).mean() < 3
    assert np.abs(rgb.mean(axis=(0, 1)) - original.mean(axis=(0, 1))).max() < 1


# ----------------------------------------------------------------------------- what the header says


@pytest.mark.parametrize(
    ("image_laterality", "laterality", "expected"),
    [("L", None, "left"), ("R", None, "right"), (None, "L", "left"), (None, "R", "right"), ("R", "L", "right"),
     ("B", None, None), ("U", None, None), ("B", "R", None), (None, None, None)],
)
def test_laterality_from_image_laterality_else_laterality(image_laterality, laterality, expected) -> None:
    ds = dataset(small_photo())
    del ds.ImageLaterality
    if image_laterality:
        ds.ImageLaterality = image_laterality
    if laterality:
        ds.Laterality = laterality
    assert read_dicom(save(ds))[1].laterality == expected


def test_patient_fields_and_uids_are_read_and_repr_redacts_them() -> None:
    ds = dataset(small_photo(256))
    f = read_fundus(save(ds), name="eye.dcm")
    info = f.dicom
    assert isinstance(info, DicomInfo) and f.source == "eye.dcm"
    assert (info.patient_name, info.patient_id, info.birth_date, info.study_date) == (PATIENT, PATIENT_ID, "19491231", "20240315")
    assert (info.sop_class_uid, info.modality) == (OPHTHALMIC_8BIT, "OP")
    assert (info.sop_instance_uid, info.study_instance_uid, info.series_instance_uid) == (
        ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID)
    # The header is for referencing the source instance: everything but the pixels.
    assert "PixelData" not in info.header and info.header.SOPInstanceUID == ds.SOPInstanceUID
    assert info.header.Rows == 256 and info.header.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    for text in (repr(info), str(info), repr(f), f"{info}"):
        for secret in ("Fictitious", "Testpatient", PATIENT_ID, "19491231", "20240315", ds.SOPInstanceUID):
            assert secret not in text
    assert "Ophthalmic Photography 8-bit" in repr(info)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.patient_name = "x"  # type: ignore[misc]


def test_absent_patient_fields_are_empty_strings() -> None:
    ds = dataset(small_photo())
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "ImageLaterality"):
        delattr(ds, keyword)
    info = read_dicom(save(ds))[1]
    assert (info.patient_name, info.patient_id, info.birth_date, info.study_date, info.laterality) == ("", "", "", "", None)


def test_invalid_values_are_read_without_a_warning_or_log_record(caplog: pytest.LogCaptureFixture) -> None:
    """pydicom's value checks quote the value (a patient's name) in warnings and its log: none while reading."""
    with pydicom.config.disable_value_validation():
        ds = dataset(small_photo())
        ds.PatientName = PATIENT + "^" + "X" * 80  # a component over 64 characters
        ds.PatientBirthDate = "31.12.1949"  # not a DA
        data = save(ds)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    with warnings.catch_warnings(record=True) as seen, WriteRecorder() as recorder:
        warnings.simplefilter("always")
        info = read_fundus(data).dicom
    assert info is not None and info.patient_name.startswith(PATIENT) and info.birth_date == "31.12.1949"
    assert [str(w.message) for w in seen] == [] and caplog.records == []
    assert recorder.writes == []
    assert pydicom.config.settings.reading_validation_mode == pydicom.config.WARN  # restored


def test_files_without_preamble_or_file_meta_are_read() -> None:
    rgb = small_photo()
    ds = dataset(rgb)
    ds.preamble = None
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)  # file meta, no preamble
    bare = dataset(rgb)
    del bare.file_meta
    variants = [buf.getvalue(), save(bare, implicit_vr=True, little_endian=True), save(bare, implicit_vr=False, little_endian=True)]
    for data in variants:
        assert data[128:132] != b"DICM" and is_dicom(data)
        out, info = read_dicom(data)
        np.testing.assert_array_equal(out, rgb)
        assert info.patient_name == PATIENT


def test_pictures_are_not_taken_for_dicom() -> None:
    rgb = small_photo(32)
    for fmt in ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"):
        assert not is_dicom(encode(rgb, fmt)), fmt
    assert not is_dicom(b"") and not is_dicom(b"\x08\x00")


def test_dcm_is_an_image_suffix_and_decode_image_points_to_read_fundus() -> None:
    assert ".dcm" in IMAGE_SUFFIXES
    message = refused(save(dataset(small_photo())), decode_image)
    assert "DICOM" in message and "read_fundus" in message


# ----------------------------------------------------------------------------- refusals


def test_multi_frame_images_are_refused() -> None:
    frames = np.stack([small_photo(), small_photo()[::-1]])
    ds = dataset(frames[0])
    ds.NumberOfFrames, ds.PixelData = 2, frames.tobytes()
    assert refused(save(ds)) == "DICOM: multi-frame images (2 frames) are not supported"


def test_oct_and_other_modalities_are_refused_by_name() -> None:
    grey = small_photo()[..., 0].copy()
    assert refused(save(dataset(grey, sop=OCT))) == "DICOM: OCT (Ophthalmic Tomography) is not a fundus photograph"
    ct = dataset(grey.astype(np.uint16), sop=CT, modality="CT", bits=16, stored=12)
    assert refused(save(ct)).startswith("DICOM: CT is not a fundus photograph")
    mr = dataset(grey, sop="1.2.840.10008.5.1.4.1.1.4", modality="MR")
    assert refused(save(mr), read_fundus).startswith("DICOM: MR is not a fundus photograph")
    unknown = dataset(grey, sop="1.2.3.4", modality="ZZ")
    assert "1.2.3.4 (modality ZZ) is not a fundus photograph" in refused(save(unknown))


@pytest.mark.parametrize("fraction", [0.001, 0.05, 0.3, 0.6, 0.95, 0.999])
@pytest.mark.parametrize("kind", ["native", "jpeg2000", "rle"])
def test_truncated_files_are_refused_in_one_line(kind: str, fraction: float) -> None:
    ds = dataset(small_photo(128))
    if kind == "jpeg2000":
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    elif kind == "rle":
        ds.compress(RLELossless)
    data = save(ds)
    message = refused(data[: max(1, int(len(data) * fraction))], read_fundus)
    assert "DICOM" in message or "empty" in message or "not a supported image" in message


def test_a_codestream_cut_short_inside_a_whole_file_is_refused() -> None:
    """openjpeg would decode the cut JPEG 2000 codestream without an error, missing detail."""
    rgb = small_photo(128)
    j2k = dataset(rgb)
    j2k.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    cut = first_frame(j2k)[:-200]
    assert refused(save(encapsulated(dataset(rgb), cut, JPEG2000Lossless, "RGB"))) == "DICOM: the compressed frame is truncated"
    jpeg = encode(rgb, "JPEG", quality=90, subsampling=1)[:-200]
    assert "truncated" in refused(save(encapsulated(dataset(rgb), jpeg, JPEGBaseline8Bit, "YBR_FULL_422")))


def test_other_encodings_are_refused_in_one_line() -> None:
    rgb = small_photo()
    ds = dataset(rgb)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    assert refused(save(ds)) == "DICOM: deflated datasets are not supported"
    ds = encapsulated(dataset(rgb), b"\xff\xd8\xff\xf7" + bytes(64), JPEGLSLossless, "RGB")
    assert "JPEG-LS Lossless" in refused(save(ds))
    ds = dataset(rgb[..., 0].copy())
    ds.PhotometricInterpretation = "PALETTE COLOR"
    assert "PALETTE COLOR is not supported" in refused(save(ds))
    ds = dataset(rgb)
    ds.PixelRepresentation = 1
    assert refused(save(ds)) == "DICOM: signed pixel data is not supported"
    ds = dataset(rgb)
    del ds.PixelData
    assert refused(save(ds)) == "DICOM: the file holds no pixel data"


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every pixel decoding pydicom starts (all its decoders go through ``Decoder.as_array``)."""
    calls: list[str] = []
    original = Decoder.as_array

    def as_array(self, *args, **kwargs):
        calls.append(str(self.UID))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Decoder, "as_array", as_array)
    return calls


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless])
def test_the_pixel_limit_is_checked_from_the_header_before_decoding(decodes: list[str], syntax: str) -> None:
    rgb = small_photo(64)
    ds = dataset(rgb)
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    read_dicom(save(ds))
    assert decodes == [syntax]  # the spy sees decoding
    decodes.clear()
    ds.Rows = ds.Columns = 50_000  # 2.5 billion pixels claimed by a file of a few kilobytes
    data = save(ds)
    tracemalloc.start()
    start = time.perf_counter()
    message = refused(data, read_fundus)
    elapsed, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert message == f"DICOM: image is 50000 x 50000 pixels; the limit is {MAX_PIXELS:,} pixels"
    assert decodes == [] and elapsed < 1 and peak < 20e6


def test_a_codestream_larger_than_its_header_is_refused_before_decoding(decodes: list[str]) -> None:
    rgb = small_photo(512)
    ds = dataset(rgb)
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    ds.Rows = ds.Columns = 32
    assert "the compressed frame is 512 x 512 pixels but the header says 32 x 32" in refused(save(ds))
    ds = encapsulated(dataset(rgb[:32, :32].copy()), encode(rgb, "JPEG", quality=90), JPEGBaseline8Bit, "YBR_FULL_422")
    assert "the compressed frame is 512 x 512 pixels" in refused(save(ds))
    assert decodes == []
