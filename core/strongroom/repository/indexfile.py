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

:func:`decode_index_columns` reads a file's entries into one numpy array, with no
Python object per blob, for :meth:`~.index.Index.add_decoded`.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Iterable

import attrs

# numpy is used for array operations only: without this, OpenBLAS starts a spinning
# thread per CPU at import, for nothing
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ..errors import IntegrityError
from .blobid import ID_SIZE
from .envelope import Envelope
from .pack import IndexEntry, is_pack_id

__all__ = ["INDEX_VERSION", "DecodedIndex", "decode_index", "decode_index_columns", "encode_index"]

INDEX_VERSION = 1
INDEX_VERSION_KEYED = 2
_HEAD = struct.Struct("<BI")
_PACK_HEAD = struct.Struct("<16sI")
_KEYED_PACK_HEAD = struct.Struct("<16s4sI")
_ENTRY = struct.Struct("<32sBIII")
#: One entry of an index file as numpy reads it (the blob id split as in the index's tables).
_FILE_ENTRY = np.dtype(
    [("key", ">u8"), ("rest", "<u8", (3,)), ("kind", "u1"), ("offset", "<u4"), ("length", "<u4"), ("raw", "<u4")]
)
assert _FILE_ENTRY.itemsize == _ENTRY.size


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
    """Index files decoded as columns: ``entries`` (a numpy array in file order) holds
    ``counts[i]`` entries of pack ``pack_ids[i]``, then those of the next pack."""

    pack_ids: tuple[str, ...]
    counts: tuple[int, ...]
    entries: np.ndarray
    #: the data key id of each pack's blobs (``b""``: the vault's first data key)
    key_ids: tuple[bytes, ...] = ()

    def key_of(self, i: int) -> bytes:
        return self.key_ids[i] if self.key_ids else b""

    @property
    def count(self) -> int:
        return len(self.entries)

    def index_entries(self) -> list[IndexEntry]:
        """The entries as :class:`IndexEntry` objects, in file order."""
        # in the file's layout: joining arrays may have turned the key to native byte order
        rows = _ENTRY.iter_unpack(self.entries.astype(_FILE_ENTRY, copy=False).tobytes())
        out: list[IndexEntry] = []
        for i, (pack_id, count) in enumerate(zip(self.pack_ids, self.counts)):
            key_id = self.key_of(i)
            out.extend(
                IndexEntry(blob, kind, pack_id, offset, length, raw, key_id)
                for blob, kind, offset, length, raw in itertools.islice(rows, count)
            )
        return out

    @classmethod
    def join(cls, parts: Iterable[DecodedIndex]) -> DecodedIndex:
        parts = [p for p in parts if p.count]
        if not parts:
            return cls((), (), np.empty(0, dtype=_FILE_ENTRY))
        return cls(
            tuple(p for part in parts for p in part.pack_ids),
            tuple(c for part in parts for c in part.counts),
            np.concatenate([part.entries for part in parts]),
            tuple(part.key_of(i) for part in parts for i in range(len(part.pack_ids))),
        )


def decode_index_columns(data: bytes | bytearray | memoryview) -> DecodedIndex:
    """What :func:`decode_index` reads, as columns (for :meth:`Index.add_decoded`);
    the same checks, and IntegrityError only, on malformed input."""
    try:
        return _decode_columns(memoryview(data).cast("B"))
    except IntegrityError:
        raise
    except Exception as exc:  # any parser surprise is damage, never a crash
        raise IntegrityError(
            what="index", reason=f"malformed ({type(exc).__name__}: {exc})"
        ) from None


def _decode_columns(view: memoryview) -> DecodedIndex:
    size = len(view)
    if size < _HEAD.size:
        raise _malformed(f"too short ({size} bytes)")
    version, pack_count = _HEAD.unpack_from(view)
    if version not in (INDEX_VERSION, INDEX_VERSION_KEYED):
        raise _malformed(f"unsupported index version {version}")
    keyed = version == INDEX_VERSION_KEYED
    pack_head = _KEYED_PACK_HEAD if keyed else _PACK_HEAD
    pos = _HEAD.size
    pack_ids: list[str] = []
    counts: list[int] = []
    key_ids: list[bytes] = []
    parts: list[np.ndarray] = []
    for _ in range(pack_count):
        if pos + pack_head.size > size:
            raise _malformed("truncated pack header")
        if keyed:
            raw_pack_id, key_id, count = _KEYED_PACK_HEAD.unpack_from(view, pos)
        else:
            (raw_pack_id, count), key_id = _PACK_HEAD.unpack_from(view, pos), b""
        pos += pack_head.size
        end = pos + count * _ENTRY.size
        if end > size:
            raise _malformed("truncated entries")
        entries = np.frombuffer(view[pos:end], dtype=_FILE_ENTRY)
        if ((entries["kind"] == 0) | (entries["length"] < Envelope.OVERHEAD)).any():
            raise _malformed(f"invalid entry for pack {raw_pack_id.hex()}")
        if count:
            pack_ids.append(raw_pack_id.hex())
            counts.append(count)
            key_ids.append(bytes(key_id))
            parts.append(entries)
        pos = end
    if pos != size:
        raise _malformed(f"{size - pos} bytes after the last entry")
    joined = np.concatenate(parts) if parts else np.empty(0, dtype=_FILE_ENTRY)
    return DecodedIndex(tuple(pack_ids), tuple(counts), joined, tuple(key_ids) if keyed else ())


def _malformed(reason: str) -> IntegrityError:
    return IntegrityError(what="index", reason=reason)
