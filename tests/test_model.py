"""The layer table and the network: the paper's numbers, the checkpoint's layout."""

import numpy as np
import pytest
import torch

from core.model import CONV_LAYERS, LAYERS, DRNet, count_parameters, layer
from core.transport import unit_centre

PAPER_RF = [3, 5, 9, 13, 21, 29, 45, 61, 93, 125, 189, 253, 381, 509, 637]
EXACT_RF = [3, 5, 10, 14, 24, 32, 52, 68, 108, 140, 220, 284, 444, 572, 764]


def test_receptive_fields_are_the_papers():
    assert [s.rf_paper for s in CONV_LAYERS] == PAPER_RF
    assert [s.rf_exact for s in CONV_LAYERS] == EXACT_RF


def test_table_shapes_and_strides():
    assert [s.hidden for s in CONV_LAYERS] == [640, 640, 320, 320, 160, 160, 80, 80, 40, 40, 20, 20, 10, 10, 4]
    assert [s.stride for s in CONV_LAYERS] == [1, 1, 2, 2, 4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128]
    assert [s.channels for s in CONV_LAYERS] == [16, 16, 32, 32] + [64] * 11
    assert LAYERS[15].kind == "linear" and len(LAYERS) == 16
    assert layer(15).kind == "conv2x2"
    with pytest.raises(ValueError):
        layer(17)


def test_exact_receptive_field_follows_from_the_grid():
    """rf_exact is what the table's strides give when the pools' extent counts."""
    rf, jump = 1, 1
    for spec in CONV_LAYERS:
        k = 2 if spec.kind == "conv2x2" else 3
        rf += (k - 1) * jump
        assert rf == spec.rf_exact
        if spec.pool_after == "max" or spec.index == 14:
            rf += jump
            jump *= 2


@pytest.mark.parametrize("spec", CONV_LAYERS, ids=lambda s: f"L{s.index}")
def test_grids_are_centred_on_the_image(spec):
    """Receptive-field centres are symmetric about the image centre (319.5)."""
    first, last = unit_centre(spec, 0), unit_centre(spec, spec.hidden - 1)
    assert first + last == pytest.approx(639.0)


def test_network_matches_the_table():
    model = DRNet().eval()
    assert count_parameters(model) == 385_877
    shapes = []
    x = torch.zeros(1, 3, 640, 640)
    with torch.no_grad():
        for m in list(model.features) + list(model.classifier)[:3]:
            x = m(x)
            if isinstance(m, torch.nn.ReLU):
                shapes.append(tuple(x.shape[1:]))
    assert shapes == [(s.channels, s.hidden, s.hidden) for s in CONV_LAYERS]
    assert model(torch.zeros(2, 3, 640, 640)).shape == (2, 5)


def test_checkpoint_layout_names():
    keys = DRNet().state_dict().keys()
    for n in (0, 3, 7, 10, 14, 17, 21, 24, 28, 31, 35, 38, 42, 45):
        assert f"features.{n}.weight" in keys and f"features.{n + 1}.running_var" in keys
    assert {"classifier.0.weight", "classifier.1.running_mean", "output.0.weight", "output.0.bias"} <= set(keys)


def test_narrow_widths_keep_the_topology():
    model = DRNet(widths=(4,) * 15).eval()
    assert model(torch.zeros(1, 3, 640, 640)).shape == (1, 5)
    assert count_parameters(model) < 5_000
    with pytest.raises(ValueError):
        DRNet(widths=(4,) * 14)


def test_published_weights_grade_a_normal_retina_0(paper_model, retina_fundus):
    """scikit-image's normal fundus (CC0) is graded 0 by a wide margin (docs/method.md section 2)."""
    x = paper_model.normalisation.to_tensor(retina_fundus.image)
    with torch.no_grad():
        s = paper_model.network(x)[0].numpy()
    assert int(np.argmax(s)) == 0
    assert s[0] - np.sort(s)[-2] > 20
    assert paper_model.meta["num_params"] == 385_877
