"""Item-level access to a VM point: browse inside disks and extract files and folders.

A location is written ``[DISK:]/path``: ``vda:/`` is the top of disk ``vda`` (its
partitions, or its file system if it has no partition table), ``vda:/p1/etc/hosts`` a
file on its first partition.  ``DISK:`` may be left out when the point has one disk.
The disk is read through the point's seekable reader (``ctx.open``), so only the chunks
that hold the file system's metadata and the files' data are fetched; the disk is never
restored.

Extraction writes ``DIR/<disk>/<volume>/<path>`` (the place the item has in the point,
as a files restore does) through the core's safe writer (``ctx.write_entries``), with the metadata the file
system has: mode, owner, modification and access times; symbolic links as links.

A LUKS volume is listed as ``encrypted (LUKS1|LUKS2)``; given a secret (restore's
``--luks-passphrase-env``/``--luks-key-file``, or for browse ``STRONGROOM_LUKS_PASSPHRASE``/
``STRONGROOM_LUKS_KEY_FILE``: :func:`strongroom_vm.luks.secret_from`) it is unlocked in
memory and read like any other volume; the same secret is tried on every LUKS volume.
"""

from __future__ import annotations

from typing import Iterator

import attrs
from strongroom import (
    BLOCKDEV, CHARDEV, DIR, DISK, FIFO, FILE, SOCKET, SYMLINK, BrowseItem, Entry, PathNotInPoint, PointContext,
    RestoreResult, UsageError,
)

from .errors import DiskNotInPoint
from .fsread import DiskView, FileSystem, FsNode, Volume
from .luks import LuksSecret, luks_version
from .layout import DISKS_DIR

__all__ = ["Location", "browse_disk", "extract", "parse_location"]


@attrs.frozen
class Location:
    disk: str
    volume: str | None  # a volume name (pN, pN/VG-LV); None: the disk itself
    parts: tuple[str, ...]  # the path inside the volume's file system
    shown: str


def disk_names(ctx: PointContext) -> list[str]:
    try:
        return [e.name for e in ctx.listdir(DISKS_DIR) if e.type == DISK]
    except PathNotInPoint:
        return []


def is_location(path: str) -> bool:
    """Whether ``path`` names something inside a disk (``DISK:...`` or ``/...``)."""
    head = path.split("/", 1)[0]
    return path.startswith("/") or head.endswith(":")


def open_disk(ctx: PointContext, disk: str, secret: LuksSecret | None = None) -> DiskView:
    names = disk_names(ctx)
    if disk not in names:
        raise DiskNotInPoint(disk=disk, point=ctx.point.short_id, disks=", ".join(names) or "none")
    entry = ctx.lookup(f"{DISKS_DIR}/{disk}")
    return DiskView(ctx.open(entry), entry.size, disk, ctx.point.short_id, secret)


def disk_encryption(ctx: PointContext, disk: str) -> str:
    """'LUKS1' or 'LUKS2' for a disk that is a whole LUKS volume, else '' (reads its first chunk)."""
    version = luks_version(ctx.open(ctx.lookup(f"{DISKS_DIR}/{disk}")))
    return f"LUKS{version}" if version else ""


