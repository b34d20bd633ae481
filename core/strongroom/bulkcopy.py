"""Copying large runs of bytes between buffers without holding the GIL.

A slice assignment between Python buffers (``dst[a:b] = src``) copies with the GIL
held: in a backup, the reader threads' copies of every chunk (the read window's shift,
a blob's frame, a sealed blob into its pack) then keep each other, and the walk, from
running (about a tenth of the GIL-held time of a first backup of large files).
:func:`copy_into` and :func:`move_within` make copies of :data:`LARGE` bytes and more
with ``memmove`` through ctypes, which releases the GIL; smaller ones, and any whose
buffers ctypes cannot address (read-only ones such as ``bytes``), are plain slice
assignments.  The result is the same either way.

Promises: only the bytes named are written, and the destination never changes size
(a range beyond its end is refused with ValueError, as a resizing slice assignment
would otherwise happen).
"""

from __future__ import annotations

__all__ = ["LARGE", "copy_into", "move_within"]

#: Copies from this many bytes on release the GIL (below, the ctypes call costs more than
#: it saves).
LARGE = 256 * 1024


def _address(buffer: bytearray | memoryview) -> int | None:
    """The address of a writable, contiguous buffer's first byte, or None."""
    import ctypes  # here: the commands that never copy this much do not import it

    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    except (TypeError, ValueError, BufferError):
        return None


def copy_into(dst: bytearray | memoryview, offset: int, src: bytes | bytearray | memoryview) -> int:
    """``dst[offset:offset + len(src)] = src`` (the GIL released for a large copy); the
    end offset.  ValueError if that range does not lie within ``dst``."""
    n = memoryview(src).nbytes
    end = offset + n
    if offset < 0 or end > len(dst):
        raise ValueError(f"bytes {offset}-{end} do not lie within a buffer of {len(dst)}")
    if n >= LARGE:
        to, frm = _address(dst), _address(src)  # type: ignore[arg-type]
        if to is not None and frm is not None:
            _memmove(to + offset, frm, n)
            return end
    dst[offset:end] = src
    return end


def move_within(buffer: bytearray | memoryview, to: int, start: int, end: int) -> None:
    """``buffer[to:to + end - start] = buffer[start:end]`` (the ranges may overlap; the GIL
    released for a large move).  ValueError if a range does not lie within ``buffer``."""
    n = end - start
    if min(to, start, n) < 0 or max(to, start) + n > len(buffer):
        raise ValueError(f"a move of bytes {start}-{end} to {to} leaves a buffer of {len(buffer)}")
    if n >= LARGE:
        base = _address(buffer)
        if base is not None:
            _memmove(base + to, base + start, n)
            return
    view = memoryview(buffer)
    view[to:to + n] = view[start:end]


def _memmove(to: int, frm: int, n: int) -> None:
    import ctypes

    ctypes.memmove(to, frm, n)  # a foreign function call: the GIL is released
