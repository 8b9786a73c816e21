"""Sanity checks (core.study.sanity) on the tiny random network: Spearman with ties
against a hand computation, the cascade's bookkeeping (only layer 16 first, cumulative,
the caller's model untouched), and that the measure tells a weight-independent map (held
at correlation 1) from a re-drawn random one (about 0), and the command's files. The
photograph gets a small field of view so that ranking it stays fast."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from core import read_fundus
from core.cli import main as cli_main
from core.model import plain_copy
from core.study.peers import Method, methods
from core.study.sanity import (
    STAGES,
    average_ranks,
    cascade,
    randomise_layer,
    run_sanity,
    spearman,
)
from core.study.sources import Sample
from core.weights import load_weights
from tests.conftest import RETINA


def _brightness(ctx):
    """A made-up map that ignores the model: the image's brightness, the same for any weights."""
    b = ctx.fundus.image.astype(np.float32).mean(2)
    return {g: b for g in ctx.grades}


BRIGHTNESS = Method("brightness", "Brightness (ignores the model)", _brightness, "baseline")
SEEN: list[tuple[torch.Tensor, torch.Tensor]] = []


def _probe(ctx):
    """Records the linear weights of the models a stage's methods use; its map is the brightness."""
    SEEN.append((ctx.peers.lm.network.linear.weight.clone(), ctx.peers.model.linear.weight.clone()))
    return _brightness(ctx)


@pytest.fixture(scope="module")
def lm(tiny):
    """The tiny network with batch norms that look trained (not PyTorch's defaults), so
    that re-initialising them is visible."""
    loaded = load_weights(str(tiny))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, bn in loaded.network.blocks():
            for t in (bn.weight, bn.running_var):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            for t in (bn.bias, bn.running_mean):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return loaded


@pytest.fixture(scope="module")
def sample():
    """The test photograph with its FOV cut to a disc of radius 40 px (5,000 pixels)."""
    f = read_fundus(RETINA, name=RETINA.name)
    yy, xx = np.mgrid[:640, :640]
    small = ((yy - 320) ** 2 + (xx - 320) ** 2 <= 40**2) & f.fov
    return Sample("retina.jpg", dataclasses.replace(f, fov=small), None, None)


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_spearman_against_a_hand_computation_with_ties():
    # ranks a: 1, 2.5, 2.5, 4; b: 1, 4, 2.5, 2.5. Centred: (-1.5, 0, 0, 1.5) and (-1.5, 1.5, 0, 0):
    # rho = 2.25 / sqrt(4.5 * 4.5) = 0.5.
    assert average_ranks(np.array([1.0, 2.0, 2.0, 3.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert average_ranks(np.array([0.0, 5.0, 0.0, 1.0, 0.0])).tolist() == [2.0, 5.0, 2.0, 4.0, 2.0]
    assert spearman(np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0, 2.0])) == pytest.approx(0.5)
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 5.0, 0.0])) == pytest.approx(-1.0)
    where = np.array([True, True, True, False])
    assert spearman(np.array([1.0, 2.0, 3.0, 9.0]), np.array([2.0, 4.0, 8.0, -1.0]), where) == pytest.approx(1.0)
    assert np.isnan(spearman(np.zeros(5), np.arange(5.0)))  # a constant map: undefined, not 0
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 200).astype(float), rng.integers(0, 6, 200).astype(float)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


def test_cascade_starts_at_the_linear_layer_and_accumulates(lm):
    before = _state(lm.network)
    changed_by_stage = {}
    for stage, m in cascade(lm, seed=3):
        now = m.network.state_dict()
        changed_by_stage[stage] = {k for k in now if not torch.equal(now[k], before[k])}
    assert changed_by_stage[16] == {"output.0.weight", "output.0.bias"}
    assert {"classifier.0.weight", "classifier.0.bias", "classifier.1.weight", "classifier.1.running_var"} <= changed_by_stage[15]
    assert changed_by_stage[16] < changed_by_stage[15] < changed_by_stage[1]
    assert {"features.0.weight", "features.1.running_mean"} <= changed_by_stage[1]
    assert not any(k.startswith("features.0.") for k in changed_by_stage[2])
    after = lm.network.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # the caller's model is untouched


