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

Loading index files goes by columns: :func:`~.indexfile.decode_index_columns` checks a
file's entries without building a Python object per blob, and :meth:`Index.add_decoded`
keeps the decoded files as they are until the tables are needed.  Until then a lookup
searches the files' bytes for the id (about 2 us in a vault of 300 blobs, 0.5 ms in one of
100,000), so a command that looks up a handful of blobs (restoring one file), or a few
thousand in a small vault (restoring a database whose dump compressed well), never
builds the tables nor imports numpy (about 40 ms of CPU and 14 MiB).  Past that, as
long as the files hold at most :data:`SMALL_INDEX` entries, lookups and searches for what
is missing are answered from a dict of every id and where its entry is (about 15 ms to
build and 6 MiB for 50,000 blobs; extended, not built again, as entries are added).
Entries added to such an index are kept as one more decoded file
(:meth:`~.indexfile.DecodedIndex.of_entries`): a backup of a vault that size, with or
without new data, needs no numpy either (importing it took 50 ms with the GIL held, in
the middle of the backup's walk).  The tables are built (:mod:`.indextables`, about
20 ms for 50,000 blobs) by the first operation that needs them: lookups past
:data:`LAZY_SCAN_BYTES` of searching (each counted as the files' size plus
:data:`LOOKUP_COST_BYTES` for its fixed cost) in a larger index, adding entries past
:data:`SMALL_INDEX`, counting or listing them.
:meth:`Index.lookup_many` looks a batch of ids up in one vectorised search.

Thread safety: ``add`` calls (and building the tables) are serialised by one lock.
Lookups take no lock: the two tables and the decoded files not in them yet are immutable
and published together as one tuple held in a single attribute, so a lookup sees either
the state before an ``add`` or the state after it.

The index reads and writes no storage: index files, the bytes it is loaded from, are
encoded and decoded by :mod:`.indexfile`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from .blobid import ID_SIZE
from .pack import IndexEntry, is_pack_id

if TYPE_CHECKING:
    from .indexfile import DecodedIndex
    from .indextables import Table

__all__ = ["LAZY_SCAN_BYTES", "LOOKUP_COST_BYTES", "SMALL_INDEX", "Index"]

#: Bytes the searches of the loaded files may read, in all, before the tables are built
#: instead: about 25 ms of searching, less than importing numpy and building them.
LAZY_SCAN_BYTES = 192 << 20
#: A search's fixed cost (the Python calls around it), counted as this many bytes read.
LOOKUP_COST_BYTES = 16 << 10
#: Loaded files of at most this many entries answer from a dict (:class:`_Positions`)
#: instead of the tables: up to about 17 MiB, about what numpy and the tables take.
SMALL_INDEX = 1 << 17


def _tables():
    from . import indextables

    return indextables


