"""Writing file content for a restore: sparse writes, and a cache of open files.

- :func:`data_runs` says which ranges of a piece of content to write so that every
  all-zero block of :data:`HOLE_BLOCK` bytes (aligned to file offsets) stays a hole,
  whatever the chunk boundaries were; :func:`pwrite_all` writes one range completely.
- :class:`FdCache` keeps files open by path, so that blocks can arrive for many files
  out of order; the least recently used is closed first, never while a thread is writing
  to it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import attrs

__all__ = ["HOLE_BLOCK", "FdCache", "OpenFile", "data_runs", "pwrite_all"]

HOLE_BLOCK = 4096  # granularity at which sparse writes leave zeros out


def data_runs(data: bytes | memoryview, offset: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` ranges of ``data`` to write so that zero blocks stay holes.

    ``data`` is cut at file offsets that are multiples of ``HOLE_BLOCK``; a piece that is
    all zeros is left out, neighbouring pieces with data are merged into one range.
    """
    view = memoryview(data).cast("B")
    size = len(view)
    head = min(-offset % HOLE_BLOCK, size)
    bounds = [0, *range(head, size, HOLE_BLOCK), size] if head else [*range(0, size, HOLE_BLOCK), size]
    runs: list[tuple[int, int]] = []
    start = None  # of the run of pieces with data being gathered
    for begin, end in zip(bounds, bounds[1:]):
        # most pieces of data are told apart by their first byte; the others are compared
        # with zeros whole (a copy of at most HOLE_BLOCK bytes and a memcmp)
        zeros = not view[begin] and view[begin:end].tobytes() == (_ZEROS if end - begin == HOLE_BLOCK else
                                                                    bytes(end - begin))
        if zeros and start is not None:
            runs.append((start, begin))
            start = None
        elif not zeros and start is None:
            start = begin
    if start is not None:
        runs.append((start, size))
    return runs


_ZEROS = bytes(HOLE_BLOCK)


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


@attrs.define(eq=False)
class OpenFile:
    fd: int
    users: int = 0
    evicted: bool = False


@attrs.define
class FdCache:
    """Open files by relative path, least recently used closed first, never while in use."""

    capacity: int
    _files: OrderedDict[str, OpenFile] = attrs.field(factory=OrderedDict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def add(self, relpath: str, fd: int) -> None:
        with self._lock:
            self._insert(relpath, OpenFile(fd))

    def acquire(self, relpath: str, opener: Callable[[], int]) -> OpenFile:
        with self._lock:
            handle = self._files.get(relpath)
            if handle is None:
                handle = OpenFile(opener())
                self._insert(relpath, handle)
            else:
                self._files.move_to_end(relpath)
            handle.users += 1
            return handle

    def release(self, handle: OpenFile) -> None:
        with self._lock:
            handle.users -= 1
            if handle.evicted and not handle.users:
                os.close(handle.fd)

    def take(self, relpath: str) -> int | None:
        """Remove a file from the cache; its fd if it was idle (the caller closes it)."""
        with self._lock:
            handle = self._files.pop(relpath, None)
            if handle is None:
                return None
            if handle.users:
                handle.evicted = True
                return None
            return handle.fd

    def close_all(self) -> None:
        with self._lock:
            while self._files:
                self._evict(self._files.popitem(last=False)[1])

    def _insert(self, relpath: str, handle: OpenFile) -> None:
        old = self._files.pop(relpath, None)
        if old is not None:
            self._evict(old)
        self._files[relpath] = handle
        while len(self._files) > self.capacity:
            self._evict(self._files.popitem(last=False)[1])

    @staticmethod
    def _evict(handle: OpenFile) -> None:
        handle.evicted = True
        if not handle.users:
            os.close(handle.fd)
