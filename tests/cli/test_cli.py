"""The command line's contract: files, keys, exit codes, one-line errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli_here import run_cli_here
from tests.conftest import RETINA, ROOT


def run_cli(*args, cwd=None):
    """A fresh ``python -m core``: the entry point itself (the other tests run the same main here)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=300)


@pytest.mark.paper
def test_explain_writes_the_documented_files(tmp_path, paper_model):
    r = run_cli_here("explain", RETINA, "--out", tmp_path, "--k", "2.5")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "retina"
    s = json.loads((out / "scores.json").read_text())
    assert len(s["scores"]) == 5 and len(s["probabilities"]) == 5 and s["grade"] == 0
    assert s["weights"]["name"] == "paper" and s["weights"]["sha256"] == paper_model.sha256
    assert s["weights"]["trained_on"].startswith("EyePACS") and s["weights"]["clinical_use"] is False
    assert s["weights"]["measured"][0].startswith("kappa 0.798 (95% CI 0.752–0.838)")  # each figure with its data
    assert len(s["conservation"]["grades"]) == 5
    for g in s["conservation"]["grades"]:
        assert g["relative_error"] <= 1e-4 and {"input_map_sum", "constants_sum", "bias", "total_map_sum"} <= set(g)
    z = np.load(out / "explanation.npz")
    assert {"scores", "features", "bias", "input_map", "total"} <= set(z.files)
    assert all(f"layer{L}_input_dependent" in z.files and f"layer{L}_constant" in z.files for L in range(1, 16))
    np.testing.assert_allclose(z["scores"], s["scores"], rtol=1e-6)
    assert Image.open(out / "retina.png").size == (640, 640)
    for L in range(1, 16):
        assert (out / f"layer{L:02d}_input_dependent.png").is_file() and (out / f"layer{L:02d}_constant.png").is_file()
    for name in ("input_map.png", "constants.png", "total.png"):
            assert Image.open(out / name).height > 640 + 60  # title + map + colour bar underneath
    assert Image.open(out / "mask_k2.5.png").height > 640  # overlay + title
    gif = Image.open(out / "flicker.gif")
    assert gif.n_frames == 2 and gif.info.get("loop") == 0
    assert "grade 0" in r.stdout


def test_unreadable_input_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    r = run_cli("explain", bad, "--out", tmp_path / "out", "--weights", _tiny(tmp_path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "notes.png" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_missing_weights_exit_2(tmp_path):
    r = run_cli_here("explain", RETINA, "--weights", tmp_path / "none.pt", "--out", tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def _tiny(tmp_path: Path) -> Path:
    from core.model import DRNet
    from core.weights import save_checkpoint

    path = tmp_path / "tiny.pt"
    if not path.exists():
        save_checkpoint(path, DRNet((2,) * 15), {"title": "tiny test model"})
    return path


def test_grade_folder_reports_bad_files_and_goes_on(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.open(RETINA).resize((300, 300)).save(folder / "a.jpg")
    Image.open(RETINA).resize((200, 200)).save(folder / "sub" / "b.png")
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    r = run_cli_here("grade", folder, "--csv", tmp_path / "g.csv", "--weights", _tiny(tmp_path), "--quiet")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "g.csv").read_text().splitlines()))
    assert [row["file"] for row in rows] == ["a.jpg", "c.png", "sub/b.png"]
    assert rows[1]["error"] and not rows[1]["grade"]
    for row in (rows[0], rows[2]):
        assert not row["error"] and row["gradable"] in {"true", "false"} and row["quality"]
        if row["gradable"] == "true":
            assert row["grade"] in {"0", "1", "2", "3", "4"}
        else:  # refused by the quality gate (a 200-pixel retina is too small): no grade, the failed check named
            assert row["grade"] == "" and "FAILED" in row["quality"]
        p = [float(row[f"probability_{g}"]) for g in range(5)]
        assert sum(p) == pytest.approx(1.0, abs=1e-4)
    assert "1 unreadable" in r.stdout
    for row in rows:  # every row names the model, and its figures only with their data (none stated here)
        assert row["weights"].startswith("tiny.pt (sha256 ") and row["weights_measured"] == "no measured figures stated"


def test_weights_list_and_verify(tmp_path):
    r = run_cli_here("weights", "list")
    assert r.returncode == 0 and "paper" in r.stdout and "730173b0" in r.stdout
    r = run_cli_here("weights", "verify", _tiny(tmp_path))
    assert r.returncode == 0 and "loads strictly" in r.stdout


def test_weights_fetch_unknown_name_is_one_line():
    r = run_cli("weights", "fetch", "nonexistent")
    assert r.returncode == 2 and "unknown weights" in r.stderr and "Traceback" not in r.stderr
