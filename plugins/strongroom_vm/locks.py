"""QEMU's image locks, read and taken on raw images and block devices.

QEMU (``qemu-system-*``, ``qemu-img``, ``qemu-nbd``, ``qemu-io``) announces what it does
with an image through open-file-description byte locks (``F_OFD_SETLK``) on the image
itself: a shared lock on byte ``100 + n`` while it holds permission *n*, and on byte
``200 + n`` while it refuses to share permission *n* with others.  Permission 1 is
*write*.  Before it takes a permission, QEMU locks its own bytes, then tests the
other side's; so does this module, and the two never both succeed.

- :func:`writer_present` says whether some process holds the write permission (byte
  101): a running VM, a ``qemu-io``, a ``qemu-nbd`` serving the image writable.
- :func:`hold_no_writers` takes the lock that refuses to share *write* (byte 201), as
  ``qemu-img`` and ``qemu-nbd --read-only`` do: while it is held, a VM cannot start on
  the image (QEMU says "Failed to get "write" lock").  The lock lives as long as the
  file descriptor it was taken on.

Nothing here writes to the image.  Without OFD locks (not Linux) both report nothing.
"""

from __future__ import annotations

import fcntl
import os
import struct

__all__ = ["hold_no_writers", "writer_present"]

_PERM_WRITE = 1
_PERM_BASE = 100
_SHARED_BASE = 200
_FLOCK = "hhqqi4x"  # struct flock: type, whence, start, length, pid (0 for OFD locks)
_GETLK = getattr(fcntl, "F_OFD_GETLK", None)
_SETLK = getattr(fcntl, "F_OFD_SETLK", None)


def _other_holds(fd: int, byte: int) -> bool:
    request = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
    answer = fcntl.fcntl(fd, _GETLK, request)
    return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK


def writer_present(fd: int) -> bool:
    """Whether another open file description holds QEMU's write permission on the image of ``fd``."""
    if _GETLK is None:
        return False
    try:
        return _other_holds(fd, _PERM_BASE + _PERM_WRITE)
    except OSError:  # a file system without byte locks
        return False


def hold_no_writers(fd: int) -> bool:
    """Refuse QEMU writers on the image of ``fd`` (for as long as ``fd`` is open);
    False if a writer already holds the image (nothing is then held)."""
    if _SETLK is None:
        return not writer_present(fd)
    try:
        fcntl.fcntl(fd, _SETLK, struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, _SHARED_BASE + _PERM_WRITE, 1, 0))
    except OSError:
        return not writer_present(fd)
    if writer_present(fd):
        fcntl.fcntl(fd, _SETLK, struct.pack(_FLOCK, fcntl.F_UNLCK, os.SEEK_SET, _SHARED_BASE + _PERM_WRITE, 1, 0))
        return False
    return True
