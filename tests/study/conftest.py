"""Fixtures of the quality study's tests: a tiny random network saved as a checkpoint
(fast enough for every method and the command end to end)."""

from __future__ import annotations

import pytest
import torch

import core
from core.weights import save_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = core.DRNet([4] * 15).eval()
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_checkpoint(path, model, {"title": "tiny random test network"})
    return path
