"""Shared for the exam tests: the default model, three photographs of one made-up patient
(copies of real photographs, downscaled) and their explanations, computed once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from tests.conftest import RETINA, require_real_data

# right eye: the CC0 retina of tests/data (grade 0); left eye: IDRiD_010 (IDRiD grade 4, CC BY 4.0)
# at half size, and IDRiD_021 darkened to 8% (under-exposed, so ungradable)
PHOTOS = {"jane_R.jpg": ("retina", 1, 1.0), "jane_left.jpg": ("IDRiD_010", 2, 1.0), "jane_OS_dark.jpg": ("IDRiD_021", 2, 0.08)}


def need_tool(name: str) -> str:
    """A poppler tool on PATH; skipped where absent, except in CI (``.ci/run`` installs it), where it fails."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI") or os.environ.get("DR_REQUIRE_PAPER_WEIGHTS") == "1":
        pytest.fail(f"`{name}` is not installed (Debian: poppler-utils)")
    pytest.skip(f"no `{name}` on PATH (Debian: apt-get install poppler-utils)")


@pytest.fixture(scope="session")
def exam_model():
    import core

    return core.load_weights(None)


@pytest.fixture(scope="session")
def exam_files(tmp_path_factory) -> dict[str, Path]:
    data = require_real_data() / "idrid-grading-train" / "images"
    folder = tmp_path_factory.mktemp("exam_photos")
    out = {}
    for name, (source, shrink, brightness) in PHOTOS.items():
        im = Image.open(RETINA if source == "retina" else data / f"{source}.jpg").convert("RGB")
        im = im.resize((im.width // shrink, im.height // shrink), Image.Resampling.LANCZOS)
        if brightness != 1.0:
            im = ImageEnhance.Brightness(im).enhance(brightness)
        im.save(folder / name, quality=92)
        out[name] = folder / name
    return out


@pytest.fixture(scope="session")
def exam_explanations(exam_model, exam_files):
    """name -> Explanation, each photograph read and explained once for all the exam tests."""
    import core

    return {name: core.explain(exam_model, core.read_fundus(path, name=name)) for name, path in exam_files.items()}


@pytest.fixture
def cli(monkeypatch, capsys, exam_explanations):
    """Run ``python -m core report`` in-process through ``core.cli.main``: (status, stdout,
    stderr lines). A photograph already explained by ``exam_explanations`` (same pixels, not
    DICOM) is not explained again."""
    import core.cli
    from core.cli import report

    assert report in core.cli.COMMANDS
    known = {e.fundus.sha256: e for e in exam_explanations.values()}
    real = report.explain
    monkeypatch.setattr(report, "explain", lambda model, fundus: (None if fundus.dicom else known.get(fundus.sha256))
                        or real(model, fundus))

    def run(*args):
        status = core.cli.main(["report", *map(str, args)])
        out = capsys.readouterr()
        return status, out.out, out.err.strip().splitlines()

    return run


@pytest.fixture(scope="session")
def left_grade(exam_explanations) -> int:
    """The default model's grade of jane_left.jpg (4 with the published weights, 3 with 'idrid'):
    referable either way, which the tests rely on."""
    grade = int(exam_explanations["jane_left.jpg"].grade)
    assert grade >= 2, f"the default model grades IDRiD_010 (IDRiD grade 4) {grade}: not referable"
    return grade


@pytest.fixture(scope="session")
def override_grade(left_grade) -> int:
    """A referable grade that differs from the model's, for a clinician's override."""
    return 2 if left_grade != 2 else 3
