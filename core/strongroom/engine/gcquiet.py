"""Fewer cyclic garbage collections while a backup walks a large tree.

A backup of many small files makes millions of short-lived objects (entries, sources,
slots) and holds every object the program imported: with the default thresholds the
collector runs thousands of times and its full collections walk all of them (measured:
0.58 s of 8.2 s CPU for 100,000 files, 6.5 s of 83 s for 1,000,000).  :func:`quiet_gc`
freezes the objects alive when the backup starts (:func:`gc.freeze`: never scanned
again until the end) and raises the first threshold to :data:`GEN0_THRESHOLD`
allocations, so the collector still runs, about 30 times less often (0.05 s for
100,000 files).  Nothing is disabled: cyclic garbage is still freed, later.

Several backups in one process may overlap: the first to enter changes the settings
and the last to leave restores the thresholds it found and unfreezes.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["GEN0_THRESHOLD", "quiet_gc"]

GEN0_THRESHOLD = 20_000
_GEN1, _GEN2 = 50, 1000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Collect less often inside the block (see the module docstring)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(GEN0_THRESHOLD, _saved[0]), max(_GEN1, _saved[1]), max(_GEN2, _saved[2]))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                gc.unfreeze()
                _saved = None
