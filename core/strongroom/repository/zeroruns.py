"""Runs of zero bytes in a chunker's read window (:meth:`.chunker.Chunker.chunks` with a
``zero_run``).

Whether a range is all zero bytes is asked of libc's ``memcmp`` through ctypes (the range
against itself shifted by one byte, after its first byte: equal exactly when every byte
is zero), which releases the GIL while it reads: the holes of sparse files and disk
images are read at memory speed while the walk and the other readers run.  numpy (about
three times slower, with the GIL held) answers where ctypes cannot; the result is the
same.  Where the first non-zero byte of a range is, is narrowed down the same way, then
looked for with numpy in at most :data:`FINE` bytes.

Its own module so that numpy is imported by the first stream cut with zero runs, not by
every command that opens a vault (the chunker's parameters are read at every open).
"""

from __future__ import annotations

from typing import Callable

from ..libc import libc_function
from .arrays import np

__all__ = ["FINE", "ZeroRuns"]

#: Ranges up to this size are searched for their first non-zero byte with numpy.
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
        self.bytes = np.frombuffer(window, dtype=np.uint8)
        self.words = np.frombuffer(window, dtype=np.uint64)
        self.zero_run = zero_run
        self.block = max(8, zero_run // 2 // 8 * 8)
        self._memcmp = _memcmp()
        self._pinned = None  # the ctypes view that holds the window's address (and keeps it from resizing)
        self._base = 0
        if self._memcmp is not None:
            import ctypes

            self._pinned = ctypes.c_char.from_buffer(window)
            self._base = ctypes.addressof(self._pinned)

    def all_zero(self, start: int, stop: int) -> bool:
        """Whether the bytes ``[start, stop)`` of the window are all zero (True when empty)."""
        if stop <= start:
            return True
        if self.window[start]:
            return False
        if stop - start == 1:
            return True
        if self._memcmp is not None:
            at = self._base + start
            return not self._memcmp(at, at + 1, stop - start - 1)
        return not np.count_nonzero(self.bytes[start:stop])

    def _nonzero_edge(self, start: int, stop: int, last: bool = False) -> int:
        """The offset of the first (``last``: the last) non-zero byte of ``[start, stop)``,
        which holds one: halved down to :data:`FINE` bytes, then found with numpy."""
        while stop - start > FINE:
            middle = start + (stop - start) // 2
            if last != self.all_zero(*((middle, stop) if last else (start, middle))):
                start = middle  # first: the lower half is all zero; last: the upper half is not
            else:
                stop = middle
        nonzero = self.bytes[start:stop] != 0
        return stop - 1 - int(np.argmax(nonzero[::-1])) if last else start + int(np.argmax(nonzero))

    def leading(self, start: int, stop: int) -> int:
        """How many zero bytes begin at ``start`` (counted up to ``stop``)."""
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
        heads = self.words[first * step : last * step : step]
        skip = 0  # blocks before this one are known not to start a run
        for k in (np.flatnonzero(heads == 0) + first).tolist():
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
