"""Offline VMs: disks given as image files or block devices, read while the VM is stopped.

``--disk [NAME=]PATH`` names a disk; without ``NAME=`` the name is the file name
without its extension (``/srv/vm/system.qcow2`` -> ``system``).  The format of each disk
is probed once, when the item is protected (:func:`strongroom_vm.images.probe`), and
stored in the item; every backup reads the disk with that format.

**Unchanged images are not read.**  Each disk's record in the manifest keeps the
image's identity when its read began (:func:`identity`: size, modification and change
times, inode and device).  A disk image whose identity, path, format and size equal its
record in the parent point, and whose parent read was clean (not ``in_use``, nothing
``changed_during_read``), is taken from the parent point as it is: it is not opened
(``DiskSource.changed_chunks`` empty), and the point's "read" figure does not count it.
Block devices are always read: writing to one does not move its times.  A qcow2 image
that changed is read through its dirty bitmaps (:mod:`strongroom_vm.restbitmaps`): only
the chunks written since the parent point.  Any other disk is read whole; unchanged
chunks still cost no storage, since they deduplicate against the parent point.
Each disk's entry has the item's chunk size (:func:`strongroom_vm.layout.item_chunk_size`).

**Consistency at rest.**  A disk that a running VM holds (QEMU's write lock, for every
format: raw images and block devices through :mod:`strongroom_vm.locks`, the others
through ``qemu-img``) is refused with :class:`~strongroom_vm.errors.DiskInUse`, unless
the item was protected with ``--force``: the disk is then read anyway and reported in
``in_use``.  While a disk is read no VM can start on it.  Every disk's read is watched
(:mod:`strongroom_vm.atrest`): one that changed while it was read is reported to the
:class:`~strongroom_vm.atrest.ReadWatch` given.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Iterator

import attrs
from strongroom import DiskSource, InvalidSource

from .atrest import ReadWatch, changes, file_mark, head_digest
from .errors import DiskInUse, DiskUnreadable
from .images import DIRECT_FORMATS, NBD_FORMATS, ClosingReader, end_stale_servers, qemu_img_info, open_image, probe
from .locks import writer_present
from .layout import CHUNK_SIZE, DISKS_DIR, check_disk_name, dir_source, disk_entry
from .restbitmaps import prepare

__all__ = ["disk_sources", "parse_disks"]

_EXTENSIONS = (".img", ".raw", ".qcow2", ".qcow", ".vmdk", ".vdi", ".vhdx", ".vhd", ".qed", ".luks", ".disk")


def _default_name(path: str) -> str:
    base = os.path.basename(path.rstrip("/"))
    for ext in _EXTENSIONS:
        if base.lower().endswith(ext) and len(base) > len(ext):
            return base[: -len(ext)]
    return base


def parse_disks(specs: list[str]) -> list[dict[str, Any]]:
    """``[NAME=]PATH`` specs -> disk documents (name, path, format, kind); probes each."""
    disks: list[dict[str, Any]] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or "/" in name:
            name, path = "", spec
        path = os.path.abspath(path)
        name = name or _default_name(path)
        problem = check_disk_name(name)
        if problem:
            raise InvalidSource(workload="vm", reason=f"{problem}; name it with --disk NAME=PATH")
        if any(d["name"] == name for d in disks):
            raise InvalidSource(workload="vm", reason=f"two disks are named {name!r}; name them with --disk NAME=PATH")
        if not os.path.exists(path):
            raise InvalidSource(workload="vm", reason=f"disk {path} does not exist")
        try:
            info = probe(path)
        except DiskUnreadable as exc:
            raise InvalidSource(workload="vm", reason=str(exc).rstrip(".")) from None
        disks.append({"name": name, "path": path, "format": info.format, "kind": info.kind})
    return disks


def _size_and_use(disk: dict[str, Any], force: bool) -> tuple[int, bool]:
    """The disk's guest size, and whether a running VM holds it (refused unless ``force``)."""
    path, fmt = disk["path"], disk["format"]
    if fmt in DIRECT_FORMATS:
        try:
            with open(path, "rb") as fh:
                size, in_use = fh.seek(0, os.SEEK_END), writer_present(fh.fileno())
        except FileNotFoundError:
            raise DiskUnreadable(disk=path, reason="no such file or device") from None
        except OSError as exc:
            raise DiskUnreadable(disk=path, reason=exc.strerror or str(exc)) from None
        if in_use and not force:
            raise DiskInUse(disk=path)
        return size, in_use
    if fmt not in NBD_FORMATS:
        raise DiskUnreadable(disk=path, reason=f"image format {fmt!r} is not supported")
    if not os.path.exists(path):
        raise DiskUnreadable(disk=path, reason="no such file or device")
    end_stale_servers(path)  # here too: an unchanged image is not served (see images.py)
    try:
        return int(qemu_img_info(path, fmt, shared=False)["virtual-size"]), False
    except DiskInUse:
        if not force:
            raise
    return int(qemu_img_info(path, fmt, shared=True)["virtual-size"]), True


