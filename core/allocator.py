"""Keep large freed blocks in the process instead of handing them back to the kernel.

glibc's malloc serves blocks above its mmap threshold (dynamic, at most 32 MB) with a fresh
mapping and unmaps them on free, and trims free memory at the top of the heap; the
propagation's temporaries (up to 130 MB at layer 1) are then faulted in page by page again
on every explanation. Measured on 2 cores, 5 explanations in a row: 1.4-1.7 s of system time
and 650-760k page faults beside 6.9 s of user time; with large blocks kept, 0.06 s and 30-40k,
and 25-38 % less wall time, for 30-50 MB more peak memory (``python -m core bench`` prints the
figures). The command line and the batch actors call this (one job a process); the viewer does
not, because its sessions' threads each have an arena that would keep its peak for good.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
LARGE = 1 << 30  # blocks up to 1 GB come from the heap and are reused
TRIM = 1 << 30  # free memory at the heap's top is returned only beyond 1 GB


@functools.cache
def _glibc(name: str, *argtypes: type) -> Callable[..., int] | None:
    """glibc's function ``name`` (returning int), looked up once; None on another C library or platform."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):  # musl or no libc.so.6: leave the allocator as it is
        return None
    fn.argtypes, fn.restype = list(argtypes), ctypes.c_int
    return fn


def keep_large_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False (and nothing
    changed) on another C library or platform."""
    mallopt = _glibc("mallopt", ctypes.c_int, ctypes.c_int)
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, LARGE) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM) == 1


def release_free_memory() -> bool:
    """Hand every arena's free pages back to the kernel now (glibc's ``malloc_trim``): after a
    large temporary job in a long-lived, many-threaded process. False where there is no glibc."""
    trim = _glibc("malloc_trim", ctypes.c_size_t)
    if trim is None:
        return False
    trim(0)
    return True


__all__ = ["keep_large_blocks", "release_free_memory"]
