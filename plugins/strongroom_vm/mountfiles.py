"""The files inside a vm point's disks as a mounted folder (``strongroom mount``: ``files/``).

Beside ``disks/<name>`` (each disk as a raw file, from the core), a mounted vm point shows::

    files/<disk>/<pN>/...          the file system of partition N of the disk
    files/<disk>/<pN>/<VG-LV>/...  the file system of an LVM logical volume on partition N
    files/<disk>/...               the disk's file system, when it has no partition table

with the names, types, modes, owners, times, sizes and link targets the file system has
(the same reader as item-level restore, :mod:`strongroom_vm.fsread`).  Partitions and volumes
whose file system cannot be read here (none, unknown, encrypted without a key) are not
shown; ``browse`` says what they are.  A LUKS volume is unlocked, as ``browse`` does, with
the key in ``STRONGROOM_LUKS_PASSPHRASE`` or ``STRONGROOM_LUKS_KEY_FILE`` (of the ``mount``
command's environment), and the file system (or LVM) inside it is shown in its place.  Reads fetch only the chunks they touch; a file is read from its start,
so the first read in the middle of a large file reads up to there.  Nothing is written.
"""

from __future__ import annotations

import errno
import os
from typing import Iterator

from strongroom import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SOCKET, SYMLINK, Entry, PointView, SeekableReader

from .fsread import DiskView, FileSystem, FsNode
from .itemlevel import disk_names, open_disk
from .luks import secret_from

__all__ = ["DiskFiles"]

_KINDS = {"file": FILE, "dir": DIR, "symlink": SYMLINK, "fifo": FIFO, "chardev": CHARDEV,
          "blockdev": BLOCKDEV, "socket": SOCKET}
_UNREADABLE = ("", "luks", "no file system")
_BLOCK = 1 << 20


def _missing() -> OSError:
    return OSError(errno.ENOENT, os.strerror(errno.ENOENT))


def _folder(name: str, mtime_ns: int) -> Entry:
    return Entry(name=name, type=DIR, mode=0o555, mtime_ns=mtime_ns)


def _entry(node: FsNode) -> Entry:
    kind = _KINDS[node.type]
    return Entry(name=node.name, type=kind, mode=node.mode, uid=node.uid, gid=node.gid, mtime_ns=node.mtime_ns,
                 atime_ns=node.atime_ns, size=node.size if kind == FILE else 0, target=node.target)


class _FileReader(SeekableReader):
    """A file inside a file system, read forward from its start (restarted on a seek back)."""

    def __init__(self, fs: FileSystem, node: FsNode) -> None:
        super().__init__()
        self._fs, self._node, self.size = fs, node, node.size
        self._blocks: Iterator[bytes] | None = None
        self._next = 0  # where the next block from _blocks starts
        self._buf, self._buf_at = b"", 0

    def _fill(self, pos: int) -> None:
        if self._blocks is None or pos < self._buf_at:
            self._blocks, self._next = self._fs.read(self._node, _BLOCK), 0
            self._buf, self._buf_at = b"", 0
        while not self._buf_at <= pos < self._buf_at + len(self._buf):
            try:
                block = next(self._blocks)
            except StopIteration:
                raise OSError(errno.EIO, f"{self._node.name}: the file system ends before the file does") from None
            self._buf, self._buf_at = block, self._next
            self._next += len(block)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(0, self.size - self._pos))
        done = 0
        while done < wanted:
            self._fill(self._pos)
            inner = self._pos - self._buf_at
            n = min(wanted - done, len(self._buf) - inner)
            view[done:done + n] = self._buf[inner:inner + n]
            done += n
            self._pos += n
        return done


