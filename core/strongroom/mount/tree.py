"""The folders of a mounted vault, independent of FUSE.

Layout, by what was mounted (the *scope*):

- the whole vault: ``/<item>/<point>/<point paths>``, one folder per item that has points;
- one item: ``/<point>/<point paths>``;
- one point: ``/<point paths>``.

A ``<point>`` folder is named after the point's creation time in UTC,
``2026-12-04T23:14:35Z`` (with ``-<short id>`` appended when two points of the item share
a second), oldest first; ``latest`` is a symbolic link to the newest.  A point may also
be reached by its id or any unique prefix of it (``/<item>/3f2a9c01``): a symbolic link to
its folder, not listed.  Those folders are 0555, owned by the user who mounted, with the
point's time as their modification time.

Inside a point, every entry has the mode, owner (ids), times, size and extended
attributes the point recorded; symbolic links read as their stored text; a hard link
reads as the file it names; special files keep their type (and device numbers) but have
no content.  Database dumps and disk images (postgres, vm points) read as regular files.
Reads are served by the seekable reader of :mod:`strongroom.catalog.reader`: a read
fetches only the chunks it touches, each authenticated (a damaged chunk is ``EIO``).
A workload may add read-only folders of its own beside a point's entries
(:meth:`strongroom.workload.Workload.mount_folders`; a vm point's ``files/`` shows the
files inside its disks); a name the point itself has wins.

The lists of items and points are read again at most every ``refresh`` seconds (30 by
default), so a backup made while mounted shows up within that time; folders of a point
never change and are kept (the few hundred most recently used).

Nothing here writes: every method only reads the vault.  Errors are :class:`OSError`
with an ``errno`` (``ENOENT`` for a path that is not there, ``ENOTDIR``, ``EINVAL`` for
``readlink`` of what is not a link, ``EIO`` for damage), which the FUSE layer returns to
the kernel.  Not thread-safe: the FUSE layer serves one request at a time.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import stat
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

from ..catalog.entry import BLOCKDEV, CHARDEV, DIR, FIFO, HARDLINK, SOCKET, SYMLINK, Entry
from ..errors import StrongroomError
from ..models import parse_iso

if TYPE_CHECKING:
    from ..contexts import PointView
    from ..models import RecoveryPoint
    from ..vault import Vault

__all__ = ["LATEST", "PointsFS", "point_folder_names"]

log = logging.getLogger(__name__)

#: The name of the symbolic link to an item's newest point.
LATEST = "latest"

_TYPE_BITS = {DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK, FIFO: stat.S_IFIFO, CHARDEV: stat.S_IFCHR,
              BLOCKDEV: stat.S_IFBLK, SOCKET: stat.S_IFSOCK}


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def point_folder_names(points: list["RecoveryPoint"]) -> dict[str, "RecoveryPoint"]:
    """Folder name -> point, oldest first (see the module docstring)."""
    stamps = [parse_iso(p.created).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for p in points]
    names: dict[str, RecoveryPoint] = {}
    for stamp, point in zip(stamps, points):
        names[stamp if stamps.count(stamp) == 1 else f"{stamp}-{point.short_id}"] = point
    return names


class PointsFS:
    """Read-only file-system operations over ``vault``, for the scope given (module docs).

    ``item`` limits it to one item, ``point`` (with ``item``) to one point of it."""

    use_ns = True  # times in nanoseconds (mfusepy)

    def __init__(self, vault: "Vault", item: str | None = None, point: str | None = None, *,
                 cache_folders: int = 256, refresh: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._vault = vault
        self._item = item
        self._point = vault.point(item, point).point_id if item and point else None
        self._uid, self._gid = os.getuid(), os.getgid()
        self._mounted_ns = time.time_ns()
        self._views: dict[str, PointView] = {}
        self._folders: OrderedDict[tuple[str, str], dict[str, Entry]] = OrderedDict()
        self._cache_folders = cache_folders
        self._files: dict[int, Any] = {}
        self._next_fh = 1
        self._refresh, self._clock = refresh, clock
        self._lists: dict[str | None, tuple[float, Any]] = {}
        self._extra: dict[str, dict[str, Any]] = {}
        #: Called once the file system is mounted (the FUSE layer's ``init``).
        self.on_ready: Any = None
        #: Whether the kernel got the file system (set by ``init``).
        self.mounted = False

    # --- resolving paths --------------------------------------------------------------

    def _listed(self, key: str | None, read: Callable[[], Any]) -> Any:
        """``read()``, kept for ``refresh`` seconds under ``key``."""
        now = self._clock()
        kept = self._lists.get(key)
        if kept is None or now - kept[0] >= self._refresh:
            kept = self._lists[key] = (now, read())
        return kept[1]

    def _items(self) -> list[str]:
        return self._listed(None, lambda: sorted({p.item_name for p in self._vault.points()}))

    def _points_of(self, item: str) -> dict[str, "RecoveryPoint"]:
        try:
            return self._listed(item, lambda: point_folder_names(self._vault.points(item)))
        except StrongroomError:
            raise _error(errno.ENOENT) from None

    def _view(self, item: str, point_id: str) -> "PointView":
        view = self._views.get(point_id)
        if view is None:
            view = self._views[point_id] = self._vault.point_view(item, point_id)
        return view

    def _resolve(self, path: str) -> tuple[str, Any]:
        """What ``path`` is: ("root", None), ("item", item), ("point", (item, point)),
        ("alias", target text), or ("entry", (view, point path, entry))."""
        parts = [part for part in path.split("/") if part]
        if self._point is not None:
            return self._inside(self._item, self._point, parts)  # type: ignore[arg-type]
        if self._item is None:
            if not parts:
                return "root", None
            item, parts = parts[0], parts[1:]
            if item not in self._items():
                raise _error(errno.ENOENT)
        else:
            item = self._item
        if not parts:
            return "item", item
        folders = self._points_of(item)
        name, rest = parts[0], parts[1:]
        point = folders.get(name)
        if point is None:
            target = self._alias(folders, name)
            if rest:  # through the link, as the kernel would
                return self._inside(item, folders[target].point_id, rest)
            return "alias", target
        return self._inside(item, point.point_id, rest) if rest else ("point", (item, point))

    @staticmethod
    def _alias(folders: dict[str, "RecoveryPoint"], name: str) -> str:
        """The folder a ``latest`` or point-id name links to (ENOENT if none)."""
        if not folders:
            raise _error(errno.ENOENT)
        if name == LATEST:
            return list(folders)[-1]
        lowered = name.lower()
        found = [folder for folder, p in folders.items() if len(lowered) >= 4 and p.point_id.startswith(lowered)]
        if len(found) != 1:
            raise _error(errno.ENOENT)
        return found[0]

    def _inside(self, item: str, point_id: str, parts: list[str]) -> tuple[str, Any]:
        view = self._view(item, point_id)
        if not parts:
            return "point", (item, view.point)
        parent = self._folder(view, "/".join(parts[:-1]))
        entry = parent.get(parts[-1])
        if entry is None:
            raise _error(errno.ENOENT)
        return "entry", (view, "/".join(parts), entry)

    def _folder(self, view: "PointView", path: str) -> dict[str, Entry]:
        """The entries of folder ``path`` of a point by name (a few hundred folders kept)."""
        key = (view.point.point_id, path)
        folder = self._folders.get(key)
        if folder is not None:
            self._folders.move_to_end(key)
            return folder
        if path:
            parent = self._folder(view, path.rsplit("/", 1)[0] if "/" in path else "")
            entry = parent.get(path.rsplit("/", 1)[-1])
            if entry is None:
                raise _error(errno.ENOENT)
            if entry.type != DIR:
                raise _error(errno.ENOTDIR)
        try:
            folder = {entry.name: entry for entry in self._list(view, path)}
        except StrongroomError as exc:
            log.error("%s", exc)
            raise _error(errno.EIO) from None
        self._folders[key] = folder
        if len(self._folders) > self._cache_folders:
            self._folders.popitem(last=False)
        return folder

    def _extras(self, view: "PointView") -> dict[str, Any]:
        """The workload's own folders for this point (:meth:`Workload.mount_folders`)."""
        found = self._extra.get(view.point.point_id)
        if found is None:
            try:
                found = dict(self._vault.workload(view.item.workload).mount_folders(view))
            except StrongroomError as exc:
                log.error("%s", exc)
                found = {}
            self._extra[view.point.point_id] = found
        return found

    def _extra_of(self, view: "PointView", path: str) -> tuple[Any, str] | None:
        """(folder, path inside it) when ``path`` is in one of the workload's folders."""
        top, _, rest = path.partition("/")
        extra = self._extras(view).get(top)
        if extra is None or not path or view.exists(top):
            return None
        return extra, rest

    def _list(self, view: "PointView", path: str) -> list[Entry]:
        inside = self._extra_of(view, path)
        if inside is not None:
            return list(inside[0].listdir(inside[1]))
        entries = list(view.listdir(path))
        if not path:
            names = {entry.name for entry in entries}
            stamp = int(parse_iso(view.point.created).timestamp() * 1e9)
            entries += [Entry(name=name, type=DIR, mode=0o555, uid=self._uid, gid=self._gid, mtime_ns=stamp)
                        for name in self._extras(view) if name not in names]
        return entries

    def _content(self, view: "PointView", entry: Entry) -> Entry:
        """The entry whose content a (hard link) entry reads."""
        if entry.type == HARDLINK:
            try:
                target = view.lookup(entry.target)
            except StrongroomError:
                raise _error(errno.EIO) from None
            if target is not None:
                return target
        return entry

    # --- attributes -----------------------------------------------------------------------

    def _folder_attrs(self, mtime_ns: int) -> dict[str, Any]:
        return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2, "st_uid": self._uid, "st_gid": self._gid,
                "st_mtime": mtime_ns, "st_atime": mtime_ns, "st_ctime": mtime_ns, "st_size": 0}

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        kind, what = self._resolve(path)
        if kind in ("root", "item"):
            return self._folder_attrs(self._mounted_ns)
        if kind == "point":
            return self._folder_attrs(int(parse_iso(what[1].created).timestamp() * 1e9))
        if kind == "alias":
            attrs = self._folder_attrs(self._mounted_ns)
            return {**attrs, "st_mode": stat.S_IFLNK | 0o777, "st_size": len(what), "st_nlink": 1}
        view, _, entry = what
        shown = self._content(view, entry)
        kind_bits = _TYPE_BITS.get(entry.type, stat.S_IFREG)
        size = len(os.fsencode(entry.target)) if entry.type == SYMLINK else (
            shown.size if shown.has_content else 0)
        return {
            "st_mode": kind_bits | (entry.mode & 0o7777), "st_nlink": 2 if entry.type == DIR else max(1, shown.nlink),
            "st_uid": entry.uid, "st_gid": entry.gid, "st_size": size,
            "st_mtime": entry.mtime_ns, "st_atime": entry.atime_ns or entry.mtime_ns,
            "st_ctime": entry.ctime_ns or entry.mtime_ns, "st_rdev": entry.rdev,
            "st_blocks": (size + 511) // 512,
        }

    def readdir(self, path: str, fh: int = 0) -> list[str]:
        kind, what = self._resolve(path)
        if kind == "root":
            names = self._items()
        elif kind == "item":
            folders = self._points_of(what)
            names = [*folders, LATEST] if folders else []
        elif kind == "point":
            names = list(self._folder(self._view(what[0], what[1].point_id), ""))
        elif kind == "entry" and what[2].type == DIR:
            names = list(self._folder(what[0], what[1]))
        else:
            raise _error(errno.ENOTDIR)
        return [".", "..", *names]

    def readlink(self, path: str) -> str:
        kind, what = self._resolve(path)
        if kind == "alias":
            return what
        if kind == "entry" and what[2].type == SYMLINK:
            return what[2].target
        raise _error(errno.EINVAL)

    def listxattr(self, path: str) -> list[str]:
        kind, what = self._resolve(path)
        return [name for name, _ in what[2].xattrs] if kind == "entry" else []

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        kind, what = self._resolve(path)
        if kind == "entry":
            for key, value in what[2].xattrs:
                if key == name:
                    return value
        raise _error(getattr(errno, "ENODATA", errno.ENOENT))

    # --- content ----------------------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC | os.O_CREAT):
            raise _error(errno.EROFS)
        kind, what = self._resolve(path)
        if kind != "entry":
            raise _error(errno.EISDIR)
        view, _, entry = what
        entry = self._content(view, entry)
        if entry.type == DIR:
            raise _error(errno.EISDIR)
        inside = self._extra_of(view, what[1])
        try:
            reader = inside[0].open(inside[1]) if inside is not None and entry.size else (
                view.open(entry) if inside is None and entry.has_content else None)
        except StrongroomError as exc:
            log.error("%s: %s", path, exc)
            raise _error(errno.EIO) from None
        fh, self._next_fh = self._next_fh, self._next_fh + 1
        self._files[fh] = reader
        return fh

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        reader = self._files.get(fh)
        if reader is None:
            return b""
        try:
            reader.seek(offset)
            return reader.read(size)
        except StrongroomError as exc:
            log.error("%s: %s", path, exc)
            raise _error(errno.EIO) from None

    def release(self, path: str, fh: int) -> int:
        reader = self._files.pop(fh, None)
        if reader is not None:
            reader.close()
        return 0

    def init(self, path: str) -> None:
        """Called once the kernel has the file system: tell whoever waits (``on_ready``)."""
        self.mounted = True
        if self.on_ready is not None:
            self.on_ready()

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}
