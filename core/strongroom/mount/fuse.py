"""Serving :class:`~strongroom.mount.tree.PointsFS` through FUSE (``mfusepy``, libfuse 3).

:func:`serve` mounts read-only at an existing folder and returns when the file system is
unmounted (``fusermount3 -u DIR``, ``umount DIR``) or the process gets SIGINT (Ctrl-C),
SIGTERM or SIGHUP, which libfuse answers by unmounting (either way it returns normally).  One request is served at a time
(the vault is not shared between threads).  Refused with :class:`MountUnavailable` (one
line, exit 7) when ``/dev/fuse`` is missing, ``mfusepy`` or libfuse is not installed, or
libfuse cannot mount (its own message, on stderr, says why); with ``UsageError`` when the
mount point is not an existing folder.
"""

from __future__ import annotations

import os
import signal

from ..errors import MountUnavailable, UsageError
from .tree import PointsFS

__all__ = ["FUSE_DEVICE", "serve"]

#: The device FUSE needs; in a container, pass it in (``--device /dev/fuse``).
FUSE_DEVICE = "/dev/fuse"


def _library():
    if not os.path.exists(FUSE_DEVICE):
        raise MountUnavailable(reason=f"{FUSE_DEVICE} is missing (load the fuse module; in a container pass"
                                      f" --device {FUSE_DEVICE} and CAP_SYS_ADMIN)")
    try:
        import mfusepy
    except ImportError:
        raise MountUnavailable(reason="the Python package mfusepy is not installed: pip install"
                                      " 'strongroom[mount]'") from None
    except OSError as exc:  # mfusepy loads libfuse when imported
        raise MountUnavailable(reason=f"libfuse is not installed (apt-get install fuse3): {exc}") from None
    return mfusepy


def serve(fs: PointsFS, mountpoint: str, *, name: str = "strongroom") -> None:
    """Mount ``fs`` at folder ``mountpoint`` and serve it until unmounted (module docs)."""
    if not os.path.isdir(mountpoint):
        raise UsageError(message=f"mount point {mountpoint} is not an existing folder")
    mfusepy = _library()
    # libfuse installs its own handlers (unmount and return) only where none is set
    saved = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        mfusepy.FUSE(fs, mountpoint, foreground=True, nothreads=True, ro=True, fsname=name)
    except RuntimeError as exc:
        if fs.mounted:  # libfuse's code for a loop ended by a signal: unmounted, done
            return
        raise MountUnavailable(reason=f"libfuse could not mount {mountpoint} (code {exc}; its message is"
                                      " above)") from None
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
