"""What the page keeps between reruns: the model (shared), each session's own result.

- The model is loaded once per process (``st.cache_resource``); it is read-only.
- A session's Explanation lives in that session's ``st.session_state`` only, keyed
  by the image's pixels and the weights' sha256: patients' results are never shared
  between sessions, and moving a slider never recomputes it.
- At most ``MAX_CONCURRENT`` explanations run at once in the whole process, so
  several clinicians at once do not exhaust the machine's memory.
- Uploaded bytes are read from memory; nothing is written to disk (``keep_uploads_in_memory``).
"""

from __future__ import annotations

import atexit
import csv
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

import core
from core.allocator import release_free_memory
from core.marks import Mark

from .controls import InputChoice, Reference

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = ROOT / "assets" / "samples"
# Explanations at once in the whole server. Each uses every core (torch's threads) and ~0.7 GB
# at its peak, so more at once only pays with many cores: on 2 cores, 8 users uploading at the
# same moment were all served in 39 s with one slot against 49 s with two, at a peak of 1.5
# against 1.8 GB (python -m tests.viewer.users_bench).
MAX_CONCURRENT = max(1, (os.cpu_count() or 1) // 4)
EXPLAIN_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT)

MAX_PICTURES = 120  # encoded pictures kept per session
MAX_PICTURE_BYTES = 24 * 2**20  # and at most this much of them (the full-resolution photograph is ~0.4 MB)
MAX_LAYER_MAPS = 10  # single layers' input-space maps kept per session (1.6 MB each; remade in milliseconds)
_RESULT = "_result"
_FUNDUS = "_fundus"


def _is_sample(path: Path, folder: Path) -> bool:
    """An image meant to be graded: not a montage (``overview*``) nor hidden (``_*``, ``.*``)."""
    parts = path.relative_to(folder).parts
    return (path.is_file() and path.suffix.lower() in core.IMAGE_SUFFIXES
            and not path.stem.lower().startswith("overview")
            and not any(p.startswith(("_", ".")) for p in parts))


def list_samples(folder: Path = SAMPLES_DIR) -> dict[str, Path]:
    """Bundled sample images, by their path under assets/samples (recursive).

    Real photographs (top level) come before the synthetic drawings (sub-folders).
    """
    if not folder.is_dir():
        return {}
    files = [p for p in folder.rglob("*") if _is_sample(p, folder)]
    files.sort(key=lambda p: (len(p.relative_to(folder).parts) > 1, p.relative_to(folder).as_posix()))
    return {p.relative_to(folder).as_posix(): p for p in files}


REFERENCES_FILE = "reference_grades.csv"  # file,grade,source: who graded (or drew) each sample


def sample_references(folder: Path = SAMPLES_DIR) -> dict[str, Reference]:
    """The samples' reference grades, by their path under assets/samples (none if the file is absent).

    A row that does not parse is left out rather than shown wrong.
    """
    path = folder / REFERENCES_FILE
    if not path.is_file():
        return {}
    out: dict[str, Reference] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                grade = int(row["grade"])
            except (KeyError, TypeError, ValueError):
                continue
            if grade in range(len(core.GRADE_NAMES)) and row.get("file") and row.get("source"):
                out[row["file"].strip()] = Reference(grade, row["source"].strip())
    return out


def keep_uploads_in_memory() -> None:
    """Never let an upload touch the disk.

    Streamlit's server parses uploads with Starlette, which spools every file part over
    1 MB (``MultiPartParser.spool_max_size``) to a temporary file in ``$TMPDIR``: most
    fundus photographs are larger. The threshold is raised above the upload limit, so an
    accepted photograph stays in memory; the server already caps the request body at
    ``server.maxUploadSize`` while it streams, then holds the file in memory anyway.
    """
    try:
        from starlette.formparsers import MultiPartParser
    except ImportError:  # a server without Starlette: nothing is spooled
        return
    limit = max(core.MAX_BYTES, int(st.get_option("server.maxUploadSize")) * 2**20) + 2**20  # + multipart framing
    if getattr(MultiPartParser, "spool_max_size", limit) < limit:
        MultiPartParser.spool_max_size = limit


def load_model(name: str) -> core.LoadedModel:
    """The weights ``name`` (a registry name or a path), loaded once per process and file,
    on the server's device (``page_device``).

    The cache key holds the checksum the file must have (a registry entry's sha256, or the
    file's own), so an entry or a file replaced behind the page is never served stale.
    """
    entry = core.REGISTRY.get(name)
    checksum = entry.sha256 if entry is not None else _file_checksum(name)
    return _load_model(name, checksum, page_device())


