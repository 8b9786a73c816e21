"""Encoding test images in memory (Pillow or OpenCV), shared by the reader's tests."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def encode(im: np.ndarray | Image.Image, fmt: str, **kw: object) -> bytes:
    im = im if isinstance(im, Image.Image) else Image.fromarray(im)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def cv2_encode(arr: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, arr, list(params))
    assert ok, ext
    return buf.tobytes()
