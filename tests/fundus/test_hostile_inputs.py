"""Issue 6, hostile inputs: every case of the generated corpus (tests/fundus/hostile_corpus.py) through
core's reader, the command line and (a representative third) the viewer; oversized images
refused before decoding, with measured time and memory; hostile weights refused by the CLI.

Each run must end in a valid result or one clear line, never an escaped exception, a
traceback or a written file.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest  # at import: its own module-level temporary folder is not the page's

import core
from core.fundus import MAX_PIXELS, UNEXPECTED_FAILURE, Fundus, FundusReadError, read_fundus
from core.model import DRNet
from core.weights import PAPER, save_checkpoint
from tests.cli_here import run_cli_here
from tests.fundus.hostile_corpus import BOMB_SIDE, Case, WriteRecorder, changed, corpus, listing, representative_third
from tests.viewer.page_models import BANNER

ROOT = Path(__file__).resolve().parents[2]
CACHES = (".git", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # damaged TIFFs make Pillow warn, then the reader refuses

ISSUE_GROUPS = {"truncated", "bit-flipped", "empty", "not an image", "decompression bomb", "tiny", "strip", "mode",
                "animated", "exif", "flat or noise", "non-fundus"}


# ----------------------------------------------------------------------------- helpers


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message and "Traceback" not in message and len(message) <= 240


def run_cli(*args: object, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=full_env, timeout=timeout)


def tiny_checkpoint(folder: Path, *, synthetic: bool = False) -> Path:
    """A narrow network of the paper's topology: grading any input is cheap."""
    path = folder / "tiny.pt"
    if not path.exists():
        torch.manual_seed(0)
        model = DRNet((2,) * 15).eval()
        with torch.no_grad():  # scores of a trained model's size, so conservation is checked as on real weights
            model.output[0].bias.copy_(torch.tensor([3.0, 1.0, -1.0, -2.0, -4.0]))
        save_checkpoint(path, model, {"title": "tiny test model", "synthetic": synthetic})
    return path


def new_files_attributable(root: Path, paths: list[str], needles: list[bytes], writes: list[tuple[str, str]]) -> list[str]:
    """The new files under ``root`` that this process wrote (audit) or that hold test data."""
    written = {w[1] for w in writes}
    bad = []
    for rel in paths:
        p = root / rel
        if str(p) in written or any(str(p) in w for w in written):
            bad.append(rel)
            continue
        try:
            blob = p.read_bytes()
        except OSError:
            continue
        if any(n in blob for n in needles):
            bad.append(rel)
    return bad


