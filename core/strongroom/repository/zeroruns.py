"""Runs of zero bytes in a chunker's read window (:meth:`.chunker.Chunker.chunks` with a
``zero_run``), found with numpy.

Its own module so that numpy is imported by the first stream cut with zero runs, not by
every command that opens a vault (the chunker's parameters are read at every open).
"""

from __future__ import annotations

from .arrays import np

__all__ = ["ZeroRuns"]


class ZeroRuns:
    """Finds runs of at least ``zero_run`` zero bytes in a window (bytearray of a multiple
    of 8 bytes).  Every such run holds a whole block of ``block`` bytes on the window's
    grid, so only the first 8 bytes of each block are looked at before a closer look."""

    def __init__(self, window: bytearray, zero_run: int) -> None:
        self.bytes = np.frombuffer(window, dtype=np.uint8)
        self.words = np.frombuffer(window, dtype=np.uint64)
        self.zero_run = zero_run
        self.block = max(8, zero_run // 2 // 8 * 8)

    def leading(self, start: int, stop: int) -> int:
        """How many zero bytes begin at ``start`` (counted up to ``stop``)."""
        data = self.bytes
        if start >= stop or data[start]:
            return 0
        n, step = 0, 64
        while start + n < stop:
            part = data[start + n : min(stop, start + n + step)]
            if np.count_nonzero(part):
                return n + int(np.argmax(part != 0))
            n += len(part)
            step = min(step * 4, 1 << 20)
        return stop - start

    def trailing(self, begin: int, stop: int) -> int:
        """How many zero bytes end at ``stop`` (counted back to ``begin``)."""
        data = self.bytes
        if stop <= begin or data[stop - 1]:
            return 0
        n, step = 0, 64
        while stop - n > begin:
            part = data[max(begin, stop - n - step) : stop - n]
            if np.count_nonzero(part):
                return n + int(np.argmax(part[::-1] != 0))
            n += len(part)
            step = min(step * 4, 1 << 20)
        return stop - begin

    def next_run(self, start: int, before: int, end: int) -> int:
        """Where the first run of at least ``zero_run`` zero bytes that begins after
        ``start`` and before ``before`` begins, else ``end``.  The caller holds the bytes
        up to ``before + zero_run`` (or the stream's end) in the window, up to ``end``."""
        block, zero_run, data = self.block, self.zero_run, self.bytes
        first = -(-(start + 1) // block)
        last = min(before - 1 + zero_run, end) // block  # blocks [first, last) may lie in such a run
        if last <= first:
            return end
        step = block // 8
        heads = self.words[first * step : last * step : step]
        skip = 0  # blocks before this one are known not to start a run
        for k in (np.flatnonzero(heads == 0) + first).tolist():
            lo = k * block
            if lo < skip or np.count_nonzero(self.words[lo // 8 : lo // 8 + step]):
                continue
            # the run holding block k: where it begins, and whether it is long enough
            begin = lo - self.trailing(max(start, lo - block), lo)
            if begin <= start:  # it began before start: not a run that begins after it
                skip = lo + block + self.leading(lo + block, end)
                continue
            if begin >= before:
                return end
            need = begin + zero_run
            if need <= end and not np.count_nonzero(data[lo + block : need]):
                return begin
            skip = lo + block + self.leading(lo + block, end)
        return end
