"""DICOM fundus photographs: the header read and checked first, then one frame decoded to 8-bit RGB.

Hospitals keep fundus photographs as DICOM (Ophthalmic Photography 8- and 16-bit, VL
Photographic, Secondary Capture). A DICOM upload is as untrusted as any other, so this
follows ``decode``: the header is read without the pixels (``stop_before_pixels``) and
the SOP class, frame count, pixel count and pixel encoding are checked before a pixel is
decoded; a compressed frame must be the size its header says (a small header cannot hide
a huge codestream); deflated datasets (a zlib bomb pydicom would inflate whole) are
refused unread; nothing is written to disk; every failure is one ``FundusReadError``.

Only permissively licensed decoders are used, each named per transfer syntax so pydicom
never falls back to another: Pillow (HPND) for JPEG Baseline, pylibjpeg-openjpeg (MIT)
else Pillow for JPEG 2000, pylibjpeg-rle (MIT) for RLE; never the GPL
pylibjpeg-libjpeg, which pydicom would otherwise try first.

Patient fields stay in memory for the report the user asks for: ``DicomInfo``'s repr
redacts them, and while the header is read pydicom's value checks (whose messages quote
values, a patient's name among them) are off and its log records are dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pydicom
import pydicom.config
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.filereader import read_dataset, read_preamble
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from .decode import FundusReadError, check_byte_size, check_pixels, scale_to_uint8

OPHTHALMIC_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
OPHTHALMIC_16BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.2"
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# The SOP classes read, with the names messages use.
SOP_CLASSES: dict[str, str] = {
    OPHTHALMIC_8BIT: "Ophthalmic Photography 8-bit",
    OPHTHALMIC_16BIT: "Ophthalmic Photography 16-bit",
    VL_PHOTOGRAPHIC: "VL Photographic",
    SECONDARY_CAPTURE: "Secondary Capture",
}
# Transfer syntax -> the decoding plugins allowed, in order of preference (none for native data).
TRANSFER_SYNTAXES: dict[str, tuple[str, ...]] = {
    ImplicitVRLittleEndian: (),
    ExplicitVRLittleEndian: (),
    ExplicitVRBigEndian: (),
    JPEGBaseline8Bit: ("pillow",),
    JPEG2000Lossless: ("pylibjpeg", "pillow"),
    JPEG2000: ("pylibjpeg", "pillow"),
    # Not pydicom's own RLE decoder: it inflates a segment whole before checking its length
    # (a few kilobytes can claim 50 MB), where pylibjpeg-rle writes into the header's frame.
    RLELossless: ("pylibjpeg",),
}
_OCT = {
    "1.2.840.10008.5.1.4.1.1.77.1.5.4",  # Ophthalmic Tomography
    "1.2.840.10008.5.1.4.1.1.77.1.5.7",  # OCT B-scan Volume Analysis
    "1.2.840.10008.5.1.4.1.1.77.1.5.8",  # OCT En Face
}
_PHOTOMETRIC = {
    "MONOCHROME1": 1, "MONOCHROME2": 1, "RGB": 3, "YBR_FULL": 3, "YBR_FULL_422": 3, "YBR_ICT": 3, "YBR_RCT": 3,
}
_PILLOW_FORMAT = {JPEGBaseline8Bit: "JPEG", JPEG2000Lossless: "JPEG2000", JPEG2000: "JPEG2000"}
_MAX_DEPTH = 16  # nested sequences kept in the header; deeper ones are hostile, not clinical


@dataclass(frozen=True, eq=False)
class DicomInfo:
    """What a DICOM photograph says besides its pixels.

    ``header`` is the dataset without its pixel data (for a DICOM output that references
    the source instance). The patient fields are the file's strings, empty when absent;
    they are never shown by ``repr`` (so not by a log line or a traceback either).
    ``eq=False``: compare ``sop_instance_uid``.
    """

    laterality: Literal["left", "right"] | None
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str
    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    study_date: str = ""
    header: Dataset = field(default_factory=Dataset)

    @property
    def sop_class(self) -> str:
        """The SOP class's name ("Ophthalmic Photography 8-bit", ...)."""
        return SOP_CLASSES.get(self.sop_class_uid, self.sop_class_uid)

    def __repr__(self) -> str:
        # UIDs can be traced back to a patient too: only what describes the picture is shown.
        return (f"DicomInfo(sop_class={self.sop_class!r}, modality={self.modality!r}, "
                f"laterality={self.laterality!r}, patient fields and UIDs redacted)")

    __str__ = __repr__


