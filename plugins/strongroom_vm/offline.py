"""Offline VMs: disks given as image files or block devices, read while the VM is stopped.

``--disk [NAME=]PATH`` names a disk; without ``NAME=`` the name is the file name
without its extension (``/srv/vm/system.qcow2`` -> ``system``).  The format of each disk
is probed once, when the item is protected (:func:`strongroom_vm.images.probe`), and
stored in the item; every backup reads the disk with that format.  Every backup reads
every disk whole (there is no changed-block map for an image at rest): unchanged chunks
still cost no storage, since they deduplicate against the parent point.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

from strongroom import DiskSource, InvalidSource

from .errors import DiskUnreadable
from .images import DIRECT_FORMATS, NBD_FORMATS, ClosingReader, qemu_img_info, open_image, probe
from .layout import DISKS_DIR, check_disk_name, dir_source, disk_entry

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


def _current_size(disk: dict[str, Any]) -> int:
    path, fmt = disk["path"], disk["format"]
    if fmt in DIRECT_FORMATS:
        try:
            with open(path, "rb") as fh:
                return fh.seek(0, os.SEEK_END)
        except FileNotFoundError:
            raise DiskUnreadable(disk=path, reason="no such file or device") from None
        except OSError as exc:
            raise DiskUnreadable(disk=path, reason=exc.strerror or str(exc)) from None
    if fmt not in NBD_FORMATS:
        raise DiskUnreadable(disk=path, reason=f"image format {fmt!r} is not supported")
    if not os.path.exists(path):
        raise DiskUnreadable(disk=path, reason="no such file or device")
    info = qemu_img_info(path, fmt, shared=False)
    return int(info["virtual-size"])


class _Opener:
    """Opens one disk for the engine; the reader closes what it started."""

    def __init__(self, disk: dict[str, Any], size: int) -> None:
        self.disk = disk
        self.size = size

    def __call__(self) -> ClosingReader:
        manager = open_image(self.disk["path"], self.disk["format"], self.size)
        reader = manager.__enter__()
        return ClosingReader(reader, self.size, lambda: manager.__exit__(None, None, None))


def disk_sources(disks: list[dict[str, Any]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """The ``disks/`` entries of an offline VM, and the disks' manifest records."""
    sources: list[Any] = [dir_source(DISKS_DIR)]
    records = []
    for disk in sorted(disks, key=lambda d: d["name"].encode()):
        size = _current_size(disk)
        entry = disk_entry(disk["name"], size, os.stat(disk["path"]).st_mtime_ns)
        sources.append(DiskSource(f"{DISKS_DIR}/{disk['name']}", entry, _Opener(disk, size)))
        records.append({"name": disk["name"], "size": size, "format": disk["format"], "source": disk["path"]})
    return sources, records


def describe(source: dict) -> Iterator[str]:
    for disk in source["disks"]:
        yield f"{disk['name']}={disk['path']} ({disk['format']})"
