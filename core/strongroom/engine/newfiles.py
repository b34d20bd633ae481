"""Creating, writing and closing a restore's files, and setting an entry's metadata.

What :class:`.fswrite.TreeWriter` does for every entry it makes, and what a restore's
worker processes (:mod:`.restoreworker`) do for the files they write: they get the
target folder and the metadata of each file (:class:`FileMeta`), not a tree writer.

:meth:`NewFiles.open_new` creates a file that the tree writer has cleared
(:meth:`~.fswrite.TreeWriter.prepare_file`) with ``O_EXCL|O_NOFOLLOW``, so that it never
opens what someone else put there; :meth:`NewFiles.write_fd` writes it (with ``sparse``,
every all-zero block of 4 KiB, aligned to file offsets, is left a hole) and
:meth:`NewFiles.close_file` sets its metadata and closes it.

Metadata order (:meth:`NewFiles.apply`): owner (only with ``restore_owner``), xattrs,
mode, then times last, since a ``chown`` clears setuid bits and file capabilities.  A
failure to set metadata the file system or the user cannot have (``EPERM``,
``ENOTSUP``) is appended to :attr:`NewFiles.warnings` and the restore goes on.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Union

import attrs

from .filewrites import data_runs, pwrite_all

if TYPE_CHECKING:
    from ..catalog.entry import Entry

__all__ = ["CREATE", "FileMeta", "Metadata", "NewFiles"]

#: How a new file is opened: never through a link, never one that is already there.
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_PERMITTED = frozenset({errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP})

Target = int | str  # an open file descriptor, or a path never followed at its end


class FileMeta(NamedTuple):
    """An entry's metadata alone, as a worker process is sent it (cheaper to pickle
    than the entry)."""

    uid: int
    gid: int
    xattrs: tuple[tuple[str, bytes], ...]
    mode: int
    atime_ns: int
    mtime_ns: int

    @classmethod
    def of(cls, entry: Entry) -> FileMeta:
        return cls(entry.uid, entry.gid, tuple(entry.xattrs), entry.mode, entry.atime_ns, entry.mtime_ns)


#: What :meth:`NewFiles.apply` sets: an entry's metadata, or the entry itself.
Metadata = Union[FileMeta, "Entry"]


@attrs.define
class NewFiles:
    """Creates and ends files under ``root`` (an absolute path, already checked), from
    any thread; metadata failures it may go on after are added to ``warnings``."""

    root: str
    restore_owner: bool
    warnings: list[str] = attrs.field(factory=list)
    # the owner a file created by open_new() in a folder gets, learned from the first one
    _new_owner: dict[str, tuple[int, int]] = attrs.field(factory=dict, init=False, repr=False)

    def open_new(self, relpath: str, size: int | None = None, *, mode: int = 0o600) -> int:
        """Create the file ``relpath`` and return its descriptor; with ``size``, set that
        length at once (the rest are holes); ``mode``: the permission bits to create it
        with (minus the umask)."""
        fd = os.open(f"{self.root}/{relpath}", CREATE, mode)
        if size:
            try:
                os.ftruncate(fd, size)
            except BaseException:
                os.close(fd)
                raise
        return fd

    @staticmethod
    def write_fd(fd: int, offset: int, data: bytes | memoryview, *, sparse: bool = False) -> None:
        """Write ``data`` at ``offset`` of ``fd``; with ``sparse``, zero blocks stay holes."""
        view = memoryview(data).cast("B")
        if not sparse:
            pwrite_all(fd, view, offset)
            return
        for start, end in data_runs(view, offset):
            pwrite_all(fd, view[start:end], offset + start)

    def close_file(self, relpath: str, fd: int, entry: Metadata | None, *, mode_set: bool = False) -> None:
        """Set the metadata of ``entry`` (none when None) on a file from :meth:`open_new`
        and close it; ``mode_set``: it was created with its final mode, which is not set
        again."""
        try:
            if entry is not None:
                self.apply(relpath, fd, entry, owner=self._owner_of_new(relpath, fd), chmod=not mode_set)
        finally:
            os.close(fd)

    def _owner_of_new(self, relpath: str, fd: int) -> tuple[int, int] | None:
        """The owner of the new file ``fd``: the same for every file created in one
        folder (its gid may be the folder's), so asked of the first one only."""
        if not self.restore_owner:
            return None
        folder = relpath.rpartition("/")[0]
        owner = self._new_owner.get(folder)
        if owner is None:
            st = os.fstat(fd)
            owner = self._new_owner[folder] = (st.st_uid, st.st_gid)
        return owner

    def apply(
        self, relpath: str, target: Target, entry: Metadata, *, symlink: bool = False,
        owner: tuple[int, int] | None = None, chmod: bool = True,
    ) -> None:
        """Set the metadata; ``owner``, when known, is the current one (no chown to it)."""
        nofollow = {} if isinstance(target, int) else {"follow_symlinks": False}
        if self.restore_owner and (entry.uid, entry.gid) != owner:
            self._try(relpath, "owner", os.chown, target, entry.uid, entry.gid, **nofollow)
        for key, value in entry.xattrs:
            self._try(relpath, f"xattr {key}", os.setxattr, target, key, value, **nofollow)
        if chmod and not symlink:
            self._try(relpath, "mode", os.chmod, target, entry.mode)
        os.utime(target, ns=(entry.atime_ns, entry.mtime_ns), **nofollow)

    def _try(self, relpath: str, what: str, func: Callable[..., None], *args: object, **kwargs: object) -> None:
        try:
            func(*args, **kwargs)
        except OSError as exc:
            if exc.errno not in _NOT_PERMITTED:
                raise
            self.warnings.append(f"{relpath}: cannot set {what} ({exc.strerror})")
