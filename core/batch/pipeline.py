"""The batch pipeline on Ray Data: read -> decode and assess (CPU tasks) -> explain and
summarise (an actor pool, the model loaded once per actor) -> Parquet.

Ray does the scheduling, streaming, retries and progress; this module only says what
each stage does with one photograph. Every failure becomes an error row, so one bad
file never stops a run of thousands. A rerun with the same weights skips every
photograph whose bytes (sha256) already have a row in the output folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import pickle
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from ..errors import CoreError
from ..weights import LoadedModel
from .rows import SCHEMA, error_row, summary_row, to_table
from .sources import Item, filesystem, is_url, read_bytes

MAPS = ("none", "masks", "all")
ROWS = "rows"  # Parquet part files: DIR/rows/*.parquet
ROWS_PER_FILE = 128
MAP_DIR = "maps"  # DIR/maps/<sha256>.mask.png, DIR/maps/<sha256>.explanation.npz
_DONE_COLUMNS = ("sha256", "weights_sha256", "maps", "error")
EXPLAIN_FAILED = "explanation failed"
_STAGED = pa.schema([
    ("path", pa.string()),
    ("label", pa.int8()),
    ("sha256", pa.string()),
    ("bytes", pa.int64()),
    ("error", pa.string()),
    ("fundus", pa.large_binary()),  # the prepared Fundus, pickled (our own objects between our own workers)
])


class BatchError(CoreError):
    """A batch that cannot start (output folder, Ray); one line to show."""


@dataclass(frozen=True)
class Options:
    """What a run needs besides its photographs."""

    out: str
    maps: str = "none"
    k: float = 2.0
    ray_address: str | None = None
    num_gpus: int = 0
    limit: int | None = None
    actors: int | None = None  # explain actors; default: one per GPU, else one per 4 CPUs
    threads: int | None = None  # torch threads per actor; default: the CPUs divided among the actors
    quiet: bool = False


@dataclass(frozen=True)
class Summary:
    """What a run did, for the final line."""

    listed: int
    explained: int
    failed: int
    ungradable: int
    skipped: int
    seconds: float
    rows_dir: str

    @property
    def per_second(self) -> float:
        return (self.explained + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"{self.explained + self.failed} images in {self.seconds:.1f} s ({self.per_second:.2f} images/s): "
                f"{self.explained} explained ({self.ungradable} ungradable), {self.failed} failures"
                f"{f', {self.skipped} skipped (rows already in the output)' if self.skipped else ''} -> {self.rows_dir}")


# ----------------------------------------------------------------------------- the output folder


def _out_fs(out: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The output's filesystem and root path (local folders, and URLs as the sources open them)."""
    out = os.fspath(out)
    if is_url(out):
        return filesystem(out)
    return pafs.LocalFileSystem(), os.path.abspath(out)


def previous_rows(out: str | os.PathLike, weights_sha256: str, maps: str) -> frozenset[str]:
    """The sha256 of every photograph the output already holds a row for, made with these
    weights and at least these maps; a part file another model wrote is refused, so
    one folder never mixes models."""
    fsys, root = _out_fs(out)
    rows_dir = f"{root}/{ROWS}"
    if fsys.get_file_info(rows_dir).type == pafs.FileType.NotFound:
        return frozenset()
    level = MAPS.index(maps)
    done: set[str] = set()
    for info in fsys.get_file_info(pafs.FileSelector(rows_dir)):
        if not info.path.endswith(".parquet"):
            continue
        try:
            table = pq.read_table(info.path, filesystem=fsys, columns=list(_DONE_COLUMNS))
        except (pa.ArrowInvalid, OSError):
            # An interrupted run can leave a truncated part file: set it aside, redo its photographs.
            fsys.move(info.path, info.path + ".unreadable")
            continue
        for sha, wsha, m, error in zip(*(table.column(c).to_pylist() for c in _DONE_COLUMNS), strict=True):
            if wsha != weights_sha256:
                raise BatchError(f"{out} holds results of other weights (sha256 {str(wsha)[:12]}); choose another --out")
            # A file that cannot be decoded fails the same way again; an explanation that
            # failed (memory, a lost worker) is worth another try.
            retry = error is not None and error.startswith(EXPLAIN_FAILED)
            if sha and not retry and m in MAPS and MAPS.index(m) >= level:
                done.add(sha)
    return frozenset(done)


