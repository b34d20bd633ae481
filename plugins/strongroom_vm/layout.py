"""The tree of a VM recovery point, and the source entries that build it.

A point of a ``vm`` item holds::

    config/<file>    the VM's configuration as given with --config (libvirt XML, a QEMU
                     command line, anything), and for a live VM ``qemu.cmdline``, QEMU's
                     own command line when it can be read (FILE entries)
    disks/<name>     one DISK entry per disk: the guest-visible content of the disk
                     (raw bytes, whatever the image format), fixed-size chunks aligned
                     to the disk (the entry's chunk_size: the item's, see
                     DEFAULT_CHUNK_SIZE), holes for all-zero chunks
    vm.json          the manifest (a STREAM entry): format version, mode, consistency,
                     and per disk its name, size, source format and path, and for live
                     VMs the checkpoint bitmap that marks this point (see live.py); for
                     offline VMs ``in_use`` (read with --force while a VM held it) and
                     ``changed_during_read`` (what changed while it was read) when so,
                     ``identity`` (the image file's size, times, inode and device when
                     its read began) and ``unchanged`` (taken from the parent point
                     without being read: see offline.py)

Disk names are 1-64 characters of letters, digits, ``.``, ``_`` and ``-`` (no ``:`` or
``/``, which separate disks and paths in ``[DISK:]/path``).
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from typing import Any

from strongroom import DISK, FILE, Entry, FileSource, FolderSource, IntegrityError, PointView, StreamSource

__all__ = [
    "CHUNK_SIZE", "CHUNK_SIZES", "CONFIG_DIR", "DEFAULT_CHUNK_SIZE", "DISKS_DIR", "FORMATS", "MANIFEST", "check_disk_name", "config_entries",
    "dir_source", "disk_entry", "item_chunk_size", "manifest_source", "parse_chunk_size", "read_manifest",
]

CHUNK_SIZE = 4 << 20  # live VMs, and offline items protected before items recorded their own
#: The chunk size of new offline items (``protect vm --chunk-size`` overrides it), chosen
#: from bench/vm/RESULTS.md; an item keeps the size it was protected with, and each disk
#: entry records its own, so points of any size read back the same way.
DEFAULT_CHUNK_SIZE = 1 << 20
CHUNK_SIZES = tuple(1 << n for n in range(16, 25))  # 64 KiB ... 16 MiB
DISKS_DIR = "disks"
CONFIG_DIR = "config"
MANIFEST = "vm.json"
MANIFEST_VERSION = 1
DISK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: The formats a whole-disk restore writes images in (``restore --format``).
FORMATS = ("raw", "qcow2")


def parse_chunk_size(text: str | int) -> int | None:
    """``256K``, ``1M``, ``65536``... -> bytes; None if it is not one of :data:`CHUNK_SIZES`."""
    match = re.fullmatch(r"\s*(\d+)\s*([KkMm]?)(?:i?[Bb])?\s*", str(text))
    if match is None:
        return None
    value = int(match.group(1)) << {"": 0, "k": 10, "m": 20}[match.group(2).lower()]
    return value if value in CHUNK_SIZES else None


def item_chunk_size(source: dict) -> int:
    """The chunk size of an offline item's disks (:data:`CHUNK_SIZE` for items that predate the choice)."""
    return int(source.get("chunk_size") or CHUNK_SIZE)


def check_disk_name(name: str) -> str | None:
    """None if ``name`` is a valid disk name, else the reason it is not."""
    if DISK_NAME.fullmatch(name) is None:
        return f"disk name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def safe_disk_name(text: str) -> str:
    """A valid disk name made from any text (a QEMU device id, a file name)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip("._-")[:64]
    return name or "disk"


def dir_source(name: str) -> FolderSource:
    return FolderSource.named(name)


def disk_entry(name: str, size: int, mtime_ns: int = 0, chunk_size: int = CHUNK_SIZE) -> Entry:
    """A disk's entry; ``mtime_ns`` is the image's modification time, or the snapshot time."""
    return Entry(name=name, type=DISK, mode=0o600, size=size, chunk_size=chunk_size,
                 mtime_ns=mtime_ns or time.time_ns())


def stream(path: str, data: bytes, mode: int = 0o644) -> StreamSource:
    return StreamSource.from_bytes(path, data, mode=mode)


def config_entries(config: str | None, extra: dict[str, bytes]) -> list[Any]:
    """The ``config/`` folder: the user's config file (with its metadata) and ``extra``."""
    out: list[Any] = []
    if config:
        st = os.stat(config)
        name = os.path.basename(config)
        out.append(FileSource(f"{CONFIG_DIR}/{name}", config, Entry(
            name=name, type=FILE, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
            mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, size=st.st_size, ino=st.st_ino, dev=st.st_dev,
        )))
    for name, data in sorted(extra.items()):
        if not config or name != os.path.basename(config):
            out.append(stream(f"{CONFIG_DIR}/{name}", data))
    out.sort(key=lambda s: s.path.encode())
    return [dir_source(CONFIG_DIR), *out] if out else []


def manifest_source(manifest: dict) -> StreamSource:
    doc = {"version": MANIFEST_VERSION, **manifest}
    return stream(MANIFEST, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n")


def read_manifest(point: PointView) -> dict:
    """The manifest of a point (``{}`` for a point without one)."""
    if not point.exists(MANIFEST):
        return {}
    shown = f"{MANIFEST} of point {point.point.short_id}"
    try:
        doc = json.loads(point.read_bytes(MANIFEST))
    except ValueError:
        raise IntegrityError(what=shown, reason="not JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != MANIFEST_VERSION:
        raise IntegrityError(what=shown, reason="unknown manifest version")
    return doc
