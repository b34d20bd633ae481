"""The index: blob id -> (pack, offset, length, raw length, kind), compact in memory.

:class:`Index` keeps no Python object per blob.  Entries live in numpy arrays sorted by
the first 8 bytes of the blob id read as a big-endian uint64 (the *key*):

- ``keys``: uint64, 8 bytes per blob;
- ``records``: a packed structured array, 41 bytes per blob: the other 24 bytes of the
  id, a uint32 pack number (into a list of interned pack ids), uint32 offset, length and
  raw length, uint8 kind.

That is 49 bytes per blob, plus the interned pack ids (about 1 byte per blob with
blobs of 1 MiB in 8 MiB packs).  Each interned pack also keeps the id of the data key
that sealed its blobs (a pack has one; ``b""``: the vault's first), which every
:class:`~.pack.IndexEntry` handed out carries.  A lookup is a binary search on ``keys`` and a
comparison of the rest of the id over the (almost always single) run of equal keys.

There are two such sorted tables: *main* and a small *recent* one.  ``add`` merges its
batch into *recent* (``np.insert``, cost proportional to *recent*); when *recent* reaches
``max(4096, len(main) / 16)`` entries it is merged into *main* in one pass, so bulk
loading and many small additions both stay close to O(n log n) overall.  A blob id
added twice (the same blob stored in two packs by concurrent backups) is kept once;
which copy is unspecified.

Loading index files for a restore or a backup goes by columns:
:func:`~.indexfile.decode_index_columns` reads a file's entries into one numpy array per
file and :meth:`Index.add_decoded` merges all the files at once, with no Python object
per blob (about 20 ms for 50,000 blobs, against 100 ms decoding them one by one).
:meth:`Index.lookup_many` looks a batch of ids up in one vectorised search.

Thread safety: ``add`` calls are serialised by one lock.  Lookups take no lock: the two
tables are immutable and published together as one tuple held in a single attribute,
so a lookup sees either the state before an ``add`` or the state after it.

The index reads and writes no storage: index files, the bytes it is loaded from, are
encoded and decoded by :mod:`.indexfile`.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, NamedTuple

# numpy is used here (and by index files and the restore's writer) for array operations
# only: without this, OpenBLAS starts a spinning thread per CPU at import, for nothing
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from .blobid import ID_SIZE
from .pack import IndexEntry, is_pack_id

if TYPE_CHECKING:
    from .indexfile import DecodedIndex

__all__ = ["Index"]

_RECORD = np.dtype(
    [
        ("rest", "<u8", (3,)),
        ("pack", "<u4"),
        ("offset", "<u4"),
        ("length", "<u4"),
        ("raw", "<u4"),
        ("kind", "u1"),
    ]
)
_RECORD_BYTES = struct.Struct("<24sIIIIB")
_REST = struct.Struct("<24s")
assert _RECORD.itemsize == _RECORD_BYTES.size
_ID_PARTS = np.dtype([("key", ">u8"), ("rest", "<u8", (3,))])
_MIN_RECENT = 4096


class _Table(NamedTuple):
    """Sorted entries: keys, records and the records' bytes (for fast unpacking)."""

    keys: np.ndarray
    records: np.ndarray
    record_bytes: memoryview

    @classmethod
    def of(cls, keys: np.ndarray, records: np.ndarray) -> _Table:
        return cls(keys, records, memoryview(records.view(np.uint8)))

    def row_of(self, key: int, rest: bytes) -> int | None:
        keys = self.keys
        i = int(keys.searchsorted(np.uint64(key)))
        while i < len(keys) and keys.item(i) == key:
            if _REST.unpack_from(self.record_bytes, i * _RECORD.itemsize)[0] == rest:
                return i
            i += 1
        return None

    def absent(self, keys: np.ndarray, records: np.ndarray) -> np.ndarray:
        return _absent_from(self.keys, self.records, keys, records)

    def insert(self, keys: np.ndarray, records: np.ndarray) -> _Table:
        """A new table with the (sorted, new) entries merged in."""
        positions = np.searchsorted(self.keys, keys, side="left")
        return _Table.of(
            np.insert(self.keys, positions, keys), np.insert(self.records, positions, records)
        )


_EMPTY = _Table.of(np.empty(0, dtype=np.uint64), np.empty(0, dtype=_RECORD))


