"""The viewer's small helpers, without a page or weights: samples, labels, pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core import pictures as draw
from viewer import controls, pictures, render, state


def test_samples_are_listed_recursively_photographs_first(tmp_path):
    (tmp_path / "synthetic").mkdir()
    for name in ("b.jpg", "a.PNG", "notes.txt", "overview.jpg", "_draft.png", "synthetic/grade3.jpg",
                 "synthetic/grade0.webp", "synthetic/overview.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert list(state.list_samples(tmp_path)) == ["a.PNG", "b.jpg", "synthetic/grade0.webp", "synthetic/grade3.jpg"]
    assert state.list_samples(tmp_path / "missing") == {}


def test_bundled_sample_is_offered():
    samples = state.list_samples()
    assert "retina-normal.jpg" in samples and samples["retina-normal.jpg"].is_file()
    assert controls.sample_label("retina-normal.jpg") == "Photograph · retina-normal.jpg"
    assert controls.sample_label("synthetic/grade3.jpg") == "Synthetic drawing · grade3.jpg"


def test_layer_options_run_from_16_to_input():
    assert controls.LAYER_OPTIONS == (16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, "input")


@pytest.mark.parametrize(("v", "text"), [(43.36, "43.4"), (-0.04, "0.0"), (-290.92, "-290.9"), (0.0, "0.0")])
def test_scores_show_one_decimal(v, text):
    assert render.fmt_score(v) == text


@pytest.mark.parametrize(("p", "text"), [(1.0, "> 99.9 %"), (1e-33, "< 0.1 %"), (0.4567, "45.7 %"), (0.001, "0.1 %")])
def test_probabilities(p, text):
    assert render.fmt_probability(p) == text


def test_conservation_line_adds_up():
    rows = {"grade": {"score": 43.4, "bias": 0.5, "features_sum": 42.9, "input_map_sum": -86.3,
                      "constants_sum": 129.2, "features_relative_error": 1e-8, "input_relative_error": 2e-8},
            8: {"input_dependent": -55.3, "constants_from_layer": 98.2, "relative_error": 3e-8}}
    text, ok = render.conservation_line(rows, 8, 1e-4)
    assert ok and text.startswith("input-dependent (layer 8) -55.3 + constants of layers ≥ 8 98.2 + bias 0.5 = 43.4")
    assert "= score 43.4 ✓" in text
    text, ok = render.conservation_line(rows, "input", 1e-4)
    assert ok and "input map -86.3 + constants of all layers 129.2" in text
    rows["grade"]["features_sum"], rows["grade"]["features_relative_error"] = 40.0, 0.078
    text, ok = render.conservation_line(rows, 16, 1e-4)
    assert not ok and "✗" in text


def test_hidden_grid_is_shown_as_blocks():
    grid = np.arange(16, dtype=np.float32).reshape(4, 4) - 8
    scale = draw.make_scale(grid)
    up = pictures.nearest_up(grid)
    assert up.shape == (640, 640) and (up[:160, :160] == grid[0, 0]).all()
    with_lines = pictures.grid_lines(draw.colourise(up, scale), 4)
    assert (with_lines[160, :] == 150).all()


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("positive_only", [False, True])
def test_map_pictures_have_their_colour_bar(log, positive_only):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(640, 640)).astype(np.float32)
    scale = draw.make_scale(values, log=log, positive_only=positive_only)
    retina = rng.integers(0, 255, (640, 640, 3), dtype=np.uint8)
    for picture in (pictures.map_picture(values, scale), pictures.map_picture(values, scale, retina, 0.7)):
        composite = draw.with_colourbar(picture, scale)
        assert composite.shape[1] == 640 and composite.shape[0] > 640 and composite.dtype == np.uint8
    # zero-valued pixels leave the retina visible (as grey) in the overlay
    over = pictures.map_picture(np.zeros((640, 640), np.float32), scale, retina, 0.9)
    assert np.allclose(over, pictures.faint(retina), atol=1)  # no score: the faint colour retina alone


def test_flicker_gif_alternates_two_frames():
    a = np.zeros((64, 64, 3), np.uint8)
    b = a.copy()
    b[10:20, 10:20] = draw.MASK_COLOUR
    with Image.open(io.BytesIO(draw.flicker_gif([a, b]))) as gif:
        assert gif.format == "GIF" and gif.n_frames == 2 and gif.info.get("loop") == 0


def test_tick_labels_share_their_decimals():
    assert [draw.format_tick(v, 0.00188) for v in (-0.00188, 0.00094)] == ["-0.00188", "0.00094"]
    assert draw.format_tick(21.7, 43.4) == "21.7" and draw.format_tick(3e-4, 3e-4) == "3.0e-04"


def test_render_functions_take_the_viewers_result():
    """Every render function that draws from a session's result says so in its type."""
    import inspect
    import typing

    takers = [fn for _, fn in inspect.getmembers(render, inspect.isfunction)
              if fn.__module__ == render.__name__ and "res" in inspect.signature(fn).parameters]
    assert len(takers) >= 8
    for fn in takers:
        assert typing.get_type_hints(fn)["res"] is state.Result, fn.__name__


def test_which_map_a_layer_shows_is_cores():
    """The viewer asks core.views.level_map which map a level shows; it keeps no rule of its own."""
    import inspect

    from viewer import reading

    assert not hasattr(render, "current_map") and not hasattr(reading, "current_map")
    for module in (render, reading):
        source = inspect.getsource(module)
        assert "views.level_map(" in source and "def current_map" not in source and "def level_map" not in source


