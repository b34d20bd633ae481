"""Which files the page cache holds, and dropping a tree of files from it.

The bench drops every tool's repository from the page cache before each restore and
verify (:func:`evict`), so that all tools read their repositories from the disk: a tool
that writes through the page cache would otherwise read its repository from memory, and
one that writes past it (strongroom's packs, ``O_DIRECT``) from the disk.  No root is
needed: ``posix_fadvise(POSIX_FADV_DONTNEED)`` drops the clean pages of one file, and
the files are synced first so that none of their pages is dirty.
"""

from __future__ import annotations

import ctypes
import mmap
import os

from strongroom.libc import libc_function

__all__ = ["evict", "resident_pages"]


def _files(root: str):
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                yield path


def evict(root: str) -> int:
    """Sync the files under ``root`` and drop them from the page cache; their count."""
    paths = list(_files(root))
    os.sync()
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return len(paths)


def resident_pages(path: str) -> tuple[int, int]:
    """(pages of the file at ``path`` in the page cache, pages of the file), by ``mincore``."""
    mincore = libc_function("mincore", ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    size = os.path.getsize(path)
    pages = -(-size // mmap.PAGESIZE)
    if not size:
        return 0, 0
    with open(path, "rb") as fh:
        mapping = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY)  # untouched: no page faulted in
    try:
        anchor = ctypes.c_char.from_buffer(mapping)
        vector = (ctypes.c_ubyte * pages)()
        if mincore(ctypes.addressof(anchor), size, vector) != 0:
            raise OSError(f"mincore failed on {path}")
        del anchor
        return sum(v & 1 for v in vector), pages
    finally:
        mapping.close()