def read_dicom(data: bytes) -> tuple[np.ndarray, DicomInfo]:
    """Decode a DICOM file's bytes to an HxWx3 uint8 RGB array and its ``DicomInfo``.

    Everything the pixels need is checked from the header before they are decoded.
    Raises ``FundusReadError`` only, with a one-line message starting "DICOM".
    """
    try:
        data = bytes(data)
        check_byte_size(len(data))
        with _quiet():  # every value of the file is read here, none later
            header = _read_header(data)
            info = _info(header)
            image = _check_image(header)
            image = _with_pixel_data(image, pydicom.dcmread(io.BytesIO(data), force=True))
        return _decode(image), info
    except FundusReadError as exc:
        if str(exc).startswith("DICOM"):
            raise
        raise FundusReadError(f"DICOM: {exc}") from None  # the checks shared with pictures
    except MemoryError:
        raise FundusReadError("DICOM: not enough memory to decode this image") from None
    except Exception:  # pydicom's and the decoders' errors (which may quote values): one message
        raise FundusReadError("DICOM file is truncated or corrupt") from None


# --------------------------------------------------------------------------- header


class _DropWhileReading(logging.Filter):
    """pydicom's warnings go to its logger and can quote a value: none while we read."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_reading, "on", False)


_reading = threading.local()
_lock = threading.RLock()  # pydicom's validation mode is process-wide: one reader sets it at a time
logging.getLogger("pydicom").addFilter(_DropWhileReading())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Read with pydicom's value validation off, its log records dropped and its warnings hidden."""
    settings = pydicom.config.settings
    # catch_warnings swaps the process's filters too; the lock keeps our own readers from interleaving.
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous, was_on = settings.reading_validation_mode, getattr(_reading, "on", False)
        settings.reading_validation_mode = pydicom.config.IGNORE
        _reading.on = True
        try:
            yield
        finally:
            _reading.on = was_on
            settings.reading_validation_mode = previous


def _read_header(data: bytes) -> Dataset:
    """The dataset up to the pixel data, every value converted (so never again validated)."""
    fp = io.BytesIO(data)
    read_preamble(fp, True)  # at the file meta (after "DICM"), or at 0 without a preamble
    meta = read_dataset(fp, is_implicit_VR=False, is_little_endian=True, stop_when=lambda tag, vr, length: tag.group != 2)
    syntax = _text(meta, "TransferSyntaxUID")
    if syntax == DeflatedExplicitVRLittleEndian:
        raise FundusReadError("DICOM: deflated datasets are not supported")
    if syntax and syntax not in TRANSFER_SYNTAXES:
        raise FundusReadError(f"DICOM: {_name(syntax, 'transfer syntax')} is not supported; {_SYNTAXES_READ} expected")
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    _convert_all(header, 0)
    return header


def _convert_all(ds: Dataset, depth: int) -> None:
    """Convert every raw element now (in quiet mode); drop those that cannot be."""
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
            if elem.VR == "SQ":
                if depth >= _MAX_DEPTH:
                    raise ValueError("sequences nested too deep")
                for item in elem.value:
                    _convert_all(item, depth + 1)
        except Exception:
            with contextlib.suppress(Exception):
                del ds[tag]


