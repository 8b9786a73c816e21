"""What ``batch`` reads (folders, manifests, globs, URLs) and what a resumed run skips,
without starting Ray."""

from __future__ import annotations

import pytest
from PIL import Image

pytest.importorskip("pyarrow")

from core.batch import SCHEMA, SourceError, previous_rows, resolve  # noqa: E402
from core.batch.pipeline import EXPLAIN_FAILED, ROWS, BatchError, prepare  # noqa: E402
from core.batch.rows import error_row, to_table  # noqa: E402
from core.batch.sources import read_bytes  # noqa: E402
from tests.conftest import RETINA  # noqa: E402


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "sub/c.png"):
        Image.new("RGB", (32, 32), (90, 20, 10)).save(tmp_path / "imgs" / name)
    (tmp_path / "imgs" / "notes.txt").write_text("not a photograph")
    return tmp_path / "imgs"


def test_folder_glob_and_single_photograph(folder):
    names = [p.split(str(folder))[1] for p in (i.path for i in resolve(str(folder)))]
    assert names == ["/a.jpg", "/b.png", "/sub/c.png"]
    assert [i.path for i in resolve(str(folder / "*.png"))] == [str(folder / "b.png")]
    assert len(resolve(str(folder / "**" / "*.png"))) == 2
    assert [i.path for i in resolve(str(folder / "a.jpg"))] == [str(folder / "a.jpg")]


def test_csv_manifest_paths_relative_to_it_with_labels(folder):
    (folder / "m.csv").write_text("image,grade\na.jpg,3\nsub/c.png,\n  b.png , 0\na.jpg,3\n")
    items = resolve(str(folder / "m.csv"))
    assert [(i.path, i.label) for i in items] == [(str(folder / "a.jpg"), 3), (str(folder / "sub" / "c.png"), None),
                                                 (str(folder / "b.png"), 0)]  # the repeated a.jpg kept once


def test_text_manifest_with_comments(folder):
    (folder / "list.txt").write_text(f"# photographs\n{folder / 'b.png'}\n\nsub/c.png\n")
    assert [i.path for i in resolve(str(folder / "list.txt"))] == [str(folder / "b.png"), str(folder / "sub" / "c.png")]


@pytest.mark.parametrize(
    "text, message",
    [("file,label\na.jpg,7\n", "line 2: label '7' is not a grade 0-4"),
     ("file,label\na.jpg,2.5\n", "is not a grade"),
     ("name,label\na.jpg,1\n", "no path column"),
     ("", "the manifest is empty")],
)
def test_bad_manifests_are_one_line(folder, text, message):
    (folder / "m.csv").write_text(text)
    with pytest.raises(SourceError, match=message) as e:
        resolve(str(folder / "m.csv"))
    assert "\n" not in str(e.value)


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(SourceError, match="no such folder, manifest or pattern"):
        resolve(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        resolve(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="no image matches"):
        resolve(str(tmp_path / "*.png"))


def test_urls_through_pyarrow_filesystems(folder):
    url = f"file://{folder}"
    assert [i.path for i in resolve(url)] == [f"file://{folder}/a.jpg", f"file://{folder}/b.png", f"file://{folder}/sub/c.png"]
    assert read_bytes(f"{url}/a.jpg") == (folder / "a.jpg").read_bytes()
    with pytest.raises(FileNotFoundError):
        read_bytes(f"{url}/none.png")


def test_prepare_turns_every_failure_into_a_row_and_skips_what_is_done(folder):
    import pyarrow as pa

    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    paths = [str(RETINA), str(folder / "broken.png"), str(folder / "missing.png")]
    batch = pa.Table.from_pylist([{"path": p, "label": None} for p in paths])
    out = prepare(batch, frozenset()).to_pylist()
    assert [r["error"] is None for r in out] == [True, False, False]
    assert out[0]["fundus"] and len(out[0]["sha256"]) == 64 and out[0]["bytes"] == RETINA.stat().st_size
    assert out[1]["sha256"] and "truncated" in out[1]["error"]  # read, hashed, not decodable
    assert out[2]["sha256"] is None and out[2]["error"].startswith("file not found")
    again = prepare(batch, frozenset({out[0]["sha256"], out[1]["sha256"]})).to_pylist()
    assert [r["path"] for r in again] == [paths[2]]


def _part(out, name, rows):
    import pyarrow.parquet as pq

    (out / ROWS).mkdir(parents=True, exist_ok=True)
    pq.write_table(to_table(rows), out / ROWS / name)


def test_previous_rows_by_weights_maps_and_error(tmp_path):
    run = {"run_id": "r1", "weights": "w", "weights_sha256": "W" * 64, "maps": "masks"}
    rows = [error_row("a", "not an image", sha256="a" * 64, run=run),
            error_row("b", f"{EXPLAIN_FAILED} (MemoryError: )", sha256="b" * 64, run=run),
            error_row("c", "file not found", run=run)]
    _part(tmp_path, "part-1.parquet", rows)
    assert previous_rows(str(tmp_path), "W" * 64, "masks") == {"a" * 64}  # failed explanations are retried
    assert previous_rows(str(tmp_path), "W" * 64, "none") == {"a" * 64}
    assert previous_rows(str(tmp_path), "W" * 64, "all") == set()  # rows without the npz are redone
    with pytest.raises(BatchError, match="holds results of other weights"):
        previous_rows(str(tmp_path), "X" * 64, "masks")


def test_a_truncated_part_file_is_set_aside(tmp_path):
    (tmp_path / ROWS).mkdir()
    (tmp_path / ROWS / "part-2.parquet").write_bytes(b"PAR1 cut short")
    assert previous_rows(str(tmp_path), "W" * 64, "none") == set()
    assert (tmp_path / ROWS / "part-2.parquet.unreadable").is_file()
    assert not (tmp_path / ROWS / "part-2.parquet").exists()


def test_the_schema_holds_what_the_issue_asks_for():
    names = set(SCHEMA.names)
    assert {"path", "sha256", "grade", "gradable", "quality_reasons", "conservation_error", "mask_pixels",
            "regions", "label", "agrees", "error", "mask_png", "explanation_npz"} <= names
    assert {f"score_{g}" for g in range(5)} | {f"probability_{g}" for g in range(5)} <= names
