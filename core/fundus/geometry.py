"""Trim, pad and resize: the square around the field of view becomes the model's input,
and back: where a pixel of the input lies in the original photograph.

One placement rule serves the photograph and anything drawn on it (lesion masks), so a
mask taken through ``map_mask`` lands on the very pixels the image did; ``to_original``
and ``to_input`` convert coordinates between the two (pixel centres at integers).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..model import INPUT_SIZE
from .fov import Circle

Box = tuple[int, int, int, int]  # (left, top, right, bottom): Pillow's crop convention


def box_around(circle: Circle) -> Box:
    """The square of side 2r around the disc's centre (so the retina's diameter becomes the input size)."""
    cx, cy, r = circle
    side = max(1, round(2 * r))
    left, top = round(cx + 0.5 - r), round(cy + 0.5 - r)
    return int(left), int(top), int(left + side), int(top + side)


def centred_square(width: int, height: int) -> Box:
    """The whole image padded to a centred square (when no disc was found)."""
    side = max(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return int(left), int(top), int(left + side), int(top + side)


@dataclass(frozen=True)
class Placement:
    """Where the part of a box inside the image goes in the output square."""

    source: Box  # in the original image, clipped to it
    target: Box  # in the output (size x size)

    @property
    def empty(self) -> bool:
        x0, y0, x1, y1 = self.source
        return x1 <= x0 or y1 <= y0

    @property
    def target_size(self) -> tuple[int, int]:
        return self.target[2] - self.target[0], self.target[3] - self.target[1]

    @property
    def shrinking(self) -> bool:
        (w, h), (x0, y0, x1, y1) = self.target_size, self.source
        return w * h < (x1 - x0) * (y1 - y0)


def placement(box: Box, width: int, height: int, size: int = INPUT_SIZE) -> Placement:
    """The clipped source rectangle of ``box`` and its rounded place in the output."""
    left, top, right, _ = box
    scale = size / (right - left)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(box[3], height)
    ox0, oy0 = min(round((x0 - left) * scale), size - 1), min(round((y0 - top) * scale), size - 1)
    ox1 = min(max(round((x1 - left) * scale), ox0 + 1), size)
    oy1 = min(max(round((y1 - top) * scale), oy0 + 1), size)
    return Placement((x0, y0, x1, y1), (ox0, oy0, ox1, oy1))


def crop_resize(rgb: np.ndarray, box: Box, size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Resize the part of ``box`` inside the image straight into its place in the output.

    Returns the (size, size, 3) image and the mask of output pixels that show the
    photograph. Never materialises the padded square, which for a strip could be huge.
    """
    h, w = rgb.shape[:2]
    p = placement(box, w, h, size)
    image = np.zeros((size, size, 3), np.uint8)
    valid = np.zeros((size, size), bool)
    if p.empty:
        return image, valid
    (x0, y0, x1, y1), (ox0, oy0, ox1, oy1) = p.source, p.target
    interpolation = cv2.INTER_AREA if p.shrinking else cv2.INTER_CUBIC
    image[oy0:oy1, ox0:ox1] = cv2.resize(rgb[y0:y1, x0:x1], p.target_size, interpolation=interpolation)
    valid[oy0:oy1, ox0:ox1] = True
    return image, valid


def map_mask(mask: np.ndarray, box: Box, size: int = INPUT_SIZE) -> np.ndarray:
    """Take a mask of the original photograph through the same trim and resize.

    An output pixel is marked if the mask covers any part of it (area resampling when
    shrinking, nearest neighbour when enlarging), so a microaneurysm smaller than an
    output pixel is kept rather than averaged away.
    """
    h, w = mask.shape[:2]
    p = placement(box, w, h, size)
    out = np.zeros((size, size), bool)
    if p.empty:
        return out
    (x0, y0, x1, y1), (ox0, oy0, ox1, oy1) = p.source, p.target
    region = np.ascontiguousarray(mask[y0:y1, x0:x1] > 0)
    if p.shrinking:
        out[oy0:oy1, ox0:ox1] = cv2.resize(region.astype(np.float32), p.target_size, interpolation=cv2.INTER_AREA) > 1e-3
    else:
        out[oy0:oy1, ox0:ox1] = cv2.resize(region.astype(np.uint8), p.target_size, interpolation=cv2.INTER_NEAREST) > 0
    return out


def to_original(xy: np.ndarray, box: Box, size: int = INPUT_SIZE) -> np.ndarray:
    """Points (..., 2) as (x, y) in the model's input -> the same points in the original photograph."""
    scale = (box[2] - box[0]) / size
    return np.array(box[:2], np.float64) + (np.asarray(xy, np.float64) + 0.5) * scale - 0.5


def to_input(xy: np.ndarray, box: Box, size: int = INPUT_SIZE) -> np.ndarray:
    """Points (..., 2) as (x, y) in the original photograph -> the model's input (inverse of ``to_original``)."""
    scale = (box[2] - box[0]) / size
    return (np.asarray(xy, np.float64) - np.array(box[:2], np.float64) + 0.5) / scale - 0.5
