"""Grading many photographs (``core.grading``): reading in worker processes and batched
forward passes give the same scores, readings and order as one photograph at a time, and a
broken file gets its error in its place."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

import core
from core.cli import main as cli_main
from core.grading import grade_paths, read_one
from core.propagation import forward_scores
from tests.conftest import RETINA, require_real_data


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 real IDRiD photographs (full size), the CC0 retina and a broken file, sorted by name."""
    out = tmp_path_factory.mktemp("photos")
    seg = require_real_data() / "idrid-segmentation-train"
    for p in sorted(seg.glob("IDRiD_0[1-3].jpg")):
        shutil.copy(p, out / p.name)
    shutil.copy(RETINA, out / "retina.jpg")
    (out / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return out


def test_the_pipeline_equals_one_at_a_time(folder):
    model = core.load_weights("idrid")
    files = sorted(folder.iterdir())
    one = list(grade_paths(model, files, workers=0, batch=1))
    piped = list(grade_paths(model, files, workers=2, batch=2))
    assert [r.path for r in piped] == [r.path for r in one] == files
    for a, b in zip(one, piped, strict=True):
        if a.fundus is None:
            assert a.path.name == "broken.jpg" and b.fundus is None and b.error == a.error and b.scores is None
            continue
        np.testing.assert_allclose(b.scores, a.scores, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(b.fundus.image, a.fundus.image)
        assert b.fundus.gradable == a.fundus.gradable and b.fundus.crop_box == a.fundus.crop_box
        single = forward_scores(model.network, model.normalisation.to_tensor(a.fundus.image))[0]
        np.testing.assert_allclose(a.scores, single, rtol=1e-5, atol=1e-5)
    broken = next(r for r in one if r.path.name == "broken.jpg")
    assert read_one(folder / "broken.jpg")[1] == broken.error and broken.error


def test_grade_writes_the_same_csv_with_and_without_reading_processes(folder, tmp_path):
    rows = {}
    for workers in ("0", "2"):
        out = tmp_path / f"w{workers}.csv"
        assert cli_main(["grade", str(folder), "--csv", str(out), "--weights", "idrid", "--workers", workers,
                         "--batch", "4", "--quiet"]) == 0
        rows[workers] = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["file"] for r in rows["0"]] == [r["file"] for r in rows["2"]] == sorted(p.name for p in folder.iterdir())
    for a, b in zip(rows["0"], rows["2"], strict=True):
        assert {k: v for k, v in a.items() if not k.startswith(("score_", "probability_"))} == \
               {k: v for k, v in b.items() if not k.startswith(("score_", "probability_"))}
        for g in range(5):
            if a[f"score_{g}"]:
                assert float(a[f"score_{g}"]) == pytest.approx(float(b[f"score_{g}"]), abs=2e-4)
    assert cli_main(["grade", str(folder), "--csv", str(tmp_path / "x.csv"), "--workers", "-1"]) == 2


def test_bench_grade_prints_images_per_second(folder):
    from core.bench import grade_report, grade_speed

    r = grade_speed("idrid", folder, limit=2, workers=(), batch=2, pattern="IDRiD_*.jpg")  # the processes: tested above
    assert r["images"] == 2 and r["size"] == [4288, 2848]
    assert [run["images"] for run in r["runs"]] == [2, 2, 2] and all(run["images_per_s"] > 0 for run in r["runs"])
    text = grade_report(r)
    assert "images/s" in text and "one at a time, reading here, batches of 2" in text and "4288x2848" in text
