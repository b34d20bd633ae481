"""Writing a restored tree into a target folder, safely.

A :class:`TreeWriter` creates the files, directories, links and special files of a
restore under one root folder, writes file content in any order (from several threads),
and restores metadata.  Whatever the entries say, nothing is written outside the root:

- :meth:`TreeWriter.path_for` refuses (``UnsafePath``) an empty or absolute path, a ``.``
  or ``..`` or empty component, a NUL byte, and a path whose parent components include,
  on disk, a symbolic link or something that is not a directory.  This holds for links
  that an earlier entry of the same restore created and for links already in the target.
  Directories checked or created by the writer are remembered, so the check costs no
  system call per entry in the common case; a directory that the writer replaces by
  something else is forgotten again.
- The final component is never followed: files are created with ``O_EXCL|O_NOFOLLOW``,
  metadata is set through the open file or with ``follow_symlinks=False``, hardlinks are
  made with ``follow_symlinks=False``.  Whatever already exists at a path (a file, a
  symlink, a fifo, a directory tree) is removed first, never opened or written through,
  so a file hardlinked to a name elsewhere is not modified either.

The target folder must not be changed by someone else during the restore.

Metadata order: owner (only with ``restore_owner``; it defaults to running as root),
xattrs, mode, then times last, since a ``chown`` clears setuid bits and file
capabilities.  Failures to set metadata the file system or the user cannot have
(``EPERM``, ``ENOTSUP``, a device node without privileges, a socket) are appended to
``TreeWriter.warnings`` and the restore goes on.  Directory metadata is applied by
:meth:`TreeWriter.close`, deepest first, so that creating entries does not disturb the
directory times.  Parent directories without an entry of their own are created with mode
``0o777`` minus the umask.

Content: :meth:`~TreeWriter.create_file` sets the final length at once (the unwritten
parts are holes); :meth:`~TreeWriter.write` writes at an offset and, with ``sparse=True``,
leaves out every all-zero block of 4 KiB (aligned to file offsets), so the holes of a
sparse file survive whatever the chunk boundaries were.  Open files are kept in a small LRU cache so that
blocks can arrive for many files out of order.

Many small files go faster another way: the thread laying out the tree calls
:meth:`~TreeWriter.prepare_file` (the path checks, and whatever is in the way removed;
until the file exists its path counts as a file, not a folder), and any thread then
creates the file with :meth:`~TreeWriter.open_new`, writes it with
:meth:`~TreeWriter.write_fd` and ends it with :meth:`~TreeWriter.close_file`: one open
and one close per file, no cache.  In a folder that the writer created, nothing can be
in the way, so preparing a file there costs no system call; a new file's owner is
asked once per folder, so restoring owners costs no ``chown`` for files that already
have theirs.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable

import attrs

from ..catalog.entry import BLOCKDEV, CHARDEV, FIFO, SOCKET, Entry
from ..errors import UnsafePath
from .filewrites import FdCache, data_runs, pwrite_all

__all__ = ["TreeWriter"]

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_REOPEN = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_PERMITTED = frozenset({errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP})

Target = int | str  # an open file descriptor, or a path never followed at its end


def _split(relpath: str) -> list[str]:
    """The components of a point-relative path; ``UnsafePath`` if it is not one."""
    if not relpath:
        raise UnsafePath(path=relpath, reason="empty path")
    if "\0" in relpath:
        raise UnsafePath(path=relpath, reason="NUL byte in path")
    if relpath.startswith("/"):
        raise UnsafePath(path=relpath, reason="absolute path")
    parts = relpath.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePath(path=relpath, reason=f"'{part}' component" if part else "empty component")
    return parts


@attrs.define
class TreeWriter:
    """Creates restored entries under ``root`` (see the module documentation)."""

    root: str
    restore_owner: bool = attrs.field(
        default=None, kw_only=True, converter=lambda v: os.geteuid() == 0 if v is None else bool(v)
    )
    max_open: int = attrs.field(default=64, kw_only=True)
    warnings: list[str] = attrs.field(factory=list, init=False)
    _fds: FdCache = attrs.field(init=False, repr=False)
    _dirs: set[str] = attrs.field(factory=set, init=False, repr=False)
    _dir_entries: dict[str, Entry] = attrs.field(factory=dict, init=False, repr=False)
    # directories this writer created ('' for a root that was empty): nothing else is in them
    _fresh: set[str] = attrs.field(factory=set, init=False, repr=False)
    # files cleared by prepare_file() and not yet created: not usable as directories
    _reserved: set[str] = attrs.field(factory=set, init=False, repr=False)
    # the owner a file created by open_new() in a folder gets, learned from the first one
    _new_owner: dict[str, tuple[int, int]] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        os.makedirs(self.root, exist_ok=True)
        self.root = os.path.realpath(self.root)
        self._fds = FdCache(self.max_open)
        with os.scandir(self.root) as it:
            if next(it, None) is None:
                self._fresh.add("")

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- paths --

    def path_for(self, relpath: str) -> str:
        """The absolute path of ``relpath`` under root, after the safety checks."""
        parts = _split(relpath)
        prefix = ""
        for part in parts[:-1]:
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix in self._dirs:
                continue
            if prefix in self._reserved:
                raise UnsafePath(path=relpath, reason=f"'{prefix}' is not a directory")
            try:
                st = os.lstat(f"{self.root}/{prefix}")
            except FileNotFoundError:
                break
            self._check_dir(relpath, prefix, st)
            self._dirs.add(prefix)
        return f"{self.root}/{relpath}"

    def _check_dir(self, relpath: str, prefix: str, st: os.stat_result) -> None:
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(path=relpath, reason=f"'{prefix}' is a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(path=relpath, reason=f"'{prefix}' is not a directory")

    def _prepare(self, relpath: str) -> str:
        """Check ``relpath`` and create its missing parent directories."""
        path = self.path_for(relpath)
        prefix = ""
        for part in relpath.split("/")[:-1]:
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix not in self._dirs:
                self._mkdir(relpath, prefix)
        return path

    def _mkdir(self, relpath: str, prefix: str) -> None:
        try:
            os.mkdir(f"{self.root}/{prefix}")
            self._fresh.add(prefix)
        except FileExistsError:
            self._check_dir(relpath, prefix, os.lstat(f"{self.root}/{prefix}"))
        self._dirs.add(prefix)

    def _remove(self, relpath: str, path: str) -> None:
        """Remove whatever is at ``path`` (a directory with its contents) and forget it."""
        fd = self._fds.take(relpath)
        if fd is not None:
            os.close(fd)
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
            below = relpath + "/"
            self._dirs = {d for d in self._dirs if d != relpath and not d.startswith(below)}
            self._fresh = {d for d in self._fresh if d != relpath and not d.startswith(below)}
            self._reserved = {f for f in self._reserved if not f.startswith(below)}
            for key in [k for k in self._dir_entries if k == relpath or k.startswith(below)]:
                del self._dir_entries[key]
        else:
            os.unlink(path)

    def _replace(self, relpath: str, path: str, create: Callable[[], object]) -> None:
        """Run ``create``; if something is in the way, remove it and run it again."""
        try:
            create()
        except FileExistsError:
            self._remove(relpath, path)
            create()

    # -- entries --

    def make_dir(self, relpath: str, entry: Entry) -> None:
        """Create the directory (and missing parents); its metadata is set by close()."""
        path = self._prepare(relpath)
        if relpath not in self._dirs:
            try:
                os.mkdir(path, 0o700)
                self._fresh.add(relpath)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    self._remove(relpath, path)
                    os.mkdir(path, 0o700)
                    self._fresh.add(relpath)
            self._dirs.add(relpath)
        self._dir_entries[relpath] = entry

    def create_file(self, relpath: str, entry: Entry) -> None:
        """Create an empty regular file of length ``entry.size``, open for write()."""
        path = self._prepare(relpath)
        fds: list[int] = []
        self._replace(relpath, path, lambda: fds.append(os.open(path, _CREATE, 0o600)))
        try:
            os.ftruncate(fds[0], entry.size)
        except BaseException:
            os.close(fds[0])
            raise
        self._fds.add(relpath, fds[0])

    def write(self, relpath: str, offset: int, data: bytes | memoryview, *, sparse: bool = False) -> None:
        """Write ``data`` at ``offset`` of a created file; with ``sparse``, zero blocks stay holes."""
        view = memoryview(data).cast("B")
        runs = data_runs(view, offset) if sparse else [(0, len(view))]
        if not runs:
            return
        handle = self._fds.acquire(relpath, lambda: os.open(self.path_for(relpath), _REOPEN))
        try:
            for start, end in runs:
                pwrite_all(handle.fd, view[start:end], offset + start)
        finally:
            self._fds.release(handle)

    # -- files created by the caller's threads --
    #
    # A restore lays the tree out in one thread, calling prepare_file() for each file
    # in turn; its threads then create each file with open_new(), write it with
    # write_fd() and end it with close_file(), each file in one thread and without the
    # fd cache: one open and one close per file.

    def prepare_file(self, relpath: str) -> None:
        """Check ``relpath``, create its parents and remove what is in its way, for a
        later :meth:`open_new`; until then the path counts as a file, not a directory."""
        path = self._prepare(relpath)
        if relpath in self._dirs or relpath.rpartition("/")[0] not in self._fresh:
            try:
                os.lstat(path)
            except FileNotFoundError:
                pass
            else:
                self._remove(relpath, path)
        self._reserved.add(relpath)

    def open_new(self, relpath: str, size: int | None = None) -> int:
        """Create the file that :meth:`prepare_file` cleared (from any thread) and return
        its descriptor; with ``size``, set that length at once (the rest are holes)."""
        fd = os.open(f"{self.root}/{relpath}", _CREATE, 0o600)
        if size:
            try:
                os.ftruncate(fd, size)
            except BaseException:
                os.close(fd)
                raise
        return fd

    @staticmethod
    def write_fd(fd: int, offset: int, data: bytes | memoryview, *, sparse: bool = False) -> None:
        """:meth:`write` to a descriptor from :meth:`open_new`."""
        view = memoryview(data).cast("B")
        if not sparse:
            pwrite_all(fd, view, offset)
            return
        for start, end in data_runs(view, offset):
            pwrite_all(fd, view[start:end], offset + start)

    def close_file(self, relpath: str, fd: int, entry: Entry | None) -> None:
        """Set the metadata of ``entry`` (none when None) on a file from :meth:`open_new`
        and close it."""
        try:
            if entry is not None:
                self._apply(relpath, fd, entry, owner=self._owner_of_new(relpath, fd))
        finally:
            os.close(fd)

    def _owner_of_new(self, relpath: str, fd: int) -> tuple[int, int] | None:
        """The owner of the new file ``fd``: the same for every file this writer creates
        in one folder (its gid may be the folder's), so asked of the first one only."""
        if not self.restore_owner:
            return None
        folder = relpath.rpartition("/")[0]
        owner = self._new_owner.get(folder)
        if owner is None:
            st = os.fstat(fd)
            owner = self._new_owner[folder] = (st.st_uid, st.st_gid)
        return owner

    def finish_file(self, relpath: str, entry: Entry) -> None:
        """Close the file and set its metadata."""
        fd = self._fds.take(relpath)
        if fd is None:
            fd = os.open(self.path_for(relpath), _REOPEN)
        try:
            self._apply(relpath, fd, entry)
        finally:
            os.close(fd)

    def make_symlink(self, relpath: str, entry: Entry) -> None:
        """Create a symlink with the exact link text of the entry (never followed)."""
        if "\0" in entry.target:
            raise UnsafePath(path=relpath, reason="NUL byte in link target")
        path = self._prepare(relpath)
        self._replace(relpath, path, lambda: os.symlink(entry.target, path))
        self._apply(relpath, path, entry, symlink=True)

    def make_hardlink(self, relpath: str, entry: Entry, existing_relpath: str) -> None:
        """Make ``relpath`` a further name of the already restored ``existing_relpath``."""
        source = self.path_for(existing_relpath)
        path = self._prepare(relpath)
        self._replace(relpath, path, lambda: os.link(source, path, follow_symlinks=False))

    def make_special(self, relpath: str, entry: Entry) -> None:
        """Create a fifo or device node; sockets (and devices without privilege) are skipped."""
        if entry.type == SOCKET:
            self.warnings.append(f"{relpath}: socket not restored")
            return
        path = self._prepare(relpath)
        if entry.type == FIFO:
            self._replace(relpath, path, lambda: os.mkfifo(path, 0o600))
        elif entry.type in (CHARDEV, BLOCKDEV):
            kind = stat.S_IFCHR if entry.type == CHARDEV else stat.S_IFBLK
            try:
                self._replace(relpath, path, lambda: os.mknod(path, kind | 0o600, entry.rdev))
            except PermissionError:
                self.warnings.append(f"{relpath}: not permitted to create a device node")
                return
        else:
            raise ValueError(f"not a special file type: {entry.type!r}")
        self._apply(relpath, path, entry)

    def close(self) -> None:
        """Close all files, then set directory metadata, deepest directories first."""
        self._fds.close_all()
        for relpath in sorted(self._dir_entries, key=lambda r: r.count("/"), reverse=True):
            self._finish_dir(relpath, self._dir_entries[relpath])
        self._dir_entries.clear()

    def _finish_dir(self, relpath: str, entry: Entry) -> None:
        try:
            fd = os.open(self.path_for(relpath), _OPEN_DIR)
        except (OSError, UnsafePath) as exc:
            self.warnings.append(f"{relpath}: directory metadata not restored ({exc})")
            return
        try:
            self._apply(relpath, fd, entry)
        finally:
            os.close(fd)

    # -- metadata --

    def _apply(
        self, relpath: str, target: Target, entry: Entry, *, symlink: bool = False,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Set the metadata; ``owner``, when known, is the current one (no chown to it)."""
        nofollow = {} if isinstance(target, int) else {"follow_symlinks": False}
        if self.restore_owner and (entry.uid, entry.gid) != owner:
            self._try(relpath, "owner", os.chown, target, entry.uid, entry.gid, **nofollow)
        for key, value in entry.xattrs:
            self._try(relpath, f"xattr {key}", os.setxattr, target, key, value, **nofollow)
        if not symlink:
            self._try(relpath, "mode", os.chmod, target, entry.mode)
        os.utime(target, ns=(entry.atime_ns, entry.mtime_ns), **nofollow)

    def _try(self, relpath: str, what: str, func: Callable[..., None], *args: object, **kwargs: object) -> None:
        try:
            func(*args, **kwargs)
        except OSError as exc:
            if exc.errno not in _NOT_PERMITTED:
                raise
            self.warnings.append(f"{relpath}: cannot set {what} ({exc.strerror})")
