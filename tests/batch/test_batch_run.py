"""``python -m core batch`` end to end on a local Ray with 2 CPUs: real IDRiD photographs,
synthetic ones and a broken file; the rows agree with ``grade``; a rerun skips them all."""

from __future__ import annotations

import contextlib
import csv
import io
import shutil

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray")
pytest.importorskip("pyarrow")

import core  # noqa: E402
from core.batch import read_rows  # noqa: E402
from core.cli import main  # noqa: E402
from core.synthetic import generate  # noqa: E402
from tests.conftest import require_real_data  # noqa: E402

pytestmark = pytest.mark.slow
N_REAL, N_SYNTHETIC = 3, 3
N_ALL = N_REAL + N_SYNTHETIC + 1  # and one broken file


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (the command reuses a running Ray and leaves it running)."""
    import os

    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """N_ALL photographs in one folder and a CSV manifest of them with the real ones' grades."""
    real = require_real_data() / "idrid-grading-train"
    labels = {row[0]: int(row[1]) for row in csv.reader(io.StringIO((real / "Training_Labels.csv").read_text(encoding="utf-8-sig")))
              if row and row[0].startswith("IDRiD_")}
    folder = tmp_path_factory.mktemp("archive")
    names = sorted(labels)[:N_REAL]
    for name in names:
        shutil.copy(real / "images" / f"{name}.jpg", folder / f"{name}.jpg")
    for i in range(N_SYNTHETIC):
        Image.fromarray(generate(seed=100 + i, grade=i % 5).image).save(folder / f"synthetic_{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    with open(folder / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows([(f"{n}.jpg", labels[n]) for n in names])
        w.writerows([(f"synthetic_{i}.png", "") for i in range(N_SYNTHETIC)] + [("broken.jpg", "")])
    return folder


@pytest.fixture(scope="module")
def first_run(local_ray, source, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["batch", str(source / "manifest.csv"), "--out", str(out), "--maps", "masks", "--quiet"])
    return rc, out, printed.getvalue()


def test_rows_equal_grade_to_1e4(first_run, source, tmp_path):
    rc, out, stdout = first_run
    assert rc == 0
    assert f"{N_ALL} images" in stdout and f"{N_ALL - 1} explained" in stdout and "1 failures" in stdout
    assert main(["grade", str(source), "--csv", str(tmp_path / "g.csv"), "--quiet"]) == 0
    graded = {r["file"]: r for r in csv.DictReader((tmp_path / "g.csv").read_text().splitlines())}
    rows = read_rows(str(out)).to_pylist()
    assert len(rows) == N_ALL
    for row in rows:
        ref = graded[row["path"].rsplit("/", 1)[1]]
        if row["error"]:
            assert ref["error"] and row["grade"] is None and row["score_0"] is None
            continue
        assert not ref["error"]
        for g in range(5):
            assert row[f"score_{g}"] == pytest.approx(float(ref[f"score_{g}"]), abs=1e-4)
        assert row["gradable"] == (ref["gradable"] == "true")
        assert ("" if row["grade"] is None else str(row["grade"])) == ref["grade"]
        assert row["conservation_error"] <= 1e-4
        assert row["weights_sha256"] == core.load_weights(None).sha256 and row["maps"] == "masks"


def test_labels_agreement_and_regions(first_run):
    rows = read_rows(first_run[1]).to_pylist()
    real = [r for r in rows if r["label"] is not None]
    assert len(real) == N_REAL
    for r in real:
        assert r["agrees"] == (r["grade"] == r["label"]) if r["gradable"] else r["agrees"] is None
    for r in rows:
        if r["error"]:
            continue
        contributions = [reg["contribution"] for reg in r["regions"]]
        assert 0 < len(contributions) <= 5 and contributions == sorted(contributions, reverse=True) and min(contributions) > 0
        x0, y0, x1, y1 = r["regions"][0]["original_box"]
        assert 0 <= x0 < x1 <= r["original_width"] and 0 <= y0 < y1 <= r["original_height"]
        assert r["mask_pixels"] > 0 and 0 < r["mask_fov_share"] < 0.2


def test_masks_are_readable_pngs_equal_to_cores_mask(first_run, source):
    out = first_run[1]
    rows = {r["path"].rsplit("/", 1)[1]: r for r in read_rows(out).to_pylist()}
    assert all((r["mask_png"] is None) == bool(r["error"]) for r in rows.values())
    model = core.load_weights(None)
    for name in ("IDRiD_001.jpg", "synthetic_2.png"):
        exp = core.explain(model, core.read_fundus(source / name))
        written = np.array(Image.open(out / rows[name]["mask_png"]))
        assert written.dtype == bool and written.shape == (640, 640)
        assert np.array_equal(written, exp.mask(exp.grade, 2.0))


def test_a_rerun_skips_them_all(first_run, source, capsys):
    out = first_run[1]
    assert main(["batch", str(source / "manifest.csv"), "--out", str(out), "--maps", "masks", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "0 images" in printed and f"{N_ALL} skipped" in printed
    assert read_rows(out).num_rows == N_ALL


def test_limit_then_resume(local_ray, source, tmp_path, capsys):
    args = ["batch", str(source / "synthetic_[0-2].png"), "--out", str(tmp_path), "--quiet"]
    assert main([*args, "--limit", "2"]) == 0
    assert read_rows(tmp_path).num_rows == 2
    capsys.readouterr()
    assert main(args) == 0
    assert "1 images" in capsys.readouterr().out
    rows = read_rows(tmp_path).to_pylist()
    assert len(rows) == 3 and len({r["sha256"] for r in rows}) == 3
    assert len({r["run_id"] for r in rows}) == 2 and all(r["mask_png"] is None for r in rows)


def test_errors_follow_the_cli_rules(first_run, source, tmp_path, capsys, monkeypatch):
    assert main(["batch", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "no such folder" in err
    # one output folder never mixes models
    assert main(["batch", str(source / "synthetic_0.png"), "--out", str(first_run[1]), "--weights", "demo", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds results of other weights" in err and len(err.strip().splitlines()) == 1
    if not __import__("torch").cuda.is_available():  # asked for GPUs that are not there: one line, before Ray starts
        assert main(["batch", str(source), "--out", str(tmp_path / "g"), "--num-gpus", "1"]) == 2
        assert "--num-gpus 1: this machine has 0 CUDA GPU(s)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["batch", str(source), "--out", str(tmp_path), "--maps", "some"])
    assert e.value.code == 2
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # Ray not installed
    assert main(["batch", str(source), "--out", str(tmp_path)]) == 2
    assert "pip install -r requirements-batch.txt" in capsys.readouterr().err
