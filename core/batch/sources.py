"""What a batch reads: a folder, a manifest (CSV or text) a glob or one photograph,
resolved to paths.

Paths are local or URLs (``s3://``, ``gs://``, ``file://``...) that ``pyarrow.fs`` opens
(or fsspec, when it is installed and pyarrow does not know the scheme); the filesystem
packages themselves are the user's to install. Only names are listed here: the bytes
are read in the pipeline's tasks, on whichever node runs them.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import CoreError
from ..fundus import IMAGE_SUFFIXES, MAX_BYTES
from ..model import N_GRADES

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_GLOB = re.compile(r"[*?\[]")
# Column names a manifest may use for the photograph and for its reference grade.
PATH_COLUMNS = ("path", "file", "image", "filename", "image_path")
LABEL_COLUMNS = ("label", "grade", "dr_grade", "retinopathy grade", "level")


class SourceError(CoreError):
    """The batch's SOURCE cannot be listed; one line to show."""


@dataclass(frozen=True)
class Item:
    """One photograph to explain and, when the manifest gave one, its reference grade."""

    path: str
    label: int | None = None


def is_url(path: str) -> bool:
    return bool(_URL.match(path))


def filesystem(url: str):
    """(filesystem, path inside it) for a URL; pyarrow first, then fsspec."""
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(url)
    except (ValueError, OSError, ImportError) as pa_error:
        try:
            import fsspec
        except ImportError:
            raise SourceError(f"{url}: pyarrow cannot open this address ({pa_error}) and fsspec is not installed") from None
        fsys, path = fsspec.core.url_to_fs(url)
        return fs.PyFileSystem(fs.FSSpecHandler(fsys)), path


def read_bytes(path: str) -> bytes:
    """A photograph's bytes, local or remote, refusing files over the reader's byte limit unread."""
    if not is_url(path):
        from ..fundus.decode import read_bytes as read_local

        return read_local(path)[0]
    fsys, inner = filesystem(path)
    info = fsys.get_file_info(inner)
    if info.type.name == "NotFound":
        raise FileNotFoundError(path)
    if info.size is not None and info.size > MAX_BYTES:
        raise ValueError(f"file is {info.size / 2**20:.0f} MB; at most {MAX_BYTES // 2**20} MB is read")
    with fsys.open_input_stream(inner) as f:
        return f.read(MAX_BYTES + 1)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _list_folder(folder: str) -> list[str]:
    if is_url(folder):
        from pyarrow import fs

        fsys, inner = filesystem(folder)
        infos = fsys.get_file_info(fs.FileSelector(inner, recursive=True))
        scheme = folder.split("://", 1)[0]
        return sorted(f"{scheme}://{i.path}" for i in infos if i.type.name == "File" and _is_image(i.path))
    return sorted(
        os.path.join(root, f) for root, _, files in os.walk(folder) for f in files if _is_image(f)
    )


def _label(text: str, where: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = int(float(text))
    except ValueError:
        raise SourceError(f"{where}: label {text!r} is not a grade 0-{N_GRADES - 1}") from None
    if not 0 <= value < N_GRADES or value != float(text):
        raise SourceError(f"{where}: label {text!r} is not a grade 0-{N_GRADES - 1}")
    return value


def _relative_to(base: str, path: str) -> str:
    """Manifest paths are relative to the manifest's own folder, as a user reads them."""
    if is_url(path) or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base, path))


def _read_manifest(manifest: str) -> list[Item]:
    if is_url(manifest):
        raw = read_bytes(manifest)
    else:
        try:
            raw = Path(manifest).read_bytes()
        except OSError as e:
            raise SourceError(f"{manifest}: cannot read the manifest ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError(f"{os.path.basename(manifest)}: a manifest must be UTF-8 text") from None
    base = manifest.rsplit("/", 1)[0] if is_url(manifest) else os.path.dirname(os.path.abspath(manifest))
    name = os.path.basename(manifest)
    if manifest.lower().endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            raise SourceError(f"{name}: the manifest is empty")
        header = [h.strip().lower() for h in rows[0]]
        path_col = next((header.index(c) for c in PATH_COLUMNS if c in header), None)
        if path_col is None:
            raise SourceError(f"{name}: no path column (one of {', '.join(PATH_COLUMNS)}) in the header")
        label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
        items = []
        for n, row in enumerate(rows[1:], start=2):
            if not row or not "".join(row).strip():
                continue
            where = f"{name} line {n}"
            if len(row) <= path_col or not row[path_col].strip():
                raise SourceError(f"{where}: no path")
            label = _label(row[label_col], where) if label_col is not None and len(row) > label_col else None
            items.append(Item(_relative_to(base, row[path_col].strip()), label))
        return items
    items = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            items.append(Item(_relative_to(base, line)))
    return items


def resolve(source: str) -> list[Item]:
    """SOURCE -> the photographs to explain, in a stable order (duplicates kept once).

    A folder (local or URL) is walked for image files; a ``.csv`` manifest has a path
    column and optionally a label column; a ``.txt`` (or any other file) manifest has one
    path per line (``#`` starts a comment); a pattern with ``*``, ``?`` or ``[`` is a glob.
    """
    if _GLOB.search(source) and not is_url(source):
        items = [Item(p) for p in sorted(glob.glob(source, recursive=True)) if os.path.isfile(p) and _is_image(p)]
        where = f"{source}: no image matches the pattern"
    elif is_url(source):
        fsys, inner = filesystem(source)
        kind = fsys.get_file_info(inner).type.name
        if kind == "NotFound":
            raise SourceError(f"{source}: not found")
        items = [Item(p) for p in _list_folder(source)] if kind == "Directory" else _read_manifest(source)
        where = f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
    elif os.path.isdir(source):
        items = [Item(p) for p in _list_folder(source)]
        where = f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
    elif os.path.isfile(source):
        items = [Item(source)] if _is_image(source) else _read_manifest(source)
        where = f"{source}: the manifest lists no photographs"
    else:
        raise SourceError(f"{source}: no such folder, manifest or pattern")
    if not items:
        raise SourceError(where)
    seen: dict[str, Item] = {}
    for item in items:
        seen.setdefault(item.path, item)
    return list(seen.values())


__all__ = ["Item", "SourceError", "filesystem", "is_url", "read_bytes", "resolve"]
