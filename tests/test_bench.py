"""python -m core bench's own pieces: the floor it compares against, and the session's memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import core
from core import bench
from core.model import plain_copy


def test_the_floor_takes_five_gradients_at_every_batch_norm(retina_fundus):
    lm = core.load_weights("demo")
    net = plain_copy(lm.network)
    calls = []
    real = torch.autograd.grad

    def counting(outputs, inputs, **kw):
        calls.append(len(inputs))
        return real(outputs, inputs, **kw)

    x = lm.normalisation.to_tensor(retina_fundus.image)
    floor = bench.floor_fn(net, x)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    try:
        torch.autograd.grad = counting
        floor()
    finally:
        torch.autograd.grad = real
    assert calls == [n_bn + 1] * 5  # the input and every BN output, once per grade


def test_a_sessions_memory_counts_one_grade(retina_fundus):
    lm = core.load_weights("demo")
    exp = core.explain(lm, retina_fundus)
    mem = bench.session_bytes(exp, exp.grade)
    one = 640 * 640 * 4 / 2**20  # MB of one input-space map
    # total, constants, bias and 15 layers x 2 parts, of one grade only
    assert mem["input_space_mb"] == pytest.approx(33 * one, rel=1e-6)
    assert mem["session_mb"] == pytest.approx(mem["explanation_mb"] + mem["input_space_mb"])
    assert mem["hidden_maps_mb"] < mem["explanation_mb"]
    assert np.isfinite(list(mem.values())).all()


def test_the_bench_counts_the_pages_own_limit(retina_fundus):
    from viewer import state

    assert bench.PAGE_LAYER_MAPS == state.MAX_LAYER_MAPS
    exp = core.explain(core.load_weights("demo"), retina_fundus)
    mem = bench.session_bytes(exp, exp.grade, bench.PAGE_LAYER_MAPS)
    one = 640 * 640 * 4 / 2**20
    assert mem["input_space_mb"] <= (3 + bench.PAGE_LAYER_MAPS) * one + 1e-9  # total, constants, bias + the kept maps
