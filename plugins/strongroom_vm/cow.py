"""A copy-on-write overlay file over one disk of a recovery point (``vm export --overlay``).

The vault is never written: what a client writes to an exported disk lands in a local
overlay file, and reads take each block from the overlay if it was written, else from the
point.  One file holds everything::

    0        header, 4 KiB: magic ``SRCOW001``, then JSON (disk name, point id, disk size,
             block size), NUL-padded
    4 KiB    the map: one bit per block (1: the block is in the overlay), 4 KiB-aligned
    data     the disk's blocks at their own offsets (a sparse region of the disk's size)

Blocks are 64 KiB.  A write that covers part of a block not yet in the overlay first
copies the block from the point, so a block in the overlay is always whole.  The data is
written before its map bit; :meth:`Overlay.flush` makes both durable (``fsync``).  An
existing overlay is reused, so the changes survive a new export of the same point and disk;
one of another point, disk or size is refused (:class:`~strongroom_vm.errors.OverlayUnusable`).
Thread-safe: one lock per overlay.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Callable

from .errors import OverlayUnusable

__all__ = ["BLOCK", "Overlay"]

MAGIC = b"SRCOW001"
HEADER = 4096
BLOCK = 64 * 1024


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


class Overlay:
    """The overlay at ``path`` for disk ``disk`` (``size`` bytes) of point ``point_id``;
    ``base(offset, length)`` reads the point's bytes."""

    def __init__(self, path: str, *, disk: str, point_id: str, size: int,
                 base: Callable[[int, int], bytes]) -> None:
        self.path, self.size, self._base = path, size, base
        self._blocks = _round_up(size, BLOCK) // BLOCK
        self._data = HEADER + _round_up(_round_up(self._blocks, 8) // 8, 4096)
        self._lock = threading.Lock()
        meta = {"disk": disk, "point": point_id, "size": size, "block": BLOCK}
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OverlayUnusable(path=path, reason=exc.strerror or str(exc)) from None
        try:
            head = os.pread(self._fd, HEADER, 0)
            if not head:
                os.ftruncate(self._fd, self._data + size)
                text = MAGIC + json.dumps(meta, sort_keys=True).encode()
                os.pwrite(self._fd, text.ljust(HEADER, b"\0"), 0)
                os.fsync(self._fd)
            else:
                self._check(head, meta)
            self._map = bytearray(os.pread(self._fd, self._data - HEADER, HEADER))
        except BaseException:
            os.close(self._fd)
            raise

    def _check(self, head: bytes, meta: dict) -> None:
        if not head.startswith(MAGIC):
            raise OverlayUnusable(path=self.path, reason="not an overlay file (give a new file name)")
        try:
            found = json.loads(head[len(MAGIC):].rstrip(b"\0"))
        except ValueError:
            raise OverlayUnusable(path=self.path, reason="damaged header") from None
        for key, want in meta.items():
            if found.get(key) != want:
                raise OverlayUnusable(path=self.path, reason=f"it belongs to {key} {found.get(key)!r}, not {want!r}")

    @property
    def blocks_written(self) -> int:
        """How many blocks the overlay holds."""
        return sum(bin(b).count("1") for b in self._map)

    def _has(self, block: int) -> bool:
        return bool(self._map[block >> 3] & (1 << (block & 7)))

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (within the disk), written blocks from the overlay."""
        out = bytearray()
        with self._lock:
            end = offset + length
            while offset < end:
                block = offset // BLOCK
                here = self._has(block)
                run_end = min(end, (block + 1) * BLOCK)
                while run_end < end and self._has(run_end // BLOCK) == here:
                    run_end = min(end, run_end + BLOCK)
                n = run_end - offset
                out += os.pread(self._fd, n, self._data + offset) if here else self._base(offset, n)
                offset = run_end
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` (within the disk) into the overlay."""
        with self._lock:
            end = offset + len(data)
            first, last = offset // BLOCK, (end - 1) // BLOCK
            for block in {first, last}:
                start = block * BLOCK
                whole = offset <= start and end >= min(self.size, start + BLOCK)
                if not whole and not self._has(block):
                    os.pwrite(self._fd, self._base(start, min(BLOCK, self.size - start)), self._data + start)
            view = memoryview(data)
            done = 0
            while done < len(view):
                done += os.pwrite(self._fd, view[done:], self._data + offset + done)
            for block in range(first, last + 1):
                self._map[block >> 3] |= 1 << (block & 7)
            lo, hi = first >> 3, (last >> 3) + 1
            os.pwrite(self._fd, bytes(self._map[lo:hi]), HEADER + lo)

    def flush(self) -> None:
        with self._lock:
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1
