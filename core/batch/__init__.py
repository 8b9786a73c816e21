"""Batch explanations at archive scale on Ray Data: a folder, manifest or glob in,
Parquet rows (and optionally maps) out, resumable by the photographs' sha256.

Ray and pyarrow are an optional extra (``requirements-batch.txt``); nothing else in
``core`` imports this package.
"""

from .pipeline import MAPS, BatchError, Options, Summary, previous_rows, read_rows, run_batch
from .rows import SCHEMA
from .sources import Item, SourceError, resolve

__all__ = ["MAPS", "SCHEMA", "BatchError", "Item", "Options", "SourceError", "Summary", "previous_rows", "read_rows", "resolve", "run_batch"]
