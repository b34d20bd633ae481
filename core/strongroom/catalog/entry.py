"""The tree entry: one file, directory, link or special file of a recovery point.

Entries are what a workload's scan produces (without ``chunks``/``subtree``), what the
backup engine stores in tree nodes (with them), and what restore and browse read back.
Names are ``str`` decoded from the file system with ``os.fsdecode`` (surrogateescape),
so any byte string a POSIX file name can hold survives the round trip.
"""

from __future__ import annotations

import base64
from typing import Iterator

import attrs

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"  # a further name of a file stored earlier in the same point
FIFO = "fifo"
CHARDEV = "chardev"
BLOCKDEV = "blockdev"
SOCKET = "socket"
STREAM = "stream"  # content without file-system metadata (a database dump)
DISK = "disk"  # a disk image (fixed-size chunks, holes)

TYPES = frozenset({FILE, DIR, SYMLINK, HARDLINK, FIFO, CHARDEV, BLOCKDEV, SOCKET, STREAM, DISK})
HAS_CONTENT = frozenset({FILE, HARDLINK, STREAM, DISK})


def _check_name(instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise ValueError(f"invalid entry name {value!r}")


@attrs.frozen
class Entry:
    """One entry of a tree node.

    ``target`` is the link text of a symlink, or for a hardlink the point-relative path
    (``a/b/c``) of the first name of the same inode in the point.  ``chunks`` are the
    blob ids of the content in order; ``subtree`` is the tree blob id of a directory.
    ``sparse`` marks files whose all-zero chunks restore as holes.

    ``chunk_size`` is 0 for content-defined chunks (their lengths come from the index).
    Disk images use fixed-size chunks: chunk ``i`` covers bytes ``i * chunk_size`` up to
    the next chunk or ``size``, and an all-zero chunk is a *hole*: not stored, its id is
    empty (``b""``).
    """

    name: str = attrs.field(validator=_check_name)
    type: str = attrs.field(validator=attrs.validators.in_(TYPES))
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    atime_ns: int = 0
    ctime_ns: int = 0
    size: int = 0
    ino: int = 0
    dev: int = 0
    nlink: int = 1
    rdev: int = 0
    target: str = ""
    xattrs: tuple[tuple[str, bytes], ...] = ()
    sparse: bool = False
    chunk_size: int = 0
    chunks: tuple[bytes, ...] = ()
    subtree: bytes | None = None

    @property
    def has_content(self) -> bool:
        return self.type in HAS_CONTENT

    def spans(self, raw_length) -> "Iterator[tuple[int, int, bytes]]":
        """``(offset, length, chunk id)`` of every chunk; ``raw_length(id)`` gives the
        length of a content-defined chunk (from the index).  Holes have an empty id."""
        if self.chunk_size:
            for i, chunk in enumerate(self.chunks):
                offset = i * self.chunk_size
                yield offset, min(self.chunk_size, self.size - offset), chunk
            return
        offset = 0
        for chunk in self.chunks:
            length = raw_length(chunk)
            yield offset, length, chunk
            offset += length

    def to_dict(self) -> dict:
        """The JSON form stored in tree nodes (defaults left out to keep nodes small)."""
        out: dict = {"name": self.name, "type": self.type}
        for name, default in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value == default:
                continue
            if name == "xattrs":
                value = [[k, base64.b64encode(v).decode()] for k, v in value]
            elif name == "chunks":
                value = [c.hex() for c in value]
            elif name == "subtree":
                value = value.hex()
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Entry":
        if not _ENCODED_FIELDS.intersection(data):
            return cls(**data)
        kwargs = dict(data)
        if "xattrs" in kwargs:
            kwargs["xattrs"] = tuple((k, base64.b64decode(v)) for k, v in kwargs["xattrs"])
        if "chunks" in kwargs:
            kwargs["chunks"] = tuple(bytes.fromhex(c) for c in kwargs["chunks"])
        if kwargs.get("subtree") is not None:
            kwargs["subtree"] = bytes.fromhex(kwargs["subtree"])
        return cls(**kwargs)


#: The fields a stored entry leaves out when they have their default value.
_OPTIONAL_FIELDS = tuple((f.name, f.default) for f in attrs.fields(Entry)[2:])
#: The fields stored in another form than their value (base64, hex).
_ENCODED_FIELDS = frozenset({"xattrs", "chunks", "subtree"})