class _Opener:
    """Opens one disk for the engine; the reader closes what it started, and tells
    ``watch`` whether the disk changed while it was read."""

    def __init__(self, disk: dict[str, Any], size: int, force: bool, watch: ReadWatch | None) -> None:
        self.disk = disk
        self.size = size
        self.force = force
        self.watch = watch
        self.before = None
        if watch is not None:
            watch.expect(disk["name"])
            try:
                self.before = file_mark(disk["path"])
            except OSError:
                pass

    def _done(self, found: list[str] | None) -> None:
        if self.watch is not None:
            self.watch.done(self.disk["name"], found)

    def __call__(self) -> ClosingReader:
        path = self.disk["path"]
        try:
            manager = open_image(path, self.disk["format"], self.size, force=self.force)
            reader = manager.__enter__()
        except BaseException:
            self._done(None)
            raise
        head = b""
        if self.watch is not None and self.before is not None:
            try:
                head = head_digest(reader, self.size)
            except BaseException:
                manager.__exit__(None, None, None)
                self._done(None)
                raise

        def check() -> None:
            found = None
            try:
                if self.before is not None:
                    found = changes(attrs.evolve(self.before, head=head),
                                    file_mark(path, head_digest(reader, self.size) if head else b""))
            except Exception:  # the read itself failed: its error is what counts
                found = None
            self._done(found)

        return ClosingReader(reader, self.size, lambda: manager.__exit__(None, None, None),
                             check if self.watch is not None else None)


def identity(path: str) -> dict[str, int] | None:
    """What says an image file is the one read last time: size, times, inode and device
    (None for a block device, whose times do not move when it is written)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino,
            "dev": st.st_dev}


def unchanged(record: dict[str, Any], parent: dict[str, Any] | None) -> bool:
    """Whether the disk of ``record`` (this backup's, before its read) is the parent's as it is."""
    if parent is None or record.get("identity") is None or record.get("in_use"):
        return False
    if parent.get("in_use") or parent.get("changed_during_read"):
        return False
    return all(parent.get(key) == record.get(key) for key in ("identity", "source", "format", "size"))


def disk_sources(disks: list[dict[str, Any]], *, force: bool = False, watch: ReadWatch | None = None,
                 parent: dict[str, dict[str, Any]] | None = None, item_id: str = "",
                 notes: list[str] | None = None, chunk_size: int = CHUNK_SIZE,
                 ) -> tuple[list[Any], list[dict[str, Any]], list[str]]:
    """The ``disks/`` entries of an offline VM, the disks' manifest records, and the
    names of the disks a running VM holds (read only with ``force``).  ``parent``: the
    parent point's disk records by name; a disk unchanged since (:func:`unchanged`) is
    not read, and its record says ``unchanged``.  With ``item_id``, a qcow2 disk that
    changed is read through its dirty bitmaps (:mod:`strongroom_vm.restbitmaps`); why
    one is read whole goes to ``notes``."""
    parent = parent or {}
    sources: list[Any] = [dir_source(DISKS_DIR)]
    records = []
    in_use = []
    for disk in sorted(disks, key=lambda d: d["name"].encode()):
        seen = identity(disk["path"]) if os.path.exists(disk["path"]) else None
        size, used = _size_and_use(disk, force)
        record = {"name": disk["name"], "size": size, "format": disk["format"], "source": disk["path"]}
        if seen is not None:
            record["identity"] = seen
        if used:
            in_use.append(disk["name"])
            record["in_use"] = True
        path = f"{DISKS_DIR}/{disk['name']}"
        before = parent.get(disk["name"])
        if unchanged(record, before):
            record["unchanged"] = True
            if before.get("bitmap"):  # nothing written since: the parent's checkpoint still counts
                record["bitmap"] = before["bitmap"]
            entry = disk_entry(disk["name"], size, os.stat(disk["path"]).st_mtime_ns, chunk_size)
            # not opened unless the parent's chunks are gone (then read whole, unwatched)
            sources.append(DiskSource(path, entry, _Opener(disk, size, force, None), frozenset()))
            records.append(record)
            continue
        changed = None
        if item_id and disk["format"] == "qcow2" and seen is not None and not used:
            prepared = prepare(disk["path"], item_id, before, size, chunk_size)
            changed = prepared.changed
            if prepared.bitmap:
                record["bitmap"] = prepared.bitmap
            if changed is not None:
                record["changed_chunks"] = len(changed)
            if prepared.note and notes is not None:
                notes.append(f"disk {disk['name']} ({disk['path']}) was read whole: {prepared.note}")
            record["identity"] = identity(disk["path"])  # after the bitmaps' changes
        entry = disk_entry(disk["name"], size, os.stat(disk["path"]).st_mtime_ns, chunk_size)
        sources.append(DiskSource(path, entry, _Opener(disk, size, force, watch), changed))
        records.append(record)
    return sources, records, in_use


def describe(source: dict) -> Iterator[str]:
    for disk in source["disks"]:
        yield f"{disk['name']}={disk['path']} ({disk['format']})"
