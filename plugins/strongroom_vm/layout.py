"""The tree of a VM recovery point, and the source entries that build it.

A point of a ``vm`` item holds::

    config/<file>    the VM's configuration as given with --config (libvirt XML, a QEMU
                     command line, anything), and for a live VM ``qemu.cmdline``, QEMU's
                     own command line when it can be read (FILE entries)
    disks/<name>     one DISK entry per disk: the guest-visible content of the disk
                     (raw bytes, whatever the image format), fixed 4 MiB chunks aligned
                     to the disk, holes for all-zero chunks
    vm.json          the manifest (a STREAM entry): format version, mode, consistency,
                     and per disk its name, size, source format and path, and for live
                     VMs the checkpoint bitmap that marks this point (see live.py)

Disk names are 1-64 characters of letters, digits, ``.``, ``_`` and ``-`` (no ``:`` or
``/``, which separate disks and paths in ``[DISK:]/path``).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import time
from typing import Any, Callable

import attrs

from strongroom.catalog.entry import DIR, DISK, FILE, STREAM, Entry

__all__ = [
    "CHUNK_SIZE", "CONFIG_DIR", "DISKS_DIR", "FORMATS", "MANIFEST", "DiskSource", "FileSource",
    "StreamSource", "check_disk_name", "config_entries", "dir_source", "read_manifest",
]

CHUNK_SIZE = 4 << 20
DISKS_DIR = "disks"
CONFIG_DIR = "config"
MANIFEST = "vm.json"
MANIFEST_VERSION = 1
DISK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: The formats a whole-disk restore writes images in (``restore --format``).
FORMATS = ("raw", "qcow2")


def check_disk_name(name: str) -> str | None:
    """None if ``name`` is a valid disk name, else the reason it is not."""
    if DISK_NAME.fullmatch(name) is None:
        return f"disk name {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def safe_disk_name(text: str) -> str:
    """A valid disk name made from any text (a QEMU device id, a file name)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip("._-")[:64]
    return name or "disk"


@attrs.frozen
class FileSource:
    """A file of this machine, backed up with its metadata (the engine reads ``abspath``)."""

    path: str
    abspath: str
    entry: Entry


@attrs.frozen
class StreamSource:
    """Bytes made by the workload (the manifest, a command line)."""

    path: str
    entry: Entry
    data: bytes

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)


@attrs.frozen
class DiskSource:
    """A disk: ``open()`` gives a seekable reader of its guest content.

    ``changed_chunks`` (chunk numbers that may differ from the parent point, or None to
    read everything) is what the engine uses to skip unchanged chunks.
    """

    path: str
    entry: Entry
    opener: Callable[[], io.RawIOBase]
    changed_chunks: frozenset[int] | None = None

    def open(self) -> io.RawIOBase:
        return self.opener()


def dir_source(name: str) -> StreamSource:
    return StreamSource(name, Entry(name=name, type=DIR, mode=0o755), b"")


def disk_entry(name: str, size: int, mtime_ns: int = 0) -> Entry:
    """A disk's entry; ``mtime_ns`` is the image's modification time, or the snapshot time."""
    return Entry(name=name, type=DISK, mode=0o600, size=size, chunk_size=CHUNK_SIZE,
                 mtime_ns=mtime_ns or time.time_ns())


def stream(path: str, data: bytes, mode: int = 0o644) -> StreamSource:
    name = path.rpartition("/")[2]
    return StreamSource(path, Entry(name=name, type=STREAM, mode=mode, size=len(data)), data)


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


def read_manifest(vault, tree) -> dict:
    """The manifest of a point (``{}`` for a point without one)."""
    from strongroom.catalog.reader import ContentReader
    from strongroom.errors import IntegrityError, PathNotInPoint

    try:
        entry = tree.lookup(MANIFEST)
    except PathNotInPoint:
        return {}
    if entry is None:
        return {}
    try:
        doc = json.loads(ContentReader(vault.repo, entry).read())
    except ValueError:
        raise IntegrityError(what=f"{MANIFEST} of point {tree.point}", reason="not JSON") from None
    if not isinstance(doc, dict) or doc.get("version") != MANIFEST_VERSION:
        raise IntegrityError(what=f"{MANIFEST} of point {tree.point}", reason="unknown manifest version")
    return doc
