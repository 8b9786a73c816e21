"""The clinician's page driven headless through Streamlit's AppTest.

Every number the page shows is compared with what ``core`` computes on the same bytes, with
the model the page picks itself: the bundled model (always) and the published weights
(``paper``, where they are on the machine); see ``page_model`` in conftest.py.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import core
from tests.viewer.app_helpers import find, texts
from tests.viewer.page_models import BANNER
from viewer import render
from viewer.controls import LAYER_OPTIONS

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "viewer" / "app.py"
RETINA = REPO / "tests" / "data" / "retina.jpg"


# ----------------------------------------------------------------------------- helpers
# The page's own formatters (their outputs are pinned in test_pieces.py): what is compared
# here is that the numbers they are given are core's.
fmt = render.fmt_score
fmt_p = render.fmt_probability


def new_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.json, "stray output on the page (Streamlit 'magic' printed a value)"
    return at


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    at.file_uploader(key="upload").set_value((name, data, mime))
    return run(at)






def has(at: AppTest, prefix: str) -> bool:
    return any(t.startswith(prefix) for t in texts(at))


def score_rows(at: AppTest) -> list[list[str]]:
    table = find(at, "| Grade | Score | Probability |")
    return [[c.strip().strip("*") for c in line.strip().strip("|").split("|")] for line in table.splitlines()[2:]]


def pixel_count(at: AppTest) -> int:
    m = re.search(r"\*\*([\d,]+) pixels\*\* are above", "\n".join(texts(at)))
    assert m, "pixel count not shown"
    return int(m.group(1).replace(",", ""))


def conservation_text(at: AppTest) -> str:
    return find(at, "**Conservation:**")


def banners(at: AppTest) -> list[str]:
    return [e.value for e in at.error if BANNER in e.value]


def errors(at: AppTest) -> list[str]:
    """The page's error boxes, less the bundled model's standing banner (see ``check_banner``)."""
    return [e.value for e in at.error if BANNER not in e.value]


def check_banner(at: AppTest, model) -> None:
    """The red banner above the page: once with the bundled model, never with the published weights."""
    assert len(banners(at)) == (1 if model.bundled else 0), [e.value for e in at.error]


@pytest.fixture
def page(page_model, retina_bytes) -> AppTest:
    """The page with the real photograph uploaded."""
    at = upload(new_app(), RETINA.name, retina_bytes)
    check_banner(at, page_model)
    return at


# ----------------------------------------------------------------------------- tests
SHA256 = {"paper": "730173b044540b24c3c7c150248f624a728de2c6167d0baed1e46ffb49b9a206",
          "idrid": core.REGISTRY["idrid"].sha256}  # checked against its file in tests/training/test_bundled_model.py


def test_empty_page_asks_for_a_photograph(page_model):
    at = new_app()
    assert "Diabetic retinopathy" in at.title[0].value
    assert any("not a medical device" in t for t in texts(at))
    card = find(at, "| Weights | ")
    assert SHA256[page_model.name] in card
    assert "385,877" in card and "Licence" in card
    line = find(at, "**Model:**")
    if page_model.bundled:  # every figure with its data, real photographs first
        assert "IDRiD photographs" in card and "synthetic drawings" in card and "EyePACS" not in card
        assert line.startswith("**Model:** Bundled model trained by this project on 272 IDRiD photographs")
        assert line.index("held-out IDRiD photographs (real") < line.index("synthetic drawings")
        assert "1.6 MB" in at.button(key="download_weights").label  # the published weights, one click away
    else:
        assert "EyePACS" in card and "synthetic" not in card
        assert line.startswith("**Model:** Published weights")
        assert "kappa 0.798 (95% CI 0.752–0.838) on 413 IDRiD photographs (real" in line
    assert "validation kappa" not in line  # never a figure without its data
    assert at.file_uploader(key="upload") is not None
    assert "Photograph · retina-normal.jpg · Wikimedia Commons (a normal eye): grade 0" in at.selectbox(key="sample").options
    assert any("Upload a fundus photograph" in i.value for i in at.info)
    check_banner(at, page_model)
    assert not errors(at)


def test_scores_probabilities_and_grade_equal_core(page, core_result):
    exp = core_result
    rows = score_rows(page)
    assert len(rows) == 5
    for g, (label, score, prob) in enumerate(rows):
        assert label == f"{g} · {core.GRADE_NAMES[g]}"
        assert score == fmt(float(exp.scores[g]))
        assert prob == fmt_p(float(exp.probabilities[g]))
    assert find(page, "#### The model's grade").startswith(f"#### The model's grade: {exp.grade} · {exp.grade_name}")
    assert page.selectbox(key="grade").value == exp.grade
    assert page.selectbox(key="own_grade").value is None
    assert page.select_slider(key="layer").value == "input"
    assert len(page.get("plotly_chart")) >= 1
    cons = exp.conservation()["grades"][exp.grade]
    line = conservation_text(page)
    assert f"input map {fmt(cons['input_map_sum'])}" in line
    assert f"score {fmt(cons['score'])} ✓" in line
    # the retina as the model sees it, and the original size in its caption
    assert any("original 1411×1411" in c for img in page.image for c in img.captions)


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the slider is the same page code for any weights
def test_layer_slider_every_value(page, core_result):
    exp = core_result
    g = exp.grade
    rows = {r["layer"]: r for r in exp.conservation()["grades"][g]["layers"]}
    pictures = {}
    for value in LAYER_OPTIONS:
        page.select_slider(key="layer").set_value(value)
        run(page)
        pictures[value] = len(page.image)
        head = find(page, "##### Grade")
        line = conservation_text(page)
        assert "✓" in line, line
        assert f"= score {fmt(float(exp.scores[g]))}" in line
        if value == 16:
            assert "Layer 16" in head
            keys = [c.proto.id for c in page.get("plotly_chart")]
            assert len(keys) >= 2  # scores + the 64 feature scores
            assert f"feature scores {fmt(float(exp.features[g].sum(dtype=np.float64)))}" in line
        elif value == "input":
            assert "Input" in head
        else:
            spec = core.layer(value)
            assert f"Layer {value} ·" in head
            assert f"receptive field {spec.rf_paper} px" in head
            assert f"hidden grid {spec.hidden}×{spec.hidden}" in head
            row = rows[value]
            assert find(page, "**Input-dependent part**").endswith(f"Σ {fmt(row['input_dependent'])}")
            assert find(page, "**Constant part**").endswith(f"Σ {fmt(row['constant'])}")
            assert find(page, f"**Hidden {spec.hidden}×{spec.hidden}, input-dependent**").endswith(f"Σ {fmt(row['input_dependent'])}")
            assert find(page, f"**Hidden {spec.hidden}×{spec.hidden}, constant**").endswith(f"Σ {fmt(row['constant'])}")
            assert f"constants of layers ≥ {value} {fmt(row['constants_from_layer'])}" in line
    # layers 1-4 (one or two pixels a unit) do not draw their grid again beside its maps; 5-15 do
    assert len({pictures[v] for v in range(1, 5)}) == 1 and len({pictures[v] for v in range(5, 16)}) == 1
    assert pictures[5] == pictures[4] + 2


def test_threshold_pixel_counts_equal_core(page, core_result):
    exp = core_result
    g = exp.grade
    fov = int(exp.fundus.fov.sum())
    cases = (("input", "total", exp.total()[g]), (8, "total", core.views.level_map(exp, g, 8, "total")[0]),
             (8, "pixels", exp.in_input_space(8, "input_dependent")[g]), ("input", "pixels", exp.input_map[g]))
    for layer, evidence, values in cases:
        page.select_slider(key="layer").set_value(layer)
        page.segmented_control(key="evidence").set_value(evidence)
        for k in (0.5, 2.0, 3.7, 5.0):
            page.slider(key="k").set_value(k)
            run(page)
            expected = int(exp.mask(g, k, values=values).sum())
            assert pixel_count(page) == expected, (layer, evidence, k)
            assert f"**{expected / fov:.2%}** of the field of view ({fov:,} pixels)" in "\n".join(texts(page))


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the page's wiring: one model is enough
def test_grade_selector_and_own_grade(page, core_result):
    exp = core_result
    model_g = exp.grade
    other = 3 if model_g != 3 else 2
    page.selectbox(key="grade").set_value(other)
    run(page)
    assert find(page, "##### Grade").startswith(f"##### Grade {other} · {core.GRADE_NAMES[other]} (score {fmt(float(exp.scores[other]))})")
    # the clinician's own grade: their maps beside the model's, with the score difference
    own = 2 if model_g != 2 else 1
    page.selectbox(key="own_grade").set_value(own)
    for layer in (16, 8, "input"):
        page.select_slider(key="layer").set_value(layer)
        run(page)
        head = [s.value for s in page.subheader if s.value.startswith("Your grade")]
        assert head == [f"Your grade {own} · {core.GRADE_NAMES[own]} beside the model's grade {model_g} · {exp.grade_name}"]
        diff = float(exp.scores[model_g]) - float(exp.scores[own])
        assert any(f"a difference of **{fmt(diff)}** in favour of the model's grade" in t for t in texts(page))
        if layer == 16:
            assert len(page.get("plotly_chart")) >= 4  # scores, features, yours, the model's
        else:
            assert has(page, f"**Your grade {own} · {core.GRADE_NAMES[own]}** · score {fmt(float(exp.scores[own]))}")
            assert has(page, f"**Model's grade {model_g} · {exp.grade_name}** · score {fmt(float(exp.scores[model_g]))}")
    page.selectbox(key="own_grade").set_value(model_g)
    run(page)
    assert any("agrees" in i.value for i in page.info)


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the page's wiring: one model is enough
def test_display_options_and_overlay(page):
    before = [img.value for img in page.image]
    page.toggle(key="overlay").set_value(True)
    page.slider(key="opacity").set_value(0.4)
    run(page)
    after = [img.value for img in page.image]
    assert len(after) == len(before)
    for layer in ("input", 12, 1, 16):
        page.select_slider(key="layer").set_value(layer)
        page.toggle(key="log").set_value(True)
        page.toggle(key="positive_only").set_value(True)
        run(page)
        assert "are above the mean +" in "\n".join(texts(page))
    # the flicker view is made only when asked for
    shown = len(page.image)
    page.toggle(key="flicker").set_value(True)
    run(page)
    assert len(page.image) == shown + 1
    assert [im.proto.imgs[0].url.endswith(".gif") for im in page.image].count(True) == 1
    labels = {b.label for b in page.get("download_button")}
    assert {"scores.json (with your grade and marks)", "Current map (PNG)", "Flicker view (GIF)"} <= labels
    # the npz is built only when asked for, then offered for download
    assert not any(label.startswith("explanation.npz") for label in labels)
    page.button(key="make_npz").click()
    run(page)
    labels = {b.label for b in page.get("download_button")}
    assert any(label.startswith("explanation.npz (") and label.endswith(" MB)") for label in labels), labels
    assert not [b for b in page.button if b.key == "make_npz"]


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the page's wiring: one model is enough
def test_heavy_work_once_per_image(page_model, retina_bytes, monkeypatch):
    calls = []
    real = core.explain

    def counting(model, fundus):
        calls.append(fundus.sha256)
        return real(model, fundus)

    monkeypatch.setattr(core, "explain", counting)
    at = upload(new_app(), RETINA.name, retina_bytes)
    for value in (16, 9, "input"):
        at.select_slider(key="layer").set_value(value)
        at.slider(key="k").set_value(3.0)
        run(at)
    assert len(calls) == 1
    # a different image: explained once more, the grade selector back to its grade
    at.selectbox(key="grade").set_value(4)
    run(at)
    flipped = io.BytesIO()
    Image.open(RETINA).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped, format="PNG")
    upload(at, "flipped.png", flipped.getvalue(), "image/png")
    assert len(calls) == 2 and calls[0] != calls[1]
    shown = int(re.match(r"#### The model's grade: (\d)", find(at, "#### The model's grade")).group(1))
    assert at.selectbox(key="grade").value == shown


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the page's wiring: one model is enough
def test_bad_file_shows_message_and_clears_result(page, page_model, retina_bytes):
    assert has(page, "| Grade | Score | Probability |")
    garbage = b"\x89PNG\r\n\x1a\n this is not a picture" + bytes(200)
    with pytest.raises(core.FundusReadError) as err:
        core.read_fundus(garbage, name="broken.png")
    upload(page, "broken.png", garbage, "image/png")
    shown = errors(page)
    assert len(shown) == 1 and str(err.value) in shown[0] and "broken.png" in shown[0]
    assert not has(page, "| Grade | Score | Probability |")
    assert not has(page, "**Conservation:**")
    assert not page.image
    # an empty file too, then the app keeps working for the next upload
    upload(page, "empty.jpg", b"", "image/jpeg")
    assert len(errors(page)) == 1
    upload(page, RETINA.name, retina_bytes)
    assert not errors(page)
    check_banner(page, page_model)
    assert has(page, "| Grade | Score | Probability |") and has(page, "**Conservation:**")


def test_sample_picker_gives_the_same_numbers(page_model, core_result):
    at = new_app()
    at.selectbox(key="sample").set_value("retina-normal.jpg")
    run(at)
    rows = score_rows(at)
    assert [r[1] for r in rows] == [fmt(float(s)) for s in core_result.scores]
    synthetic = [o for o in at.selectbox(key="sample").options if o.startswith("Synthetic drawing")]
    if synthetic:  # the synthetic samples, when bundled, are graded too
        name = "synthetic/" + synthetic[-1].split(" · ")[1]
        at.selectbox(key="sample").set_value(name)
        run(at)
        assert len(score_rows(at)) == 5 and has(at, "**Conservation:**")
        assert any(t.startswith("**Reference** (drawn as): 4 · Proliferative DR") for t in texts(at))


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the page's wiring: one model is enough
def test_a_real_sample_shows_its_reference_grade_beside_the_models(page_model):
    """The bundled IDRiD photographs: IDRiD's grade beside the model's, and how far apart they are."""
    import viewer.state

    at = new_app()
    labels = at.selectbox(key="sample").options
    assert "Photograph · IDRiD_001.jpg · IDRiD graders: grade 3" in labels
    at.selectbox(key="sample").set_value("IDRiD_001.jpg")
    run(at)
    exp = core.explain(core.load_weights(page_model.name), core.read_fundus(viewer.state.SAMPLES_DIR / "IDRiD_001.jpg"))
    line = next(t for t in texts(at) if t.startswith("**Reference**"))
    assert line.startswith("**Reference** (IDRiD graders): 3 · Severe NPDR · ")
    assert ("the model agrees" in line) == (exp.grade == 3), (line, exp.grade)


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)
def test_an_upload_clears_the_sample_and_removing_it_never_shows_another_eye(page_model, retina_bytes):
    """Sample, then upload: the sample picker clears. Removing the upload (its x) leaves the page
    empty, not showing the sample still selected, another patient's eye, with its grade."""
    at = new_app()
    at.selectbox(key="sample").set_value("IDRiD_001.jpg")
    run(at)
    assert any(t.startswith("**Reference** (IDRiD graders)") for t in texts(at))
    upload(at, RETINA.name, retina_bytes)
    assert at.selectbox(key="sample").value is None
    assert not any(t.startswith("**Reference**") for t in texts(at)) and len(score_rows(at)) == 5
    at.selectbox(key="sample").set_value("IDRiD_003.jpg")  # a sample chosen over an upload: said so
    run(at)
    assert any(f"the uploaded {RETINA.name} is not in use" in c.value for c in at.caption)
    at.selectbox(key="sample").set_value(None)  # clearing the sample brings the upload back
    run(at)
    assert not any(t.startswith("**Reference**") for t in texts(at)) and len(score_rows(at)) == 5
    at.selectbox(key="sample").set_value("IDRiD_003.jpg")
    run(at)
    at.file_uploader(key="upload").set_value(None)  # the x
    run(at)
    assert at.selectbox(key="sample").value is None
    assert not any(t.startswith("| Grade | Score |") for t in texts(at))
    assert any("Upload a fundus photograph" in i.value for i in at.info)


