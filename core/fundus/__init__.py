"""Reading fundus photographs: safe decoding (pictures in ``decode``, DICOM in ``dicom``),
the field of view, trim/pad/resize, and whether the picture is gradable at all (``gradability``).

``read_fundus`` is the one entry point; the submodules are its steps.
"""

from .decode import IMAGE_SUFFIXES, MAX_BYTES, MAX_PIXELS, MIN_SIDE, FundusReadError, decode_image, is_dicom
from .dicom import DicomInfo, read_dicom
from .fov import find_fov
from .geometry import crop_resize, map_mask, to_input, to_original
from .gradability import Assessment, Check, assess
from .reader import NO_FOV_WARNING, PARTIAL_FOV_SHARE, SIZE, UNEXPECTED_FAILURE, Fundus, prepare, read_fundus

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_BYTES",
    "MAX_PIXELS",
    "MIN_SIDE",
    "NO_FOV_WARNING",
    "PARTIAL_FOV_SHARE",
    "SIZE",
    "UNEXPECTED_FAILURE",
    "Assessment",
    "Check",
    "DicomInfo",
    "Fundus",
    "FundusReadError",
    "assess",
    "crop_resize",
    "decode_image",
    "find_fov",
    "is_dicom",
    "map_mask",
    "prepare",
    "read_dicom",
    "read_fundus",
    "to_input",
    "to_original",
]
