"""Writing the large objects of a local vault past the page cache (``O_DIRECT``).

A pack is written once, made durable (``fsync``) and not read again by the backup that
wrote it.  Written through the page cache, each of its pages is first copied into a
newly allocated cache page, then written back by the kernel, and the cache pages push
out files the machine had cached (a 2 GiB backup: 1.3 GB of cache for nothing).
Written with ``O_DIRECT``, the data goes from the process's memory to the device, and
the cache keeps what it had.

``O_DIRECT`` wants the memory, the file offset and the length aligned to the device's
block size: the data is copied, :data:`STAGE_BYTES` at a time, into a page-aligned
buffer of the writing thread (kept for its next object), and written in whole blocks of
:data:`ALIGN` bytes; the last block's padding is cut off with ``ftruncate``.  The copy
releases the GIL where the data is writable memory (a pack's buffer):
:func:`strongroom.bulkcopy.copy_into`.

Where a filesystem refuses ``O_DIRECT`` (some FUSE and network filesystems, tmpfs
before Linux 6.6), at ``open`` or at the first write, the object is written through the
page cache instead, and that filesystem (its device number) is not asked again by this
process.  Objects under :data:`DIRECT_FROM` bytes (index files, tree-only packs, small
objects) always go through the page cache: for them the alignment costs more than it
saves.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading

from ..bulkcopy import copy_into

__all__ = ["ALIGN", "DIRECT_FROM", "STAGE_BYTES", "open_for_writing", "write_all"]

#: Objects of at least this many bytes are written with ``O_DIRECT`` where it is allowed.
DIRECT_FROM = 1024 * 1024
#: The alignment of memory, offsets and lengths of direct writes (a multiple of every
#: common logical block size: 512 and 4096 bytes).
ALIGN = 4096
#: The bytes copied into the aligned buffer and written with one call.
STAGE_BYTES = 1024 * 1024

O_DIRECT = getattr(os, "O_DIRECT", 0)

_refused_devices: set[int] = set()  # filesystems that refused O_DIRECT in this process
_local = threading.local()


def open_for_writing(path: str, flags: int, mode: int, size: int) -> tuple[int, bool]:
    """``os.open(path, flags, mode)`` for an object of ``size`` bytes, with ``O_DIRECT``
    where it pays and the filesystem allows it; the descriptor, and whether it is direct."""
    if O_DIRECT and size >= DIRECT_FROM:
        device = _device_of(os.path.dirname(path))
        if device not in _refused_devices:
            try:
                return os.open(path, flags | O_DIRECT, mode), True
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                if device is not None:
                    _refused_devices.add(device)
    return os.open(path, flags, mode), False


def write_all(fd: int, data: bytes | bytearray | memoryview, *, direct: bool) -> None:
    """Write all of ``data`` at the file's offset (a new, empty file when ``direct``)."""
    view = memoryview(data).cast("B")
    if direct:
        view = _write_direct(fd, view)
    while view:
        view = view[os.write(fd, view):]


def _write_direct(fd: int, view: memoryview) -> memoryview:
    """Write ``view`` from offset 0 in aligned blocks and cut the file to its length;
    what is left to write through the page cache if the filesystem refused a direct
    write (the descriptor is no longer direct then)."""
    stage = _stage()
    total = len(view)
    done = 0
    while done < total:
        n = min(STAGE_BYTES, total - done)
        copy_into(stage, 0, view[done:done + n])
        padded = -(-n // ALIGN) * ALIGN
        if padded != n:
            stage[n:padded] = bytes(padded - n)
        try:
            written = os.write(fd, memoryview(stage)[:padded])
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            written = 0
        if written != padded:  # refused, or short: the rest through the page cache
            _stop_direct(fd)
            done += min(written, n)
            os.lseek(fd, done, os.SEEK_SET)
            os.ftruncate(fd, done)
            return view[done:]
        done += n
    if total % ALIGN:
        os.ftruncate(fd, total)
    return view[total:]


def _stop_direct(fd: int) -> None:
    """Turn ``O_DIRECT`` off for ``fd`` and remember that its filesystem refused it."""
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_DIRECT)
    _refused_devices.add(os.fstat(fd).st_dev)


def _stage() -> mmap.mmap:
    """This thread's page-aligned buffer of :data:`STAGE_BYTES`."""
    stage = getattr(_local, "stage", None)
    if stage is None:
        stage = _local.stage = mmap.mmap(-1, STAGE_BYTES)
    return stage


def _device_of(directory: str) -> int | None:
    try:
        return os.stat(directory).st_dev
    except OSError:  # not there yet: the open says so
        return None