def page_device(argv: list[str] | None = None) -> str:
    """Where this server runs the model: ``streamlit run viewer/app.py -- --device cuda``
    (or ``auto``), else $DR_DEVICE, else the CPU. Checked by ``core.load_weights``."""
    args = sys.argv[1:] if argv is None else argv
    for i, a in enumerate(args):
        if a == "--device" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--device="):
            return a.split("=", 1)[1]
    return os.environ.get(core.device.ENV_DEVICE, "").strip() or "cpu"


def _file_checksum(path: str) -> str:
    try:
        return core.weights.sha256_of(Path(path))
    except OSError:
        return ""  # load_weights says what is wrong with the path


@st.cache_resource(show_spinner="Loading the model…")
def _load_model(name: str, checksum: str, device: str) -> core.LoadedModel:
    return core.load_weights(name, device=device)


def forget_models() -> None:
    """Drop every loaded model (after a download, or when a test changes the weights)."""
    _load_model.clear()


T = TypeVar("T")


@dataclass
class Result:
    """One session's explained image, with the derived numbers the page shows (made once).

    What the render functions draw from: ``exp`` is core's Explanation of the image;
    ``key`` says which image and weights it belongs to (pixels' and weights' sha256).
    """

    key: str
    exp: core.Explanation
    warmed: bool = False
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _derived: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    def _once(self, name: Hashable, make: Callable[[], T]) -> T:
        with self.lock:
            if name not in self._derived:
                self._derived[name] = make()
            return self._derived[name]

    def picture(self, key: tuple, make: Callable[[], T]) -> T:
        """An encoded picture (or a mask), made once per key (layer, grade, display options ...).

        Walking back along the slider then costs nothing; at most ``MAX_PICTURES`` and
        ``MAX_PICTURE_BYTES`` are kept per session (the least recently used go first).
        """
        with self.lock:
            if key in self._derived:
                self._derived[key] = self._derived.pop(key)  # the most recently used goes last
                return self._derived[key]
            value = make()
            pictures = [k for k in self._derived if isinstance(k, tuple)]
            used = sum(_size(self._derived[k]) for k in pictures) + _size(value)
            while pictures and (len(pictures) >= MAX_PICTURES or used > MAX_PICTURE_BYTES):
                used -= _size(self._derived.pop(pictures.pop(0)))
            self._derived[key] = value
            return value

    def picture_bytes(self) -> int:
        """What this session's pictures hold (for the memory benchmark)."""
        with self.lock:
            return sum(_size(v) for k, v in self._derived.items() if isinstance(k, tuple))

    def conservation(self, grade: int) -> dict[str, Any]:
        """``grade``'s conservation report (takes that grade's constant maps to input space the
        first time; the other grades' maps are never made unless they are shown)."""
        return self._once(f"conservation:{grade}", lambda: self.exp.conservation([grade]))


def _size(value: Any) -> int:
    """Bytes a cached picture holds (encoded bytes, data URIs, arrays, and tuples of them)."""
    if isinstance(value, (bytes, str)):
        return len(value)
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(_size(v) for v in value)
    return 64


def read_input(choice: InputChoice) -> core.Fundus:
    """The chosen photograph as a Fundus (cached per session while the file is unchanged).

    Raises ``core.FundusReadError``; the previous result is then forgotten.
    """
    cached = st.session_state.get(_FUNDUS)
    if cached is not None and cached[0] == choice.ident:
        return cached[1]
    st.session_state.pop(_FUNDUS, None)
    try:
        src = choice.data if choice.kind == "upload" else choice.path
        fundus = core.read_fundus(src, name=choice.name)
    except core.FundusReadError:
        forget()
        raise
    st.session_state[_FUNDUS] = (choice.ident, fundus, src)
    return fundus


def source() -> bytes | Path | None:
    """The file the shown photograph was read from (upload bytes in memory, or a sample's path):
    the reading view decodes it again at full resolution."""
    cached = st.session_state.get(_FUNDUS)
    return cached[2] if cached is not None else None


def forget() -> None:
    """Drop this session's result (a new, unreadable or removed image), its marks and its npz."""
    st.session_state.pop(_RESULT, None)
    st.session_state.pop(_FUNDUS, None)
    st.session_state.pop(_MARKS, None)
    st.session_state.pop(_NPZ, None)
    st.session_state.pop(ZOOM, None)


_NPZ = "_npz"
ZOOM = "_reading_zoom"  # the reading view's zoom set by a region's button: (left, top, right, bottom) or absent


def npz(res: Result) -> bytes | None:
    """The explanation.npz already built for ``res`` in this session, if any."""
    held = st.session_state.get(_NPZ)
    return held[1] if held is not None and held[0] == res.key else None


