"""One Parquet row per photograph: what ``batch`` keeps of an explanation.

The row is the summary a researcher queries across an archive (scores, grade,
gradability, conservation, the k-sigma mask's size and weight, the strongest exact
evidence regions); the maps themselves are files beside it when asked for. The schema
is fixed here, so every part file of a run, and of a resumed run, has the same types,
and an error row is the same row with the explanation's columns null.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from ..explanation import Explanation
from ..model import GRADE_NAMES, N_GRADES
from ..regions import BLOCK, strongest_regions
from ..version import __version__

N_REGIONS = 5

_REGION = pa.struct([
    ("box", pa.list_(pa.int16(), 4)),  # the block in the 640x640 model input
    ("original_box", pa.list_(pa.int32(), 4)),  # the same in the photograph
    ("contribution", pa.float64()),
    ("image_evidence", pa.float64()),
    ("fov_share", pa.float64()),
])

SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),  # of the file's bytes: what a rerun skips by
        ("bytes", pa.int64()),
        ("label", pa.int8()),
        ("grade", pa.int8()),  # null when ungradable or failed: no grade is given
        ("grade_name", pa.string()),
        ("model_grade", pa.int8()),  # the model's argmax, kept for research even when ungradable
        *[(f"score_{g}", pa.float64()) for g in range(N_GRADES)],
        *[(f"probability_{g}", pa.float64()) for g in range(N_GRADES)],
        ("gradable", pa.bool_()),
        ("quality_reasons", pa.list_(pa.string())),
        ("warnings", pa.list_(pa.string())),
        ("original_width", pa.int32()),
        ("original_height", pa.int32()),
        ("conservation_error", pa.float64()),
        ("mask_k", pa.float64()),
        ("mask_pixels", pa.int32()),
        ("mask_fov_share", pa.float64()),
        ("mask_contribution", pa.float64()),
        ("mask_image_evidence", pa.float64()),
        ("region_block", pa.int16()),
        ("regions", pa.list_(_REGION)),
        ("agrees", pa.bool_()),
        ("error", pa.string()),
        ("mask_png", pa.string()),  # relative to the output folder
        ("explanation_npz", pa.string()),
        ("maps", pa.string()),  # none | masks | all: what this row's run wrote
        ("weights", pa.string()),
        ("weights_sha256", pa.string()),
        ("software", pa.string()),
        ("run_id", pa.string()),
        ("finished_at", pa.timestamp("s", tz="UTC")),
        ("seconds", pa.float64()),
    ]
)


def _base(path: str, sha256: str | None, size: int | None, label: int | None, run: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SCHEMA.names)
    row.update(path=path, sha256=sha256, bytes=size, label=label, software=f"core {__version__}",
               finished_at=datetime.now(UTC).replace(microsecond=0), **run)
    return row


def error_row(path: str, message: str, *, sha256: str | None = None, size: int | None = None,
              label: int | None = None, run: dict[str, Any]) -> dict[str, Any]:
    """A photograph that could not be read or explained: its row says why, nothing else."""
    row = _base(path, sha256, size, label, run)
    row.update(error=message, grade_name="unreadable")
    return row


def summary_row(exp: Explanation, *, path: str, sha256: str, size: int, label: int | None, k: float,
                seconds: float, run: dict[str, Any]) -> dict[str, Any]:
    """The row of one explained photograph; mask and regions are the model's grade's."""
    row = _base(path, sha256, size, label, run)
    g = exp.grade
    fov = exp.fundus.fov
    mask = exp.mask(g, k)
    total, image = exp.total(g), exp.input_map[g]
    quality = exp.quality
    row.update(
        grade=g if exp.gradable else None,
        grade_name=GRADE_NAMES[g] if exp.gradable else "ungradable",
        model_grade=g,
        gradable=exp.gradable,
        quality_reasons=list(quality.reasons) if quality is not None else [],
        warnings=list(exp.fundus.warnings),
        original_width=exp.fundus.original_size[0],
        original_height=exp.fundus.original_size[1],
        conservation_error=float(exp.conservation()["max_relative_error"]),
        mask_k=float(k),
        mask_pixels=int(mask.sum()),
        mask_fov_share=float(mask.sum() / max(int(fov.sum()), 1)),
        mask_contribution=float(total[mask].sum(dtype=np.float64)),
        mask_image_evidence=float(image[mask].sum(dtype=np.float64)),
        region_block=BLOCK,
        regions=[r.as_dict() for r in strongest_regions(exp, g, N_REGIONS)],
        agrees=(g == label) if label is not None and exp.gradable else None,
        seconds=float(seconds),
    )
    for c in range(N_GRADES):
        row[f"score_{c}"] = float(exp.scores[c])
        row[f"probability_{c}"] = float(exp.probabilities[c])
    return row


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows -> an Arrow table with the fixed schema (so all part files agree)."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)


__all__ = ["N_REGIONS", "SCHEMA", "error_row", "summary_row", "to_table"]
