"""Reading a file below the minimum chunk size whole, with one ``os.read`` and no file object.

A tree of many small files is most backups' common case; a file object and a buffered
reader per file cost more than the read.  The file is opened with ``O_NOATIME`` where
the process may (it owns the file, or may ignore that): a backup should not change
what it reads.
"""

from __future__ import annotations

import os

__all__ = ["O_NOATIME", "read_small_file"]

O_NOATIME = getattr(os, "O_NOATIME", 0)
_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)


def read_small_file(path: str, size: int) -> bytes | None:
    """The content of the file at ``path``, listed with ``size`` bytes, or ``None``: it
    grew past that size, or cannot be opened or read (the caller then reads it the
    general way, which tells why)."""
    try:
        try:
            fd = os.open(path, _FLAGS | O_NOATIME)
        except PermissionError:  # O_NOATIME needs ownership of the file
            if not O_NOATIME:
                raise
            fd = os.open(path, _FLAGS)
        try:
            data = os.read(fd, size + 1)
        finally:
            os.close(fd)
    except OSError:
        return None
    return data if len(data) <= size else None