def needles_of(cases: list[Case] | tuple[Case, ...]) -> list[bytes]:
    """A distinctive slice of every case's bytes (to recognise a copy of any of them)."""
    out = []
    for c in cases:
        if len(c.data) >= 256 and len(set(c.data[len(c.data) // 2 : len(c.data) // 2 + 64])) > 8:
            out.append(c.data[len(c.data) // 2 : len(c.data) // 2 + 64])
    return out


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """A fresh temporary folder as this process's (and its children's) TMPDIR."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setenv("TMPDIR", str(d))
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


# ----------------------------------------------------------------------------- the corpus


def test_corpus_has_what_issue_6_lists(monkeypatch):
    cases = corpus()
    assert len(cases) >= 200
    assert {c.group for c in cases} >= ISSUE_GROUPS
    names = {c.name: c for c in cases}
    for ext in ("png", "jpg", "tif"):
        assert any(n.startswith("truncated-") and n.endswith(ext) for n in names)
        assert any(n.startswith("bitflip-") and n.endswith(ext) for n in names)
    assert names["zero-bytes.png"].data == b""
    for kind in ("text", "html", "svg", "pdf"):
        assert f"{kind}.png" in names
    # the two bombs really claim 50,000 x 50,000 pixels in their headers
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    for name in ("bomb-50000x50000.png", "bomb-50000x50000.jpg"):
        with Image.open(io.BytesIO(names[name].data)) as im:
            assert im.size == (BOMB_SIDE, BOMB_SIDE), name
    with Image.open(io.BytesIO(names["strip-10000x40.png"].data)) as im:
        assert im.size == (10_000, 40)
    modes = {Image.open(io.BytesIO(names[n].data)).mode for n in ("grey16.png", "grey.png", "cmyk.jpg", "rgba.png", "palette.png")}
    assert modes == {"I;16", "L", "CMYK", "RGBA", "P"}
    assert Image.open(io.BytesIO(names["animated-gif.png"].data)).n_frames == 3
    assert {n for n in names if n.startswith("exif-orientation-") and n.endswith(".jpg") and "bogus" not in n} == {
        f"exif-orientation-{k}.jpg" for k in range(1, 9)}
    for kind in ("black", "white", "noise"):
        assert f"{kind}-640x480.png" in names
    assert "landscape-photo.jpg" in names


def summarise(f: Fundus) -> dict:
    """What the tests need of a Fundus (the module keeps 140-odd of them)."""
    problems = []
    if not isinstance(f, Fundus) or f.image.shape != (640, 640, 3) or f.image.dtype != np.uint8 or f.fov.shape != (640, 640):
        problems.append(f"invalid Fundus {getattr(f.image, 'shape', None)} {getattr(f.image, 'dtype', None)}")
    elif f.image[~f.fov].any():
        problems.append("pixels outside the field of view")
    if f.quality is None:
        problems.append("no quality assessment")
    gradable = f.quality is not None and f.quality.gradable
    reasons = f.quality.reasons if f.quality is not None else ()
    if f.quality is not None and not gradable and not reasons:
        problems.append("ungradable without a reason")
    return {"size": f.original_size, "warnings": f.warnings, "problems": problems, "gradable": gradable, "reasons": reasons}


@pytest.fixture(scope="module")
def reader_outcomes(tmp_path_factory):
    """Every case through ``read_fundus`` in this process, recording any file written."""
    tmp = tmp_path_factory.mktemp("reader-tmp")
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(tmp), str(tmp)
    roots = {ROOT, Path.cwd()}
    before = {r: listing(r, CACHES) for r in roots}
    outcomes: dict[str, tuple[str, object]] = {}
    try:
        with WriteRecorder() as rec:
            for c in corpus():
                try:
                    outcomes[c.name] = ("ok", summarise(read_fundus(c.data, name=c.name)))
                except FundusReadError as e:
                    outcomes[c.name] = ("refused", str(e))
                except BaseException as e:  # noqa: BLE001 - the property under test
                    outcomes[c.name] = ("escaped", f"{type(e).__name__}: {e}")
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
    new = {r: changed(before[r], listing(r, CACHES)) for r in roots}
    return outcomes, rec.writes, sorted(p.name for p in tmp.iterdir()), new


def test_reader_gives_a_fundus_or_one_line_for_every_case(reader_outcomes):
    outcomes, writes, tmp_left, new = reader_outcomes
    problems = []
    for c in corpus():
        kind, value = outcomes[c.name]
        if kind == "escaped":
            problems.append(f"{c.name}: escaped {value}")
        elif kind == "refused":
            if not one_line(value):
                problems.append(f"{c.name}: message not one clear line: {value!r}")
            if c.expect == "ok":
                problems.append(f"{c.name}: refused ({value}) but it is a valid image")
            if c.words and c.words not in value:
                problems.append(f"{c.name}: {value!r} does not say {c.words!r}")
        else:
            if c.expect == "refused":
                problems.append(f"{c.name}: read, but must be refused")
            problems += [f"{c.name}: {p}" for p in value["problems"]]
            if c.size and value["size"] != c.size:
                problems.append(f"{c.name}: upright size {value['size']}, expected {c.size}")
            if not all(one_line(w) for w in value["warnings"]):
                problems.append(f"{c.name}: a warning is not one line")
    assert not problems, "\n".join(problems)
    counts = collections.Counter(kind for kind, _ in outcomes.values())
    by_group = collections.Counter((c.group, outcomes[c.name][0]) for c in corpus())
    print(f"CORPUS cases={len(outcomes)} valid={counts['ok']} refused={counts['refused']} escaped={counts['escaped']}")
    print("CORPUS by group: " + "; ".join(f"{g} {k} {n}" for (g, k), n in sorted(by_group.items())))
    # nothing written: no Python-level write anywhere, nothing in TMPDIR, the repository or the cwd
    assert not writes, writes[:10]
    assert not tmp_left
    for root, paths in new.items():
        assert not new_files_attributable(root, paths, needles_of(corpus()), writes), paths


def test_no_case_reaches_the_readers_catch_all(reader_outcomes):
    """``read_fundus`` turns any unforeseen exception into a FundusReadError too (its catch-all),
    so "raises only its own error" alone proves nothing: every refusal of the corpus must come
    from a check that knows what is wrong, never from that generic fallback."""
    outcomes = reader_outcomes[0]
    generic = {name: value for name, (kind, value) in outcomes.items()
               if kind == "refused" and value.startswith(UNEXPECTED_FAILURE)}
    assert not generic, "refused by the reader's catch-all (an unforeseen exception):\n" + "\n".join(
        f"{n}: {v}" for n, v in sorted(generic.items()))
    assert sum(kind == "refused" for kind, _ in outcomes.values()) >= 100  # the check has refusals to look at


def test_decompression_bombs_refused_before_decoding_with_bounded_memory(tmp_path):
    """In a fresh process: its peak RSS after reading the 50,000 x 50,000 headers minus its peak
    after the imports alone (the baseline). Decoding one would need 7.5 GB. Every decoder the
    reader can reach (Pillow's, OpenCV's) is watched: no bomb may reach one; the legal control
    image must. Each refusal is timed and the time printed (a benchmark, not a pass/fail)."""
    names = {c.name: c for c in corpus()}
    files = []
    for name in ("bomb-50000x50000.png", "bomb-50000x50000.jpg", "bomb-50000x50000.tif", "bomb-65535x65535-gif.png"):
        (tmp_path / name).write_bytes(names[name].data)
        files.append(str(tmp_path / name))
    probe = r"""
import json, resource, sys, time
import cv2
from PIL import Image
from core.fundus import FundusReadError, read_fundus
decodes = []  # every Pillow decoder made and every cv2.imdecode call
_getdecoder, _imdecode = Image._getdecoder, cv2.imdecode
def getdecoder(mode, name, *args, **kwargs):
    decodes.append("Pillow " + str(name))
    return _getdecoder(mode, name, *args, **kwargs)
def imdecode(*args, **kwargs):
    decodes.append("cv2.imdecode")
    return _imdecode(*args, **kwargs)
Image._getdecoder, cv2.imdecode = getdecoder, imdecode
def peak_mb():
    # VmHWM: this process's own peak RSS. (ru_maxrss can carry the parent's peak across fork and exec.)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = peak_mb()
out = []
control, bombs = sys.argv[1], sys.argv[2:]
for path in bombs:
    data = open(path, "rb").read()
    for src in (path, data):
        t = time.perf_counter()
        n = len(decodes)
        try:
            read_fundus(src)
            msg = None
        except FundusReadError as e:
            msg = str(e)
        out.append({"file": path.rsplit("/", 1)[-1], "seconds": time.perf_counter() - t, "message": msg,
                    "decoders": decodes[n:]})
peak = peak_mb()
n = len(decodes)
read_fundus(control)  # a legal image: the probe must see its decoding
print(json.dumps({"baseline_mb": base, "peak_mb": peak, "control_mb": peak_mb() - peak, "reads": out,
                  "control_decoders": decodes[n:]}))
"""
    control = np.zeros((4000, 4000, 3), np.uint8)  # 16 Mpx, legal: decoding it costs ~100 MB or more
    control[::5] = (200, 90, 40)
    Image.fromarray(control).save(tmp_path / "control.png", compress_level=1)
    r = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "control.png"), *files], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    extra = report["peak_mb"] - report["baseline_mb"]
    slowest = max(x["seconds"] for x in report["reads"])
    print(f"BOMB baseline_rss_mb={report['baseline_mb']:.0f} peak_rss_mb={report['peak_mb']:.0f} "
          f"extra_mb={extra:.1f} slowest_refusal_s={slowest:.4f} control_16mpx_extra_mb={report['control_mb']:.0f}")
    assert report["control_decoders"], "the probe does not see the control's decoding: the watch is broken"
    for x in report["reads"]:
        assert x["message"] is not None, f"{x['file']} was decoded"
        assert "limit" in x["message"] and f"{MAX_PIXELS:,}" in x["message"] and one_line(x["message"])
        assert x["decoders"] == [], f"{x['file']} reached a decoder before it was refused: {x}"
    assert "50000 x 50000" in report["reads"][0]["message"]
    assert extra < 100, f"reading the bombs raised the peak RSS by {extra:.0f} MB"
    assert report["control_mb"] > 40, "the probe does not see a decoding: the measurement is broken"


# ----------------------------------------------------------------------------- command line


def test_cli_grade_handles_every_case_in_one_process(tmp_path, reader_outcomes):
    outcomes = reader_outcomes[0]
    folder = tmp_path / "corpus"
    folder.mkdir()
    for c in corpus():
        (folder / c.name).write_bytes(c.data)
    weights = tiny_checkpoint(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    r = run_cli("grade", folder, "--csv", work / "grades.csv", "--weights", weights, "--quiet", cwd=work)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == "", r.stderr[-2000:]  # no traceback, no decoder chatter
    rows = {row["file"]: row for row in csv.DictReader(io.StringIO((work / "grades.csv").read_text()))}
    assert set(rows) == {c.name for c in corpus()}
    problems = []
    for c in corpus():
        row, (kind, value) = rows[c.name], outcomes[c.name]
        if kind == "refused":
            if row["error"] != value or row["grade"]:
                problems.append(f"{c.name}: CLI says {row['error']!r}, the reader {value!r}")
        else:
            p = [float(row[f"probability_{g}"]) for g in range(5)]
            s = [float(row[f"score_{g}"]) for g in range(5)]
            grade_ok = row["grade"] in {"0", "1", "2", "3", "4"} if value["gradable"] else row["grade"] == ""
            if row["error"] or not grade_ok or not np.isfinite(s).all() or abs(sum(p) - 1) > 1e-3:
                problems.append(f"{c.name}: bad row {row}")
            if row["gradable"] != str(value["gradable"]).lower() or not row["quality"]:
                problems.append(f"{c.name}: gradable {row['gradable']!r}, quality {row['quality']!r}, reader {value['gradable']}")
            if row["warnings"] != "; ".join(value["warnings"]):
                problems.append(f"{c.name}: warnings {row['warnings']!r}")
    assert not problems, "\n".join(problems)
    refused = sum(1 for k, _ in outcomes.values() if k == "refused")
    ungradable = sum(1 for k, v in outcomes.values() if k == "ok" and not v["gradable"])
    assert f"graded {len(rows) - refused - ungradable} of {len(rows)} images" in r.stdout
    assert sorted(p.name for p in work.iterdir()) == ["grades.csv"]  # nothing else written


EXPLAINED = ("bomb-50000x50000.png", "text.png", "truncated-0500.jpg", "over-50MB.png", "strip-10000x40.png",
             "black-640x480.png")


def test_cli_explain_on_a_handful(tmp_path, reader_outcomes):
    outcomes = reader_outcomes[0]
    names = {c.name: c for c in corpus()}
    folder = tmp_path / "in"
    folder.mkdir()
    for n in EXPLAINED:
        (folder / n).write_bytes(names[n].data)
    work = tmp_path / "work"
    work.mkdir()
    r = run_cli("explain", *(folder / n for n in EXPLAINED), "--out", work / "out", "--weights", tiny_checkpoint(tmp_path),
                cwd=work)
    assert r.returncode == 2, r.stderr  # some inputs were unreadable
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    others = [ln for ln in r.stderr.splitlines() if not ln.startswith(("error: ", "warning: "))]
    assert not others, r.stderr
    refused = [n for n in EXPLAINED if outcomes[n][0] == "refused"]
    valid = [n for n in EXPLAINED if outcomes[n][0] == "ok"]
    assert len(refused) == 4 and len(valid) == 2
    assert len(errors) == len(refused)
    for n, line in zip(refused, errors, strict=True):
        assert line == f"error: {folder / n}: {outcomes[n][1]}"
    for n in valid:
        scores = json.loads((work / "out" / Path(n).stem / "scores.json").read_text())
        assert scores["model_grade"] in range(5) and scores["gradable"] == outcomes[n][1]["gradable"]
        if outcomes[n][1]["gradable"]:
            assert f"{folder / n}: grade " in r.stdout and scores["grade"] == scores["model_grade"]
        else:  # refused by the quality gate: no grade, the reasons instead
            assert f"{folder / n}: UNGRADABLE, retake the photograph" in r.stdout and scores["grade"] is None
            assert scores["quality"]["reasons"]
    assert sorted(p.name for p in (work / "out").iterdir()) == sorted(Path(n).stem for n in valid)
    assert sorted(p.name for p in work.iterdir()) == ["out"]


# ----------------------------------------------------------------------------- hostile weights, via the CLI


class _Payload:
    """Unpickling this runs ``touch <target>``."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch '{self.target}'",))


def _hostile_weights(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words its refusal must contain)."""
    d = tmp_path / "weights"
    d.mkdir()
    model = DRNet((2,) * 15)
    good = d / "good.pt"
    save_checkpoint(good, model, {"title": "tiny"})
    sd = model.state_dict()
    out = {}
    torch.save({"state_dict": {}, "x": _Payload(tmp_path / "pwned")}, d / "evil.pt")
    out["pickle"] = (d / "evil.pt", "refused, not a plain weights file")
    shape = dict(sd)
    shape["output.0.weight"] = torch.zeros(3, 2)
    torch.save({"state_dict": shape}, d / "shape.pt")
    out["shape"] = (d / "shape.pt", "does not match the network")
    torch.save({"state_dict": {k: v for k, v in sd.items() if not k.startswith("output")}}, d / "missing.pt")
    out["missing"] = (d / "missing.pt", "does not match the network")
    (d / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    out["truncated"] = (d / "truncated.pt", "unreadable checkpoint")
    return out


def test_cli_refuses_hostile_weights_in_one_line(tmp_path):
    files = _hostile_weights(tmp_path)
    image = tmp_path / "eye.png"
    image.write_bytes(next(c.data for c in corpus() if c.name == "8x8.png"))
    # A tampered copy of the published weights: a valid checkpoint under the registry's file name.
    registry_dir = tmp_path / "registry"
    registry_dir.mkdir()
    (registry_dir / PAPER.filename).write_bytes((tmp_path / "weights" / "good.pt").read_bytes())
    env = {"DR_WEIGHTS_DIR": str(registry_dir), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = {}
    for kind, (path, words) in {**files, "tampered": ("paper", "fails its sha256 check")}.items():
        runs[(kind, "verify")] = (["weights", "verify", path], words)
        runs[(kind, "explain")] = (["explain", image, "--weights", path, "--out", tmp_path / f"out-{kind}"], words)
    # In this process (the same main as python -m core; tests/cli/test_cli.py runs the entry point itself).
    problems = []
    for key, (argv, words) in runs.items():
        r = run_cli_here(*argv, cwd=tmp_path, env=env)
        lines = r.stderr.strip().splitlines()
        if r.returncode != 2 or len(lines) != 1 or "Traceback" in r.stderr or words not in r.stderr or not lines[0].startswith("error: "):
            problems.append(f"{key}: exit {r.returncode}, stderr {r.stderr!r}, stdout {r.stdout!r}")
    assert not problems, "\n".join(problems)
    assert not (tmp_path / "pwned").exists(), "the pickle payload ran"
    assert not any(tmp_path.glob("out-*")), "an output folder was made for refused weights"
    # The payload is live: an unsafe load would have run it.
    control = tmp_path / "control"
    torch.save({"x": _Payload(control)}, tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert control.exists()


# ----------------------------------------------------------------------------- the viewer (AppTest)


def _page_texts(at) -> list[str]:
    texts = []
    for kind in ("markdown", "error", "warning", "info", "success", "caption", "code", "text", "exception", "json",
                 "title", "header", "subheader"):
        for el in getattr(at, kind, []):
            value = getattr(el, "value", None)
            texts.append(value if isinstance(value, str) else repr(value))
    return texts


@pytest.mark.slow
def test_viewer_representative_third(tmp_path, monkeypatch, reader_outcomes, private_tmp):

    from viewer import state

    outcomes = reader_outcomes[0]
    weights = tiny_checkpoint(tmp_path)
    monkeypatch.setattr(core, "default_name", lambda: str(weights))
    cases = representative_third()
    assert len(cases) * 3 >= len(corpus()) - 12 and {c.group for c in cases} == {c.group for c in corpus()}
    roots = {ROOT, Path.cwd()}
    before = {r: listing(r, CACHES) for r in roots}
    problems = []
    with WriteRecorder() as rec:
        at = AppTest.from_file(str(ROOT / "viewer" / "app.py"), default_timeout=180)
        at.run()
        banner = [e.value for e in at.error if BANNER in e.value]  # a model that is not the published one
        assert not at.exception and len(banner) == 1 and len(at.error) == 1, [e.value for e in at.error]
        for c in cases:
            at.file_uploader(key="upload").set_value((c.name, c.data, "image/png"))
            at.run()
            kind, value = outcomes[c.name]
            texts = _page_texts(at)
            errors = [e.value for e in at.error if BANNER not in e.value]
            if at.exception or any("Traceback" in t for t in texts):
                problems.append(f"{c.name}: exception or traceback on the page: {[e.value for e in at.exception]}")
            elif kind == "refused":
                if errors != [f"**{c.name}** cannot be graded: {value}"] or not one_line(errors[0]):
                    problems.append(f"{c.name}: page errors {errors}, reader {value!r}")
                if any(t.startswith("| Grade | Score |") for t in texts):
                    problems.append(f"{c.name}: scores shown for an unreadable file")
            elif not value["gradable"]:  # the quality gate: its reason, and no grade
                if not any(e.startswith("**Ungradable:") for e in errors) or any(t.startswith("| Grade | Score |") for t in texts):
                    problems.append(f"{c.name}: ungradable, but page errors {errors}")
            else:
                table = [t for t in texts if t.startswith("| Grade | Score | Probability |")]
                checked = any(t.startswith(("**Conservation:**", "Conservation check failed")) for t in texts)
                if errors or len(table) != 1 or len(table[0].splitlines()) != 7 or not checked:
                    problems.append(f"{c.name}: page errors {errors}, score table {table}")
                shown = {w.value for w in at.warning}
                if not set(value["warnings"]) <= shown:
                    problems.append(f"{c.name}: reader warnings {value['warnings']} not shown")
        for t in threading.enumerate():  # background warm-up threads must finish inside the recording
            if t.name == "dr-viewer-warm":
                t.join(timeout=120)
    state.forget_models()
    assert not problems, "\n".join(problems)
    valid = sum(1 for c in cases if outcomes[c.name][0] == "ok")
    print(f"VIEWER cases={len(cases)} valid={valid} refused={len(cases) - valid}")
    assert not rec.writes, rec.writes[:10]
    assert not list(private_tmp.iterdir())
    for root in roots:
        paths = changed(before[root], listing(root, CACHES))
        assert not new_files_attributable(root, paths, needles_of(cases), rec.writes), paths
