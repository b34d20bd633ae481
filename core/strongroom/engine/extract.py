"""Writing entries that a workload reads itself (files found inside a disk image, say)
into a target folder, through the same safe writer as a restore.

:func:`write_entries` takes ``(relpath, entry, content)`` triples in pre-order: a folder
(``entry.type == "dir"``), a symbolic link (``"symlink"``, ``entry.target``) or a file
(``"file"``, ``content`` an iterable of byte strings in order).  Anything else is
skipped with a warning.  Paths are checked by :class:`~strongroom.engine.fswrite.TreeWriter`:
nothing is written outside ``target`` (:class:`~strongroom.errors.UnsafePath`), and a
path given twice is written once.  File content is written sparse (all-zero blocks
become holes); metadata (mode, owner where allowed, times) is set as each file ends and
on folders at the end, deepest first.
"""

from __future__ import annotations

import time
from typing import Iterable

from ..catalog.entry import DIR, FILE, SYMLINK, Entry
from .fswrite import TreeWriter
from ..results import RestoreResult, RestoreStats

__all__ = ["write_entries"]


def write_entries(target: str, entries: Iterable[tuple[str, Entry, Iterable[bytes] | None]], *,
                  progress=None) -> RestoreResult:
    """Write ``entries`` under ``target``; see the module docstring."""
    started = time.monotonic()
    stats = RestoreStats()
    writer = TreeWriter(target)
    seen: set[str] = set()
    try:
        for relpath, entry, content in entries:
            if relpath in seen:
                continue
            seen.add(relpath)
            if entry.type == DIR:
                writer.make_dir(relpath, entry)
                stats.dirs += 1
            elif entry.type == SYMLINK:
                writer.make_symlink(relpath, entry)
                stats.links += 1
            elif entry.type == FILE:
                writer.create_file(relpath, entry)
                offset = 0
                for data in content or ():
                    writer.write(relpath, offset, data, sparse=True)
                    offset += len(data)
                    stats.bytes_written += len(data)
                writer.finish_file(relpath, entry)
                stats.files += 1
            else:
                writer.warnings.append(f"{relpath}: {entry.type} not restored")
            if progress is not None:
                progress(stats)
    finally:
        writer.close()
    stats.seconds = round(time.monotonic() - started, 3)
    return RestoreResult(stats, (), (), tuple(writer.warnings))
