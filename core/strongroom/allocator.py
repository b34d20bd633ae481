"""Keep the C allocator from holding on to memory the backup and restore pipelines free.

glibc's malloc gives each thread an arena and, by default, raises its mmap threshold
to the size of the largest block freed (up to 32 MiB): after the first pack is
freed, later packs and chunk buffers come from the arenas, and each arena may keep tens
of MiB of freed memory.  With a reader pool and an upload pool that measured about
120 MB of peak RSS more on a 2 GiB backup.  A fixed threshold ends the adjustment:
blocks of ``MMAP_THRESHOLD`` and more are mapped and unmapped on their own, the arenas
are trimmed as usual.  Buffers that are reused (the per-thread seal buffers) cost their
page faults once.

:func:`limit_retained_memory` does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import functools

__all__ = ["MMAP_THRESHOLD", "limit_retained_memory"]

#: Allocations from this size on are served by mmap and returned at once when freed.
MMAP_THRESHOLD = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h


@functools.cache
def limit_retained_memory() -> bool:
    """Fix glibc's mmap threshold (once per process); whether it could be set."""
    try:
        # The running process's own symbols, the C library's among them: no search for
        # the library (ctypes.util.find_library runs ldconfig, about 17 ms).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
