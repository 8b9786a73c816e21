"""Hand-built photograph results for the exam tests: what the exam reads of an Explanation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.exam import Photo, photograph


@dataclass
class Result:
    grade: int
    gradable: bool = True
    fundus: Any = None
    quality: Any = None
    weights_name: str = "stub"
    weights_sha256: str = "0" * 64
    weights_meta: dict = field(default_factory=dict)


def photo(grade: int, eye: str, gradable: bool = True, name: str = "", **kw: Any) -> Photo:
    return photograph(Result(grade, gradable, **kw), eye, name or f"{eye}_{grade}_{gradable}.jpg")