def test_without_weights_the_page_says_how_to_get_them(monkeypatch, tmp_path):
    """No published weights here (and offline): a plain message and a working button."""
    monkeypatch.setenv("DR_WEIGHTS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def offline(name, *, progress=None, timeout=30.0):
        raise core.WeightsError(f"cannot download '{name}' (offline? no network in this test)")

    monkeypatch.setattr(core, "fetch", offline)
    at = new_app()
    button = at.button(key="download_weights")
    assert "1.6 MB" in button.label
    if core.default_name() is None:
        assert any("No model weights are available" in e.value for e in at.error)
        assert any("DR_WEIGHTS_DIR" in t for t in texts(at))
    else:  # the bundled model: its banner
        assert any("not for clinical use" in e.value for e in at.error)
    button.click()
    run(at)
    assert any("Download failed: cannot download 'paper' (offline?" in e.value for e in at.error)


@pytest.mark.paper
def test_download_button_fetches_the_weights_then_the_page_uses_them(paper_weights_dir, monkeypatch, tmp_path):
    import shutil

    from core import weights as cw

    monkeypatch.setenv("DR_WEIGHTS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if core.default_name() == "paper":
        pytest.skip("the published weights are in the user cache: cannot test the download")

    def fake_fetch(name, *, progress=None, timeout=30.0):  # what a successful download leaves behind
        dest = cw.cache_dir() / cw.REGISTRY[name].filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paper_weights_dir / cw.REGISTRY[name].filename, dest)
        if progress:
            progress(dest.stat().st_size, dest.stat().st_size)
        return dest

    monkeypatch.setattr(core, "fetch", fake_fetch)
    at = new_app()
    at.button(key="download_weights").click()
    run(at)
    assert not at.error
    assert any(t.startswith("**Model:** Published weights") for t in texts(at))


def test_a_corrupt_cached_copy_falls_back_to_the_bundled_model_and_the_button_replaces_it(monkeypatch, tmp_path):
    """A truncated download of the published weights in the cache: the page runs on the
    bundled model (not "no weights"), and its download button replaces the bad file."""
    import dataclasses

    import torch

    from core import weights as cw

    good = tmp_path / "source.pt"
    cw.save_checkpoint(good, core.DRNet(widths=[2] * 15).eval(), {"title": "x"})
    entry = dataclasses.replace(cw.PAPER, sha256=cw.sha256_of(good), url=good.as_uri(), size=good.stat().st_size,
                                meta={**cw.PAPER.meta, "title": "Stand-in for the published weights", "num_params": 0})
    monkeypatch.setitem(cw.REGISTRY, "paper", entry)
    monkeypatch.setattr(cw, "DEFAULT", entry)
    monkeypatch.setenv("DR_WEIGHTS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cached = cw.cache_dir() / entry.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(good.read_bytes()[:2000])
    assert core.default_name() == "idrid"
    at = new_app()
    assert not any("No model weights are available" in e.value for e in at.error)
    assert any("not for clinical use" in e.value for e in at.error)
    at.button(key="download_weights").click()
    run(at)
    assert not any(e.value.startswith("Download failed") for e in at.error), [e.value for e in at.error]
    assert cached.read_bytes() == good.read_bytes() and core.default_name() == "paper"
    assert any(t.startswith("**Model:** Stand-in for the published weights") for t in texts(at))
    assert torch.equal(cw.load_weights("paper").network.output[0].bias, torch.load(good, weights_only=True)["state_dict"]["output.0.bias"])


def test_synthetic_model_shows_the_banner(monkeypatch, tmp_path, retina_bytes):
    """A demo model trained on synthetic images: a prominent banner and the download button."""
    import torch

    from core import weights as cw

    torch.manual_seed(0)
    model = core.DRNet(widths=[4] * 15)
    with torch.no_grad():  # scores of a sensible size, as a trained model's
        model.output[0].bias.copy_(torch.tensor([3.0, 1.0, -1.0, -2.0, -4.0]))
    path = tmp_path / "demo-test.pth"
    cw.save_checkpoint(path, model.eval(), {
        "title": "Demo model (test)", "synthetic": True, "training_data": "synthetic fundus drawings",
        "licence": "project licence", "intended_use": "demonstration only",
    })
    monkeypatch.setattr(core, "default_name", lambda: str(path))
    at = new_app()
    banner = [e.value for e in at.error if "synthetic" in e.value]
    assert banner and "not for clinical use" in banner[0]
    assert "1.6 MB" in at.button(key="download_weights").label
    assert "trained on synthetic images" in find(at, "| Weights | ")
    upload(at, RETINA.name, retina_bytes)
    assert len(score_rows(at)) == 5 and has(at, "**Conservation:**")


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the page's wiring: one model is enough
def test_reader_warnings_are_shown(page_model):
    """A picture without a circular field of view: the reader's warning is shown, and the
    quality gate refuses to grade it (no field of view is its first reason)."""
    buf = io.BytesIO()
    Image.new("RGB", (900, 700), (120, 60, 30)).save(buf, format="PNG")
    fundus = core.read_fundus(buf.getvalue(), name="plain.png")
    assert fundus.warnings
    at = upload(new_app(), "plain.png", buf.getvalue(), "image/png")
    shown = [w.value for w in at.warning]
    for note in fundus.warnings:
        assert note in shown
    assert not fundus.quality.gradable and "field of view" in fundus.quality.reasons[0]
    assert any(e.value.startswith("**Ungradable: no field of view") for e in at.error)
    assert not has(at, "| Grade | Score | Probability |")


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("picture", ["orange-8x8", "black"])
@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the page's wiring: one model is enough
def test_an_ungradable_photograph_gets_no_grade_unless_asked(page_model, picture):
    """The quality gate: an 8x8 orange square or an all-black frame is refused with its reason;
    the model's output appears only on request, labelled as not a grade."""
    rgb = np.zeros((8, 8, 3), np.uint8) + np.uint8([230, 120, 40]) if picture == "orange-8x8" else np.zeros((600, 800, 3), np.uint8)
    at = upload(new_app(), f"{picture}.png", _png(rgb), "image/png")
    refusals = [e.value for e in at.error if e.value.startswith("**Ungradable:")]
    assert refusals and refusals[0].endswith("— retake the photograph."), [e.value for e in at.error]
    assert not has(at, "| Grade | Score | Probability |") and not has(at, "#### The model's grade")
    at.toggle(key="show_anyway").set_value(True)
    run(at)
    assert len(score_rows(at)) == 5
    assert has(at, "#### The model's output (ungradable photograph):") and not has(at, "#### The model's grade")
    assert any("not a grade" in t for t in texts(at))
