"""An Explanation as files: ``scores.json``, ``explanation.npz`` and the pictures of one image.

The CLI's ``explain`` writes these; the formats are documented in the README.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import pictures
from .explanation import PARTS, Explanation
from .model import CONV_LAYERS, GRADE_NAMES


def write_explanation(exp: Explanation, out: Path, k: float, grade: int | None = None) -> list[Path]:
    """Write scores.json, explanation.npz and the PNG/GIF pictures of one image."""
    out.mkdir(parents=True, exist_ok=True)
    g = exp.grade if grade is None else grade
    name = GRADE_NAMES[g]
    fov = exp.fundus.fov
    written: list[Path] = []

    def put(fname: str, data: bytes) -> None:
        (out / fname).write_bytes(data)
        written.append(out / fname)

    def picture(values: np.ndarray, title: str) -> bytes:
        scale = pictures.make_scale(values, region=fov)
        return pictures.png_bytes(pictures.titled(pictures.with_colourbar(pictures.colourise(values, scale), scale), title))

    put("scores.json", exp.scores_json().encode())
    put("explanation.npz", exp.npz_bytes())
    put("retina.png", pictures.png_bytes(exp.fundus.image))
    for spec in CONV_LAYERS:
        for part in PARTS:
            values = exp.in_input_space(spec.index, part, g)
            title = f"Layer {spec.index} {part.replace('_', '-')} (RF {spec.rf_paper} px), grade {g} {name}: sum {values.sum(dtype=np.float64):+.2f}"
            put(f"layer{spec.index:02d}_{part}.png", picture(values, title))
    put("input_map.png", picture(exp.input_map[g], f"Input map, grade {g} {name}: sum {exp.input_map[g].sum(dtype=np.float64):+.2f}"))
    put("constants.png", picture(exp.constants(g), f"All constant maps, grade {g} {name}: sum {exp.constants(g).sum(dtype=np.float64):+.2f}"))
    total = exp.total(g)
    put("total.png", picture(total, f"Total map, grade {g} {name}: sum {total.sum(dtype=np.float64):+.2f} = score {exp.scores[g]:+.2f}"))
    mask = exp.mask(g, k)
    share = mask.sum() / max(int(fov.sum()), 1)
    overlay = pictures.mask_overlay(exp.fundus.image, mask)
    put(f"mask_k{k:g}.png", pictures.png_bytes(pictures.titled(overlay, f"Pixels above {k:g} sigma, grade {g} {name}: {int(mask.sum())} px ({share:.2%} of the field of view)")))
    put("flicker.gif", pictures.flicker_gif([exp.fundus.image, overlay]))
    return written
