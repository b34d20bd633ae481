"""What the restore target refused, path by path, and the one error a restore ends with.

A restore writes everything it can.  Three kinds of trouble on the target's side stop a
path, and a :class:`TargetLog` records each as it happens (from several threads):

- **in the way**: something that is not removed stands where the point has an entry -
  a folder that is not empty, or what ``--overwrite`` keeps where the point has a
  folder (:class:`~strongroom.errors.PathInTheWay`, raised by the tree writer for that
  path).  The path is kept as it is and reported; nothing below a kept folder is written.
- **a write refused**: the file system refuses one path (``EPERM`` of an immutable
  file, ``EACCES``, ``EIO``, a name too long ...).  A file not written completely is
  removed; the path is reported and the restore goes on.
- **nothing more can be written**: ``ENOSPC``, ``EDQUOT`` or ``EROFS``.  The restore
  stops at once (:class:`TargetStopped` unwinds it); every file being written is removed.

:meth:`TargetLog.raise_if_any` then raises one error, one line, naming the first path
and counting the rest: :class:`~strongroom.errors.TargetFull` (a full disk or quota) or
:class:`~strongroom.errors.TargetError` (a read-only file system) for a stop, else
:class:`~strongroom.errors.TargetError` for refused writes, else
:class:`~strongroom.errors.PathInTheWay`.  Paths are shown as paths in the target.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence

import attrs

from ..errors import PathInTheWay, TargetError, TargetFull

__all__ = ["STOPPING", "TargetLog", "TargetStopped", "remove_quietly", "target_error"]

#: Errors after which nothing more can be written: the restore stops.
STOPPING = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_SHOWN = 3  # paths named in a message besides the first


class TargetStopped(Exception):
    """Unwinds a restore that can write nothing more (see :attr:`TargetLog.stopped`)."""


def target_error(path: str, exc: OSError, removed: str = "") -> TargetError:
    """The error for ``exc`` writing ``path``: :class:`TargetFull` for a full disk or
    quota, :class:`TargetError` for anything else."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return TargetFull(path=path, reason=reason, removed=removed)
    if exc.errno in STOPPING:
        reason += f"; the restore stopped{removed}"
    return TargetError(path=path, reason=reason)


def _listed(items: list[tuple[str, str]], what: str) -> str:
    if not items:
        return ""
    shown = ", ".join(f"{path} ({reason})" for path, reason in items[:_SHOWN])
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"; {len(items)} more path(s) {what}: {shown}{more}"


@attrs.define
class TargetLog:
    """Problems of one restore's target, by path in the target (thread-safe)."""

    failed: dict[str, str] = attrs.field(factory=dict)
    kept: dict[str, str] = attrs.field(factory=dict)
    stopped: tuple[str, OSError] | None = None
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def keep(self, exc: PathInTheWay) -> None:
        """Record a path the writer kept (``exc`` from the writer)."""
        with self._lock:
            self.kept.setdefault(str(exc.fields["path"]), str(exc.fields["reason"]))

    def refused(self, path: str, exc: OSError, note: str = "") -> None:
        """Record that writing ``path`` failed with ``exc`` (``note``: what became of
        it); raise :class:`TargetStopped` if nothing more can be written."""
        with self._lock:
            if exc.errno in STOPPING:
                if self.stopped is None:
                    self.stopped = (path, exc)
                raise TargetStopped(path)
            self.failed.setdefault(path, (exc.strerror or str(exc)) + note)

    @property
    def stopping(self) -> bool:
        return self.stopped is not None

    def raise_if_any(self, *, removed: Sequence[str] = (), damaged: int = 0) -> None:
        """Raise the one error for everything recorded (see the module documentation);
        ``removed``: files removed after a stop; ``damaged``: files and folders that were
        not restored because the vault's data is damaged."""
        failed = sorted(self.failed.items())
        kept = sorted(self.kept.items())
        vault = f"; {damaged} path(s) not restored because the vault's data is damaged" if damaged else ""
        if self.stopped is not None:
            path, exc = self.stopped
            others = [p for p in removed if p != path]
            notes = ["the file was removed"] if path in removed else []
            if others:
                more = f" and {len(others) - _SHOWN} more" if len(others) > _SHOWN else ""
                notes.append(f"removed as not written completely: {', '.join(others[:_SHOWN])}{more}")
            note = f" ({'; '.join(notes)})" if notes else ""
            raise target_error(path, exc, note + _listed(failed, "not written") + _listed(kept, "kept") + vault)
        if failed:
            (path, reason), rest = failed[0], failed[1:]
            raise TargetError(path=path, reason=reason + _listed(rest, "not written") + _listed(kept, "kept") + vault)
        if kept:
            (path, reason), rest = kept[0], kept[1:]
            raise PathInTheWay(path=path, reason=reason + _listed(rest, "kept") + vault)


def remove_quietly(path: str) -> bool:
    """Remove the file ``path``; whether it is gone (it may not be, on a file system
    that turned read-only)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
