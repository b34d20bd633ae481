"""Index files: the bytes that say which pack holds each blob.

An index file's plaintext (:func:`encode_index` writes it, :func:`decode_index` and
:func:`decode_index_columns` read it) is::

    version u8 = 1 | pack count u32 |
    pack count x (pack id 16 raw bytes | entry count u32 |
                  entry count x (blob id 32 | kind u8 | offset u32 | length u32 | raw length u32))

all little-endian; the repository seals it as KIND_INDEX under the file's storage name.
Entries are grouped by pack, in the order they were given.  Version 2 (format 3, where a
vault may have several data keys) adds, after each pack id, the 4-byte id of the data
key that sealed that pack's blobs::

    version u8 = 2 | pack count u32 |
    pack count x (pack id 16 | key id 4 | entry count u32 | entry count x (... as above))

:func:`encode_index` writes version 2 when an entry carries a key id (an entry without
one, of a version 1 pack, is written with ``default_key``: the vault's first data key),
else version 1.  A version 1 file's entries carry no key id (``b""``).

Promises: ``decode_index(encode_index(entries))`` gives the entries back grouped by pack.
Refuses: :func:`encode_index` raises ValueError for an invalid pack id or a blob id that
is not :data:`~.blobid.ID_SIZE` bytes; the decoders raise only IntegrityError on
malformed input (short, truncated, an unknown version, a kind of 0, a length shorter
than an envelope's overhead, bytes after the last entry), never another exception.

:func:`decode_index_columns` checks a file's entries and keeps its bytes, with no Python
object per blob, for :meth:`~.index.Index.add_decoded`: :meth:`DecodedIndex.find` looks an
id up in them and :attr:`DecodedIndex.entries` gives them as one numpy array (numpy is
imported only then).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from ..errors import IntegrityError
from .blobid import ID_SIZE
from .envelope import Envelope
from .pack import IndexEntry, is_pack_id

if TYPE_CHECKING:
    from .arrays import np

__all__ = ["ENTRY_SIZE", "INDEX_VERSION", "DecodedIndex", "decode_index", "decode_index_columns", "encode_index"]

INDEX_VERSION = 1
INDEX_VERSION_KEYED = 2
_HEAD = struct.Struct("<BI")
_PACK_HEAD = struct.Struct("<16sI")
_KEYED_PACK_HEAD = struct.Struct("<16s4sI")
_ENTRY = struct.Struct("<32sBIII")
#: Bytes of one entry in an index file (the blob id first).
ENTRY_SIZE = _ENTRY.size
_KIND_AT, _LENGTH_AT = 32, 37  # where an entry's kind and length are
# an entry's length is refused below the envelope's overhead: a check of the length's low
# byte (below it) and of its other three bytes (zero) on whole columns at once
assert Envelope.OVERHEAD < 256
_BELOW_OVERHEAD = bytes(int(b < Envelope.OVERHEAD) for b in range(256))
_ZERO = bytes(int(b == 0) for b in range(256))


def _file_entry() -> np.dtype:
    """One entry of an index file as numpy reads it (the blob id split as in the index's tables)."""
    from .arrays import np

    return np.dtype([("key", ">u8"), ("rest", "<u8", (3,)), ("kind", "u1"), ("offset", "<u4"),
                     ("length", "<u4"), ("raw", "<u4")])


def encode_index(entries: Iterable[IndexEntry], *, default_key: bytes = b"") -> bytes:
    """The plaintext of an index file listing ``entries`` (grouped by pack; version 2
    when any entry carries a key id, see the module docstring)."""
    groups: dict[str, list[IndexEntry]] = {}
    keyed = False
    for entry in entries:
        groups.setdefault(entry.pack_id, []).append(entry)
        keyed = keyed or bool(entry.key_id)
    parts = [_HEAD.pack(INDEX_VERSION_KEYED if keyed else INDEX_VERSION, len(groups))]
    for pack_id, group in groups.items():
        if not is_pack_id(pack_id):
            raise ValueError(f"invalid pack id {pack_id!r}")
        if keyed:
            key_id = group[0].key_id or default_key
            if len(key_id) != 4 or any((e.key_id or default_key) != key_id for e in group):
                raise ValueError(f"pack {pack_id}: its entries need one data key id of 4 bytes")
            parts.append(_KEYED_PACK_HEAD.pack(bytes.fromhex(pack_id), key_id, len(group)))
        else:
            parts.append(_PACK_HEAD.pack(bytes.fromhex(pack_id), len(group)))
        for e in group:
            if len(e.blob_id) != ID_SIZE:
                raise ValueError(f"blob id must be {ID_SIZE} bytes, got {len(e.blob_id)}")
            parts.append(_ENTRY.pack(e.blob_id, e.kind, e.offset, e.length, e.raw_length))
    return b"".join(parts)


def decode_index(data: bytes | bytearray | memoryview) -> list[IndexEntry]:
    """The entries of an index file's plaintext; IntegrityError if it is malformed."""
    return decode_index_columns(data).index_entries()


@attrs.frozen
class DecodedIndex:
    """Index files decoded (and checked): ``counts[i]`` entries of pack ``pack_ids[i]``
    start at byte ``starts[i]`` of the file bytes ``buffers[file_of[i]]``, one after the
    other; the packs of a file are in file order."""

    pack_ids: tuple[str, ...]
    counts: tuple[int, ...]
    starts: tuple[int, ...] = ()
    file_of: tuple[int, ...] = ()
    buffers: tuple[bytes, ...] = ()
    #: the data key id of each pack's blobs (``b""``: the vault's first data key)
    key_ids: tuple[bytes, ...] = ()

    def key_of(self, i: int) -> bytes:
        return self.key_ids[i] if self.key_ids else b""

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def entries(self) -> np.ndarray:
        """Every entry as one numpy array, in file order (imports numpy)."""
        from .arrays import np

        dtype = _file_entry()
        parts = [np.frombuffer(self.buffers[f], dtype=dtype, count=n, offset=start)
                 for f, n, start in zip(self.file_of, self.counts, self.starts)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

    def _rows(self) -> Iterable[tuple[int, tuple]]:
        """(pack number, entry fields) of every entry, in file order."""
        for i, (f, n, start) in enumerate(zip(self.file_of, self.counts, self.starts)):
            view = memoryview(self.buffers[f])[start:start + n * _ENTRY.size]
            for fields in _ENTRY.iter_unpack(view):
                yield i, fields

    def index_entries(self) -> list[IndexEntry]:
        """The entries as :class:`IndexEntry` objects, in file order."""
        pack_ids = self.pack_ids
        return [IndexEntry(blob, kind, pack_ids[i], offset, length, raw, self.key_of(i))
                for i, (blob, kind, offset, length, raw) in self._rows()]

    def find(self, blob_id: bytes) -> IndexEntry | None:
        """The entry of ``blob_id`` (the first one in file order), or None: a search of
        the files' bytes, with no table built."""
        for f, buffer in enumerate(self.buffers):
            first, last = bisect.bisect_left(self.file_of, f), bisect.bisect_right(self.file_of, f)
            at = buffer.find(blob_id)
            while at >= 0:
                i = bisect.bisect_right(self.starts, at, first, last) - 1
                if i >= first:
                    offset = at - self.starts[i]
                    if offset < self.counts[i] * _ENTRY.size and not offset % _ENTRY.size:
                        return self.entry_at(i, at, blob_id)
                at = buffer.find(blob_id, at + 1)  # found inside other bytes: go on
        return None

    def entry_at(self, i: int, at: int, blob_id: bytes) -> IndexEntry:
        """The entry of pack ``i`` that starts at byte ``at`` of its file (its id is ``blob_id``)."""
        _, kind, pack_offset, length, raw = _ENTRY.unpack_from(self.buffers[self.file_of[i]], at)
        return IndexEntry(blob_id, kind, self.pack_ids[i], pack_offset, length, raw, self.key_of(i))

    @classmethod
    def of_entries(cls, entries: Iterable[IndexEntry]) -> DecodedIndex:
        """``entries`` as if written to an index file and decoded (grouped by pack and
        data key, in the order first seen), without the file: what an index without
        tables keeps of what is added (:meth:`.Index.add`).  Ids and pack ids are not
        checked here: the index has."""
        groups: dict[tuple[str, bytes], list[bytes]] = {}
        for e in entries:
            groups.setdefault((e.pack_id, e.key_id), []).append(
                _ENTRY.pack(e.blob_id, e.kind, e.offset, e.length, e.raw_length))
        starts, at = [], 0
        for packed in groups.values():
            starts.append(at)
            at += len(packed) * _ENTRY.size
        return cls(tuple(p for p, _ in groups), tuple(len(g) for g in groups.values()), tuple(starts),
                   (0,) * len(groups), (b"".join(b"".join(g) for g in groups.values()),),
                   tuple(k for _, k in groups))

    @classmethod
    def join(cls, parts: Iterable[DecodedIndex]) -> DecodedIndex:
        parts = [p for p in parts if p.count]
        file_of: list[int] = []
        buffers: list[bytes] = []
        for part in parts:
            file_of.extend(len(buffers) + f for f in part.file_of)
            buffers.extend(part.buffers)
        return cls(
            tuple(p for part in parts for p in part.pack_ids),
            tuple(c for part in parts for c in part.counts),
            tuple(s for part in parts for s in part.starts),
            tuple(file_of),
            tuple(buffers),
            tuple(part.key_of(i) for part in parts for i in range(len(part.pack_ids))),
        )


def decode_index_columns(data: bytes | bytearray | memoryview) -> DecodedIndex:
    """What :func:`decode_index` reads, as columns (for :meth:`Index.add_decoded`);
    the same checks, and IntegrityError only, on malformed input."""
    try:
        return _decode_columns(data if isinstance(data, bytes) else memoryview(data).cast("B"))
    except IntegrityError:
        raise
    except Exception as exc:  # any parser surprise is damage, never a crash
        raise IntegrityError(
            what="index", reason=f"malformed ({type(exc).__name__}: {exc})"
        ) from None


def _decode_columns(data: bytes | bytearray | memoryview) -> DecodedIndex:
    buffer = data if isinstance(data, bytes) else bytes(data)
    size = len(buffer)
    if size < _HEAD.size:
        raise _malformed(f"too short ({size} bytes)")
    version, pack_count = _HEAD.unpack_from(buffer)
    if version not in (INDEX_VERSION, INDEX_VERSION_KEYED):
        raise _malformed(f"unsupported index version {version}")
    keyed = version == INDEX_VERSION_KEYED
    pack_head = _KEYED_PACK_HEAD if keyed else _PACK_HEAD
    pos = _HEAD.size
    pack_ids: list[str] = []
    counts: list[int] = []
    starts: list[int] = []
    key_ids: list[bytes] = []
    for _ in range(pack_count):
        if pos + pack_head.size > size:
            raise _malformed("truncated pack header")
        if keyed:
            raw_pack_id, key_id, count = _KEYED_PACK_HEAD.unpack_from(buffer, pos)
        else:
            (raw_pack_id, count), key_id = _PACK_HEAD.unpack_from(buffer, pos), b""
        pos += pack_head.size
        end = pos + count * _ENTRY.size
        if end > size:
            raise _malformed("truncated entries")
        if count and not _valid_entries(buffer, pos, end):
            raise _malformed(f"invalid entry for pack {raw_pack_id.hex()}")
        if count:
            pack_ids.append(raw_pack_id.hex())
            counts.append(count)
            starts.append(pos)
            key_ids.append(bytes(key_id))
        pos = end
    if pos != size:
        raise _malformed(f"{size - pos} bytes after the last entry")
    if not counts:
        return DecodedIndex((), ())
    return DecodedIndex(tuple(pack_ids), tuple(counts), tuple(starts), (0,) * len(counts), (buffer,),
                        tuple(key_ids) if keyed else ())


def _valid_entries(buffer: bytes, start: int, end: int) -> bool:
    """No entry between ``start`` and ``end`` has kind 0 or a length below the envelope's
    overhead: each check on a whole column of bytes (taken with a stride), no object per entry."""
    step = _ENTRY.size
    if 0 in buffer[start + _KIND_AT:end:step]:
        return False
    short = int.from_bytes(buffer[start + _LENGTH_AT:end:step].translate(_BELOW_OVERHEAD), "big")
    for byte in (1, 2, 3):
        if not short:
            break
        short &= int.from_bytes(buffer[start + _LENGTH_AT + byte:end:step].translate(_ZERO), "big")
    return not short


def _malformed(reason: str) -> IntegrityError:
    return IntegrityError(what="index", reason=reason)
