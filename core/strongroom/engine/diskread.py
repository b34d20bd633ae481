"""Reading a disk image for a backup: fixed-size chunks, holes for zeros, unchanged chunks reused.

A DISK entry (``entry.chunk_size`` > 0) is read in fixed-size chunks aligned to the
disk: all-zero chunks become holes (stored nowhere), and when the source entry has
``changed_chunks`` (a collection of chunk numbers that may differ from the parent
point, e.g. from a QEMU dirty bitmap), every other chunk is taken from the parent
point's entry at the same path without being read.  ``changed_chunks = None`` reads
everything.  The source's ``open()`` must then return a seekable file object.

An empty ``changed_chunks`` (nothing changed: the workload knows the disk is the
parent's, e.g. an image whose size and times are the parent's) takes the parent's
chunks without opening the source at all, and counts the disk as unchanged.

**What "read" counts.**  ``bytes_read`` is what was read from the source: a reader
that has a ``bytes_from_source`` attribute (bytes it actually read since it was opened; the holes of
a sparse file or of an NBD export, which it returns as zeros without reading, do not
count) is believed; for any other reader every byte of a chunk read counts.  The bytes
not read (holes, reused chunks) go to the progress's ``bytes_skipped``.

Promises: the entry returned has one chunk id per chunk of the disk (``b""`` for a
hole) and ``sparse`` set.  A changed-block map is used only when the parent entry is a
disk of the same size and chunk size whose chunks the index still holds all of;
otherwise the whole disk is read, with a warning.
Refuses: a disk image that ends before ``entry.size`` (OSError); an error from the
source's ``open()`` or reads is raised as it is, and fails the backup.
Writes: only through the backup's blob writer (data blobs), and the ``bytes_read``,
``files_read``, ``files_unchanged`` and ``chunks_reused`` counters of the backup's stats (and the progress
counters ``bytes_skipped`` and ``current``), under its lock; ``report()`` after each chunk read.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

import attrs

from ..catalog.entry import DISK, Entry
from ..repository.envelope import KIND_DATA

if TYPE_CHECKING:
    from ..repository.blobwriter import BlobWriter
    from ..repository.repository import Repository
    from ..results import BackupStats
    from ..sources import SourceEntry

__all__ = ["DiskReader"]


def _read_exactly(fh, length: int) -> bytes:
    """``length`` bytes from ``fh`` (several reads if the source returns short ones)."""
    data = fh.read(length)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = fh.read(length - got)
        if not more:
            raise OSError(f"disk image ended after {got} of {length} bytes of a chunk")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


@attrs.frozen
class DiskReader:
    """Reads the DISK entries of one backup (see the module docstring).

    ``repo.index`` (as it is when a disk is read) tells whether the parent's chunks are
    still held; ``stats`` and ``lock`` are the backup's own (its reader threads share
    them); ``warn`` records a warning of the backup.
    """

    writer: BlobWriter
    repo: Repository
    stats: BackupStats
    lock: threading.Lock
    warn: Callable[[str], None]
    report: Callable[[], None] = lambda: None  # the backup's (throttled) progress

    def read(self, src: SourceEntry, parent: Entry | None) -> Entry:
        """Fixed-size chunks of a disk image; holes for zeros; unchanged chunks reused.

        ``parent`` is the parent point's entry at ``src.path``, if there is one.
        """
        entry = src.entry
        size, chunk_size = entry.size, entry.chunk_size
        count = -(-size // chunk_size) if size else 0
        changed = getattr(src, "changed_chunks", None)
        reusable: tuple[bytes, ...] = ()
        if (
            changed is not None and parent is not None and parent.type == DISK
            and parent.chunk_size == chunk_size and parent.size == size
            and all(not c or c in self.repo.index for c in parent.chunks)
        ):
            reusable = parent.chunks
        elif changed is not None:
            self.warn(f"{src.path}: no usable parent point for the changed-block map; reading the whole disk")
            changed = None
        changed = set(changed) if changed is not None else None
        self.stats.current = src.path
        if changed is not None and not changed:  # the parent's disk as it is: nothing to open
            with self.lock:
                self.stats.files_unchanged += 1
                self.stats.chunks_reused += count
                self.stats.bytes_skipped += size
            return attrs.evolve(entry, chunks=tuple(reusable), sparse=True)
        zero = bytes(chunk_size)
        chunks: list[bytes] = []
        reused = read = 0
        with src.open() as fh:
            # what the reader read since it was opened (a check of the disk's head counts too); None: it does not say
            counted = None if getattr(fh, "bytes_from_source", None) is None else 0
            position = 0
            for i in range(count):
                length = min(chunk_size, size - i * chunk_size)
                if changed is not None and i not in changed:
                    chunks.append(reusable[i])
                    reused += 1
                    with self.lock:
                        self.stats.bytes_skipped += length
                    continue
                if position != i * chunk_size:
                    fh.seek(i * chunk_size)
                data = _read_exactly(fh, length)
                position = i * chunk_size + length
                read += length
                if data == (zero if length == chunk_size else bytes(length)):
                    chunks.append(b"")
                else:
                    chunks.append(self.writer.add(KIND_DATA, data))
                if counted is not None:
                    now = fh.bytes_from_source
                    from_source, counted = now - counted, now
                else:
                    from_source = length
                with self.lock:
                    self.stats.bytes_read += from_source
                    self.stats.bytes_skipped += max(0, length - from_source)
                self.report()
        with self.lock:
            self.stats.files_read += 1
            self.stats.chunks_reused += reused
        return attrs.evolve(entry, chunks=tuple(chunks), sparse=True)
