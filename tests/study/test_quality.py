"""``python -m core quality`` end to end on a tiny random network: the documented JSON,
the report files, re-rendering, real photographs, one-line errors, and where the report
goes by default (the working directory, never the repository)."""

from __future__ import annotations

import json

from PIL import Image

from core.cli import main as cli_main
from core.study.peers import methods
from core.weights import ASSETS
from tests.conftest import RETINA


def test_command_writes_the_documented_json(tiny, tmp_path):
    out, js = tmp_path / "out", tmp_path / "q.json"
    code = cli_main(["quality", "--weights", str(tiny), "--n", "3", "--faith-n", "1", "--ig-n", "1", "--ig-steps", "2",
                          "--bootstrap", "50", "--fractions", "5,50", "--min-gap=-1e9", "--out", str(out), "--json", str(js),
                          "--quiet"])
    assert code == 0
    doc = json.loads(js.read_text())
    assert doc == json.loads((out / "quality_tiny.json").read_text())
    assert doc["n_images"] == 3 and doc["model"]["name"] == "tiny.pt" and len(doc["model"]["sha256"]) == 64
    assert {"n", "seed", "faith_n", "ig_n", "ig_steps", "fractions", "k", "tolerance", "bootstrap", "removal_baseline"} <= set(doc["settings"])
    names = [m.name for m in methods()]
    assert list(doc["methods"]) == names
    for m in names:
        for key in ("auc_true", "auc_predicted", "pointing_predicted", "recall_predicted"):
            cell = doc["methods"][m][key]
            assert set(cell) == {"value", "low", "high", "n"}
            assert cell["low"] <= cell["value"] <= cell["high"]
    assert doc["methods"]["integrated_gradients"]["auc_predicted"]["n"] <= 1
    assert doc["methods"]["lrp_epsilon"]["auc_predicted"]["n"] <= 1  # LRP runs on the Integrated Gradients subset
    assert doc["methods"]["lesion_view"]["auc_true"]["n"] >= 1
    assert "deletion_predicted" in doc["methods"]["paper_total"] and "insertion_predicted" in doc["methods"]["gradcam"]
    assert not any(k.startswith(("deletion", "insertion")) and k.endswith("_true") for k in doc["methods"]["gradcam"])
    assert set(doc["timings_s"]) == set(names)
    for kind in ("deletion", "insertion"):
        assert Image.open(out / f"{kind}_tiny.png").width > 800
    assert "| Paper: total map |" in (out / "quality_tiny.md").read_text()
    assert "<!-- quality:tiny -->" in (out / "SUMMARY.md").read_text()
    assert "/tmp" not in (out / "SUMMARY.md").read_text()
    again = tmp_path / "again"
    assert cli_main(["quality", "--render", str(js), "--out", str(again)]) == 0
    assert (again / "quality_tiny.md").read_text() == (out / "quality_tiny.md").read_text()


def test_command_on_a_real_photograph(tiny, tmp_path):
    code = cli_main(["quality", "--weights", str(tiny), "--real", str(RETINA), "--methods", "paper_total,gradient,random",
                          "--fractions", "10", "--min-gap=-1e9", "--bootstrap", "20", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    doc = json.loads((tmp_path / "quality_tiny_real.json").read_text())
    assert doc["n_images"] == 1 and doc["data"]["images"] == ["retina.jpg (as taken)"]
    assert set(doc["methods"]["gradient"]) == {"deletion_predicted", "insertion_predicted", "deletion_drop_predicted",
                                               "insertion_gain_predicted"}
    assert "1 distinct real photograph" in (tmp_path / "SUMMARY.md").read_text()


def test_bad_options_end_with_one_line(tiny, capsys):
    assert cli_main(["quality", "--weights", str(tiny), "--methods", "nope"]) == 2
    assert cli_main(["quality", "--weights", str(tiny), "--fractions", "0,150"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error:") for line in err)


def test_library_errors_end_with_one_line(tiny, tmp_path, capsys):
    """Errors the study raises itself (not the CLI's) still reach the user as one line."""
    (tmp_path / "bad.json").write_text("[1,")
    assert cli_main(["quality", "--render", str(tmp_path / "bad.json"), "--out", str(tmp_path)]) == 2
    assert cli_main(["quality", "--weights", str(tiny), "--idrid", str(tmp_path / "missing")]) == 2
    assert cli_main(["quality", "--weights", str(tiny), "--idrid", str(tmp_path)]) == 2  # a folder without IDRiD images
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error:") for line in err)
    assert "not a quality JSON" in err[0] and "not a folder" in err[1] and "no IDRiD_XX.jpg" in err[2]


def test_default_output_is_under_the_working_directory_not_the_repository(tiny, tmp_path, monkeypatch):
    """Without --out the report goes to ./quality where the command runs; the committed
    study in the repository's assets/quality changes only with an explicit --out."""
    committed = ASSETS / "quality" / "quality_tiny_real.json"
    assert not committed.exists()
    run_here, render_here = tmp_path / "run", tmp_path / "render"
    run_here.mkdir()
    render_here.mkdir()
    monkeypatch.chdir(run_here)
    assert cli_main(["quality", "--weights", str(tiny), "--real", str(RETINA), "--methods", "random", "--fractions", "10",
                     "--min-gap=-1e9", "--bootstrap", "5", "--quiet"]) == 0
    written = run_here / "quality" / "quality_tiny_real.json"
    assert written.is_file() and (run_here / "quality" / "SUMMARY.md").is_file()
    monkeypatch.chdir(render_here)
    assert cli_main(["quality", "--render", str(written)]) == 0
    assert (render_here / "quality" / "quality_tiny_real.md").is_file()
    assert not committed.exists()