class Index:
    """In-memory blob index; see the module docstring for its layout and guarantees."""

    def __init__(self) -> None:
        # (main, recent) tables, or None before any is built; decoded files not in them yet
        self._state: tuple[tuple[Table, Table] | None, tuple[DecodedIndex, ...]] = (None, ())
        self._pack_ids: list[str] = []
        self._pack_keys: list[bytes] = []
        self._pack_numbers: dict[str, int] = {}
        self._write_lock = threading.Lock()
        self._lazy_cost = 0  # bytes the searches of the decoded files read so far (counted)
        self._pending_bytes = 0  # the size of the decoded files not in tables
        self._pending_entries = 0  # and their entries
        self._positions: _Positions | None = None  # of a small index without tables (see _small)

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
            numbers = [self._pack_number(e.pack_id, e.key_id) for e in batch]
            if self._state[0] is None and self._pending_entries + len(batch) <= SMALL_INDEX:
                from .indexfile import DecodedIndex

                self._add_decoded_locked(DecodedIndex.of_entries(batch))
            else:
                self._merge(*_tables().columns_of(batch, numbers))

    def add_decoded(self, decoded: DecodedIndex) -> None:
        """Add the entries of decoded index files (:func:`~.indexfile.decode_index_columns`),
        as :meth:`add` would, without building an :class:`IndexEntry` per blob; into an
        index without tables they are kept as decoded until the tables are needed."""
        if not decoded.count:
            return
        with self._write_lock:
            for i, pack_id in enumerate(decoded.pack_ids):
                self._pack_number(pack_id, decoded.key_of(i))
            self._add_decoded_locked(decoded)

    def _add_decoded_locked(self, decoded: DecodedIndex) -> None:
        tables, pending = self._state
        self._state = (tables, (*pending, decoded))
        self._pending_bytes += sum(len(b) for b in decoded.buffers)
        self._pending_entries += decoded.count
        if tables is not None:
            self._settle_locked()

    def _settle(self) -> tuple[Table, Table]:
        """The tables, built first from the decoded files not in them yet."""
        tables, pending = self._state
        if tables is not None and not pending:
            return tables
        with self._write_lock:
            return self._settle_locked()

    def _settle_locked(self) -> tuple[Table, Table]:
        tables, pending = self._state
        if tables is None or pending:
            t = _tables()
            self._merge(t.np.empty(0, dtype=t.np.uint64), t.np.empty(0, dtype=t.RECORD))
        return self._state[0]  # type: ignore[return-value]

    def _merge(self, keys, records) -> None:
        """Merge a batch, and the decoded files not in the tables yet, into the tables,
        published at once (the caller holds the write lock)."""
        t = _tables()
        tables, pending = self._state
        main, recent = tables if tables is not None else (t.EMPTY, t.EMPTY)
        if pending:
            from .indexfile import DecodedIndex

            joined = DecodedIndex.join(pending)
            more_keys, more_records = t.decoded_columns(joined, [self._pack_numbers[p] for p in joined.pack_ids])
            keys, records = t.np.concatenate((more_keys, keys)), t.np.concatenate((more_records, records))
        order = t.np.argsort(keys, kind="stable")
        keys, records = t.drop_repeats(keys[order], records[order])
        self._pending_bytes = self._pending_entries = 0
        self._positions = None
        if not len(main.keys) and not len(recent.keys):  # the first load: no merging
            self._state = ((t.Table.of(keys, records), t.EMPTY), ())
            return
        keep = main.absent(keys, records) & recent.absent(keys, records)
        if not keep.all():
            keys, records = keys[keep], records[keep]
        if len(keys):
            recent = recent.insert(keys, records)
            if len(recent.keys) >= max(_MIN_RECENT, len(main.keys) // 16):
                main, recent = main.insert(recent.keys, recent.records), t.EMPTY
        self._state = ((main, recent), ())

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

    # --- finding -----------------------------------------------------------------------

    def _lazy(self, lookups: int) -> tuple[DecodedIndex, ...] | None:
        """The decoded files to search for ``lookups`` more ids, when the index has no
        tables and the searches so far and these stay within :data:`LAZY_SCAN_BYTES`;
        else None (the tables answer)."""
        tables, pending = self._state
        if tables is not None:
            return None
        # a heuristic: a lost update between threads is harmless
        self._lazy_cost += lookups * (self._pending_bytes + LOOKUP_COST_BYTES)
        return pending if self._lazy_cost <= LAZY_SCAN_BYTES or not pending else None

    def _small(self) -> _Positions | None:
        """Where the ids of the decoded files are, when the index has no tables and those
        files hold at most :data:`SMALL_INDEX` entries (none in a new vault's index);
        else None (the tables answer)."""
        tables, pending = self._state
        if tables is not None or self._pending_entries > SMALL_INDEX:
            return None
        positions = self._positions
        if positions is None or positions.pending is not pending:
            # built twice at worst, by two threads; from the last one when files were only added
            positions = self._positions = _Positions(pending, positions)
        return positions

    def _find(self, blob_id: bytes) -> tuple[Table, int] | None:
        key = int.from_bytes(blob_id[:8], "big")
        rest = blob_id[8:]
        for table in self._settle():
            row = table.row_of(key, rest)
            if row is not None:
                return table, row
        return None

    def lookup(self, blob_id: bytes) -> IndexEntry | None:
        """The entry of ``blob_id``, or None if no pack holds it."""
        if len(blob_id) != ID_SIZE:
            return None
        blob_id = bytes(blob_id)
        pending = self._lazy(1)
        if pending is not None:
            return _search(pending, blob_id)
        small = self._small()
        if small is not None:
            return small.entry(blob_id)
        found = self._find(blob_id)
        if found is None:
            return None
        table, row = found
        _, pack, offset, length, raw, kind = table.fields(row)
        return IndexEntry(blob_id, kind, self._pack_ids[pack], offset, length, raw, self._pack_keys[pack])

    def lookup_many(self, blob_ids: list[bytes]) -> list[IndexEntry | None]:
        """:meth:`lookup` of each id, searching the tables for all of them at once."""
        found: list[IndexEntry | None] = [None] * len(blob_ids)
        todo_list = [i for i, b in enumerate(blob_ids) if len(b) == ID_SIZE]
        if not todo_list:
            return found
        pending = self._lazy(len(todo_list))
        if pending is not None:
            for i in todo_list:
                found[i] = _search(pending, bytes(blob_ids[i]))
            return found
        small = self._small()
        if small is not None:
            for i in todo_list:
                found[i] = small.entry(bytes(blob_ids[i]))
            return found
        t = _tables()
        tables = self._settle()
        todo = t.np.array(todo_list, dtype=t.np.intp)
        keys, rest = t.ids_as_columns([bytes(blob_ids[i]) for i in todo_list])
        pack_ids, pack_keys = self._pack_ids, self._pack_keys
        for table in tables:
            if not len(todo):
                break
            if not len(table.keys):
                continue
            rows = t.np.minimum(t.np.searchsorted(table.keys, keys), len(table.keys) - 1)
            same_key = table.keys[rows] == keys
            hit = same_key & (table.records["rest"][rows] == rest).all(axis=1)
            for i, row in zip(todo[hit].tolist(), rows[hit].tolist()):
                _, pack, offset, length, raw, kind = table.fields(row)
                found[i] = IndexEntry(bytes(blob_ids[i]), kind, pack_ids[pack], offset, length, raw, pack_keys[pack])
            for i in todo[same_key & ~hit].tolist():  # ids sharing their first 8 bytes: rare
                found[i] = self.lookup(blob_ids[i])
            miss = ~same_key
            todo, keys, rest = todo[miss], keys[miss], rest[miss]
        return found

    def __contains__(self, blob_id: object) -> bool:
        if not isinstance(blob_id, (bytes, bytearray, memoryview)) or len(blob_id) != ID_SIZE:
            return False
        return self.lookup(bytes(blob_id)) is not None

    def missing(self, blob_ids: Iterable[bytes]) -> set[bytes]:
        """The ids among ``blob_ids`` that no pack holds, found with one vectorised
        search (for many ids, much faster than one ``in`` each)."""
        small = self._small()
        if small is not None:  # one pass: an id not of ID_SIZE bytes is in no dict
            where = small.where
            return {b for b in map(bytes, blob_ids) if b not in where}
        ids = [bytes(b) for b in blob_ids]
        gone = {b for b in ids if len(b) != ID_SIZE}
        ids = [b for b in ids if len(b) == ID_SIZE]
        if not ids:
            return gone
        t = _tables()
        tables = self._settle()
        keys, rest = t.ids_as_columns(ids)
        records = t.np.zeros(len(ids), dtype=t.RECORD)
        records["rest"] = rest
        absent = t.np.ones(len(ids), dtype=bool)
        for table in tables:
            absent &= table.absent(keys, records)
        return gone.union(ids[i] for i in t.np.nonzero(absent)[0])

    @property
    def has_tables(self) -> bool:
        """Whether the tables are built (lookups no longer search the loaded files)."""
        return self._state[0] is not None

    def __len__(self) -> int:
        tables, pending = self._state
        if tables is None and not pending:
            return 0
        return sum(len(table.keys) for table in self._settle())

    # --- listing -----------------------------------------------------------------------

    def named_pack_ids(self) -> set[str]:
        """Every pack named by any entry ever added, including packs whose blobs were
        all dropped as duplicates of copies in other packs."""
        return set(self._pack_ids)

    def pack_ids(self) -> set[str]:
        """Every pack that holds at least one indexed blob."""
        t = _tables()
        numbers = t.np.unique(t.np.concatenate([table.records["pack"] for table in self._settle()]))
        return {self._pack_ids[int(n)] for n in numbers}

    def entries(self) -> Iterator[IndexEntry]:
        """Every entry (a snapshot taken at the call), in no particular order."""
        t = _tables()
        pack_ids, pack_keys = self._pack_ids, self._pack_keys
        for table in self._settle():
            key_bytes = table.keys.astype(">u8").tobytes()
            for i, fields in enumerate(t.RECORD_BYTES.iter_unpack(table.record_bytes)):
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

    def pack_entries(self) -> Mapping[str, list[IndexEntry]]:
        """:meth:`entries_by_pack` as a mapping that builds each pack's list when asked
        (a snapshot taken at the call): about 57 bytes per blob held, against a few
        hundred for every entry built at once (verify reads packs one at a time)."""
        t = _tables()
        tables = [table for table in self._settle() if len(table.keys)]
        if tables:
            keys = t.np.concatenate([table.keys for table in tables])
            records = t.np.concatenate([table.records for table in tables])
        else:
            keys, records = t.EMPTY.keys, t.EMPTY.records
        return t.PackEntries(keys, records, self._pack_ids, self._pack_keys, self._pack_numbers)

    def bytes_per_entry(self) -> float:
        """Memory held by the index structures divided by the number of entries."""
        tables = self._settle()
        count = sum(len(t.keys) for t in tables)
        if not count:
            return 0.0
        total = sum(t.keys.nbytes + t.records.nbytes for t in tables)
        total += sys.getsizeof(self._pack_ids) + sys.getsizeof(self._pack_numbers)
        total += sum(sys.getsizeof(p) for p in self._pack_ids)
        return total / count


_MIN_RECENT = 4096


class _Positions:
    """Every id of some decoded index files, with where its entry is: for an index of at
    most :data:`SMALL_INDEX` entries, in place of the numpy tables.  ``where`` maps an
    id to ``file << 52 | pack << 32 | byte offset`` (the first entry of an id, in file
    order, when it has several).

    Made for files that extend those of ``before`` (what a backup adds, pack by pack),
    it adds theirs to the same dict, which the older object then shares: that one's
    ``where`` may hold ids of files it does not have, which its :meth:`entry` does not
    answer (an id added since: present, for ``in``)."""

    __slots__ = ("pending", "where")

    def __init__(self, pending: tuple[DecodedIndex, ...], before: _Positions | None = None) -> None:
        from .indexfile import ENTRY_SIZE

        self.pending = pending
        first = 0
        if before is not None and len(before.pending) < len(pending) and all(
                a is b for a, b in zip(before.pending, pending)):
            first, self.where = len(before.pending), before.where
        else:
            self.where = {}
        for d, decoded in enumerate(pending[first:], first):
            ids: list[bytes] = []
            codes: list[int] = []
            for i, (f, n, start) in enumerate(zip(decoded.file_of, decoded.counts, decoded.starts)):
                buffer, stop, code = decoded.buffers[f], start + n * ENTRY_SIZE, d << 52 | i << 32
                ids.extend([buffer[at:at + ID_SIZE] for at in range(start, stop, ENTRY_SIZE)])
                codes.extend(range(code + start, code + stop, ENTRY_SIZE))
            ids.reverse()
            codes.reverse()  # so that the first entry of an id is the one the dict keeps
            found = dict(zip(ids, codes))
            if self.where:  # ... and the entry of an earlier file before any of this one
                for blob_id in found.keys() & self.where.keys():
                    del found[blob_id]
                self.where.update(found)
            else:
                self.where = found

    def entry(self, blob_id: bytes) -> IndexEntry | None:
        code = self.where.get(blob_id)
        if code is None or code >> 52 >= len(self.pending):
            return None
        return self.pending[code >> 52].entry_at(code >> 32 & 0xFFFFF, code & 0xFFFFFFFF, blob_id)


def _search(pending: tuple[DecodedIndex, ...], blob_id: bytes) -> IndexEntry | None:
    """The entry of ``blob_id`` in decoded index files not in the tables yet, or None."""
    for decoded in pending:
        entry = decoded.find(blob_id)
        if entry is not None:
            return entry
    return None