def test_core_pictures_is_imported_as_draw():
    """``draw`` is the viewer's name for core.pictures (``cm`` meant colour maps here and a confusion
    matrix elsewhere): no viewer module binds core.pictures, or anything, to ``cm``."""
    import ast
    from pathlib import Path

    folder = Path(render.__file__).parent
    found = 0
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    assert (alias.asname or alias.name) != "cm", f"{path.name}: {ast.unparse(node)}"
                    module = node.module if isinstance(node, ast.ImportFrom) else None
                    if (module, alias.name) == ("core", "pictures") or alias.name == "core.pictures":
                        assert alias.asname == "draw", f"{path.name}: {ast.unparse(node)}"
                        found += 1
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                assert node.id != "cm", f"{path.name}: line {node.lineno} binds cm"
    assert found >= 2  # render.py and pictures.py


def test_score_and_probability_formats_are_pinned():
    assert [render.fmt_score(v) for v in (12.345, -0.04, 0.04, -3.96)] == ["12.3", "0.0", "0.0", "-4.0"]
    assert [render.fmt_probability(p) for p in (0.0004, 0.9996, 0.5, 0.01234)] == ["< 0.1 %", "> 99.9 %", "50.0 %", "1.2 %"]


def test_the_model_cache_never_serves_a_replaced_file(tmp_path):
    import torch

    import core

    path = tmp_path / "mine.pt"
    first, second = core.DRNet(widths=[2] * 15).eval(), core.DRNet(widths=[2] * 15).eval()
    with torch.no_grad():
        second.output[0].bias.fill_(1.0)
    core.weights.save_checkpoint(path, first, {"title": "first"})
    assert state.load_model(str(path)) is state.load_model(str(path))  # cached
    core.weights.save_checkpoint(path, second, {"title": "second"})
    assert state.load_model(str(path)).meta["title"] == "second"


def test_samples_carry_their_reference_grades(tmp_path):
    (tmp_path / "reference_grades.csv").write_text(
        "file,grade,source\nIDRiD_005.jpg,2,IDRiD graders\nsynthetic/grade3.jpg,3,drawn as\nbad.jpg,seven,x\nfar.jpg,9,x\n")
    refs = state.sample_references(tmp_path)
    assert refs == {"IDRiD_005.jpg": controls.Reference(2, "IDRiD graders"), "synthetic/grade3.jpg": controls.Reference(3, "drawn as")}
    assert controls.sample_label("IDRiD_005.jpg", refs["IDRiD_005.jpg"]) == "Photograph · IDRiD_005.jpg · IDRiD graders: grade 2"
    assert controls.sample_label("synthetic/grade3.jpg", refs["synthetic/grade3.jpg"]) == "Synthetic drawing · grade3.jpg · drawn as: grade 3"
    assert state.sample_references(tmp_path / "nowhere") == {}


def test_the_reference_line_says_how_far_the_model_is():
    ref = controls.Reference(3, "IDRiD graders")
    assert render.reference_line(ref, 3).endswith("the model agrees.")
    assert render.reference_line(ref, 4).endswith("the model is 1 grade higher.")
    assert render.reference_line(ref, 0).endswith("the model is 3 grades lower.")
    assert render.reference_line(ref, 3).startswith("**Reference** (IDRiD graders): 3 · Severe NPDR")


def test_every_bundled_sample_has_a_reference_grade():
    samples, refs = state.list_samples(), state.sample_references()
    assert samples and set(samples) <= set(refs), set(samples) - set(refs)


def test_a_downloaded_map_says_what_it_shows():
    from types import SimpleNamespace

    exp = SimpleNamespace(fundus=SimpleNamespace(source="IDRiD_005.jpg"), scores=np.array([1.0, -2.5, 0.0, 3.25, 13.1]),
                          weights_name="idrid")
    hidden = render.export_title(exp, 3, 8, "input-dependent map of layer 8", today="2026-12-01")
    assert hidden == ("IDRiD_005.jpg · grade 3 · Severe NPDR, score +3.25 · layer 8: input-dependent map of layer 8 · "
                      "model idrid · 2026-12-01")
    with_k = render.export_title(exp, 3, "input", "total map", today="2026-12-01", k=2.5)
    assert with_k == "IDRiD_005.jpg · grade 3 · Severe NPDR, score +3.25 · input: total map · k = 2.5 · model idrid · 2026-12-01"
    top = render.export_title(exp, 4, 16, "total map", today="2026-12-01")
    assert "layer 16" not in top.split("·")[0] and "total map (layer 16's 64 features have no place" in top
    assert "total map · layer 16" not in top


def test_a_sessions_pictures_are_bounded_in_number_and_bytes(monkeypatch):
    from viewer import state

    monkeypatch.setattr(state, "MAX_PICTURE_BYTES", 10_000)
    res = state.Result(key="k", exp=None)  # pictures never touch the explanation
    for i in range(30):
        assert res.picture(("p", i), lambda i=i: bytes(1_000) + bytes([i])) == bytes(1_000) + bytes([i])
    assert res.picture_bytes() <= 10_000
    assert ("p", 29) in res._derived and ("p", 0) not in res._derived  # the oldest went first
    made = []
    res.picture(("p", 29), lambda: made.append(1))  # kept ones are not made again
    assert not made
    monkeypatch.setattr(state, "MAX_PICTURES", 3)
    for i in range(5):
        res.picture(("q", i), lambda: b"x")
    assert len([k for k in res._derived if isinstance(k, tuple)]) <= 3
