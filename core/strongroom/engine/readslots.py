"""How many large files a backup reads at once: one per reader thread, one less while
the walk is busy.

A backup's reader threads each read, cut, hash, compress and encrypt a large file, one
per CPU (at least two).  A backup with a parent point also has a walk that is busy: it compares every
file scanned with the parent's rows and writes the changed folders' nodes, in one thread
that the whole backup waits for.  With a reader per CPU beside it, that thread got half
a core while images were read (after a day of changes of the 2 GiB corpus: 1.80 s, and
11 MiB of buffers for the second reader, against 1.73 s with one reader).

:class:`ReadSlots` lets one large file fewer than there are readers be read at once
while the walk says it is busy (:meth:`ReadSlots.walking`), and one per reader when it is
not: before it starts, while it waits (for room in the read queue, for a folder's
files), and once the scan has ended.  A backup of large files whose walk has little to
do (a few changed logs, a disk image) so still reads one per reader; a first backup's walk
(no parent point: it only scans) never counts as busy.  At least one file is read at once
whatever the walk does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["ReadSlots"]


class ReadSlots:
    """Large-file reads at once: at most ``slots``, one less while the walk is busy."""

    def __init__(self, slots: int) -> None:
        self._slots = max(1, slots)
        self._active = 0
        self._walk_busy = False
        self._changed = threading.Condition()

    @property
    def allowed(self) -> int:
        """How many reads may run now."""
        return max(1, self._slots - self._walk_busy)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold a slot while a large file is read (waits for one)."""
        with self._changed:
            while self._active >= self.allowed:
                self._changed.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._changed:
                self._active -= 1
                self._changed.notify()

    def walking(self, busy: bool) -> None:
        """The walk is busy (True) or waits, or has ended (False)."""
        with self._changed:
            if busy != self._walk_busy:
                self._walk_busy = busy
                self._changed.notify_all()

    @contextlib.contextmanager
    def walk_waits(self) -> Iterator[None]:
        """While the busy walk waits (for room in the queue, for a reader): a slot more."""
        busy = self._walk_busy
        if busy:
            self.walking(False)
        try:
            yield
        finally:
            if busy:
                self.walking(True)