def read_rows(out: str | os.PathLike) -> pa.Table:
    """Every row in an output folder (all runs), as one table."""
    fsys, root = _out_fs(out)
    files = [i.path for i in fsys.get_file_info(pafs.FileSelector(f"{root}/{ROWS}", allow_not_found=True)) if i.path.endswith(".parquet")]
    if not files:
        return SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(f, filesystem=fsys, schema=SCHEMA) for f in sorted(files)])


# ----------------------------------------------------------------------------- the stages


def prepare(batch: pa.Table, done: frozenset[str]) -> pa.Table:
    """Read, hash, skip what is done, decode, find the field of view, assess gradability."""
    from ..fundus import FundusReadError, read_fundus

    out: list[dict[str, Any]] = []
    for rec in batch.to_pylist():
        row = {"path": rec["path"], "label": rec["label"], "sha256": None, "bytes": None, "error": None, "fundus": None}
        try:
            data = read_bytes(rec["path"])
        except FundusReadError as e:
            row["error"] = str(e)
        except FileNotFoundError:
            row["error"] = "file not found"
        except (OSError, ValueError) as e:
            row["error"] = f"cannot read the file: {e}"
        else:
            row["sha256"], row["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
            if row["sha256"] in done:
                continue
            try:
                fundus = read_fundus(data, name=os.path.basename(rec["path"]))
                # A DICOM header carries the patient's name: it does not travel through
                # Ray's object store (which may spill to disk); the rows do not need it.
                fundus = dataclasses.replace(fundus, dicom=None)
                row["fundus"] = pickle.dumps(fundus, protocol=pickle.HIGHEST_PROTOCOL)
            except FundusReadError as e:
                row["error"] = str(e)
        out.append(row)
    return pa.Table.from_pylist(out, schema=_STAGED)


class Explainer:
    """An actor: the model loaded once, then explain, summarise and write maps per photograph."""

    def __init__(self, model: LoadedModel, opts: Options, run: dict[str, Any], device: str, threads: int) -> None:
        import torch

        from ..allocator import keep_large_blocks

        keep_large_blocks()  # an actor explains one photograph after another: reuse the temporaries
        torch.set_num_threads(threads)
        self.model, self.opts, self.run = model, opts, run
        model.network.to(device)
        self.fs, self.root = _out_fs(opts.out)
        if opts.maps != "none":
            self.fs.create_dir(f"{self.root}/{MAP_DIR}", recursive=True)

    def _put(self, name: str, data: bytes) -> str:
        with self.fs.open_output_stream(f"{self.root}/{MAP_DIR}/{name}") as f:
            f.write(data)
        return f"{MAP_DIR}/{name}"

    def _maps(self, exp, sha: str) -> dict[str, str | None]:
        from PIL import Image

        written: dict[str, str | None] = {"mask_png": None, "explanation_npz": None}
        if self.opts.maps in ("masks", "all"):
            buf = io.BytesIO()
            Image.fromarray(exp.mask(exp.grade, self.opts.k)).save(buf, format="PNG", optimize=True)
            written["mask_png"] = self._put(f"{sha}.mask.png", buf.getvalue())
        if self.opts.maps == "all":
            written["explanation_npz"] = self._put(f"{sha}.explanation.npz", exp.npz_bytes())
        return written

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ..explanation import explain

        rows = []
        for rec in batch.to_pylist():
            ids = {"sha256": rec["sha256"], "size": rec["bytes"], "label": rec["label"], "run": self.run}
            if rec["error"] is not None:
                rows.append(error_row(rec["path"], rec["error"], **ids))
                continue
            try:
                start = time.perf_counter()
                exp = explain(self.model, pickle.loads(rec["fundus"]))
                files = self._maps(exp, rec["sha256"])
                row = summary_row(exp, path=rec["path"], sha256=rec["sha256"], size=rec["bytes"], label=rec["label"],
                                  k=self.opts.k, seconds=time.perf_counter() - start, run=self.run)
                row.update(files)
            except Exception as e:  # one photograph's failure is its row, never the run's end
                row = error_row(rec["path"], f"{EXPLAIN_FAILED} ({type(e).__name__}: {e})", **ids)
            rows.append(row)
        return to_table(rows)


# ----------------------------------------------------------------------------- the run


def _start_ray(opts: Options) -> bool:
    """Connect to the cluster, or start a local Ray; True when this call started it."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage statistics leave this machine
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING"}
    if opts.ray_address:
        # The cluster's workers import this very package: ship it (the weights travel as an object).
        kwargs["runtime_env"] = {"py_modules": [str(Path(__file__).resolve().parents[1])]}
        ray.init(address=opts.ray_address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, num_gpus=opts.num_gpus or None, **kwargs)
    return True


class _NotOurWarning(logging.Filter):
    """Ray Data warns "no available CPUs" when it looks again after the run, while the
    finished actors still hold their CPUs: it is not true of this pipeline."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "does not have any available CPUs" not in record.getMessage()


def _tidy_logging(quiet: bool) -> None:
    log = logging.getLogger("ray.data")
    if not any(isinstance(f, _NotOurWarning) for f in log.filters):
        for name in ("ray.data", "ray.data.dataset"):
            logging.getLogger(name).addFilter(_NotOurWarning())
    if quiet:  # (Ray Data itself warns that progress bars are off)
        log.setLevel(logging.ERROR)


def _placement(opts: Options) -> tuple[int, int, str, float]:
    """(actors, torch threads per actor, device, CPUs each actor reserves)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    if opts.num_gpus:
        actors = opts.actors or opts.num_gpus
        return actors, opts.threads or 2, "cuda", 1.0
    actors = opts.actors or max(1, cpus // 4)
    threads = opts.threads or max(1, cpus // actors)
    # Each actor reserves one CPU fewer than its threads use (at least one), so the decoding
    # tasks always find a CPU to run on and keep the actors fed.
    return actors, threads, "cpu", float(max(1, threads - 1))


def run_batch(items: Iterable[Item], model: LoadedModel, opts: Options) -> Summary:
    """Explain every photograph of ``items`` into Parquet rows under ``opts.out``."""
    import ray
    import ray.data

    items = list(items)
    if opts.maps not in MAPS:
        raise BatchError(f"--maps must be one of {', '.join(MAPS)}, not {opts.maps!r}")
    fsys, root = _out_fs(opts.out)
    try:
        fsys.create_dir(f"{root}/{ROWS}", recursive=True)
    except OSError as e:
        raise BatchError(f"cannot write to {opts.out}: {e}") from None
    if opts.num_gpus and not opts.ray_address:
        import torch

        if torch.cuda.device_count() < opts.num_gpus:
            raise BatchError(f"--num-gpus {opts.num_gpus}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    done = previous_rows(opts.out, model.sha256, opts.maps)
    started = _start_ray(opts)
    _tidy_logging(opts.quiet)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = not opts.quiet
        actors, threads, device, reserve = _placement(opts)
        run = {"run_id": uuid.uuid4().hex, "weights": model.name, "weights_sha256": model.sha256, "maps": opts.maps}
        begin = time.perf_counter()
        ds = ray.data.from_items([{"path": i.path, "label": i.label} for i in items],
                                 override_num_blocks=max(1, min(len(items), 4 * actors * 8)))
        # Half a CPU each: decoding is light beside the explanation, and a reservation unlike
        # the actors' keeps Ray from fusing the two stages (decoding then overlaps explaining).
        ds = ds.map_batches(prepare, batch_size=4, batch_format="pyarrow", num_cpus=0.5, fn_kwargs={"done": done})
        if opts.limit is not None:
            ds = ds.limit(opts.limit)
        ds = ds.map_batches(
            Explainer, batch_size=4, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            num_cpus=reserve, num_gpus=1 if device == "cuda" else 0,
            fn_constructor_args=(model, opts, run, device, threads),
        )
        # Part files of ROWS_PER_FILE rows: few files for an archive, little lost to an interruption.
        try:
            ds.write_parquet(f"{root}/{ROWS}", filesystem=fsys, min_rows_per_file=ROWS_PER_FILE)
        except Exception as e:  # a lost node, an actor killed for memory: Ray gives up after its retries
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise BatchError(f"the Ray pipeline stopped ({type(e).__name__}: {first}); the rows written so far are "
                             "kept: run the same command again to go on") from None
        seconds = time.perf_counter() - begin
    finally:
        if started:
            ray.shutdown()
    mine = read_rows(opts.out).filter(pc.field("run_id") == run["run_id"])
    failed = int(np.sum(mine.column("error").is_valid().to_numpy(zero_copy_only=False)))
    gradable = mine.column("gradable").to_pylist()
    processed = mine.num_rows
    return Summary(
        listed=len(items), explained=processed - failed, failed=failed,
        ungradable=sum(1 for g in gradable if g is False), seconds=seconds,
        skipped=len(items) - processed if opts.limit is None else 0,
        rows_dir=f"{opts.out.rstrip('/')}/{ROWS}",
    )


__all__ = ["MAPS", "BatchError", "Explainer", "Options", "Summary", "prepare", "previous_rows", "read_rows", "run_batch"]
