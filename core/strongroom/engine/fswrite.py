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
  made with ``follow_symlinks=False``.  Whatever already exists at a path is removed
  first, never opened or written through, so a file hardlinked to a name elsewhere is
  not modified either.

What already exists in the target is never destroyed unless it is to be replaced, and a
folder that is not empty never is (restic's rules, and its ``--overwrite`` names):

- a folder where the entry is a folder is kept, and the restore writes into it;
- anything else at the path of an entry is replaced or kept as ``overwrite`` says:
  ``always`` replaces it, ``if-newer`` only if the entry's modification time is later
  than its own, ``never`` keeps it.  A kept path is skipped (the creating method returns
  False);
- a folder that is not empty is never removed: where ``overwrite`` would replace it,
  :class:`~strongroom.errors.PathInTheWay` is raised for that path, which the caller
  reports and goes on; so it is for a file kept where the entry is a folder (nothing can
  be written into it).  An empty folder in the way is replaced (or kept) like a file.

The root folder is created if missing; a root that cannot be made (under a regular
file, on a read-only file system) raises :class:`~strongroom.errors.TargetError`.  Other
``OSError`` of the file system reach the caller, which decides (see :mod:`.targetlog`).

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
have theirs.  Where the permission bits a file is created with are certain to be its
final mode (:meth:`~TreeWriter.creation_mode`: the root was empty and has no default ACL,
the umask is known and takes nothing from the mode, the mode has no setuid, setgid or
sticky bit and the entry no xattrs that could change it), the file is created with them
and no ``chmod`` is made.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

import attrs

from ..catalog.entry import BLOCKDEV, CHARDEV, DIR, FIFO, SOCKET, SYMLINK, Entry
from ..errors import PathInTheWay, TargetError, UnsafePath
from ..models import OVERWRITE_MODES
from .filewrites import FdCache, data_runs, pwrite_all
from .newfiles import CREATE, NewFiles
from .targetlog import remove_quietly, target_error

__all__ = ["TreeWriter"]

_REOPEN = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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
    overwrite: str = attrs.field(default="always", kw_only=True, validator=attrs.validators.in_(OVERWRITE_MODES))
    warnings: list[str] = attrs.field(factory=list, init=False)
    _fds: FdCache = attrs.field(init=False, repr=False)
    _dirs: set[str] = attrs.field(factory=set, init=False, repr=False)
    _dir_entries: dict[str, Entry] = attrs.field(factory=dict, init=False, repr=False)
    # directories this writer created ('' for a root that was empty): nothing else is in them
    _fresh: set[str] = attrs.field(factory=set, init=False, repr=False)
    # files cleared by prepare_file() and not yet created: not usable as directories
    _reserved: set[str] = attrs.field(factory=set, init=False, repr=False)
    # creates, writes and ends the files cleared by prepare_file(); sets all metadata
    _new: NewFiles = attrs.field(init=False, repr=False)
    # the umask when files are certain to be created with the mode asked (creation_mode())
    _umask: int | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._fds = FdCache(self.max_open)
        try:
            os.makedirs(self.root, exist_ok=True)
            self.root = os.path.realpath(self.root)
            self._new = NewFiles(self.root, self.restore_owner, self.warnings)
            with os.scandir(self.root) as it:
                if next(it, None) is None:
                    self._fresh.add("")
                    self._umask = _plain_umask(self.root)
        except FileExistsError:
            raise TargetError(path=self.root, reason="it is a file, not a folder") from None
        except NotADirectoryError:
            raise TargetError(path=self.root, reason="a part of it is a file, not a folder") from None
        except OSError as exc:
            raise target_error(self.root, exc) from None

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- paths --

    def path_for(self, relpath: str) -> str:
        """The absolute path of ``relpath`` under root, after the safety checks."""
        parent, _, name = relpath.rpartition("/")
        if parent in self._dirs and name not in ("", ".", "..") and "\0" not in name:
            return f"{self.root}/{relpath}"  # a parent checked already: its parts were too
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
        if relpath.rpartition("/")[0] in self._dirs:
            return path
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

    def _replaces(self, entry: Entry | None, st: os.stat_result) -> bool:
        """Whether ``overwrite`` lets ``entry`` replace what ``st`` describes."""
        if self.overwrite == "always":
            return True
        return self.overwrite == "if-newer" and entry is not None and entry.mtime_ns > st.st_mtime_ns

    def _clear(self, relpath: str, path: str, entry: Entry | None) -> bool:
        """Make way for ``entry`` at ``path``: True when nothing is there (any more),
        False to keep what is there; :class:`PathInTheWay` for a folder that is not empty."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return True
        if not self._replaces(entry, st):
            return False
        self._remove(relpath, path, st, entry)
        return True

    def _remove(self, relpath: str, path: str, st: os.stat_result, entry: Entry | None) -> None:
        """Remove what ``st`` describes at ``path`` (an empty folder, never a full one)
        and forget it."""
        fd = self._fds.take(relpath)
        if fd is not None:
            os.close(fd)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            return
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise PathInTheWay(path=path, reason=f"a folder that is not empty is where the point has {_kind(entry)}") from None
        below = relpath + "/"
        self._dirs = {d for d in self._dirs if d != relpath and not d.startswith(below)}
        self._fresh = {d for d in self._fresh if d != relpath and not d.startswith(below)}
        self._reserved = {f for f in self._reserved if not f.startswith(below)}
        for key in [k for k in self._dir_entries if k == relpath or k.startswith(below)]:
            del self._dir_entries[key]

    def _replace(self, relpath: str, path: str, entry: Entry | None, create: Callable[[], object]) -> bool:
        """Run ``create``; if something is in the way, clear it (:meth:`_clear`) and run
        it again.  False if what is in the way is kept."""
        try:
            create()
        except FileExistsError:
            if not self._clear(relpath, path, entry):
                return False
            create()
        return True

    # -- entries --

    def make_dir(self, relpath: str, entry: Entry) -> None:
        """Create the directory (and missing parents), or use the one there; its
        metadata is set by close().  :class:`PathInTheWay` if something else is there
        and is kept."""
        path = self._prepare(relpath)
        if relpath not in self._dirs:
            try:
                os.mkdir(path, 0o700)
                self._fresh.add(relpath)
            except FileExistsError:
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode):
                    if not self._replaces(entry, st):
                        raise PathInTheWay(path=path, reason=f"{_kind_of(st)} is where the point has a folder"
                                                             f" (--overwrite {self.overwrite})") from None
                    self._remove(relpath, path, st, entry)
                    os.mkdir(path, 0o700)
                    self._fresh.add(relpath)
            self._dirs.add(relpath)
        self._dir_entries[relpath] = entry

    def create_file(self, relpath: str, entry: Entry) -> bool:
        """Create an empty regular file of length ``entry.size``, open for write();
        False if what is at the path is kept."""
        path = self._prepare(relpath)
        fds: list[int] = []
        if not self._replace(relpath, path, entry, lambda: fds.append(os.open(path, CREATE, 0o600))):
            return False
        try:
            os.ftruncate(fds[0], entry.size)
        except BaseException:
            os.close(fds[0])
            os.unlink(path)
            raise
        self._fds.add(relpath, fds[0])
        return True

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

    def prepare_file(self, relpath: str, entry: Entry | None = None) -> bool:
        """Check ``relpath``, create its parents and remove what is in its way, for a
        later :meth:`open_new`; until then the path counts as a file, not a directory.
        False if what is in the way is kept (``entry`` gives the time ``if-newer``
        compares; without one, ``if-newer`` keeps what is there)."""
        path = self._prepare(relpath)
        if relpath in self._dirs or relpath.rpartition("/")[0] not in self._fresh:
            if not self._clear(relpath, path, entry):
                return False
        self._reserved.add(relpath)
        return True

    def creation_mode(self, entry: Entry) -> int | None:
        """The mode to give :meth:`open_new` so that ``entry``'s mode needs no ``chmod``
        after (``close_file(..., mode_set=True)``), or None when that is not certain (see
        the module documentation)."""
        mode = entry.mode & 0o7777
        umask = self._umask
        if umask is None or mode & ~0o777 or mode & umask or entry.xattrs:
            return None
        return mode

    def open_new(self, relpath: str, size: int | None = None, *, mode: int = 0o600) -> int:
        """Create the file that :meth:`prepare_file` cleared (from any thread) and return
        its descriptor; with ``size``, set that length at once (the rest are holes);
        ``mode``: the permission bits to create it with (minus the umask)."""
        return self._new.open_new(relpath, size, mode=mode)

    @property
    def new_files(self) -> NewFiles:
        """What creates, writes and ends the files :meth:`prepare_file` cleared (for a
        process that writes them: its root and ``restore_owner``)."""
        return self._new

    #: :meth:`write` to a descriptor from :meth:`open_new`.
    write_fd = staticmethod(NewFiles.write_fd)

    def close_file(self, relpath: str, fd: int, entry: Entry | None, *, mode_set: bool = False) -> None:
        """Set the metadata of ``entry`` (none when None) on a file from :meth:`open_new`
        and close it; ``mode_set``: it was created with :meth:`creation_mode`'s mode, so
        its mode is not set again."""
        self._new.close_file(relpath, fd, entry, mode_set=mode_set)

    def discard(self, relpath: str) -> bool:
        """Remove the file at ``relpath`` that this writer created and did not finish
        (closing it if the cache holds it open); whether it is gone."""
        fd = self._fds.take(relpath)
        if fd is not None:
            os.close(fd)
        self._reserved.discard(relpath)
        return remove_quietly(f"{self.root}/{relpath}")

    def finish_file(self, relpath: str, entry: Entry) -> None:
        """Close the file and set its metadata."""
        fd = self._fds.take(relpath)
        if fd is None:
            fd = os.open(self.path_for(relpath), _REOPEN)
        try:
            self._new.apply(relpath, fd, entry)
        finally:
            os.close(fd)

    def remove_empty_dir(self, relpath: str) -> bool:
        """Remove the empty folder at ``relpath`` and forget it (and its metadata, which
        :meth:`close` would set); False if it is not there, not a folder or not empty."""
        try:
            path = self.path_for(relpath)
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                return False
            self._remove(relpath, path, st, None)
        except (OSError, PathInTheWay, UnsafePath):
            return False
        return True

    def make_symlink(self, relpath: str, entry: Entry) -> bool:
        """Create a symlink with the exact link text of the entry (never followed);
        False if what is at the path is kept."""
        if "\0" in entry.target:
            raise UnsafePath(path=relpath, reason="NUL byte in link target")
        path = self._prepare(relpath)
        if not self._replace(relpath, path, entry, lambda: os.symlink(entry.target, path)):
            return False
        self._new.apply(relpath, path, entry, symlink=True)
        return True

    def make_hardlink(self, relpath: str, entry: Entry, existing_relpath: str) -> bool:
        """Make ``relpath`` a further name of the already restored ``existing_relpath``;
        False if what is at the path is kept."""
        source = self.path_for(existing_relpath)
        path = self._prepare(relpath)
        return self._replace(relpath, path, entry, lambda: os.link(source, path, follow_symlinks=False))

    def make_special(self, relpath: str, entry: Entry) -> bool:
        """Create a fifo or device node; sockets (and devices without privilege) are
        skipped with a warning.  False if what is at the path is kept."""
        if entry.type == SOCKET:
            self.warnings.append(f"{relpath}: socket not restored")
            return True
        path = self._prepare(relpath)
        if entry.type == FIFO:
            if not self._replace(relpath, path, entry, lambda: os.mkfifo(path, 0o600)):
                return False
        elif entry.type in (CHARDEV, BLOCKDEV):
            kind = stat.S_IFCHR if entry.type == CHARDEV else stat.S_IFBLK
            try:
                if not self._replace(relpath, path, entry, lambda: os.mknod(path, kind | 0o600, entry.rdev)):
                    return False
            except PermissionError:
                self.warnings.append(f"{relpath}: not permitted to create a device node")
                return True
        else:
            raise ValueError(f"not a special file type: {entry.type!r}")
        self._new.apply(relpath, path, entry)
        return True

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
            self._new.apply(relpath, fd, entry)
        except OSError as exc:
            self.warnings.append(f"{relpath}: directory metadata not restored ({exc.strerror or exc})")
        finally:
            os.close(fd)

def _plain_umask(root: str) -> int | None:
    """The process's umask, if the files created under ``root`` get exactly the mode
    asked minus it: None when the umask cannot be read (no ``/proc``) or ``root`` has a
    default ACL (which new files inherit instead)."""
    try:
        with open("/proc/self/status", "rb") as status:
            umask = next((int(line.split()[1], 8) for line in status if line.startswith(b"Umask:")), None)
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.getxattr(root, "system.posix_acl_default")
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return umask
    return None


_KINDS = {DIR: "a folder", SYMLINK: "a symbolic link"}


def _kind(entry: Entry | None) -> str:
    """What the point has at a path, for a message."""
    if entry is None:
        return "a file"
    return _KINDS.get(entry.type, "a special file" if entry.type in (FIFO, CHARDEV, BLOCKDEV, SOCKET) else "a file")


def _kind_of(st: os.stat_result) -> str:
    """What is at a path in the target, for a message."""
    if stat.S_ISREG(st.st_mode):
        return "a file"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    return "a special file"
