"""The photograph behind the model input, at the resolution a clinician reads it.

The model sees 640x640; a microaneurysm is then one or two pixels. The reading view
zooms into the same square of the original photograph, resampled with the same
geometry as the input (``geometry.crop_resize`` on the same ``crop_box``), so input
pixel (x, y) and detail pixel (x * f, y * f) show the same place and every map, mark
and box drawn in input coordinates stays aligned.
"""

from __future__ import annotations

import numpy as np

from .decode import decode_image, is_dicom, read_bytes
from .dicom import read_dicom
from .geometry import crop_resize
from .reader import SIZE, Fundus

DETAIL_MAX = 4096  # a detail picture's side is capped: IDRiD crops are ~3,400 px across


def detail_side(fundus: Fundus, max_side: int = DETAIL_MAX) -> int:
    """The side of the full-resolution detail: the crop's own width, capped, at least the input's."""
    return int(max(SIZE, min(fundus.crop_box[2] - fundus.crop_box[0], max_side)))


def detail_image(src: bytes | str, fundus: Fundus, side: int) -> np.ndarray:
    """The square ``fundus.crop_box`` of the original at ``side`` x ``side`` pixels, black outside
    the field of view (as the input is). ``src`` is the file ``fundus`` was read from.

    Raises ``FundusReadError`` as ``read_fundus`` does (the file was readable a moment ago,
    so in practice only when it changed underneath).
    """
    data, _ = read_bytes(src)
    rgb = read_dicom(data)[0] if is_dicom(data) else decode_image(data)
    image, valid = crop_resize(rgb, fundus.crop_box, side)
    del rgb
    # The field of view at this resolution: the input's disc, nearest-neighbour (one input
    # pixel = f x f detail pixels), so the detail shows nothing the model did not see.
    f = side / SIZE
    idx = np.minimum((np.arange(side) / f).astype(np.intp), SIZE - 1)
    fov = fundus.fov[idx[:, None], idx[None, :]] & valid
    image[~fov] = 0
    return image


__all__ = ["DETAIL_MAX", "detail_image", "detail_side"]
