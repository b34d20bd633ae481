"""The tree entry: one file, directory, link or special file of a recovery point.

Entries are what a workload's scan produces (without ``chunks``/``subtree``), what the
backup engine stores in tree nodes (with them), and what restore and browse read back.
Names are ``str`` decoded from the file system with ``os.fsdecode`` (surrogateescape),
so any byte string a POSIX file name can hold survives the round trip.

:meth:`Entry.from_dict` reads an entry stored in a tree node and refuses anything a
writer of this format cannot have made: an unknown field, a field of the wrong JSON
type, a number outside its range (a mode above 16 bits, a negative size, a time beyond
64 bits), a chunk id that is not 32 bytes of hex (or, for a disk's hole, empty), a
folder without its subtree, a disk whose chunks do not cover its size.  It raises
IntegrityError for each, never another exception.
"""

from __future__ import annotations

import base64
import binascii
import operator
import re
from typing import Iterator

import attrs

from ..errors import IntegrityError

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
        out.update({name: value for (name, default), value in zip(_OPTIONAL_FIELDS, _optional_values(self))
                    if value != default})
        # in place: the keys keep the order of the fields, so equal entries encode alike
        if "xattrs" in out:
            out["xattrs"] = [[k, base64.b64encode(v).decode()] for k, v in out["xattrs"]]
        if "chunks" in out:
            out["chunks"] = [c.hex() for c in out["chunks"]]
        if "subtree" in out:
            out["subtree"] = out["subtree"].hex()
        return out

    @classmethod
    def from_dict(cls, data: dict, what: str = "tree entry") -> "Entry":
        """The entry stored as ``data`` (:meth:`to_dict`); IntegrityError about ``what``
        (the tree node) if it is malformed (see the module docstring)."""
        if not isinstance(data, dict):
            raise _bad(what, "an entry is not a JSON object")
        unknown = set(data) - _FIELD_NAMES
        if unknown:
            raise _bad(what, f"unknown entry field {sorted(unknown)[0]!r}")
        kwargs: dict = {}
        for name, value in data.items():
            kind, limits = _STORED[name]
            if kind is int:
                if not isinstance(value, int) or isinstance(value, bool) or not limits[0] <= value <= limits[1]:
                    raise _bad(what, f"entry field '{name}' must be a number within {limits[0]}..{limits[1]}")
            elif not isinstance(value, kind):
                raise _bad(what, f"entry field '{name}' has the wrong type ({type(value).__name__})")
            kwargs[name] = value
        if "xattrs" in kwargs:
            kwargs["xattrs"] = _xattrs(kwargs["xattrs"], what)
        if "chunks" in kwargs:
            holes = kwargs.get("chunk_size", 0) > 0
            kwargs["chunks"] = tuple(_blob_id(c, what, "chunk", hole_ok=holes) for c in kwargs["chunks"])
        if kwargs.get("subtree") is not None:
            kwargs["subtree"] = _blob_id(kwargs["subtree"], what, "subtree")
        try:
            entry = cls(**kwargs)
        except (TypeError, ValueError) as exc:  # a missing name or type, a bad name or type
            raise _bad(what, f"invalid entry ({exc})") from None
        if entry.type == DIR and entry.subtree is None:
            raise _bad(what, f"folder entry {entry.name!r} has no subtree")
        if entry.chunk_size and len(entry.chunks) != -(-entry.size // entry.chunk_size):
            raise _bad(what, f"the chunks of {entry.name!r} do not cover its size")
        return entry


def _bad(what: str, reason: str) -> IntegrityError:
    return IntegrityError(what=what, reason=f"malformed tree node ({reason})")


_HEX_ID = re.compile(r"[0-9a-f]{64}")


def _blob_id(value: object, what: str, field: str, *, hole_ok: bool = False) -> bytes:
    if isinstance(value, str) and (_HEX_ID.fullmatch(value) or (hole_ok and value == "")):
        return bytes.fromhex(value)
    raise _bad(what, f"a {field} id is not 32 bytes of hex")


def _xattrs(value: list, what: str) -> tuple[tuple[str, bytes], ...]:
    out = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], str)):
            raise _bad(what, "an extended attribute is not a [name, base64] pair")
        try:
            out.append((pair[0], base64.b64decode(pair[1], validate=True)))
        except (binascii.Error, ValueError):
            raise _bad(what, "an extended attribute value is not base64") from None
    return tuple(out)


_U32, _U64, _I64 = (0, 2**32 - 1), (0, 2**64 - 1), (-(2**63), 2**63 - 1)
#: Each stored field's JSON type and, for numbers, its range.
_STORED: dict[str, tuple[type | tuple[type, ...], tuple[int, int]]] = {
    "name": (str, _U32), "type": (str, _U32), "mode": (int, (0, 0o177777)), "uid": (int, _U32),
    "gid": (int, _U32), "user": (str, _U32), "group": (str, _U32), "mtime_ns": (int, _I64),
    "atime_ns": (int, _I64), "ctime_ns": (int, _I64), "size": (int, (0, 2**63 - 1)), "ino": (int, _U64),
    "dev": (int, _U64), "nlink": (int, _U64), "rdev": (int, _U64), "target": (str, _U32),
    "xattrs": (list, _U32), "sparse": (bool, _U32), "chunk_size": (int, (0, 2**31 - 1)),
    "chunks": (list, _U32), "subtree": ((str, type(None)), _U32),
}
#: The fields a stored entry leaves out when they have their default value.
_OPTIONAL_FIELDS = tuple((f.name, f.default) for f in attrs.fields(Entry)[2:])
_ALL_NAMES = tuple(f.name for f in attrs.fields(Entry))
_all_values = operator.attrgetter(*_ALL_NAMES)
_SIZE, _CHUNKS = _ALL_NAMES.index("size"), _ALL_NAMES.index("chunks")


def with_content(entry: Entry, chunks: tuple[bytes, ...], size: int) -> Entry:
    """``entry`` with ``chunks`` and ``size``: ``attrs.evolve(entry, chunks=chunks,
    size=size)`` in about half its time (it runs once for every file a backup reads)."""
    values = list(_all_values(entry))
    values[_SIZE] = size
    values[_CHUNKS] = chunks
    return Entry(*values)


#: The values of those fields, in one call (to_dict is on the path of every file backed up).
_optional_values = operator.attrgetter(*(name for name, _ in _OPTIONAL_FIELDS))
_FIELD_NAMES = frozenset(f.name for f in attrs.fields(Entry))
assert _FIELD_NAMES == set(_STORED)
