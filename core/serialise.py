"""Results as strict JSON: NaN (an undefined metric) becomes null, tuples become lists.

Every command that prints or writes JSON (evaluate, quality, train's metadata) goes
through ``json_safe``, so the files parse with any strict JSON reader.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` with NaN and infinities as None and NumPy scalars and arrays as Python values."""
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``json_safe(obj)``, refusing anything that is still not strict JSON."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)
