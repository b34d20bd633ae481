"""Packs: sealed blobs stored back to back with a sealed trailer that lists them.

A pack is stored as ``data/<first two hex digits>/<pack id>``; a pack id is 16 random
bytes written as 32 lowercase hex digits.  Layout (all integers little-endian)::

    sealed blob 1 | sealed blob 2 | ... | sealed trailer | trailer length u32 | b"SRPK"

Each blob is sealed by the envelope with its kind and name = its raw 32-byte blob id.
The trailer plaintext is (version 1, formats 1 and 2)::

    version u8 = 1 | count u32 |
    count x (blob id 32 | kind u8 | offset u32 | length u32 | raw length u32)

or (version 2, format 3: a vault may have several data keys)::

    version u8 = 2 | count u32 | key id 4 |
    count x (blob id 32 | kind u8 | offset u32 | length u32 | raw length u32)

where ``key id`` names the data key that sealed every blob of the pack (a pack holds
blobs of one data key only; a version 1 pack's are the vault's first data key's).  The
trailer itself is sealed with the data key current when it was written.

sealed as KIND_PACK_TRAILER under the name ``b"pack:" + pack_id`` (the hex id as ASCII),
so a trailer cannot be moved to another pack.  Offsets count from the start of the pack;
entries are in file order, the first at offset 0, each starting where the previous one
ends, the last ending where the sealed trailer begins.  ``length`` is the sealed size,
``raw length`` the plaintext size.

The trailer makes every pack self-describing, so the index can always be rebuilt from
the packs alone.  :func:`read_trailer` reads only the tail of a stored pack (its size,
then one ranged read of the last 64 KiB, and a second one only for trailers larger than
that); :func:`parse_pack` does the same on a whole pack in memory.  Both raise
IntegrityError for a truncated, damaged or foreign pack.

The envelope writes the blobs and the trailer in the vault's object format (format 2:
headerless, padded blobs and a padded trailer, see :mod:`.envelope`); the layout above
is the same in both formats, and a pack may hold blobs of both.

Bounds, checked before anything beyond the fixed 64 KiB tail is read: a pack is at most
:data:`MAX_PACK_SIZE` bytes (blobs are added while the pack is under
:data:`PACK_TARGET_SIZE`, so it is that, one largest sealed blob and a trailer), and its
trailer at most :data:`MAX_TRAILER_LENGTH` bytes (the trailer of the most blobs such a
pack can hold, :data:`MAX_PACK_BLOBS`, every blob at least 38 bytes) and no longer than
the pack.  A footer claiming more is damage: reading a hostile pack costs at most the
tail read plus one trailer of that bound (about 10 MB), never the size it claims.
:class:`PackWriter` refuses to grow a pack beyond what readers accept.
"""

from __future__ import annotations

import re
import secrets
import struct
from typing import Callable

import attrs

from ..errors import IntegrityError
from ..storage.base import Store
from .blobid import ID_SIZE, blob_id
from ..bulkcopy import copy_into
from .envelope import KIND_DATA, KIND_PACK_TRAILER, V2_OVERHEAD, Envelope, Scratch, max_sealed, padded_size

__all__ = [
    "MAX_PACK_BLOBS",
    "MAX_PACK_SIZE",
    "MAX_TRAILER_LENGTH",
    "PACK_TARGET_SIZE",
    "IndexEntry",
    "PackWriter",
    "check_pack_size",
    "missing_pack",
    "pack_name",
    "parse_pack",
    "read_groups",
    "read_trailer",
    "truncated",
]

#: Packs are closed once their blobs reach about this size.
PACK_TARGET_SIZE = 8 * 1024 * 1024

PACK_MAGIC = b"SRPK"
TRAILER_VERSION = 1
#: Trailers of format 3 name the data key of the pack's blobs.
TRAILER_VERSION_KEYED = 2
_KEY_ID = struct.Struct("<4s")
_FOOTER = struct.Struct("<I4s")
_TRAILER_HEAD = struct.Struct("<BI")
_TRAILER_ENTRY = struct.Struct("<32sBIII")
_U32_MAX = 2**32 - 1
_TAIL_READ = 64 * 1024
_PACK_ID = re.compile(r"[0-9a-f]{32}")