def parse_location(ctx: PointContext, text: str, view: DiskView | None = None,
                   secret: LuksSecret | None = None) -> tuple[Location, DiskView]:
    """Split ``[DISK:]/path`` into disk, volume and path parts (opening the disk)."""
    disk, sep, rest = text.partition(":")
    if not sep or "/" in disk:
        names = disk_names(ctx)
        if len(names) != 1:
            raise UsageError(message=f"the point has {len(names)} disks ({', '.join(names)}): "
                             f"write DISK:/path, for example {names[0] if names else 'vda'}:{text}")
        disk, rest = names[0], text
    parts = [p for p in rest.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathNotInPoint(path=text, point=ctx.point.short_id)
    view = view or open_disk(ctx, disk, secret)
    volumes = view.volumes()
    if volumes is None or not parts:
        return Location(disk, None, tuple(parts), text), view
    names = {v.name for v in volumes}
    if len(parts) > 1 and f"{parts[0]}/{parts[1]}" in names:
        return Location(disk, f"{parts[0]}/{parts[1]}", tuple(parts[2:]), text), view
    if parts[0] not in names:
        raise PathNotInPoint(path=text, point=ctx.point.short_id)
    return Location(disk, parts[0], tuple(parts[1:]), text), view


def _row(prefix: str, node: FsNode) -> BrowseItem:
    path = f"{prefix}/{node.name}"
    return BrowseItem(path=path, name=node.name, type=node.type, size=None if node.type == "dir" else node.size,
                      mode=node.mode, owner=f"{node.uid}:{node.gid}", mtime_ns=node.mtime_ns, target=node.target)


def _shown_fs(volume: Volume) -> str:
    if volume.fs == "luks":
        inside = f", unlocked: {volume.unlocked}" if volume.unlocked else ""
        return f"encrypted ({volume.encryption or 'LUKS'}{inside})"
    return volume.fs or "no file system"


def browse_disk(ctx: PointContext, text: str, secret: LuksSecret | None = None) -> list[BrowseItem]:
    """Rows for ``browse ITEM [DISK:]/path`` (``secret`` unlocks LUKS volumes)."""
    loc, view = parse_location(ctx, text, secret=secret)
    base = f"{loc.disk}:"
    volumes = view.volumes()
    if volumes is not None and loc.volume is None:  # the top of a partitioned disk
        rows = []
        for v in volumes:
            if "/" in v.name:
                continue
            detail = ", ".join(x for x in (_shown_fs(v), v.description) if x)
            kind = "volume" if v.description == "LVM logical volume" else "partition"  # LVM on a whole disk
            rows.append(BrowseItem(path=f"{base}/{v.name}", name=v.name, type=kind, size=v.size, detail=detail))
            for lv in volumes:
                if lv.name.startswith(v.name + "/"):
                    rows.append(BrowseItem(path=f"{base}/{lv.name}", name=lv.name, type="volume", size=lv.size,
                                           detail=_shown_fs(lv)))
        return rows
    fs = view.open_fs(loc.volume)
    node = fs.lookup(list(loc.parts), loc.shown)
    prefix = "/".join([base, *([loc.volume] if loc.volume else []), *loc.parts])
    if node.type != "dir":
        return [_row(prefix.rpartition("/")[0], node)]
    return [_row(prefix, child) for child in fs.listdir(node.inode)]


#: file-system node types and the entry types they are written as
_KINDS = {"file": FILE, "dir": DIR, "symlink": SYMLINK, "fifo": FIFO, "chardev": CHARDEV,
          "blockdev": BLOCKDEV, "socket": SOCKET}


def _entry(node: FsNode, name: str) -> Entry:
    kind = _KINDS[node.type]
    return Entry(name=name, type=kind, mode=node.mode, uid=node.uid, gid=node.gid, mtime_ns=node.mtime_ns,
                 atime_ns=node.atime_ns, size=node.size if kind == FILE else 0, target=node.target)


def _selection(ctx: PointContext, paths: list[str],
               secret: LuksSecret | None) -> Iterator[tuple[FileSystem, str, FsNode]]:
    views: dict[str, DiskView] = {}
    for text in paths:
        disk = text.partition(":")[0] if ":" in text.split("/", 1)[0] else None
        loc, view = parse_location(ctx, text, views.get(disk) if disk else None, secret)
        views[loc.disk] = view
        fs = view.open_fs(loc.volume)
        node = fs.lookup(list(loc.parts), loc.shown)
        base = "/".join([loc.disk, *(loc.volume.split("/") if loc.volume else [])])
        for relpath, child in fs.walk(node, "/".join([base, *loc.parts])):
            yield fs, relpath, child


def extract(ctx: PointContext, target: str, paths: list[str], secret: LuksSecret | None = None) -> RestoreResult:
    """Write the files and folders at ``paths`` under ``target`` (see the module doc);
    ``secret`` unlocks the LUKS volumes they are in."""

    def entries() -> Iterator[tuple[str, Entry, Iterator[bytes] | None]]:
        for fs, relpath, node in _selection(ctx, paths, secret):
            entry = _entry(node, relpath.rpartition("/")[2])
            yield relpath, entry, fs.read(node) if entry.type == FILE else None

    return ctx.write_entries(target, entries())
