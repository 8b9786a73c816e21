"""The compared attribution methods: one map per asked grade, shared passes charged to
every method that uses them, and the forward-only copy scoring as the network does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import core
from core.errors import CoreError
from core.model import INPUT_SIZE
from core.study.peers import Context, Peers, StudyError, methods, random_map
from core.study.sources import synthetic_samples


def test_methods_give_one_map_per_grade_and_charge_shared_passes(tiny):
    lm = core.load_weights(tiny)
    sample = next(synthetic_samples(1, 10_000_000))
    peers = Peers(lm, ig_steps=2)
    with torch.inference_mode():  # the forward-only copy folds batch norm: same scores
        want = lm.network(lm.normalisation.to_tensor(sample.fundus.image).contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(peers.scores(lm.normalisation.to_tensor(sample.fundus.image)), want, rtol=1e-4, atol=1e-4)
    ctx = Context(peers, sample.fundus, (1, 3), seed=5, index=0)
    got = {m.name: ctx.run(m) for m in methods()}
    for maps, seconds in got.values():
        assert set(maps) == {1, 3} and all(v.shape == (INPUT_SIZE, INPUT_SIZE) and v.dtype == np.float32 for v in maps.values())
        assert seconds >= 0
    fov = sample.fundus.fov
    a, b = got["paper_input"][0][3][fov], got["gradient_x_input"][0][3][fov]
    assert np.corrcoef(a, b)[0, 1] > 0.99  # docs/method.md section 4: the input map is input x gradient
    assert got["gradient_x_input"][1] >= got["gradient"][1] * 0.5  # the shared pass is charged to both
    assert (got["gradcam"][0][1] >= 0).all() and (got["gradient"][0][1] >= 0).all()
    np.testing.assert_array_equal(got["random"][0][1], random_map(ctx)[1])


def test_unknown_methods_are_a_study_error_naming_the_known_ones():
    with pytest.raises(StudyError, match="unknown methods: nope; known: paper_total") as e:
        methods(include=["nope", "gradient"])
    assert isinstance(e.value, CoreError) and isinstance(e.value, ValueError)
    assert [m.name for m in methods((8,), ["paper_layer8", "random"])] == ["paper_layer8", "random"]