def _info(ds: Dataset) -> DicomInfo:
    sop = _text(ds, "SOPClassUID") or _text(getattr(ds, "file_meta", Dataset()), "MediaStorageSOPClassUID")
    modality = _text(ds, "Modality")
    if not sop:
        raise FundusReadError("DICOM: the file names no SOP class; a fundus photograph was expected")
    if sop in _OCT:
        raise FundusReadError(f"DICOM: OCT ({_name(sop)}) is not a fundus photograph")
    if sop not in SOP_CLASSES:
        name = _name(sop)
        what = f"{name} (modality {_shown(modality)})" if modality and _shown(modality) not in name else name
        raise FundusReadError(f"DICOM: {what} is not a fundus photograph; {_CLASSES_READ} expected")
    return DicomInfo(
        laterality=_laterality(ds),
        sop_class_uid=sop,
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        modality=modality,
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        birth_date=_text(ds, "PatientBirthDate"),
        study_date=_text(ds, "StudyDate"),
        header=ds,
    )


def _laterality(ds: Dataset) -> Literal["left", "right"] | None:
    """ImageLaterality (0020,0062) when present, else Laterality (0020,0060); B and U say no eye."""
    value = _text(ds, "ImageLaterality") or _text(ds, "Laterality")
    return {"L": "left", "R": "right"}.get(value.upper())


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()


