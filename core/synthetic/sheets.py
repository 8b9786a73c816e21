"""Pictures of synthetic images for people: mask outlines, the contact sheet, the samples.

Why a module of its own: these are for looking at the generator (the README's samples
and overview), not for training or measuring, so nothing else in the package depends
on them; text and file encoding go through ``core.pictures`` like every other picture
the project writes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ..model import N_GRADES
from ..pictures import font, jpeg_bytes, png_bytes
from .anatomy import REFERENCE_SIZE
from .generator import SyntheticFundus, generate, image_seed
from .grading import LESION_TYPES

# overlay colours of the lesion types (RGB) for contact sheets
OVERLAY_COLOURS = {
    "microaneurysm": (0, 255, 255),
    "haemorrhage": (40, 90, 255),
    "hard_exudate": (255, 255, 0),
    "cotton_wool_spot": (255, 255, 255),
    "venous_beading": (255, 0, 255),
    "irma": (255, 140, 0),
    "neovascularisation": (0, 255, 0),
    "preretinal_haemorrhage": (160, 60, 255),
}
_TITLE_PX = 17  # "grade g" over each row of the contact sheet
_LEGEND_PX = 13


def overlay(f: SyntheticFundus) -> np.ndarray:
    """The image with each lesion type's mask outlined in its ``OVERLAY_COLOURS``.

    Masks are dilated before outlining so that 3 px microaneurysms stay visible.
    """
    out = f.image.copy()
    grow = max(2, int(round(4 * f.image.shape[0] / REFERENCE_SIZE)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    for t in LESION_TYPES:
        m = f.masks[t]
        if not m.any():
            continue
        big = cv2.dilate(m.astype(np.uint8), kernel)
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, OVERLAY_COLOURS[t], 2, cv2.LINE_AA)
    return out


def save_overview(path: str | Path, seed: int = 0, tile: int = 240) -> Path:
    """Contact sheet: 2 samples per grade, each raw and with its masks outlined.

    One row per grade (0..4), four tiles per row; a legend of the outline colours
    at the bottom. Saved as JPEG (``.jpg``, ``.jpeg``) or PNG (``.png``) by the file's
    suffix; any other suffix is a ``ValueError``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        raise ValueError(f"save_overview writes .jpg, .jpeg or .png, not {path.name!r}")
    rows = []
    for g in range(N_GRADES):
        tiles = []
        for k in range(2):
            f = generate(image_seed(seed, 10 * g + k), g)
            for im in (f.image, overlay(f)):
                t = cv2.resize(im, (tile, tile), interpolation=cv2.INTER_AREA)
                tiles.append(t)
        rows.append(np.concatenate(tiles, axis=1))
    width = rows[0].shape[1]
    legend = np.zeros((44, width, 3), np.uint8)
    keys = []
    for i, t in enumerate(LESION_TYPES):
        xx, yy = 6 + (i % 4) * (width // 4), 16 + (i // 4) * 20
        cv2.rectangle(legend, (xx, yy - 9), (xx + 12, yy + 1), OVERLAY_COLOURS[t], -1)
        keys.append(((xx + 18, yy - 11), t.replace("_", " ")))
    sheet = Image.fromarray(np.concatenate(rows + [legend], axis=0))
    draw = ImageDraw.Draw(sheet)
    for g in range(N_GRADES):
        draw.text((6, g * tile + 5), f"grade {g}", fill=(255, 255, 255), font=font(_TITLE_PX))
    for (x, y), text in keys:
        draw.text((x, N_GRADES * tile + y), text, fill=(230, 230, 230), font=font(_LEGEND_PX))
    data = jpeg_bytes(sheet, quality=85) if suffix in (".jpg", ".jpeg") else png_bytes(sheet)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def save_samples(directory: str | Path, seed: int = 0) -> list[Path]:
    """The README samples: ``grade{g}.jpg`` for g in 0..4 and ``overview.jpg``.

    The grade images are written by OpenCV's JPEG encoder (quality 90, as a camera's
    file would be, chroma subsampled), which keeps the bundled
    ``assets/samples/synthetic/grade*.jpg`` reproducible byte for byte from seed 0.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for g in range(N_GRADES):
        f = generate(image_seed(seed, 1000 + g), g)
        p = directory / f"grade{g}.jpg"
        if not cv2.imwrite(str(p), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise OSError(f"could not write {p}")
        out.append(p)
    out.append(save_overview(directory / "overview.jpg", seed))
    return out
