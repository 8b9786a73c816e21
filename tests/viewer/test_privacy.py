"""Issue 6, privacy: a patient's photograph is never written anywhere, and the page listens
on this machine only unless exposed on purpose.

The browser test runs ``streamlit run viewer/app.py`` as a user would, from the repository,
with a fresh, empty ``HOME``, ``TMPDIR`` and ``XDG_*`` folders and ``DR_WEIGHTS_DIR`` set (so
nothing is needed from the real home): to an empty folder, so that the page uses the bundled
model (the whole scenario below), or to the published weights' folder (``paper``: the
upload and its maps only). The server runs under a Python audit hook that logs every file it
opens for writing, creates, renames or links (Python-level, all threads).
Chromium (Playwright) has its own profile, ``HOME`` and ``TMPDIR`` in a separate folder that
is excluded explicitly: the browser is the user's side, not the server's.

After an upload (a photograph made unique for this run), the maps, a slider move, the overlay
and two downloads, then (bundled model) the screening exam with a DICOM upload carrying a
made-up patient name drawn for this run, its result, its PDF report and its DICOM Parametric
Map downloaded, and once
the server has finished its background work, the test requires:

- the server opened no file for writing at all, except Python's own bytecode caches
  (``__pycache__/*.pyc``, only if a module's cache was stale); Streamlit itself writes nothing
  at runtime with this config (the allowed list of Streamlit runtime files is empty);
- nothing new in the fresh ``HOME``, ``TMPDIR`` and ``XDG_RUNTIME_DIR``;
- no new or changed file under those, the repository or ``/tmp`` holds the upload's bytes (or a
  slice, or its base64), its decoded pixels (RGB or BGR) or the 640x640 model input, nor the
  DICOM's bytes, pixels, patient name (as in the header, as the report prints it, in UTF-8 or
  UTF-16) or patient ID; none under
  the fresh folders holds a PNG, JPEG, GIF, TIFF or WebP signature. Files that other processes
  of a shared machine create in ``/tmp`` or the repository meanwhile hold none of this run's
  data and are listed, not failed;
- the page fetched nothing from any host but the server (no usage statistics);
- the server listened on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import core
from core.fundus import decode_image
from tests.dicom_files import dataset, save
from tests.viewer.live_server import (
    CHROMIUM_ARGS,
    HAS_TEXT,
    REPO,
    SETTLED,
    UPLOAD,
    chromium_path,
    download,
    serve,
    wait_quiet,
)
from tests.viewer.walkthrough import exam_upload

CONFIG = REPO / ".streamlit" / "config.toml"
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", b"WEBPVP8")
# Streamlit's own runtime files with this config: none (no credentials file when headless,
# no telemetry, uploads and media kept in memory). Python may refresh a stale bytecode cache.
ALLOWED_WRITES = ("/__pycache__",)

AUDIT_LAUNCHER = r"""
import os, sys
_fd = os.open(os.environ.pop("DR_AUDIT_LOG"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
_W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_EVENTS = {"os.rename", "os.replace", "os.link", "os.symlink", "os.mkdir", "os.truncate", "shutil.copyfile",
           "shutil.copytree", "shutil.move", "os.mkfifo", "os.mknod", "tempfile.mkstemp", "tempfile.mkdtemp"}
def _hook(event, args):
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        if isinstance(path, int):
            return
        if not ((isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _W)):
            return
        line = "open\t" + os.fsdecode(path)
    elif event in _EVENTS:
        line = event + "\t" + repr(args)
    else:
        return
    os.write(_fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
sys.addaudithook(_hook)
sys.argv = ["streamlit", *sys.argv[1:]]
from streamlit.web.cli import main
main(prog_name="streamlit")
"""


# ----------------------------------------------------------------------------- the config


def test_config_listens_on_localhost_and_keeps_statistics_off():
    cfg = tomllib.loads(CONFIG.read_text())
    assert cfg["server"]["address"] in ("localhost", "127.0.0.1")
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"].get("enableXsrfProtection", True) is True and cfg["server"].get("enableCORS", True) is True
    assert cfg["client"]["showErrorDetails"] == "none"  # no tracebacks in the page
    assert cfg["runner"]["magicEnabled"] is False


def test_uploads_are_never_spooled_to_disk():
    """Starlette spools upload parts over 1 MB to $TMPDIR; the page raises that above its upload limit."""
    from starlette.formparsers import MultiPartParser

    from viewer import state

    state.keep_uploads_in_memory()
    cfg = tomllib.loads(CONFIG.read_text())
    assert MultiPartParser.spool_max_size > max(core.MAX_BYTES, cfg["server"]["maxUploadSize"] * 2**20)


# ----------------------------------------------------------------------------- helpers


def snapshot(root: Path, skip: tuple[Path, ...] = (), skip_names: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (path -> size, mtime; -1 size for folders)."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if d not in skip_names and not any(here / d == s for s in skip)]
        for name in dirnames + filenames:
            p = here / name
            try:
                st = p.lstat()
            except OSError:
                continue
            found[str(p)] = (-1 if p.is_dir() and not p.is_symlink() else st.st_size, st.st_mtime_ns)
    return found


def new_or_changed(before: dict, after: dict) -> list[str]:
    return sorted(p for p, v in after.items() if before.get(p) != v and not (v[0] == -1 and p in before))


def unique_pixels() -> np.ndarray:
    """The real photograph with noise drawn for this run only: its pixels exist nowhere else."""
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    arr = np.asarray(Image.open(REPO / "tests" / "data" / "retina.jpg").convert("RGB"), np.int16)
    return np.clip(arr + rng.integers(-6, 7, arr.shape), 0, 255).astype(np.uint8)


def unique_photograph() -> bytes:
    """``unique_pixels`` as PNG: its bytes exist nowhere else."""
    buf = io.BytesIO()
    Image.fromarray(unique_pixels()).save(buf, "PNG")
    return buf.getvalue()


def unique_dicom() -> tuple[bytes, str, str]:
    """A DICOM photograph (left eye) of ``unique_pixels``, mirrored, for a made-up patient whose
    family name and ID are drawn for this run: (file bytes, family name, patient ID)."""
    token = os.urandom(6).hex().upper()
    family, pid = f"Testpatient{token[:6]}", f"PRIV-{token[6:]}"
    ds = dataset(np.ascontiguousarray(unique_pixels()[:, ::-1]))
    ds.PatientName, ds.PatientID, ds.ImageLaterality = f"{family}^Fictitia", pid, "L"
    return save(ds), family, pid


def dicom_needles(data: bytes, family: str, pid: str) -> dict[str, bytes]:
    """What only a copy of the DICOM upload, its pixels or its patient's identity can contain."""
    out = {}
    for frac in (0.25, 0.5, 0.75):
        k = int(len(data) * frac)
        out[f"DICOM bytes at {frac:.0%}"] = data[k : k + 64]
        k3 = k - k % 3
        out[f"DICOM base64 at {frac:.0%}"] = base64.b64encode(data[k3 : k3 + 120])
    fundus = core.read_fundus(data, name="scan.dcm")
    row = fundus.image[320, 304:336]
    out["DICOM model input (RGB)"] = row.tobytes()
    out["DICOM model input (BGR)"] = row[:, ::-1].tobytes()
    for text in (family, f"{family}^Fictitia", f"{family}, Fictitia", pid):
        out[f"patient {text!r} (UTF-8)"] = text.encode()
        out[f"patient {text!r} (UTF-16)"] = text.encode("utf-16-le")
    return out


def needles(data: bytes) -> dict[str, bytes]:
    """Byte strings that only a copy of this image, in some form, can contain."""
    out = {}
    for frac in (0.25, 0.5, 0.75):
        k = int(len(data) * frac)
        out[f"upload bytes at {frac:.0%}"] = data[k : k + 64]
        k3 = k - k % 3
        out[f"upload base64 at {frac:.0%}"] = base64.b64encode(data[k3 : k3 + 120])
    rgb = decode_image(data)
    fundus = core.read_fundus(data)
    for label, arr in (("decoded pixels", rgb), ("model input", fundus.image)):
        h, w = arr.shape[:2]
        row = arr[h // 2, w // 2 - 16 : w // 2 + 16]  # 32 pixels across the retina's centre
        out[f"{label} (RGB)"] = row.tobytes()
        out[f"{label} (BGR)"] = row[:, ::-1].tobytes()
        out[f"{label} (RGBA)"] = np.dstack([row[None], np.full((1, 32, 1), 255, np.uint8)])[0].tobytes()
    return out


def holds(path: str, patterns: dict[str, bytes] | tuple[bytes, ...]) -> list[str]:
    try:
        blob = Path(path).read_bytes()
    except OSError:  # gone again, a folder or unreadable
        return []
    items = patterns.items() if isinstance(patterns, dict) else [(repr(p), p) for p in patterns]
    return [label for label, p in items if p in blob]


def listening_addresses(port: int) -> list[str]:
    """Local addresses with a socket listening on ``port`` (Linux /proc/net/tcp, tcp6)."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, _, state = line.split()[1], None, line.split()[3]
            addr, _, p = local.partition(":")
            if int(p, 16) == port and state == "0A":  # LISTEN
                raw = bytes.fromhex(addr)
                if width == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.append(socket.inet_ntop(socket.AF_INET6, words))
    return found


def other_local_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (no packet is sent)."""
    found = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.add(info[4][0])
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: routing decides the source address, nothing is sent
            found.add(s.getsockname()[0])
    except OSError:
        pass
    return sorted(a for a in found if not a.startswith("127."))


# ----------------------------------------------------------------------------- the test


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # what the server writes does not depend on the weights
def test_no_image_bytes_are_written_anywhere(page_model, tmp_path, monkeypatch, request):
    """The whole scenario, with the bundled model (the published weights' page path is
    test_browser's smoke test: the same server code, another weights file read)."""
    from playwright.sync_api import sync_playwright

    full = page_model.bundled

    chromium = chromium_path()
    data = unique_photograph()
    assert len(data) > 1.5 * 2**20  # above the 1 MB at which Starlette would spool an upload to disk
    marks = needles(data)
    dicom, family, pid = unique_dicom()
    if full:
        marks |= dicom_needles(dicom, family, pid)
    # the server's fresh, empty world; the browser's own folder; the test's evidence
    system_tmp = Path("/tmp")  # the issue asks for /tmp itself to be checked
    home, tmp, run, evidence = tmp_path / "home", tmp_path / "tmp", tmp_path / "run", tmp_path / "evidence"
    # Chromium's unix sockets need a short path: its folder sits directly in /tmp, excluded below.
    browser_dir = Path(tempfile.mkdtemp(prefix="drb-", dir=system_tmp if system_tmp.is_dir() else None))
    request.addfinalizer(lambda: shutil.rmtree(browser_dir, ignore_errors=True))
    for d in (home, tmp, run, browser_dir / "tmp", browser_dir / "home", evidence):
        d.mkdir(parents=True, mode=0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_RUNTIME_DIR": str(run),
        "DR_WEIGHTS_DIR": page_model.env["DR_WEIGHTS_DIR"],  # idrid: an empty folder; XDG_CACHE_HOME is empty too
        "DR_AUDIT_LOG": str(evidence / "audit.log"),
    }
    fresh = (home, tmp, run)
    before_fresh = {d: snapshot(d) for d in fresh}
    before_repo = snapshot(REPO, skip_names=(".git",))
    before_tmp = snapshot(system_tmp, skip=(tmp_path, browser_dir)) if system_tmp.is_dir() else {}

    # The browser's side: its own TMPDIR and HOME for the Playwright driver and Chromium.
    monkeypatch.setenv("TMPDIR", str(browser_dir / "tmp"))
    requests: list[str] = []
    with serve(env, evidence / "server.log", launcher=[sys.executable, "-c", AUDIT_LAUNCHER]) as (proc, port):
        bound = listening_addresses(port)
        refused_elsewhere = []
        for addr in other_local_addresses():
            with socket.socket() as s:
                s.settimeout(2)
                refused_elsewhere.append((addr, s.connect_ex((addr, port)) != 0))
        origin = f"http://127.0.0.1:{port}"
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(browser_dir / "profile"), executable_path=chromium, args=CHROMIUM_ARGS, headless=True,
                viewport={"width": 1400, "height": 900}, accept_downloads=True, downloads_path=str(browser_dir / "downloads"),
                env={**os.environ, "HOME": str(browser_dir / "home"), "TMPDIR": str(browser_dir / "tmp")})
            try:
                page = context.new_page()
                page.on("request", lambda r: requests.append(r.url))
                page.goto(origin + "/")
                page.wait_for_selector(UPLOAD, state="attached", timeout=120_000)
                page.set_input_files(UPLOAD, files=[{"name": "patient.png", "mimeType": "image/png", "buffer": data}])
                page.wait_for_function(HAS_TEXT, arg=["p", "Conservation:"], timeout=180_000)
                page.wait_for_function(SETTLED, timeout=180_000)
                if full:
                    thumb = page.locator(".st-key-layer input[type=range]")
                    thumb.focus()
                    thumb.press("Home")  # layer 16
                    page.wait_for_function(HAS_TEXT, arg=["h5", "Layer 16 ·"], timeout=60_000)
                    thumb.press("End")  # back to the pixels
                    page.wait_for_function(HAS_TEXT, arg=["p", "input map "], timeout=60_000)
                    page.locator(".st-key-reading [data-testid=stPopover] button").first.click()
                    page.locator(".st-key-overlay label").click()
                    page.keyboard.press("Escape")
                    page.wait_for_function(SETTLED, timeout=60_000)
                    for label in ("scores.json", "Current map (PNG)"):
                        assert Path(download(page, label).path()).stat().st_size > 0
                    # the screening exam: a DICOM photograph with a patient's name, its result and its report
                    page.locator(".st-key-mode button", has_text="Screening exam").click()
                    page.wait_for_selector(exam_upload("left"), state="attached", timeout=60_000)
                    page.set_input_files(exam_upload("left"), files=[
                        {"name": "scan.dcm", "mimeType": "application/dicom", "buffer": dicom}])
                    page.wait_for_function(HAS_TEXT, arg=[".st-key-exam_result h3", "Patient:"], timeout=180_000)
                    page.wait_for_function(SETTLED, timeout=120_000)
                    assert page.locator(".st-key-exam_name input").input_value() == f"{family}, Fictitia"
                    assert Path(download(page, "PDF report").path()).read_bytes().startswith(b"%PDF-")
                    pm = page.get_by_role("button", name="Parametric Map (DICOM)")
                    if pm.count():  # where core can make one (core.exam.dicom_out)
                        assert Path(download(page, pm).path()).read_bytes()[128:132] == b"DICM"
                page.wait_for_function(SETTLED, timeout=60_000)
                body = page.locator("body").inner_text()
                assert "Traceback" not in body and "cannot be graded" not in body
                assert core.REGISTRY[page_model.name].meta["title"] in body  # the page used the model meant
                # the background warm-up of every layer's maps must finish inside the recording
                wait_quiet(proc.pid)
            finally:
                context.close()
    log = (evidence / "server.log").read_bytes()
    audit = (evidence / "audit.log").read_text().splitlines() if (evidence / "audit.log").exists() else []

    # 1. the server's own writes (Python level): none but bytecode caches
    writes = [a.split("\t", 1)[1] for a in audit]
    bad_writes = [a for a in audit if not any(ok in a for ok in ALLOWED_WRITES)]
    # (an "open" of a folder is an unnamed O_TMPFILE file in it: invisible to any listing)
    assert not bad_writes, bad_writes
    # 2. nothing new under the fresh HOME, TMPDIR, XDG_RUNTIME_DIR
    created = {d: new_or_changed(before_fresh[d], snapshot(d)) for d in fresh}
    assert not any(created.values()), created
    # 3. no copy of the image anywhere we can see; no image signature under the fresh folders
    changed_repo = new_or_changed(before_repo, snapshot(REPO, skip_names=(".git",)))
    changed_tmp = new_or_changed(before_tmp, snapshot(system_tmp, skip=(tmp_path, browser_dir))) if before_tmp else []
    leaks = {p: holds(p, marks) for p in [*changed_repo, *changed_tmp]}
    leaks = {p: v for p, v in leaks.items() if v}
    assert not leaks, leaks
    assert not [m for m, needle in marks.items() if needle in log], "image data in the server's log"
    print(f"PRIVACY server_writes={len(writes)} {writes[:5]} new_in_fresh_dirs=0 "
          f"repo_changed={len(changed_repo)} tmp_changed={len(changed_tmp)} (by other processes, no image data: "
          f"{[*changed_repo, *changed_tmp][:8]}) requests={len(requests)} bound={bound} refused_elsewhere={refused_elsewhere}")
    # 4. the page talked to the server only
    foreign = [u for u in requests if not u.startswith((origin + "/", "data:", "blob:"))]
    assert not foreign, foreign
    # 5. it listened on this machine only
    if Path("/proc/net/tcp").exists():
        assert bound and set(bound) <= {"127.0.0.1", "::1"}, bound
    assert all(refused for _, refused in refused_elsewhere), refused_elsewhere
