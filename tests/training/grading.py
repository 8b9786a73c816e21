"""``python -m core grade`` on a chosen set of photographs, for the real-data tests."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from core.cli import main


def grade_files(files: Iterable[Path], tmp_path: Path, name: str, weights: str) -> list[dict[str, str]]:
    """The CSV rows of ``grade`` run with ``weights`` on a folder holding just ``files``
    (symbolic links: nothing is copied)."""
    folder = tmp_path / name
    folder.mkdir()
    for f in files:
        (folder / f.name).symlink_to(f)
    out = tmp_path / f"{name}.csv"
    assert main(["grade", str(folder), "--csv", str(out), "--weights", weights, "--quiet"]) == 0
    with open(out, newline="") as fh:
        return list(csv.DictReader(fh))
