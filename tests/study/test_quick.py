"""``python -m core quality --quick``, as CI runs it: the published weights on two real IDRiD
photographs with their hand-drawn masks. Every measure of the real-mask study comes out, with
the chosen lesion view among the methods, and the command prints where its time went (the
synthetic path: tests/study/test_quality.py)."""

from __future__ import annotations

import json

import numpy as np

from core.cli import main as cli_main
from core.study.lesions import SIZE_BINS
from tests.conftest import require_paper, require_real_data


def test_quick_on_real_photographs_with_the_published_weights(tmp_path, capsys):
    require_paper()
    folder = require_real_data() / "idrid-segmentation-train"
    assert cli_main(["quality", "--quick", "--weights", "paper", "--idrid", str(folder), "--out", str(tmp_path), "--quiet"]) == 0
    doc = json.loads((tmp_path / "quality_paper_idrid.json").read_text())
    assert doc["n_images"] == 2 and doc["data"]["images"] == ["IDRiD_01.jpg", "IDRiD_02.jpg"]
    assert doc["settings"]["faith_n"] == 1 and doc["settings"]["bootstrap"].startswith("200 resamples")
    view = doc["methods"]["lesion_view"]
    for key in ("auc", "pointing", "precision", "pos_share", "enrichment", "deletion_drop", "insertion_gain",
                "det_haemorrhage", "chance_hit_haemorrhage", "hit_haemorrhage"):
        assert view[f"{key}_predicted"]["value"] is not None, key
    assert any(f"det_size_{name}_predicted" in view for _, _, name in SIZE_BINS)
    curves = doc["curves"]["paper_total|predicted|deletion_raw"]  # deletion/insertion on the first photograph
    assert curves["n"] == 1 and curves["mean"][0] == 0.0
    assert np.isfinite(doc["methods"]["random"]["deletion_drop_predicted"]["value"])
    text = (tmp_path / "quality_paper_idrid.md").read_text()
    for heading in ("### Faithfulness: deletion and insertion", "against the clumped chance", "net positive evidence, by type and size"):
        assert heading in text
    assert "No true grades" in text
    err = capsys.readouterr().err
    assert "quality: 2 images in " in err and "faithfulness" in err and "measures" in err
    for name in ("deletion_raw", "insertion_raw"):
        assert (tmp_path / f"{name}_paper_idrid.png").stat().st_size > 10_000
