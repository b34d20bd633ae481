"""Writing entries that a workload reads itself (files found inside a disk image, say)
into a target folder, through the same safe writer as a restore.

:func:`write_entries` takes ``(relpath, entry, content)`` triples in pre-order: a folder
(``entry.type == "dir"``), a symbolic link (``"symlink"``, ``entry.target``) or a file
(``"file"``, ``content`` an iterable of byte strings in order).  Anything else is
skipped with a warning.  Paths are checked by :class:`~strongroom.engine.fswrite.TreeWriter`:
nothing is written outside ``target`` (:class:`~strongroom.errors.UnsafePath`), and a
path given twice is written once.  What the target already has is replaced or kept as
``overwrite`` says, and a folder that is not empty is never removed (the writer's rules).
File content is written sparse (all-zero blocks become holes); metadata (mode, owner
where allowed, times) is set as each file ends and on folders at the end, deepest first.

What the target refuses is handled as a restore does (:mod:`.targetlog`): a path in the
way is kept and nothing below a kept folder is written, a file whose write fails is
removed, a full or read-only file system stops at once; one
:class:`~strongroom.errors.TargetError` names them after everything else is written.
"""

from __future__ import annotations

import time
from typing import Iterable

from ..catalog.entry import DIR, FILE, SYMLINK, Entry
from ..errors import PathInTheWay
from .fswrite import TreeWriter
from .targetlog import TargetLog, TargetStopped
from ..results import RestoreResult, RestoreStats

__all__ = ["write_entries"]


def write_entries(target: str, entries: Iterable[tuple[str, Entry, Iterable[bytes] | None]], *,
                  progress=None, overwrite: str = "always") -> RestoreResult:
    """Write ``entries`` under ``target``; see the module docstring."""
    started = time.monotonic()
    stats = RestoreStats()
    writer = TreeWriter(target, overwrite=overwrite)
    log = TargetLog()
    blocked: set[str] = set()  # folders not written: nothing below them is
    seen: set[str] = set()
    removed: list[str] = []
    try:
        for relpath, entry, content in entries:
            if relpath in seen:
                continue
            seen.add(relpath)
            if relpath.rpartition("/")[0] in blocked:
                if entry.type == DIR:
                    blocked.add(relpath)
                continue
            try:
                if entry.type == DIR:
                    writer.make_dir(relpath, entry)
                    stats.dirs += 1
                elif entry.type == SYMLINK:
                    if writer.make_symlink(relpath, entry):
                        stats.links += 1
                    else:
                        stats.skipped += 1
                elif entry.type == FILE:
                    if _write_file(writer, relpath, entry, content, stats, log, removed):
                        stats.files += 1
                else:
                    writer.warnings.append(f"{relpath}: {entry.type} not restored")
            except PathInTheWay as exc:
                log.keep(exc)
                if entry.type == DIR:
                    blocked.add(relpath)
            except OSError as exc:
                if entry.type == DIR:
                    blocked.add(relpath)
                log.refused(f"{writer.root}/{relpath}", exc)
            if progress is not None:
                progress(stats)
    except TargetStopped:
        pass
    finally:
        writer.close()
    log.raise_if_any(removed=removed)
    stats.seconds = round(time.monotonic() - started, 3)
    return RestoreResult(stats, (), (), tuple(writer.warnings))


def _write_file(writer: TreeWriter, relpath: str, entry: Entry, content: Iterable[bytes] | None,
                stats: RestoreStats, log: TargetLog, removed: list[str]) -> bool:
    """Write one file; False if it is kept.  A file whose write fails is removed (and,
    when that stops everything, listed in ``removed``) before the error goes on."""
    if not writer.create_file(relpath, entry):
        stats.skipped += 1
        return False
    offset = 0
    try:
        for data in content or ():
            writer.write(relpath, offset, data, sparse=True)
            offset += len(data)
            stats.bytes_written += len(data)
        writer.finish_file(relpath, entry)
    except OSError as exc:
        writer.discard(relpath)
        shown = f"{writer.root}/{relpath}"
        try:
            log.refused(shown, exc, " (the file was removed)")
        except TargetStopped:
            removed.append(shown)
            raise
        return False
    except BaseException:
        writer.discard(relpath)
        raise
    return True