def build_npz(res: Result, progress: Callable[[float, str], None]) -> bytes:
    """Build ``res``'s explanation.npz (reporting progress) and keep it for this photograph only."""
    st.session_state.pop(_NPZ, None)
    with EXPLAIN_SLOTS:
        data = res.exp.npz_bytes(progress)
    st.session_state[_NPZ] = (res.key, data)
    return data


# ------------------------------------------------------------------ the clinician's marks
_MARKS = "_marks"
_SEEN = "_selection_seen"
CHART = "reading_chart"  # the reading figure's widget key: its state is the last selection


def _signature(selection: dict | None) -> str:
    return repr(sorted((k, repr(v)) for k, v in (selection or {}).items()))


def _chart_selection() -> dict | None:
    state = st.session_state.get(CHART)
    return dict(state.get("selection") or {}) if state else None


def marks(res: Result) -> list[Mark]:
    """This session's marks on ``res``'s photograph (a new photograph starts with none, and a
    selection left in the chart from the previous photograph is never taken for it)."""
    held = st.session_state.get(_MARKS)
    if held is None or held[0] != res.key:
        held = (res.key, [])
        st.session_state[_MARKS] = held
        st.session_state[_SEEN] = _signature(_chart_selection())
    return held[1]


def take_selection(res: Result, lesion: str, make: Callable[[dict, str], list[Mark]]) -> bool:
    """Turn the chart's new selection into marks (``make(selection, lesion)``); True if any were added.

    A selection stays in the chart's state across reruns: the last one taken is
    remembered, so each is added once.
    """
    current = marks(res)
    selection = _chart_selection()
    sig = _signature(selection)
    if not selection or st.session_state.get(_SEEN) == sig:
        return False
    st.session_state[_SEEN] = sig
    new = make(selection, lesion)
    current.extend(new)
    return bool(new)


def explain(model: core.LoadedModel, fundus: core.Fundus) -> tuple[Result, bool]:
    """This session's Explanation of ``fundus``; computed only when the image or model changed.

    Returns the result and whether it is new.
    """
    key = f"{fundus.sha256}:{model.sha256}"
    res = st.session_state.get(_RESULT)
    if res is not None and res.key == key:
        return res, False
    st.session_state.pop(_MARKS, None)
    st.session_state.pop(_NPZ, None)
    st.session_state.pop(ZOOM, None)
    st.session_state.pop(_RESULT, None)  # never show the previous image's result
    with st.spinner("The model is grading the image and tracing every score back to the pixels…"), EXPLAIN_SLOTS:
        res = Result(key=key, exp=core.explain(model, fundus))
    release_free_memory()  # the propagation's temporaries (~0.7 GB) go back to the kernel, not to this thread's arena
    res.exp.limit_layer_maps(MAX_LAYER_MAPS)
    st.session_state[_RESULT] = res
    return res, True


WARM_DELAY_S = 1.5  # the first picture reaches the browser before the warming competes for the CPU


def _warm(res: Result) -> None:
    """The layers next to the input first (most walks along the slider start there), as many as
    the session keeps."""
    exp = res.exp
    time.sleep(WARM_DELAY_S)
    with EXPLAIN_SLOTS:
        for spec in core.CONV_LAYERS[: MAX_LAYER_MAPS // 2][::-1]:
            for part in core.PARTS:
                exp.in_input_space(spec.index, part, exp.grade)


def warm_in_background(res: Result) -> None:
    """Take the model's grade's maps of the layers nearest the input to input space in a
    background thread, so that the first steps along the layer slider find them ready. Only
    that grade's (another grade's are made when shown), and only as many as a session keeps."""
    with res.lock:
        if res.warmed:
            return
        res.warmed = True
    t = threading.Thread(target=_warm, args=(res,), name="dr-viewer-warm", daemon=True)
    _WARMING.add(t)
    t.start()


_WARMING: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


@atexit.register
def _finish_warming() -> None:
    """A daemon thread killed inside a torch kernel at exit aborts the process
    ("terminate called without an active exception"): let running ones finish."""
    for t in list(_WARMING):
        t.join(timeout=30)


def fetch_paper_weights(progress: Any) -> str | None:
    """Download the published weights; returns an error message, or None on success."""

    def report(done: int, total: int | None) -> None:
        if total:
            progress.progress(min(done / total, 1.0), text=f"Downloading… {done / 2**20:.1f} of {total / 2**20:.1f} MB")

    try:
        core.fetch("paper", progress=report)
    except core.WeightsError as e:
        return str(e)
    except Exception as e:  # never a traceback in the page
        return f"the download failed ({type(e).__name__}: {e})"
    forget_models()
    return None
