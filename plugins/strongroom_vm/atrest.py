"""Disks read at rest: did they change while they were read?

An offline backup reads each disk image (or block device) from start to end.  If
something writes to it meanwhile (a VM that was started, a tool, a guest's disk shared
with another host), the point holds parts of the disk from different moments: a torn
disk that no file system check can be trusted to repair.  Nothing can make such a read
consistent after the fact, but it can be told:

- :func:`mark` notes, when the read begins, the image's size, modification and change
  times, and a digest of its first :data:`HEAD` bytes (read through the reader, so it is
  the guest-visible content for any format; for a block device, whose times do not move
  when it is written, the digest is what tells);
- :func:`changes` compares that mark with one taken when the read ends and names what
  changed (an empty list: nothing seen);
- :class:`ReadWatch` follows every disk of one backup: ``report(name, changes)`` is
  called (from the thread that read the disk) for each disk that changed, and
  :meth:`ReadWatch.wait` returns once every disk's read has ended, so the manifest
  written after it can say what was seen.

It promises no more than it says: a write that leaves the size and the times as they
were and misses the first chunk (possible only for block devices, or for a writer that
resets the times) is not seen.  An LVM, ZFS or btrfs snapshot, or a live backup through
QMP, is consistent; this check only keeps a torn point from passing as a good one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Callable

import attrs

__all__ = ["HEAD", "Mark", "ReadWatch", "changes", "mark"]

HEAD = 4 << 20  # the first chunk of a disk: partition tables, boot sectors, superblocks


@attrs.frozen
class Mark:
    """What a disk looked like at one moment."""

    size: int
    mtime_ns: int
    ctime_ns: int
    head: bytes  # sha256 of the first HEAD bytes ('' when not read)


def file_mark(path: str, head: bytes = b"") -> Mark:
    """The size and times of the image at ``path`` (size through ``seek``: block devices have no ``st_size``)."""
    st = os.stat(path)
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
    return Mark(size, st.st_mtime_ns, st.st_ctime_ns, head)


def head_digest(reader, size: int) -> bytes:
    """The digest of the first :data:`HEAD` bytes of ``reader``; leaves it at offset 0."""
    digest = hashlib.sha256()
    reader.seek(0)
    left = min(HEAD, size)
    while left > 0:
        data = reader.read(min(left, 1 << 20))
        if not data:
            break
        digest.update(data)
        left -= len(data)
    reader.seek(0)
    return digest.digest()


def mark(path: str, reader, size: int) -> Mark:
    return file_mark(path, head_digest(reader, size))


def changes(before: Mark, after: Mark) -> list[str]:
    """What differs between two marks of the same disk, in words."""
    out = []
    if before.size != after.size:
        out.append(f"size {before.size} -> {after.size} bytes")
    if before.mtime_ns != after.mtime_ns:
        out.append("modification time")
    if before.ctime_ns != after.ctime_ns:
        out.append("change time")
    if before.head and after.head and before.head != after.head:
        out.append(f"content of the first {HEAD >> 20} MiB")
    return out


class ReadWatch:
    """The disks of one backup being read (see the module documentation).

    ``expect(name)`` for each disk before its read is handed to the engine; ``done(name,
    found)`` exactly once per disk when its read ends or fails (``found`` None: nothing
    could be checked).
    """

    def __init__(self, report: Callable[[str, list[str]], None]) -> None:
        self._report = report
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self.changed: dict[str, list[str]] = {}

    def expect(self, name: str) -> None:
        with self._cond:
            self._pending.add(name)

    def done(self, name: str, found: list[str] | None) -> None:
        if found:
            self.changed[name] = found
            self._report(name, found)
        with self._cond:
            self._pending.discard(name)
            self._cond.notify_all()

    def wait(self) -> None:
        """Return once every expected disk's read has ended."""
        with self._cond:
            self._cond.wait_for(lambda: not self._pending)