#: The most blobs a pack holds: every sealed blob has at least Envelope.OVERHEAD bytes,
#: and blobs are added while the pack is under PACK_TARGET_SIZE.
MAX_PACK_BLOBS = (PACK_TARGET_SIZE - 1) // Envelope.OVERHEAD + 1
_MAX_TRAILER_PLAIN = _TRAILER_HEAD.size + 4 + MAX_PACK_BLOBS * _TRAILER_ENTRY.size
#: The longest sealed trailer, in either format (about 9.5 MiB).
MAX_TRAILER_LENGTH = max(
    _MAX_TRAILER_PLAIN + Envelope.OVERHEAD,
    padded_size(KIND_PACK_TRAILER, 5 + _MAX_TRAILER_PLAIN) + V2_OVERHEAD,
)
#: The largest pack: blobs up to PACK_TARGET_SIZE, one more of the largest sealed size,
#: the longest trailer and the footer (about 83 MiB).
MAX_PACK_SIZE = PACK_TARGET_SIZE - 1 + max_sealed(KIND_DATA) + MAX_TRAILER_LENGTH + _FOOTER.size


@attrs.frozen
class IndexEntry:
    """Where one blob is: its pack, the byte range of its sealed form, its sizes, and the
    id of the data key that sealed it (empty: the vault's first data key)."""

    blob_id: bytes
    kind: int
    pack_id: str
    offset: int
    length: int
    raw_length: int
    key_id: bytes = b""


def open_blob(
    envelope: Envelope, id_key: bytes, entry: IndexEntry, sealed: bytes | memoryview, *,
    scratch: Scratch | None = None, threaded: bool = True,
) -> bytes | memoryview:
    """The plaintext of the blob ``entry`` indexes, from its ``sealed`` bytes: decrypted
    (into ``scratch`` if given, see :meth:`Envelope.open`) and checked against its id
    under ``id_key`` and its length; IntegrityError naming the pack and blob otherwise.
    ``threaded=False`` hashes in the calling thread only."""
    if len(sealed) != entry.length:
        raise truncated(entry)
    try:
        raw = envelope.open(sealed, entry.blob_id, kind=entry.kind, scratch=scratch, key_id=entry.key_id)
    except IntegrityError as exc:
        raise IntegrityError(what=_blob_in_pack(entry), reason=exc.fields.get("reason", "authentication failed")) from None
    if len(raw) != entry.raw_length or blob_id(id_key, raw, threaded=threaded) != entry.blob_id:
        raise IntegrityError(what=_blob_in_pack(entry), reason="content does not match its id")
    return raw


def _blob_in_pack(entry: IndexEntry) -> str:
    return f"{pack_name(entry.pack_id)} (blob {entry.blob_id.hex()[:16]})"


def missing_pack(pack_id: str) -> IntegrityError:
    """The error of a blob, or a read, whose pack is not in storage."""
    return IntegrityError(what=pack_name(pack_id), reason="pack is missing from storage")


def truncated(entry: IndexEntry) -> IntegrityError:
    """The error of a blob whose pack holds fewer bytes of it than its index entry says."""
    return IntegrityError(what=_blob_in_pack(entry), reason="truncated")


def read_groups(entries: list[IndexEntry], limit: int | None) -> list[tuple[int, int, int, int]]:
    """How to read the blobs ``entries`` of one pack (sorted by offset): ``(first, last,
    start, end)`` for each ranged read, in pack order, the bytes ``start:end`` of the pack
    holding ``entries[first:last]``.  A read spans at most ``limit`` bytes (None: no
    limit), or one blob."""
    groups = []
    first = 0
    while first < len(entries):
        start = entries[first].offset
        end = start + entries[first].length
        last = first + 1
        while last < len(entries):
            stop = entries[last].offset + entries[last].length
            if limit is not None and stop - start > limit:
                break
            end, last = max(end, stop), last + 1
        groups.append((first, last, start, end))
        first = last
    return groups


