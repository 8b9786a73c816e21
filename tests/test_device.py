"""``--device``: the same code path on every device, nothing that needs a GPU.

On this machine (no GPU) the CPU run through the device path must equal the default bit
for bit, and asking for CUDA must be refused in one line. Where a GPU is present, the
last test compares it with the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import core
from core import device
from core.cli import main as cli_main
from core.transport import to_input_space

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


@pytest.fixture(scope="module")
def bundled():
    return core.load_weights("idrid")


@pytest.fixture(scope="module")
def fundus(retina_fundus):
    return retina_fundus


def _arrays(exp: core.Explanation) -> dict[str, np.ndarray]:
    out = {"scores": exp.scores, "features": exp.features, "input_map": exp.input_map, "total": exp.total()}
    for spec in core.CONV_LAYERS:
        for part in core.PARTS:
            out[f"{spec.index}-{part}"] = exp.in_input_space(spec.index, part)
    return out


def test_resolve_names(monkeypatch):
    monkeypatch.delenv(device.ENV_DEVICE, raising=False)
    assert device.resolve("cpu") == torch.device("cpu")
    assert device.resolve(" CPU ") == torch.device("cpu")
    assert device.resolve(None) == torch.device("cpu")
    assert device.resolve(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setenv(device.ENV_DEVICE, "cpu")
    assert device.resolve(None) == torch.device("cpu")
    for bad in ("tpu", "cuda:x", "cuda:-1", "", "gpu"):
        with pytest.raises(device.DeviceError, match="expected cpu, cuda"):
            device.resolve(bad)


def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert device.resolve("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:0", "CUDA:1"):
        with pytest.raises(device.DeviceError, match="no CUDA GPU") as e:
            device.resolve(name)
        assert "\n" not in str(e.value)
    assert issubclass(device.DeviceError, core.CoreError)  # the CLI prints it in one line


def test_a_gpu_index_beyond_the_machine_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(device.DeviceError, match="1 CUDA GPU"):
        device.resolve("cuda:3")


def test_the_device_path_on_the_cpu_equals_the_default_bit_for_bit(bundled, fundus):
    """Explicit device="cpu" goes through every .to(device) of the path; nothing may move."""
    here = core.load_weights("idrid", device="cpu")
    assert here.device == torch.device("cpu") and bundled.device == torch.device("cpu")
    a, b = core.explain(bundled, fundus), core.explain(here, fundus)
    assert a.device == b.device == "cpu"
    left, right = _arrays(a), _arrays(b)
    for key in left:
        assert np.array_equal(left[key], right[key]), key
    assert b.conservation()["ok"]


def test_transport_on_a_named_device_equals_the_array_path(bundled, fundus):
    exp = core.explain(bundled, fundus)
    for spec in (core.layer(1), core.layer(8), core.layer(15)):
        maps = exp.layer(spec.index).constant
        assert np.array_equal(to_input_space(maps, spec), to_input_space(maps, spec, device="cpu"))
        assert np.array_equal(to_input_space(maps, spec), to_input_space(torch.from_numpy(maps), spec, device=torch.device("cpu")))


def test_grading_on_the_cpu_device_equals_the_explanation(bundled, fundus, tmp_path):
    from core.grading import grade_paths

    path = tmp_path / "eye.png"
    from PIL import Image

    Image.fromarray(fundus.image).save(path)
    graded = list(grade_paths(core.load_weights("idrid", device="cpu"), [path]))
    exp = core.explain(bundled, core.read_fundus(path))
    assert np.array_equal(graded[0].scores, exp.scores.astype(np.float64))


@no_cuda
@pytest.mark.parametrize("command", ["explain", "grade", "bench"])
def test_cli_refuses_cuda_in_one_line_before_any_work(command, tmp_path, capsys):
    args = {"explain": ["explain", "missing.png", "--out", str(tmp_path / "o")],
            "grade": ["grade", str(tmp_path), "--csv", str(tmp_path / "g.csv")],
            "bench": ["bench", "--weights", "idrid", "--no-captum", "--repeats", "0"]}[command]
    status = cli_main([*args, "--weights", "idrid", "--device", "cuda"] if command != "bench" else [*args, "--device", "cuda"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.count("\n") == 0 and "no CUDA GPU" in err, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "g.csv").exists()


def test_the_page_reads_its_device_from_the_command_line_then_the_environment(monkeypatch):
    from viewer import state

    monkeypatch.delenv(device.ENV_DEVICE, raising=False)
    assert state.page_device([]) == "cpu"
    assert state.page_device(["--device", "auto"]) == "auto"
    assert state.page_device(["--other", "--device=cuda:1"]) == "cuda:1"
    monkeypatch.setenv(device.ENV_DEVICE, "auto")
    assert state.page_device([]) == "auto"
    assert state.page_device(["--device", "cpu"]) == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_explanation_agrees_with_the_cpu(bundled, fundus):
    gpu = core.load_weights("idrid", device="cuda")
    a, b = core.explain(bundled, fundus), core.explain(gpu, fundus)
    assert b.device.startswith("cuda")
    assert b.conservation()["max_relative_error"] <= 1e-4
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-4, atol=1e-4)
    scale = float(np.abs(a.total()).max())
    np.testing.assert_allclose(b.total(), a.total(), atol=1e-3 * scale)


@no_cuda
def test_the_page_says_in_one_line_that_it_has_no_gpu_and_stops(monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(device.ENV_DEVICE, "cuda")
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "viewer" / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "no CUDA GPU" in errors[0] and "--device cpu" in errors[0], errors
    assert not at.get("file_uploader")  # nothing to upload into: no model, no grade
