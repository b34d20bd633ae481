"""Runs of zero bytes in a chunker's read window (:meth:`.chunker.Chunker.chunks` with a
``zero_run``).

Whether a range is all zero bytes is asked of libc's ``memcmp`` through ctypes (the range
against itself shifted by one byte, after its first byte: equal exactly when every byte
is zero), which releases the GIL while it reads: the holes of sparse files and disk
images are read at memory speed while the walk and the other readers run.  Where ctypes
cannot, the window's own ``count`` answers (slower, with the GIL held); the result is
the same.  Where the first non-zero byte of a range is, is narrowed down the same way,
then looked for in at most :data:`FINE` bytes by stripping their zeros.

Bytes the stream says it filled in as zero (the holes of a sparse file,
:attr:`.holeread.HoleSkippingReader.zeros`) are noted (:meth:`ZeroRuns.note_zeros`) and
not looked at again: a run that starts in a hole is known to last to its end, and only
what follows is searched.  The answers are the same; a disk image's holes cost no search.

No numpy: a reader thread that meets the first zero run of a backup does not import it
(about 50 ms with the GIL held, while the other readers wait for the import to end).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Callable

from ..libc import libc_function

__all__ = ["FINE", "ZeroRuns"]

#: Ranges up to this size are searched for their first non-zero byte by stripping zeros.
FINE = 4096


def _memcmp() -> Callable[[int, int, int], int] | None:
    """libc's memcmp (a ctypes call: the GIL is released while it reads), or None."""
    import ctypes

    return libc_function("memcmp", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class ZeroRuns:
    """Finds runs of at least ``zero_run`` zero bytes in a window (bytearray of a multiple
    of 8 bytes).  Every such run holds a whole block of ``block`` bytes on the window's
    grid, so only the first 8 bytes of each block are looked at before a closer look."""

    def __init__(self, window: bytearray, zero_run: int) -> None:
        self.window = window
        self.words = memoryview(window).cast("Q")  # the first 8 bytes of a block: one word
        self.zero_run = zero_run
        self.block = max(8, zero_run // 2 // 8 * 8)
        self._memcmp = _memcmp()
        self._pinned = None  # the ctypes view that holds the window's address (and keeps it from resizing)
        self._base = 0
        # ranges of the window known to be zero bytes (note_zeros), in order, disjoint, not touching
        self._known_starts: list[int] = []
        self._known_stops: list[int] = []
        if self._memcmp is not None:
            import ctypes

            self._pinned = ctypes.c_char.from_buffer(window)
            self._base = ctypes.addressof(self._pinned)

    def note_zeros(self, start: int, stop: int) -> None:
        """The bytes ``[start, stop)`` of the window are zero, filled in so by the stream
        (noted in the order of the window: after every range noted before)."""
        if stop <= start:
            return
        starts, stops = self._known_starts, self._known_stops
        if stops and stops[-1] >= start:
            stops[-1] = max(stops[-1], stop)
        else:
            starts.append(start)
            stops.append(stop)

    def moved(self, by: int) -> None:
        """The window's bytes from ``by`` on were moved to its start (what was before
        ``by`` is gone)."""
        starts, stops = self._known_starts, self._known_stops
        if not starts:
            return
        keep = bisect_right(stops, by)  # ranges that end by then are gone
        self._known_starts = [max(0, a - by) for a in starts[keep:]]
        self._known_stops = [b - by for b in stops[keep:]]

    def _known_zero_to(self, at: int) -> int:
        """The end of the known zero range that holds byte ``at``, else ``at``."""
        i = bisect_right(self._known_starts, at) - 1
        if i >= 0 and self._known_stops[i] > at:
            return self._known_stops[i]
        return at

    def _known_zero_from(self, at: int) -> int:
        """The start of the known zero range that holds byte ``at - 1``, else ``at``."""
        i = bisect_right(self._known_starts, at - 1) - 1
        if i >= 0 and self._known_stops[i] >= at:
            return self._known_starts[i]
        return at

    def all_zero(self, start: int, stop: int) -> bool:
        """Whether the bytes ``[start, stop)`` of the window are all zero (True when empty)."""
        if self._known_starts:
            start = self._known_zero_to(start)
        if stop <= start:
            return True
        if self.window[start]:
            return False
        if stop - start == 1:
            return True
        if self._memcmp is not None:
            at = self._base + start
            return not self._memcmp(at, at + 1, stop - start - 1)
        return self.window.count(0, start, stop) == stop - start

    def _nonzero_edge(self, start: int, stop: int, last: bool = False) -> int:
        """The offset of the first (``last``: the last) non-zero byte of ``[start, stop)``,
        which holds one: halved down to :data:`FINE` bytes, then found by stripping the
        zeros of those."""
        while stop - start > FINE:
            middle = start + (stop - start) // 2
            if last != self.all_zero(*((middle, stop) if last else (start, middle))):
                start = middle  # first: the lower half is all zero; last: the upper half is not
            else:
                stop = middle
        piece = self.window[start:stop]
        return start + len(piece.rstrip(b"\0")) - 1 if last else stop - len(piece.lstrip(b"\0"))

    def leading(self, start: int, stop: int) -> int:
        """How many zero bytes begin at ``start`` (counted up to ``stop``)."""
        if self._known_starts:
            known = min(self._known_zero_to(start), stop)
            if known > start:
                return known - start + self.leading(known, stop)
        if start >= stop or self.window[start]:
            return 0
        n, step = 0, 64
        while start + n < stop:
            end = min(stop, start + n + step)
            if not self.all_zero(start + n, end):
                return self._nonzero_edge(start + n, end) - start
            n = end - start
            step = min(step * 4, 1 << 20)
        return stop - start

    def trailing(self, begin: int, stop: int) -> int:
        """How many zero bytes end at ``stop`` (counted back to ``begin``)."""
        if self._known_starts:
            known = max(self._known_zero_from(stop), begin)
            if known < stop:
                return stop - known + self.trailing(begin, known)
        if stop <= begin or self.window[stop - 1]:
            return 0
        n, step = 0, 64
        while stop - n > begin:
            lo = max(begin, stop - n - step)
            if not self.all_zero(lo, stop - n):
                return stop - 1 - self._nonzero_edge(lo, stop - n, last=True)
            n = stop - lo
            step = min(step * 4, 1 << 20)
        return stop - begin

    def next_run(self, start: int, before: int, end: int) -> int:
        """Where the first run of at least ``zero_run`` zero bytes that begins after
        ``start`` and before ``before`` begins, else ``end``.  The caller holds the bytes
        up to ``before + zero_run`` (or the stream's end) in the window, up to ``end``."""
        block, zero_run = self.block, self.zero_run
        first = -(-(start + 1) // block)
        last = min(before - 1 + zero_run, end) // block  # blocks [first, last) may lie in such a run
        if last <= first:
            return end
        step = block // 8
        heads = self.words[first * step : last * step : step].tolist()
        skip = 0  # blocks before this one are known not to start a run
        for k, head in enumerate(heads, first):
            if head:
                continue
            lo = k * block
            if lo < skip or not self.all_zero(lo, lo + block):
                continue
            # the run holding block k: where it begins, and whether it is long enough
            begin = lo - self.trailing(max(start, lo - block), lo)
            if begin <= start:  # it began before start: not a run that begins after it
                skip = lo + block + self.leading(lo + block, end)
                continue
            if begin >= before:
                return end
            need = begin + zero_run
            if need <= end and self.all_zero(lo + block, need):
                return begin
            skip = lo + block + self.leading(lo + block, end)
        return end