def is_pack_id(pack_id: str) -> bool:
    return isinstance(pack_id, str) and _PACK_ID.fullmatch(pack_id) is not None


def pack_name(pack_id: str) -> str:
    """The storage name of pack ``pack_id``: ``data/<first two hex digits>/<pack_id>``."""
    if not is_pack_id(pack_id):
        raise ValueError(f"invalid pack id {pack_id!r}: need 32 lowercase hex digits")
    return f"data/{pack_id[:2]}/{pack_id}"


def trailer_name(pack_id: str) -> bytes:
    """The envelope name the trailer of ``pack_id`` is sealed under."""
    return b"pack:" + pack_id.encode("ascii")


class PackWriter:
    """Collects sealed blobs into one pack.  Not thread-safe: the caller serialises.

    ``add`` appends each sealed blob to one growing buffer (the sealed blob can be
    freed at once), which ``finish`` completes with the trailer and returns without a
    further copy.  Its blobs are sealed with data key ``key_id`` (default: the
    envelope's current one); in format 3 the trailer (version 2) says so.

    ``buffer``: a bytearray to write the pack into from its start, which the caller
    reuses for pack after pack (a backup keeps a few: no fresh pages to fault in for
    every pack).  Its length is room, not content; it grows if the pack does not fit.
    ``finish`` then returns a memoryview of the pack in it, which the caller releases
    before it reuses the buffer.
    """

    def __init__(self, envelope: Envelope, key_id: bytes | None = None, *, buffer: bytearray | None = None) -> None:
        self.envelope = envelope
        self.keyed = envelope.format >= 3
        key_id = envelope.key_id if key_id is None else (key_id or envelope.base_key_id)
        #: the data key of the pack's blobs, as entries carry it (empty before format 3)
        self.key_id = key_id if self.keyed else b""
        self.pack_id = secrets.token_hex(16)
        self._given = buffer is not None
        #: the buffer given at creation (None: the pack has its own)
        self.buffer = buffer
        self._buffer = buffer if buffer is not None else bytearray()
        self._entries: list[IndexEntry] = []
        self._size = 0
        self._finished = False

    def __repr__(self) -> str:
        return f"PackWriter(pack_id={self.pack_id!r}, count={self.count}, size={self.size})"

    @property
    def size(self) -> int:
        """Bytes of sealed blobs added so far (the trailer not included)."""
        return self._size

    @property
    def count(self) -> int:
        return len(self._entries)

    def add(
        self, blob_id: bytes, kind: int, sealed: bytes | bytearray | memoryview, raw_length: int
    ) -> None:
        """Append a blob sealed with ``envelope.seal(kind, blob_id, plaintext)``."""
        length = len(sealed)
        self._check_room(blob_id, kind, length, raw_length)
        self._put(self._size, sealed)
        self._record(blob_id, kind, length, raw_length)

    def add_sealing(
        self, blob_id: bytes, kind: int, length: int, raw_length: int, seal: Callable[[memoryview], int]
    ) -> None:
        """Append a blob sealed in place: ``seal(view)`` writes the ``length`` bytes of
        the sealed blob at the start of ``view`` (the pack's buffer where the blob goes)
        and returns how many it wrote; no buffer of its own and no copy.  If ``seal``
        raises, the pack is as it was."""
        self._check_room(blob_id, kind, length, raw_length)
        buffer = self._buffer
        end = self._size + length
        if end > len(buffer):
            buffer.extend(bytes(end - len(buffer)))  # grows once, as _put's append would
        with memoryview(buffer) as view:
            written = seal(view[self._size:end])
        if written != length:
            raise ValueError(f"sealed {written} bytes where {length} were announced")
        self._record(blob_id, kind, length, raw_length)

    def _check_room(self, blob_id: bytes, kind: int, length: int, raw_length: int) -> None:
        """Refuse a blob this pack cannot take: finished, a bad id or kind, or beyond its limits."""
        if self._finished:
            raise RuntimeError(f"pack {self.pack_id} is already finished")
        if len(blob_id) != ID_SIZE:
            raise ValueError(f"blob id must be {ID_SIZE} bytes, got {len(blob_id)}")
        if not 0 < kind < 256:
            raise ValueError(f"invalid blob kind {kind!r}")
        if not 0 <= raw_length <= _U32_MAX or self._size + length > _U32_MAX:
            raise ValueError("pack would exceed the 4 GiB limit of its offsets")
        if len(self._entries) >= MAX_PACK_BLOBS or self._size + length > MAX_PACK_SIZE - MAX_TRAILER_LENGTH - _FOOTER.size:
            raise ValueError("pack would exceed what readers accept (MAX_PACK_BLOBS, MAX_PACK_SIZE)")

    def _record(self, blob_id: bytes, kind: int, length: int, raw_length: int) -> None:
        """The index entry of the blob just written at the pack's end."""
        self._entries.append(IndexEntry(bytes(blob_id), kind, self.pack_id, self._size, length, raw_length, self.key_id))
        self._size += length

    def _put(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Write ``data`` at ``offset`` of the buffer (growing it if needed); the end."""
        buffer = self._buffer
        end = offset + len(data)
        if end <= len(buffer):
            copy_into(buffer, offset, data)  # a large blob: without the GIL
        else:
            del buffer[offset:]
            buffer += data
        return end

    def finish(self) -> tuple[bytearray | memoryview, list[IndexEntry]]:
        """The whole pack and the entries of its blobs; may be called once.  The pack is
        a memoryview into the buffer given at creation, else a bytearray of its own."""
        if self._finished:
            raise RuntimeError(f"pack {self.pack_id} is already finished")
        self._finished = True
        if self.keyed:
            body = [_TRAILER_HEAD.pack(TRAILER_VERSION_KEYED, len(self._entries)), _KEY_ID.pack(self.key_id)]
        else:
            body = [_TRAILER_HEAD.pack(TRAILER_VERSION, len(self._entries))]
        body.extend(
            _TRAILER_ENTRY.pack(e.blob_id, e.kind, e.offset, e.length, e.raw_length)
            for e in self._entries
        )
        sealed = self.envelope.seal(KIND_PACK_TRAILER, trailer_name(self.pack_id), b"".join(body))
        data, self._buffer = self._buffer, bytearray()
        if not self._given:
            data += sealed
            data += _FOOTER.pack(len(sealed), PACK_MAGIC)
            return data, list(self._entries)
        self._buffer = data
        end = self._put(self._size, sealed)
        end = self._put(end, _FOOTER.pack(len(sealed), PACK_MAGIC))
        self._buffer = bytearray()
        return memoryview(data)[:end], list(self._entries)


def _damaged(pack_id: str, reason: str) -> IntegrityError:
    what = pack_name(pack_id) if is_pack_id(pack_id) else f"pack {pack_id!r}"
    return IntegrityError(what=what, reason=reason)


def check_pack_size(pack_id: str, size: int) -> None:
    """IntegrityError unless a pack of ``size`` bytes could have been written: between
    the smallest pack and :data:`MAX_PACK_SIZE`.  Check this before reading a pack whole."""
    if size < _FOOTER.size + Envelope.OVERHEAD:
        raise _damaged(pack_id, f"too short to be a pack ({size} bytes)")
    if size > MAX_PACK_SIZE:
        raise _damaged(pack_id, f"{size} bytes, larger than any pack can be ({MAX_PACK_SIZE}); not read")


def _footer(tail: bytes | memoryview, pack_id: str, size: int) -> int:
    """The sealed trailer's length, from the last 8 bytes of a pack of ``size`` bytes,
    checked against the pack's size and :data:`MAX_TRAILER_LENGTH`."""
    check_pack_size(pack_id, size)
    trailer_len, magic = _FOOTER.unpack_from(tail, len(tail) - _FOOTER.size)
    if magic != PACK_MAGIC:
        raise _damaged(pack_id, "no pack footer (bad magic; truncated?)")
    if not Envelope.OVERHEAD <= trailer_len <= min(size - _FOOTER.size, MAX_TRAILER_LENGTH):
        raise _damaged(pack_id, f"trailer length {trailer_len} does not fit a {size}-byte pack"
                                f" (at most {MAX_TRAILER_LENGTH})")
    return trailer_len


def _parse_trailer(
    sealed: bytes | memoryview, pack_id: str, envelope: Envelope, blobs_end: int
) -> list[IndexEntry]:
    try:
        plain = envelope.open(sealed, trailer_name(pack_id), kind=KIND_PACK_TRAILER)
    except IntegrityError as exc:
        raise _damaged(pack_id, f"trailer: {exc.fields.get('reason', exc)}") from None
    if len(plain) < _TRAILER_HEAD.size:
        raise _damaged(pack_id, "trailer too short")
    version, count = _TRAILER_HEAD.unpack_from(plain)
    if version not in (TRAILER_VERSION, TRAILER_VERSION_KEYED):
        raise _damaged(pack_id, f"unsupported trailer version {version}")
    start = _TRAILER_HEAD.size + (_KEY_ID.size if version == TRAILER_VERSION_KEYED else 0)
    if len(plain) != start + count * _TRAILER_ENTRY.size:
        raise _damaged(pack_id, f"trailer size does not match its {count} entries")
    key_id = _KEY_ID.unpack_from(plain, _TRAILER_HEAD.size)[0] if version == TRAILER_VERSION_KEYED else b""
    entries = []
    expected = 0
    for blob_id, kind, offset, length, raw_length in _TRAILER_ENTRY.iter_unpack(
        memoryview(plain)[start:]
    ):
        if offset != expected or length < Envelope.OVERHEAD or kind == 0:
            raise _damaged(pack_id, f"trailer entry {len(entries)} is inconsistent")
        expected = offset + length
        entries.append(IndexEntry(blob_id, kind, pack_id, offset, length, raw_length, key_id))
    if expected != blobs_end:
        raise _damaged(pack_id, "trailer does not account for every byte before it")
    return entries


def parse_pack(
    data: bytes | bytearray | memoryview, pack_id: str, envelope: Envelope
) -> list[IndexEntry]:
    """The entries listed by the trailer of a whole pack held in memory."""
    view = memoryview(data).cast("B")
    size = view.nbytes
    if not is_pack_id(pack_id):
        raise _damaged(pack_id, "not a pack id")
    trailer_len = _footer(view[-_FOOTER.size :], pack_id, size)
    start = size - _FOOTER.size - trailer_len
    return _parse_trailer(view[start : size - _FOOTER.size], pack_id, envelope, start)


def read_trailer(store: Store, pack_id: str, envelope: Envelope) -> list[IndexEntry]:
    """The entries of stored pack ``pack_id``, from ranged reads of its tail only: at
    most 64 KiB and one trailer of at most :data:`MAX_TRAILER_LENGTH` bytes.

    Raises ObjectNotFound if the pack is missing and IntegrityError if it is damaged
    (including a size or a trailer length beyond the bounds: see the module docstring).
    """
    if not is_pack_id(pack_id):
        raise _damaged(pack_id, "not a pack id")
    name = pack_name(pack_id)
    size = store.size(name)
    check_pack_size(pack_id, size)
    tail_len = min(size, _TAIL_READ)
    tail = store.get_range(name, size - tail_len, tail_len)
    if len(tail) != tail_len:
        raise _damaged(pack_id, "shorter than its reported size")
    trailer_len = _footer(tail, pack_id, size)
    start = size - _FOOTER.size - trailer_len
    if trailer_len + _FOOTER.size <= tail_len:
        begin = tail_len - _FOOTER.size - trailer_len
        sealed: bytes | memoryview = memoryview(tail)[begin : -_FOOTER.size]
    else:
        head_len = trailer_len + _FOOTER.size - tail_len
        head = store.get_range(name, start, head_len)
        if len(head) != head_len:
            raise _damaged(pack_id, "shorter than its reported size")
        sealed = head + bytes(tail[: -_FOOTER.size])
    return _parse_trailer(sealed, pack_id, envelope, start)
