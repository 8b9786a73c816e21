"""Which eye a photograph shows: said by the user, by the DICOM header, or by the file name.

A wrong eye moves a referral to the other side, so a file name only counts when one of
its whole tokens says so (``jane_left.jpg``, ``scan-OD-2.png``, ``p7_R.jpg``); letters
inside a word never do (``IDRiD_001`` has no eye, nor has ``ROSE_12``). A name with tokens
for both eyes says nothing.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any, Literal

Eye = Literal["right", "left"]
EYES: tuple[Eye, ...] = ("right", "left")  # the order of every report: right eye (OD) first, as clinics write it
ABBREVIATION = {"right": "OD", "left": "OS"}

_WORDS: dict[str, Eye] = {"right": "right", "r": "right", "od": "right", "left": "left", "l": "left", "os": "left"}


def parse_eye(text: str | None) -> Eye | None:
    """``left``/``right``/``L``/``R``/``OS``/``OD`` (any case) -> ``"left"``/``"right"``; else None."""
    if text is None:
        return None
    return _WORDS.get(str(text).strip().lower())


def eye_from_name(name: str) -> Eye | None:
    """The eye that a whole token of the file name's stem states, or None (none, or both)."""
    stem = PurePath(name).stem
    found = {_WORDS[t] for t in re.split(r"[^0-9a-z]+", stem.lower()) if t in _WORDS}
    return found.pop() if len(found) == 1 else None


def eye_from_dicom(fundus: Any) -> Eye | None:
    """The DICOM header's laterality, when the photograph was read from DICOM."""
    info = getattr(fundus, "dicom", None)
    return parse_eye(getattr(info, "laterality", None)) if info is not None else None


__all__ = ["ABBREVIATION", "EYES", "Eye", "eye_from_dicom", "eye_from_name", "parse_eye"]
