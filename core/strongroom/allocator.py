"""Keep the C allocator from holding on to memory the backup and restore pipelines free.

glibc's malloc gives each thread an arena and, by default, raises its mmap threshold
to the size of the largest block freed (up to 32 MiB): after the first pack is
freed, later packs and chunk buffers come from the arenas, and each arena may keep tens
of MiB of freed memory.  With a reader pool and an upload pool that measured about
120 MB of peak RSS more on a 2 GiB backup.  A fixed threshold ends the adjustment:
blocks of ``MMAP_THRESHOLD`` and more are mapped and unmapped on their own, the arenas
are trimmed as usual.  Buffers that are reused (the per-thread seal buffers) cost their
page faults once.

:func:`keep_freed_top` raises the other threshold, of the freed memory an arena keeps at
its top, for a pipeline whose buffers stay just below the mmap threshold.  Neither does
anything where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import functools

from .libc import libc_function

__all__ = ["MMAP_THRESHOLD", "keep_freed_top", "limit_retained_memory"]

#: Allocations from this size on are served by mmap and returned at once when freed.
MMAP_THRESHOLD = 1024 * 1024
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_M_TRIM_THRESHOLD = -1


def _mallopt():
    return libc_function("mallopt", ctypes.c_int, ctypes.c_int, ctypes.c_int)


@functools.cache
def keep_freed_top(nbytes: int) -> bool:
    """Let each arena keep up to ``nbytes`` freed at its top (glibc returns more than
    128 KiB to the system at once once the mmap threshold is fixed); whether it could be set.

    For a pipeline that allocates and frees buffers just below :data:`MMAP_THRESHOLD`
    one after the other: each came from the top of its thread's arena and went back to
    the system when freed, so every buffer was faulted in afresh (verify --read-data of
    the 2 GiB corpus: 280,000 page faults, 45,000 with 4 MiB kept), for at most
    ``nbytes`` more memory per arena."""
    mallopt = _mallopt()
    return mallopt is not None and mallopt(_M_TRIM_THRESHOLD, nbytes) == 1


@functools.cache
def limit_retained_memory() -> bool:
    """Fix glibc's mmap threshold (once per process); whether it could be set."""
    mallopt = _mallopt()
    return mallopt is not None and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