class Index:
    """In-memory blob index; see the module docstring for its layout and guarantees."""

    def __init__(self) -> None:
        self._tables: tuple[_Table, _Table] = (_EMPTY, _EMPTY)  # (main, recent)
        self._pack_ids: list[str] = []
        self._pack_keys: list[bytes] = []
        self._pack_numbers: dict[str, int] = {}
        self._write_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Index({len(self)} blobs in {len(self._pack_ids)} packs)"

    # --- adding ------------------------------------------------------------------------

    def add(self, entries: Iterable[IndexEntry]) -> None:
        """Add entries; ids already present (or repeated in ``entries``) are kept once."""
        batch = entries if isinstance(entries, list) else list(entries)
        if not batch:
            return
        for entry in batch:
            if len(entry.blob_id) != ID_SIZE:
                raise ValueError(f"blob id must be {ID_SIZE} bytes, got {len(entry.blob_id)}")
        with self._write_lock:
            self._merge(*self._columns(batch))

    def add_decoded(self, decoded: DecodedIndex) -> None:
        """Add the entries of decoded index files (:func:`~.indexfile.decode_index_columns`),
        as :meth:`add` would, without building an :class:`IndexEntry` per blob."""
        if not decoded.count:
            return
        entries = decoded.entries
        records = np.empty(decoded.count, dtype=_RECORD)
        records["rest"] = entries["rest"]
        records["offset"] = entries["offset"]
        records["length"] = entries["length"]
        records["raw"] = entries["raw"]
        records["kind"] = entries["kind"]
        with self._write_lock:
            numbers = [self._pack_number(p, decoded.key_of(i)) for i, p in enumerate(decoded.pack_ids)]
            records["pack"] = np.repeat(np.asarray(numbers, dtype=np.uint32), decoded.counts)
            self._merge(entries["key"].astype(np.uint64), records)

    def _merge(self, keys: np.ndarray, records: np.ndarray) -> None:
        """Merge a batch into the tables (the caller holds the write lock)."""
        order = np.argsort(keys, kind="stable")
        keys, records = _drop_repeats(keys[order], records[order])
        main, recent = self._tables
        if not len(main.keys) and not len(recent.keys):  # the first load: no merging
            self._tables = (_Table.of(keys, records), _EMPTY)
            return
        keep = main.absent(keys, records) & recent.absent(keys, records)
        if not keep.all():
            keys, records = keys[keep], records[keep]
        if not len(keys):
            return
        recent = recent.insert(keys, records)
        if len(recent.keys) >= max(_MIN_RECENT, len(main.keys) // 16):
            main, recent = main.insert(recent.keys, recent.records), _EMPTY
        self._tables = (main, recent)

    def _pack_number(self, pack_id: str, key_id: bytes = b"") -> int:
        number = self._pack_numbers.get(pack_id)
        if number is None:
            if not is_pack_id(pack_id):
                raise ValueError(f"invalid pack id {pack_id!r}")
            number = len(self._pack_ids)
            self._pack_keys.append(key_id)
            self._pack_ids.append(pack_id)
            self._pack_numbers[pack_id] = number
        elif key_id and not self._pack_keys[number]:
            self._pack_keys[number] = key_id
        return number

    def pack_key(self, pack_id: str) -> bytes:
        """The id of the data key that sealed the blobs of ``pack_id`` (``b""``: the first)."""
        number = self._pack_numbers.get(pack_id)
        return self._pack_keys[number] if number is not None else b""

    def _columns(self, entries: list[IndexEntry]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.frombuffer(b"".join(e.blob_id for e in entries), dtype=_ID_PARTS)
        records = np.empty(len(entries), dtype=_RECORD)
        records["rest"] = ids["rest"]
        records["pack"] = [self._pack_number(e.pack_id, e.key_id) for e in entries]
        records["offset"] = [e.offset for e in entries]
        records["length"] = [e.length for e in entries]
        records["raw"] = [e.raw_length for e in entries]
        records["kind"] = [e.kind for e in entries]
        return ids["key"].astype(np.uint64), records

    # --- finding -----------------------------------------------------------------------

    def _find(self, blob_id: bytes) -> tuple[_Table, int] | None:
        key = int.from_bytes(blob_id[:8], "big")
        rest = blob_id[8:]
        for table in self._tables:
            row = table.row_of(key, rest)
            if row is not None:
                return table, row
        return None

    def lookup(self, blob_id: bytes) -> IndexEntry | None:
        """The entry of ``blob_id``, or None if no pack holds it."""
        if len(blob_id) != ID_SIZE:
            return None
        blob_id = bytes(blob_id)
        found = self._find(blob_id)
        if found is None:
            return None
        table, row = found
        _, pack, offset, length, raw, kind = _RECORD_BYTES.unpack_from(
            table.record_bytes, row * _RECORD.itemsize
        )
        return IndexEntry(blob_id, kind, self._pack_ids[pack], offset, length, raw, self._pack_keys[pack])

    def lookup_many(self, blob_ids: list[bytes]) -> list[IndexEntry | None]:
        """:meth:`lookup` of each id, searching the tables for all of them at once."""
        found: list[IndexEntry | None] = [None] * len(blob_ids)
        todo = np.array([i for i, b in enumerate(blob_ids) if len(b) == ID_SIZE], dtype=np.intp)
        if not len(todo):
            return found
        ids = np.frombuffer(b"".join(bytes(blob_ids[i]) for i in todo), dtype=_ID_PARTS)
        keys, rest = ids["key"].astype(np.uint64), ids["rest"]
        pack_ids, pack_keys = self._pack_ids, self._pack_keys
        for table in self._tables:
            if not len(todo):
                break
            rows = np.minimum(np.searchsorted(table.keys, keys), max(len(table.keys) - 1, 0))
            if not len(table.keys):
                continue
            same_key = table.keys[rows] == keys
            hit = same_key & (table.records["rest"][rows] == rest).all(axis=1)
            for i, row in zip(todo[hit].tolist(), rows[hit].tolist()):
                _, pack, offset, length, raw, kind = _RECORD_BYTES.unpack_from(
                    table.record_bytes, row * _RECORD.itemsize
                )
                found[i] = IndexEntry(bytes(blob_ids[i]), kind, pack_ids[pack], offset, length, raw, pack_keys[pack])
            for i in todo[same_key & ~hit].tolist():  # ids sharing their first 8 bytes: rare
                found[i] = self.lookup(blob_ids[i])
            miss = ~same_key
            todo, keys, rest = todo[miss], keys[miss], rest[miss]
        return found

    def __contains__(self, blob_id: object) -> bool:
        if not isinstance(blob_id, (bytes, bytearray, memoryview)) or len(blob_id) != ID_SIZE:
            return False
        return self._find(bytes(blob_id)) is not None

    def missing(self, blob_ids: Iterable[bytes]) -> set[bytes]:
        """The ids among ``blob_ids`` that no pack holds, found with one vectorised
        search (for many ids, much faster than one ``in`` each)."""
        ids = [bytes(b) for b in blob_ids]
        gone = {b for b in ids if len(b) != ID_SIZE}
        ids = [b for b in ids if len(b) == ID_SIZE]
        if not ids:
            return gone
        parts = np.frombuffer(b"".join(ids), dtype=_ID_PARTS)
        keys = parts["key"].astype(np.uint64)
        records = np.zeros(len(ids), dtype=_RECORD)
        records["rest"] = parts["rest"]
        absent = np.ones(len(ids), dtype=bool)
        for table in self._tables:
            absent &= table.absent(keys, records)
        return gone.union(ids[i] for i in np.nonzero(absent)[0])

    def __len__(self) -> int:
        return sum(len(table.keys) for table in self._tables)

    # --- listing -----------------------------------------------------------------------

    def named_pack_ids(self) -> set[str]:
        """Every pack named by any entry ever added, including packs whose blobs were
        all dropped as duplicates of copies in other packs."""
        return set(self._pack_ids)

    def pack_ids(self) -> set[str]:
        """Every pack that holds at least one indexed blob."""
        numbers = np.unique(np.concatenate([t.records["pack"] for t in self._tables]))
        return {self._pack_ids[int(n)] for n in numbers}

    def entries(self) -> Iterator[IndexEntry]:
        """Every entry (a snapshot taken at the call), in no particular order."""
        pack_ids, pack_keys = self._pack_ids, self._pack_keys
        for table in self._tables:
            key_bytes = table.keys.astype(">u8").tobytes()
            for i, fields in enumerate(_RECORD_BYTES.iter_unpack(table.record_bytes)):
                rest, pack, offset, length, raw_length, kind = fields
                blob = key_bytes[i * 8 : i * 8 + 8] + rest
                yield IndexEntry(blob, kind, pack_ids[pack], offset, length, raw_length, pack_keys[pack])

    def entries_by_pack(self) -> dict[str, list[IndexEntry]]:
        """Entries grouped by pack id, each group in pack order (by offset)."""
        groups: dict[str, list[IndexEntry]] = {}
        for entry in self.entries():
            groups.setdefault(entry.pack_id, []).append(entry)
        for group in groups.values():
            group.sort(key=lambda e: e.offset)
        return groups

    def pack_entries(self) -> PackEntries:
        """:meth:`entries_by_pack` as a mapping that builds each pack's list when asked
        (a snapshot taken at the call): about 57 bytes per blob held, against a few
        hundred for every entry built at once (verify reads packs one at a time)."""
        tables = [t for t in self._tables if len(t.keys)]
        if not tables:
            return PackEntries(np.empty(0, dtype=np.uint64), np.empty(0, dtype=_RECORD), self)
        keys = np.concatenate([t.keys for t in tables])
        records = np.concatenate([t.records for t in tables])
        return PackEntries(keys, records, self)

    def bytes_per_entry(self) -> float:
        """Memory held by the index structures divided by the number of entries."""
        tables = self._tables
        count = sum(len(t.keys) for t in tables)
        if not count:
            return 0.0
        total = sum(t.keys.nbytes + t.records.nbytes for t in tables)
        total += sys.getsizeof(self._pack_ids) + sys.getsizeof(self._pack_numbers)
        total += sum(sys.getsizeof(p) for p in self._pack_ids)
        return total / count


def _drop_repeats(keys: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated ids from arrays sorted by key."""
    if len(keys) < 2:
        return keys, records
    same_key = keys[1:] == keys[:-1]
    if not same_key.any():
        return keys, records
    rest = records["rest"]
    order = np.lexsort((rest[:, 2], rest[:, 1], rest[:, 0], keys))
    keys, records = keys[order], records[order]
    rest = records["rest"]
    repeat = (keys[1:] == keys[:-1]) & (rest[1:] == rest[:-1]).all(axis=1)
    keep = np.concatenate(([True], ~repeat))
    return keys[keep], records[keep]


def _absent_from(
    old_keys: np.ndarray, old_records: np.ndarray, keys: np.ndarray, records: np.ndarray
) -> np.ndarray:
    """Mask of the (sorted, distinct) new ids that the old arrays do not hold yet."""
    keep = np.ones(len(keys), dtype=bool)
    if not len(old_keys) or not len(keys):
        return keep
    left = np.searchsorted(old_keys, keys, side="left")
    right = np.searchsorted(old_keys, keys, side="right")
    runs = right - left
    old_rest, rest = old_records["rest"], records["rest"]
    single = np.nonzero(runs == 1)[0]
    if len(single):
        same = (old_rest[left[single]] == rest[single]).all(axis=1)
        keep[single[same]] = False
    for i in np.nonzero(runs > 1)[0]:  # ids sharing their first 8 bytes: vanishingly rare
        if (old_rest[left[i] : right[i]] == rest[i]).all(axis=1).any():
            keep[i] = False
    return keep


class PackEntries(Mapping):
    """Pack id -> its index entries in pack order (by offset), built when asked from a
    snapshot of the index's arrays (:meth:`Index.pack_entries`); packs without entries
    are not keys."""

    def __init__(self, keys: np.ndarray, records: np.ndarray, index: Index) -> None:
        packs = records["pack"]
        self._keys, self._records = keys, records
        self._order = np.argsort(packs, kind="stable")
        self._starts = np.concatenate(([0], np.cumsum(np.bincount(packs, minlength=len(index._pack_ids)))))
        self._pack_ids = list(index._pack_ids)
        self._pack_keys = list(index._pack_keys)
        self._numbers = dict(index._pack_numbers)

    def _rows(self, pack_id: object) -> np.ndarray | None:
        number = self._numbers.get(pack_id) if isinstance(pack_id, str) else None
        if number is None or number + 1 >= len(self._starts):
            return None
        rows = self._order[self._starts[number]:self._starts[number + 1]]
        return rows if len(rows) else None

    def __getitem__(self, pack_id: str) -> list[IndexEntry]:
        rows = self._rows(pack_id)
        if rows is None:
            raise KeyError(pack_id)
        records = self._records[rows]
        key_bytes = self._keys[rows].astype(">u8").tobytes()
        pack_key = self._pack_keys[self._numbers[pack_id]]
        entries = [
            IndexEntry(key_bytes[i * 8:i * 8 + 8] + rest, kind, pack_id, offset, length, raw, pack_key)
            for i, (rest, _, offset, length, raw, kind) in enumerate(_RECORD_BYTES.iter_unpack(records.tobytes()))
        ]
        entries.sort(key=lambda e: e.offset)
        return entries

    def __contains__(self, pack_id: object) -> bool:
        return self._rows(pack_id) is not None

    def __iter__(self) -> Iterator[str]:
        counts = np.diff(self._starts)
        return (self._pack_ids[int(n)] for n in np.nonzero(counts)[0])

    def __len__(self) -> int:
        return int(np.count_nonzero(np.diff(self._starts)))