class DiskFiles:
    """The ``files/`` folder of one mounted vm point (see the module documentation)."""

    def __init__(self, view: PointView) -> None:
        self._view = view
        self._stamp = _created_ns(view)
        self._disks: dict[str, DiskView] = {}
        self._secret = secret_from()  # None: LUKS volumes stay locked, and hidden
        self._systems: dict[tuple[str, str | None], FileSystem] = {}
        self._children: dict[tuple[str, str | None, int], dict[str, FsNode]] = {}

    # --- where a path is --------------------------------------------------------------

    def _disk(self, name: str) -> DiskView:
        if name not in self._disks:
            if name not in disk_names(self._view):
                raise _missing()
            self._disks[name] = open_disk(self._view, name, self._secret)
        return self._disks[name]

    def _volumes(self, disk: str) -> dict[str, str] | None:
        """Volume name -> file system of the disk's volumes, the one inside an unlocked LUKS
        volume for it (None: no partition table)."""
        found = self._disk(disk).volumes()
        if found is None:
            return None
        return {v.name: (v.unlocked if v.fs == "luks" and v.unlocked else v.fs) for v in found}

    def _split(self, parts: list[str]) -> tuple[str, str | None, list[str]] | None:
        """(disk, volume, parts inside its file system), or None for a folder above file systems."""
        disk, rest = parts[0], parts[1:]
        volumes = self._volumes(disk)
        if volumes is None:
            return disk, None, rest
        if not rest:
            return None
        if rest[0] not in volumes:
            raise _missing()
        if volumes[rest[0]] == "lvm2":
            if len(rest) == 1:
                return None
            name = f"{rest[0]}/{rest[1]}"
            if volumes.get(name, "") in _UNREADABLE:
                raise _missing()
            return disk, name, rest[2:]
        if volumes[rest[0]] in _UNREADABLE:
            raise _missing()
        return disk, rest[0], rest[1:]

    def _fs(self, disk: str, volume: str | None) -> FileSystem:
        key = (disk, volume)
        if key not in self._systems:
            self._systems[key] = self._disk(disk).open_fs(volume)
        return self._systems[key]

    def _listed(self, disk: str, volume: str | None, node: FsNode) -> dict[str, FsNode]:
        key = (disk, volume, node.inode)
        if key not in self._children:
            if len(self._children) > 4096:
                self._children.clear()
            self._children[key] = {child.name: child for child in self._fs(disk, volume).listdir(node.inode)}
        return self._children[key]

    def _node(self, disk: str, volume: str | None, parts: list[str]) -> FsNode:
        node = self._fs(disk, volume).root()
        for part in parts:
            if node.type != "dir":
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            node = self._listed(disk, volume, node).get(part) or _raise_missing()
        return node

    # --- the folder protocol (Workload.mount_folders) -----------------------------------

    def listdir(self, path: str) -> list[Entry]:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return [_folder(name, self._stamp) for name in disk_names(self._view)]
        where = self._split(parts)
        if where is None:  # the partitions of a disk, or the logical volumes of one
            volumes = self._volumes(parts[0]) or {}
            if len(parts) == 1:
                names = [n for n, fs in volumes.items() if "/" not in n and (fs == "lvm2" or fs not in _UNREADABLE)]
            else:
                prefix = parts[1] + "/"
                names = [n[len(prefix):] for n, fs in volumes.items() if n.startswith(prefix) and fs not in _UNREADABLE]
            return [_folder(name, self._stamp) for name in names]
        disk, volume, inner = where
        node = self._node(disk, volume, inner)
        if node.type != "dir":
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return [_entry(child) for child in self._listed(disk, volume, node).values()]

    def open(self, path: str) -> SeekableReader:
        parts = [p for p in path.split("/") if p]
        where = self._split(parts) if parts else None
        if where is None:
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        disk, volume, inner = where
        node = self._node(disk, volume, inner)
        if node.type != "file":
            raise OSError(errno.EISDIR if node.type == "dir" else errno.EINVAL, path)
        return _FileReader(self._fs(disk, volume), node)


def _raise_missing() -> FsNode:
    raise _missing()


def _created_ns(view: PointView) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(view.point.created).timestamp() * 1e9)
