"""The quality study's report pieces that read only the JSON document: the recorded
command without where-files-go options, SUMMARY.md sections per run, the JSON reader."""

from __future__ import annotations

import pytest

from core.study import StudyError
from core.study.report import read_document, reproduce, update_summary


def test_reproduce_drops_the_options_that_only_say_where_files_go():
    cmd = "python -m core quality --n 3 --out /tmp/x --json=/tmp/q.json --quiet --seed 7"
    assert reproduce(cmd) == "python -m core quality --n 3 --seed 7"


def test_summary_sections_are_replaced_by_tag_and_others_kept(tmp_path):
    path = tmp_path / "SUMMARY.md"
    update_summary(path, "a", "first")
    update_summary(path, "b", "other")
    update_summary(path, "a", "second")
    text = path.read_text()
    assert "second" in text and "first" not in text and "other" in text
    assert text.index("quality:a") < text.index("quality:b")


def test_a_file_that_is_not_a_quality_json_is_one_study_error(tmp_path):
    bad = tmp_path / "q.json"
    bad.write_text("{not json")
    with pytest.raises(StudyError, match="q.json: not a quality JSON"):
        read_document(bad)
    with pytest.raises(StudyError, match="not a quality JSON"):
        read_document(tmp_path / "missing.json")