def test_randomisation_is_seeded_and_can_keep_batch_norm(lm):
    a, b, c = plain_copy(lm.network), plain_copy(lm.network), plain_copy(lm.network)
    torch.manual_seed(123)  # the global RNG plays no part
    randomise_layer(a, 5, seed=1)
    randomise_layer(b, 5, seed=1)
    randomise_layer(c, 5, seed=1, batchnorm="keep")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    conv, bn = c.blocks()[4]
    conv0, bn0 = lm.network.blocks()[4]
    assert torch.equal(conv.weight, a.blocks()[4][0].weight) and not torch.equal(conv.weight, conv0.weight)
    assert torch.equal(bn.running_var, bn0.running_var) and torch.equal(bn.weight, bn0.weight)
    assert torch.equal(a.blocks()[4][1].running_var, torch.ones_like(bn0.running_var))


def test_run_tells_weight_independent_maps_from_random_ones(lm, sample):
    before = _state(lm.network)
    chosen = [*methods((3,), ["paper_input", "paper_layer3", "gradient", "random"]), BRIGHTNESS,
              Method("probe", "Probe", _probe, "baseline")]
    SEEN.clear()
    doc = run_sanity(lm, [sample], chosen, seed=5, ig_steps=1, bootstrap=50, quiet=True)
    after = lm.network.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    ms = doc["methods"]
    assert list(ms) == ["paper_input", "paper_layer3", "gradient", "random", "brightness", "probe"]
    for s in STAGES:  # the check CAN fail: a map that ignores the weights stays at 1
        assert ms["brightness"]["cascade_abs"][str(s)]["value"] == pytest.approx(1.0)
        assert abs(ms["random"]["cascade_abs"][str(s)]["value"]) < 0.1  # re-drawn per stage: chance level
    assert ms["brightness"]["logit_abs"]["value"] == pytest.approx(1.0)
    assert abs(ms["random"]["logit_abs"]["value"]) < 0.1 and abs(ms["random"]["logit_signed"]["value"]) < 0.1
    # each stage's maps are made with that stage's model, by explain (lm) and by the peers (model) alike
    seen = [(float(lm_w.sum()), float(peer_w.sum())) for lm_w, peer_w in SEEN]
    assert len(seen) == 1 + len(STAGES) and all(a == pytest.approx(b) for a, b in seen)
    assert seen[0][0] == pytest.approx(float(lm.network.linear.weight.sum())) and len({a for a, _ in seen[:2]}) == 2
    for m in ("paper_input", "paper_layer3", "gradient"):
        for key in ("cascade_abs", "cascade_signed"):
            c = ms[m][key]["16"]
            assert c["n"] <= 1 and (c["value"] is None or -1 <= c["low"] <= c["value"] <= c["high"] <= 1)
    (row,) = doc["images"]
    assert row["grade"] in range(5) and row["other_grade"] in set(range(5)) - {row["grade"]}
    assert doc["data"]["n"] == 1 and doc["settings"]["batchnorm"] == "reset"


def test_command_writes_table_json_and_plot(tiny, tmp_path, capsys):
    folder = tmp_path / "idrid"
    folder.mkdir()
    shutil.copy(RETINA, folder / "IDRiD_07.jpg")
    out = tmp_path / "out"
    code = cli_main(["sanity", "--weights", str(tiny), "--idrid", str(folder), "--n", "1", "--methods", "random",
                     "--bootstrap", "20", "--out", str(out), "--quiet"])
    assert code == 0
    doc = json.loads((out / "sanity_tiny_idrid.json").read_text())
    assert doc["data"]["images"] == ["IDRiD_07.jpg"] and list(doc["methods"]) == ["random"]
    assert set(doc["methods"]["random"]["cascade_abs"]) == {str(s) for s in STAGES}
    text = (out / "sanity_tiny_idrid.md").read_text()
    assert "| 16–1 |" in text and "| Random (Gaussian) |" in text
    assert Image.open(out / "sanity_tiny_idrid.png").width > 1000
    captured = capsys.readouterr()
    assert "Cascading randomisation" in captured.out and "s each" in captured.err
    assert cli_main(["sanity", "--weights", str(tiny), "--idrid", str(tmp_path / "none"), "--n", "1"]) == 2
