"""A photograph read into the model's 640x640 input, as the paper prepares it.

The paper trims the dark background outside the circular field of view (FOV) and resizes
so that the retina's diameter becomes 640 pixels; ``prepare`` does that: it finds the
disc, takes the square of side 2r around its centre (black padding where the square
leaves the photograph) and resizes it to 640x640. When no disc is found the whole image
is padded to a square and used, with a warning for the caller to show. DICOM files are
decoded by ``dicom`` and then take the same path, so their pixels are prepared as a PNG's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..model import INPUT_SIZE
from .decode import MIN_SIDE, FundusReadError, as_rgb8, decode_image, is_dicom, read_bytes
from .dicom import DicomInfo, read_dicom
from .fov import disc_mask, fit_fov
from .geometry import Box, box_around, centred_square, crop_resize
from .gradability import Assessment, assess

SIZE = INPUT_SIZE
# A field of view narrower than this is enlarged more than 2x: still graded, but warned.
LOW_RES_DIAMETER = SIZE // 2
NO_FOV_WARNING = "No circular field of view found: the whole image was used."
# Warn when less of the disc than this is in the picture (cut by the frame or dark bands).
# A fundus camera's sensor cuts the top and bottom of the field as a rule (IDRiD: 85-92%
# of the disc is in the picture), which is not worth a warning; a quarter missing is.
PARTIAL_FOV_SHARE = 0.84
_DISC = disc_mask(SIZE, SIZE, (SIZE - 1) / 2, (SIZE - 1) / 2, SIZE / 2)


@dataclass(frozen=True, eq=False)
class Fundus:
    """A photograph as the model sees it, plus what is needed to map results back.

    ``crop_box`` follows Pillow's crop convention (pixel edges, right/bottom exclusive)
    in the upright original: pixel (x, y) of ``image`` shows original point
    ``(left + (x + 0.5) * s - 0.5, top + (y + 0.5) * s - 0.5)`` with ``s = (right - left) / SIZE``
    (``geometry.to_original``; ``geometry.to_input`` goes back).
    ``eq=False`` because numpy arrays have no single truth value; use ``sha256`` to
    compare or cache.
    """

    image: np.ndarray  # (SIZE, SIZE, 3) uint8 RGB, black outside the FOV
    fov: np.ndarray  # (SIZE, SIZE) bool
    crop_box: Box  # (left, top, right, bottom) in the original
    original_size: tuple[int, int]  # (width, height) after EXIF orientation
    warnings: tuple[str, ...] = ()
    source: str = ""
    # Is it gradable (``gradability.assess``)? ``prepare`` always sets it; None only for a
    # Fundus built by hand in code.
    quality: Assessment | None = None
    # Set when the photograph came from a DICOM file: laterality, UIDs, the patient fields
    # (kept in memory only; its repr redacts them) and the header for DICOM outputs.
    dicom: DicomInfo | None = None

    @property
    def gradable(self) -> bool:
        """False when the quality assessment refused the photograph: then no grade may be
        given, whatever the scores say. A Fundus built by hand is not assessed: True."""
        return self.quality is None or bool(self.quality.gradable)

    @property
    def sha256(self) -> str:
        """Hex digest of the pixels: a cache key independent of file format and name."""
        return hashlib.sha256(np.ascontiguousarray(self.image).tobytes()).hexdigest()


def read_fundus(src: str | os.PathLike | bytes | BinaryIO, *, name: str = "") -> Fundus:
    """Read a path, bytes or binary file object into a ``Fundus``.

    Raises only ``FundusReadError``: callers (viewer, CLI) show its message and need no
    other error handling.
    """
    try:
        data, guessed = read_bytes(src)
        if is_dicom(data):
            rgb, info = read_dicom(data)
            return dataclasses.replace(prepare(rgb, name=name or guessed), dicom=info)
        return prepare(decode_image(data), name=name or guessed)
    except FundusReadError:
        raise
    except MemoryError:
        raise FundusReadError("not enough memory to read this image") from None
    except Exception as exc:  # a bug or an unforeseen decoder failure: still one type
        raise FundusReadError(f"{UNEXPECTED_FAILURE} ({type(exc).__name__})") from exc


# The message of the catch-all above: tests assert that no known hostile input reaches it.
UNEXPECTED_FAILURE = "could not read the image"


def prepare(rgb: np.ndarray, *, name: str = "") -> Fundus:
    """Find the FOV of a decoded image, trim, pad and resize it as the paper does, and
    assess whether it is gradable (``Fundus.quality``).

    The square of side 2r around the disc's centre becomes 640x640 (so the retina's
    diameter is 640); parts of the square outside the photograph are black and not FOV.
    Without a disc the whole image is padded to a centred square, with a warning.
    """
    rgb = as_rgb8(rgb)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise FundusReadError(f"image is {w} x {h} pixels; at least {MIN_SIDE} pixels on each side are needed")
    notes: list[str] = []
    circle = fit_fov(rgb)
    if circle is None:
        box = centred_square(w, h)
        notes.append(NO_FOV_WARNING)
        if min(w, h) < LOW_RES_DIAMETER:
            notes.append(
                f"The image is only {min(w, h)} pixels on its shorter side ({SIZE} expected); fine detail may be missing."
            )
    else:
        box = box_around(circle)
        side = box[2] - box[0]
        if side < LOW_RES_DIAMETER:
            notes.append(f"The field of view is only {side} pixels across ({SIZE} expected); fine detail may be missing.")
    image, valid = crop_resize(rgb, box)
    if circle is None:
        fov = valid
    else:
        fov = valid & _DISC
        image[~fov] = 0
    quality = assess(rgb, circle, image, fov)
    visible = quality.check("fov_visible").value
    if circle is not None and visible < PARTIAL_FOV_SHARE:
        notes.append(f"Only {visible:.0%} of the field of view is in the picture (cut by the frame or by dark bands).")
    return Fundus(image=image, fov=fov, crop_box=box, original_size=(w, h), warnings=tuple(notes), source=name, quality=quality)
