"""The held-out IDRiD test set: reproducible, by grade, duplicates together, and truly unseen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.training.datasets import (
    IDRID_DUPLICATES,
    DataError,
    Labelled,
    Record,
    held_out_names,
    read_id_list,
    read_idrid,
    select,
)
from tests.conftest import require_real_data

REPO = Path(__file__).resolve().parents[2]
HELD_OUT = REPO / "assets" / "splits" / "idrid-grading-heldout.txt"
SAMPLES = REPO / "assets" / "samples" / "reference_grades.csv"


def _records(n_per_grade: int = 20) -> list[Record]:
    return [Record(None, g, f"img{g}_{i:02d}", f"img{g}_{i:02d}") for g in range(5) for i in range(n_per_grade)]


def test_held_out_takes_each_grade_share_and_the_required_ids_first():
    recs = _records()
    names = held_out_names(recs, 0.25, seed=3, include=["img4_07"])
    grades = np.bincount([int(n[3]) for n in names], minlength=5)
    assert grades.tolist() == [5, 5, 5, 5, 5] and "img4_07" in names
    assert held_out_names(recs, 0.25, seed=3, include=["img4_07"]) == names  # deterministic
    assert held_out_names(recs, 0.25, seed=4) != held_out_names(recs, 0.25, seed=3)


def test_held_out_keeps_a_group_together_and_refuses_unknown_ids():
    recs = _records(4) + [Record(None, 0, "copy", "img0_00")]  # a duplicate photograph of img0_00
    names = held_out_names(recs, 0.25, seed=0, include=["copy"])
    assert {"copy", "img0_00"} <= set(names)
    with pytest.raises(DataError, match="nope"):
        held_out_names(recs, 0.25, seed=0, include=["nope"])


def test_select_only_and_exclude_say_what_they_left_out(tmp_path):
    data = Labelled("toy", _records(2))
    keep = tmp_path / "keep.txt"
    keep.write_text("# a comment\nimg0_00\n\nIMG1_01  # case and comments do not matter\nimg2_00\n")
    drop = tmp_path / "drop.txt"
    drop.write_text("img2_00\n")
    out = select(data, only=keep, exclude=drop)
    assert [r.id for r in out.records] == ["img0_00", "img1_01"]
    assert out.excluded == {"not in keep.txt": 7, "held out by drop.txt": 1}
    other = tmp_path / "other.txt"
    other.write_text("IDRiD_001\n")
    with pytest.raises(DataError, match="none of its ids"):
        select(data, only=other)
    with pytest.raises(DataError, match="no such list"):
        read_id_list(tmp_path / "missing.txt")


def test_the_committed_held_out_list_is_the_functions_output_and_holds_the_samples():
    real = require_real_data() / "idrid-grading-train"
    data = read_idrid(real / "Training_Labels.csv", real / "images")
    samples = sorted(line.split(",")[0].removesuffix(".jpg") for line in SAMPLES.read_text().splitlines()[1:]
                     if line.startswith("IDRiD_"))
    assert len(samples) == 4
    assert read_id_list(HELD_OUT) == held_out_names(data.records, 0.25, 2026, include=samples)
    held = set(read_id_list(HELD_OUT))
    assert set(samples) <= held and len(held) == 103
    for name, group in IDRID_DUPLICATES.items():  # both copies of a duplicated photograph on one side
        assert (name in held) == (group in held)
    rest = select(data, exclude=HELD_OUT)
    assert len(rest.records) == 413 - 103 and not held & {r.id for r in rest.records}


def test_init_refuses_the_published_weights(tmp_path):
    from core.errors import OptionError
    from core.model import DRNet
    from core.training.train import initialise
    from tests.conftest import require_paper

    net = DRNet()
    got = initialise(net, "demo")
    assert got["weights"] == "demo" and got["sha256"].startswith("87ac4861")
    require_paper()
    with pytest.raises(OptionError, match="no licence"):
        initialise(DRNet(), "paper")
