"""The index's sorted numpy tables: its compact in-memory layout (see :mod:`.index`).

Entries live in numpy arrays sorted by the first 8 bytes of the blob id read as a
big-endian uint64 (the *key*):

- ``keys``: uint64, 8 bytes per blob;
- ``records``: a packed structured array, 41 bytes per blob: the other 24 bytes of the
  id, a uint32 pack number (into the index's list of interned pack ids), uint32 offset,
  length and raw length, uint8 kind.

A :class:`Table` is immutable: merging makes a new one.  This module is imported only
when an index first needs its tables (a handful of lookups in freshly loaded index files
do not, :mod:`.index`), so a command that restores one file never imports numpy.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, NamedTuple

from .arrays import np
from .pack import IndexEntry

if TYPE_CHECKING:
    from .indexfile import DecodedIndex

__all__ = ["EMPTY", "RECORD", "RECORD_BYTES", "PackEntries", "Table", "absent_from", "columns_of",
           "decoded_columns", "drop_repeats", "ids_as_columns"]

RECORD = np.dtype(
    [
        ("rest", "<u8", (3,)),
        ("pack", "<u4"),
        ("offset", "<u4"),
        ("length", "<u4"),
        ("raw", "<u4"),
        ("kind", "u1"),
    ]
)
RECORD_BYTES = struct.Struct("<24sIIIIB")
_REST = struct.Struct("<24s")
assert RECORD.itemsize == RECORD_BYTES.size
_ID_PARTS = np.dtype([("key", ">u8"), ("rest", "<u8", (3,))])


class Table(NamedTuple):
    """Sorted entries: keys, records and the records' bytes (for fast unpacking)."""

    keys: np.ndarray
    records: np.ndarray
    record_bytes: memoryview

    @classmethod
    def of(cls, keys: np.ndarray, records: np.ndarray) -> Table:
        return cls(keys, records, memoryview(records.view(np.uint8)))

    def row_of(self, key: int, rest: bytes) -> int | None:
        keys = self.keys
        i = int(keys.searchsorted(np.uint64(key)))
        while i < len(keys) and keys.item(i) == key:
            if _REST.unpack_from(self.record_bytes, i * RECORD.itemsize)[0] == rest:
                return i
            i += 1
        return None

    def fields(self, row: int) -> tuple:
        """(rest, pack number, offset, length, raw length, kind) of ``row``."""
        return RECORD_BYTES.unpack_from(self.record_bytes, row * RECORD.itemsize)

    def absent(self, keys: np.ndarray, records: np.ndarray) -> np.ndarray:
        return absent_from(self.keys, self.records, keys, records)

    def insert(self, keys: np.ndarray, records: np.ndarray) -> Table:
        """A new table with the (sorted, new) entries merged in."""
        positions = np.searchsorted(self.keys, keys, side="left")
        return Table.of(np.insert(self.keys, positions, keys), np.insert(self.records, positions, records))


EMPTY = Table.of(np.empty(0, dtype=np.uint64), np.empty(0, dtype=RECORD))


def ids_as_columns(blob_ids: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(keys as uint64, the other 24 bytes as 3 x uint64) of 32-byte ``blob_ids``."""
    ids = np.frombuffer(b"".join(blob_ids), dtype=_ID_PARTS)
    return ids["key"].astype(np.uint64), ids["rest"]


def columns_of(entries: list[IndexEntry], numbers: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(keys, records) of ``entries``, whose pack numbers are ``numbers``."""
    keys, rest = ids_as_columns([e.blob_id for e in entries])
    records = np.empty(len(entries), dtype=RECORD)
    records["rest"] = rest
    records["pack"] = numbers
    records["offset"] = [e.offset for e in entries]
    records["length"] = [e.length for e in entries]
    records["raw"] = [e.raw_length for e in entries]
    records["kind"] = [e.kind for e in entries]
    return keys, records


def decoded_columns(decoded: DecodedIndex, numbers: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(keys, records) of decoded index files, whose packs' numbers are ``numbers``."""
    entries = decoded.entries
    records = np.empty(decoded.count, dtype=RECORD)
    records["rest"] = entries["rest"]
    records["offset"] = entries["offset"]
    records["length"] = entries["length"]
    records["raw"] = entries["raw"]
    records["kind"] = entries["kind"]
    records["pack"] = np.repeat(np.asarray(numbers, dtype=np.uint32), decoded.counts)
    return entries["key"].astype(np.uint64), records


def drop_repeats(keys: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def absent_from(
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
    snapshot of the index's arrays (:meth:`Index.pack_entries <.index.Index.pack_entries>`);
    packs without entries are not keys."""

    def __init__(self, keys: np.ndarray, records: np.ndarray, pack_ids: list[str], pack_keys: list[bytes],
                 numbers: dict[str, int]) -> None:
        packs = records["pack"]
        self._keys, self._records = keys, records
        self._order = np.argsort(packs, kind="stable")
        self._starts = np.concatenate(([0], np.cumsum(np.bincount(packs, minlength=len(pack_ids)))))
        self._pack_ids = list(pack_ids)
        self._pack_keys = list(pack_keys)
        self._numbers = dict(numbers)

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
        rows = rows[np.argsort(self._records["offset"][rows], kind="stable")]  # in pack order
        records = self._records[rows]
        key_bytes = self._keys[rows].astype(">u8").tobytes()
        pack_key = self._pack_keys[self._numbers[pack_id]]
        return [
            IndexEntry(key_bytes[i * 8:i * 8 + 8] + rest, kind, pack_id, offset, length, raw, pack_key)
            for i, (rest, _, offset, length, raw, kind) in enumerate(RECORD_BYTES.iter_unpack(records.tobytes()))
        ]

    def __contains__(self, pack_id: object) -> bool:
        return self._rows(pack_id) is not None

    def total_length(self, pack_ids: Iterable[str]) -> int:
        """The sum of the sealed lengths of the entries of ``pack_ids`` (a pack without
        entries counts 0), without building the entries."""
        wanted = [n for n in (self._numbers.get(p) for p in pack_ids) if n is not None]
        if not wanted or not len(self._records):
            return 0
        by_pack = np.bincount(self._records["pack"], weights=self._records["length"], minlength=len(self._pack_ids))
        return int(by_pack[np.asarray(wanted, dtype=np.intp)].sum())

    def __iter__(self) -> Iterator[str]:
        counts = np.diff(self._starts)
        return (self._pack_ids[int(n)] for n in np.nonzero(counts)[0])

    def __len__(self) -> int:
        return int(np.count_nonzero(np.diff(self._starts)))