def _shown(text: str, limit: int = 64) -> str:
    """A value from the file, safe for a one-line message."""
    text = "".join(c if " " <= c <= "~" else "?" for c in " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _name(uid: str, kind: str = "SOP class") -> str:
    """A UID's registered name, shortened ("CT Image Storage" -> "CT"), else the UID itself."""
    known = UID(uid, validation_mode=pydicom.config.IGNORE)
    if not known.is_valid or known.name == uid:
        return f"{kind} {_shown(uid)}"
    name = known.name
    for suffix in (" Image Storage", " Storage"):
        name = name.removesuffix(suffix)
    return name


_CLASSES_READ = "Ophthalmic Photography, VL Photographic or Secondary Capture"
_SYNTAXES_READ = "uncompressed, JPEG Baseline, JPEG 2000 or RLE"


# --------------------------------------------------------------------------- pixels


@dataclass(frozen=True)
class _Image:
    """The checked pixel module, then the encoded pixels: all that decoding reads."""

    rows: int
    columns: int
    samples: int
    photometric: str
    allocated: int
    stored: int
    planar: int
    syntax: str = ""
    pixel_data: bytes = b""


def _integer(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise FundusReadError(f"DICOM: the header has no {keyword}; it is not an image")
        return default
    return int(value)


def _check_image(ds: Dataset) -> _Image:
    """Check from the header alone that one frame of known size and encoding follows."""
    frames = _integer(ds, "NumberOfFrames", 1)
    if frames > 1:
        raise FundusReadError(f"DICOM: multi-frame images ({frames} frames) are not supported")
    rows, columns = _integer(ds, "Rows"), _integer(ds, "Columns")
    check_pixels(columns, rows)
    pi = _text(ds, "PhotometricInterpretation").upper()
    if pi not in _PHOTOMETRIC:
        raise FundusReadError(f"DICOM: photometric interpretation {_shown(pi) or 'none'} is not supported")
    samples = _integer(ds, "SamplesPerPixel", 1)
    if samples != _PHOTOMETRIC[pi]:
        raise FundusReadError(f"DICOM: {samples} samples per pixel do not fit {pi}")
    allocated = _integer(ds, "BitsAllocated")
    stored = _integer(ds, "BitsStored", allocated)
    if allocated not in (8, 16) or not 1 <= stored <= allocated:
        raise FundusReadError(f"DICOM: {stored} of {allocated} bits per sample is not supported (8 or 16 expected)")
    if _integer(ds, "PixelRepresentation", 0) != 0:
        raise FundusReadError("DICOM: signed pixel data is not supported")
    planar = _integer(ds, "PlanarConfiguration", 0) if samples == 3 else 0
    if planar not in (0, 1):
        raise FundusReadError(f"DICOM: planar configuration {planar} is not supported")
    return _Image(rows, columns, samples, pi, allocated, stored, planar)


def _with_pixel_data(image: _Image, full: Dataset) -> _Image:
    """The transfer syntax and the encoded pixels, from the whole file read (quietly)."""
    if "PixelData" not in full:
        if "FloatPixelData" in full or "DoubleFloatPixelData" in full:
            raise FundusReadError("DICOM: floating-point pixel data is not supported")
        raise FundusReadError("DICOM: the file holds no pixel data")
    syntax = _text(getattr(full, "file_meta", Dataset()), "TransferSyntaxUID")
    if not syntax:  # no file meta: the encoding pydicom found (native pixels only, as they must be then)
        implicit, little = full.original_encoding
        syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    if syntax not in TRANSFER_SYNTAXES:
        raise FundusReadError(f"DICOM: {_name(syntax, 'transfer syntax')} is not supported; {_SYNTAXES_READ} expected")
    return dataclasses.replace(image, syntax=syntax, pixel_data=bytes(full.PixelData))


def _decode(image: _Image) -> np.ndarray:
    """Decode the first frame with the allowed plugin, from a dataset holding only checked values."""
    decoder = get_decoder(image.syntax)
    plugin = ""
    if TRANSFER_SYNTAXES[image.syntax]:
        plugin = next((p for p in TRANSFER_SYNTAXES[image.syntax] if p in decoder.available_plugins), "")
        if not plugin:
            raise FundusReadError(f"DICOM: no permissively licensed decoder for {_name(image.syntax)} is installed")
        frame = next(generate_frames(image.pixel_data, number_of_frames=1))
        _check_codestream(frame, image.syntax, image.rows, image.columns)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = image.syntax
    ds.Rows, ds.Columns, ds.SamplesPerPixel = image.rows, image.columns, image.samples
    ds.PhotometricInterpretation = image.photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = image.allocated, image.stored, image.stored - 1
    ds.PixelRepresentation = 0
    if image.samples == 3:
        ds.PlanarConfiguration = image.planar
    ds.PixelData = image.pixel_data
    ds["PixelData"].VR = "OB" if image.allocated == 8 or decoder.is_encapsulated else "OW"
    arr, props = decoder.as_array(ds, index=0, decoding_plugin=plugin)
    if arr.shape[:2] != (image.rows, image.columns) or (arr.ndim == 3) != (image.samples == 3):
        raise FundusReadError("DICOM file is truncated or corrupt")
    return _to_rgb8(arr, int(props.get("bits_stored", image.stored)), image.photometric)


def _check_codestream(frame: bytes, syntax: str, rows: int, columns: int) -> None:
    """The codestream's own size (header only) must be the one the DICOM header gave, and it must be whole."""
    fmt = _PILLOW_FORMAT.get(syntax)
    if fmt is None:  # RLE: the decoder writes into a frame of the header's size
        return
    try:
        with Image.open(io.BytesIO(frame), formats=(fmt,)) as im:
            size = im.size
    except Exception:
        raise FundusReadError("DICOM: the compressed frame is truncated or corrupt") from None
    if size != (columns, rows):
        raise FundusReadError(f"DICOM: the compressed frame is {size[0]} x {size[1]} pixels but the header says {columns} x {rows}")
    # openjpeg decodes a cut codestream without complaint (missing detail): both JPEG and
    # JPEG 2000 end with the same marker, before the fragment's even-length padding.
    if not frame.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise FundusReadError("DICOM: the compressed frame is truncated")


def _to_rgb8(arr: np.ndarray, bits_stored: int, photometric: str) -> np.ndarray:
    """Scale by the stored bit depth (not the brightest pixel), invert MONOCHROME1, grey to RGB."""
    if arr.dtype.kind not in "u" or not 1 <= bits_stored <= 8 * arr.dtype.itemsize:
        raise FundusReadError(f"DICOM: pixel type {arr.dtype} is not supported")
    white = 2**bits_stored - 1
    arr = np.minimum(arr, np.asarray(white, arr.dtype))
    if photometric == "MONOCHROME1":
        arr = np.asarray(white, arr.dtype) - arr
    rgb = scale_to_uint8(arr, float(white))
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    return np.ascontiguousarray(rgb)
