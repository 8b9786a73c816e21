"""core.serialise: what every JSON file and printout goes through."""

import json
import math

import numpy as np
import pytest

from core.serialise import dumps, json_safe


def test_undefined_numbers_become_null_and_numpy_becomes_python():
    doc = {"kappa": math.nan, "inf": -math.inf, "t": (1, np.float32(2.5)), "a": np.arange(3), "n": np.int64(7)}
    assert json_safe(doc) == {"kappa": None, "inf": None, "t": [1, 2.5], "a": [0, 1, 2], "n": 7}
    assert json.loads(dumps(doc)) == json_safe(doc)


def test_what_is_still_not_json_is_refused():
    with pytest.raises(TypeError):
        dumps({"x": object()})
