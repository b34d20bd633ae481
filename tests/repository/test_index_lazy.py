"""Index files answered before the index builds its tables: a restore of a few blobs
looks them up in the files' bytes, and builds no table and imports no numpy; nor does a
backup that adds packs to an index of at most SMALL_INDEX entries."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from strongroom.errors import IntegrityError
from strongroom.repository.envelope import KIND_DATA, Envelope
from strongroom.repository import index as index_module
from strongroom.repository.index import LAZY_SCAN_BYTES, LOOKUP_COST_BYTES, SMALL_INDEX, Index
from strongroom.repository.indexfile import DecodedIndex, decode_index_columns, encode_index
from strongroom.repository.pack import IndexEntry

from test_index import make_entries


def loaded(*files: list[IndexEntry]) -> Index:
    """An index with ``files`` added as a load adds them (decoded, in one batch)."""
    index = Index()
    index.add_decoded(DecodedIndex.join(decode_index_columns(encode_index(f)) for f in files))
    return index


def built(*files: list[IndexEntry]) -> Index:
    index = Index()
    for f in files:
        index.add(f)
    return index


class TestLookupsBeforeTables:
    def test_same_answers_as_the_tables(self):
        """Present ids (in either file), absent ids and malformed ids get what an index
        with tables gives; batches too."""
        first, second = make_entries(3000, seed=41), make_entries(2000, seed=42)
        wanted = [e.blob_id for e in random.Random(4).sample(first + second, 20)]
        wanted += [os.urandom(32), b"short"]
        reference = built(first, second)
        assert [loaded(first, second).lookup(b) for b in wanted] == [reference.lookup(b) for b in wanted]
        assert loaded(first, second).lookup_many(wanted) == reference.lookup_many(wanted)
        index = loaded(first, second)
        assert all((b in index) == (reference.lookup(b) is not None) for b in wanted)

    def test_an_id_inside_other_bytes_is_not_taken_for_an_entry(self):
        """An id whose bytes also appear across two entries (not at an entry's start) is
        found at its own entry, and absent when it has none."""
        entries = make_entries(10, seed=43, per_pack=10)
        straddling = entries[3].blob_id[16:] + bytes([entries[3].kind]) + entries[3].offset.to_bytes(4, "little") \
            + entries[3].length.to_bytes(4, "little") + entries[3].raw_length.to_bytes(4, "little") \
            + entries[4].blob_id[:3]
        assert len(straddling) == 32
        assert loaded(entries).lookup(straddling) is None
        own = IndexEntry(straddling, KIND_DATA, "ef" * 16, 7, 100, 50)
        assert loaded(entries, [own]).lookup(straddling) == own

    def test_the_tables_are_built_past_the_budget(self, monkeypatch):
        """Past the lookups the budget allows (one by one or in one large batch), an index
        larger than SMALL_INDEX builds its tables, and the answers stay the same."""
        monkeypatch.setattr(index_module, "SMALL_INDEX", 1000)
        entries = make_entries(3000, seed=44)
        allowed = LAZY_SCAN_BYTES // (len(encode_index(entries)) + LOOKUP_COST_BYTES)
        index = loaded(entries)
        for entry in (entries * 2)[:allowed]:
            assert index.lookup(entry.blob_id) == entry
        assert not index.has_tables
        for entry in entries[:10]:
            assert index.lookup(entry.blob_id) == entry
        assert index.has_tables
        index = loaded(entries)
        assert index.lookup_many([e.blob_id for e in (entries * 2)[:allowed + 1]]) == (entries * 2)[:allowed + 1]
        assert index.has_tables

    def test_a_small_index_answers_past_the_budget_without_tables(self):
        """Past the budget, an index of at most SMALL_INDEX entries answers lookups, batches,
        ``in`` and what is missing as the tables would, without building them; of an id
        in two files, the entry of the first (as the search of the bytes finds it)."""
        first, second = make_entries(3000, seed=50), make_entries(2000, seed=51)
        twice = IndexEntry(first[7].blob_id, first[7].kind, "cd" * 16, 99, first[7].length, first[7].raw_length)
        index = loaded(first, second + [twice])
        assert len(first) + len(second) + 1 <= SMALL_INDEX
        reference = built(first, second)
        allowed = LAZY_SCAN_BYTES // (len(encode_index(first)) + len(encode_index(second)) + LOOKUP_COST_BYTES)
        for entry in (first * 2)[:allowed + 50]:
            assert index.lookup(entry.blob_id) == entry
        absent = [os.urandom(32) for _ in range(30)]
        wanted = [e.blob_id for e in random.Random(5).sample(first + second, 500)] + absent + [b"short"]
        assert index.lookup_many(wanted) == reference.lookup_many(wanted)
        assert index.missing(wanted + [bytes(32)]) == set(absent) | {b"short", bytes(32)}
        assert all(b in index for b in wanted[:500]) and not any(b in index for b in absent)
        assert index.lookup(first[7].blob_id) == first[7]
        assert not index.has_tables
        added = make_entries(10, seed=52)
        index.add(added)  # kept as one more file of a small index: still no tables
        assert not index.has_tables
        assert index.lookup_many(wanted) == reference.lookup_many(wanted)
        assert all(index.lookup(e.blob_id) == e for e in added)

    def test_what_a_backup_adds_to_a_small_index_is_answered_without_tables(self):
        """Packs added one by one to a loaded small index (a backup's), some with ids the
        index has (kept once: the entry there first), each followed by lookups, batches,
        ``in`` and searches for what is missing: the answers of an index with tables,
        and no tables built."""
        rng = random.Random(60)
        loaded_entries = make_entries(3000, seed=60)
        index, reference = loaded(loaded_entries), built(loaded_entries)
        for k in range(40):
            batch = make_entries(int(rng.randrange(1, 200)), seed=1000 + k, per_pack=250)
            again = rng.choice(loaded_entries)  # stored again in another pack: not taken
            batch.append(IndexEntry(again.blob_id, again.kind, batch[0].pack_id, 7, again.length, 1))
            index.add(batch)
            reference.add(batch)
            known = [e.blob_id for e in rng.sample(loaded_entries, 20)] + [e.blob_id for e in batch[:5]]
            absent = [os.urandom(32) for _ in range(5)]
            for blob_id in known[:3] + absent[:1]:
                assert index.lookup(blob_id) == reference.lookup(blob_id)
            assert index.lookup_many(known + absent) == reference.lookup_many(known + absent)
            assert index.missing(known + absent) == set(absent)
            assert all(b in index for b in known) and not any(b in index for b in absent)
            assert index.lookup(again.blob_id) == again
        assert not index.has_tables
        assert len(index) == len(reference)
        assert sorted(index.entries(), key=lambda e: e.blob_id) == sorted(reference.entries(), key=lambda e: e.blob_id)

    def test_the_dict_of_a_small_index_is_extended_not_built_again(self):
        """Each addition adds its ids to the dict of the ids before it (a backup adds a
        pack at a time: building it again each time would cost O(n) per pack); the
        positions of before, which a lookup in another thread may still hold, answer
        only for their own files."""
        first, more = make_entries(3000, seed=65), make_entries(40, seed=66)
        index = loaded(first)
        before = index._small()
        assert before is not None and before.entry(first[9].blob_id) == first[9]
        index.add(more)
        after = index._small()
        assert after is not before and after.where is before.where
        assert after.entry(more[1].blob_id) == more[1] and after.entry(first[9].blob_id) == first[9]
        assert before.entry(more[1].blob_id) is None

    def test_adding_past_the_small_size_builds_the_tables(self, monkeypatch):
        """An addition that takes the index past SMALL_INDEX entries builds the tables, with
        every entry kept before in them."""
        monkeypatch.setattr(index_module, "SMALL_INDEX", 1000)
        first, more, past = make_entries(700, seed=61), make_entries(250, seed=62), make_entries(100, seed=63)
        index = loaded(first)
        index.add(more)
        assert not index.has_tables
        index.add(past)
        assert index.has_tables
        assert all(index.lookup(e.blob_id) == e for e in first + more + past)
        assert len(index) == 1050

    def test_a_small_index_answers_many_lookups_from_its_bytes(self):
        """In a small vault (a database dump that compressed well) thousands of lookups,
        one by one or in a batch, are answered without tables."""
        entries = make_entries(200, seed=49)
        index = loaded(entries)
        assert index.lookup_many([e.blob_id for e in entries * 5]) == entries * 5
        assert all(index.lookup(e.blob_id) == e for e in entries)
        assert not index.has_tables

    def test_adding_entries_keeps_the_loaded_ones(self):
        """Entries added after a load (a backup's) join the loaded files: nothing is lost,
        repeats are kept once."""
        entries = make_entries(4000, seed=45)
        index = loaded(entries[:3000])
        index.add(entries[2500:])
        assert len(index) == 4000
        assert all(index.lookup(e.blob_id) == e for e in entries[::13])
        assert index.missing([entries[0].blob_id, bytes(32)]) == {bytes(32)}

    def test_listing_and_counting_see_the_loaded_files(self):
        """Counting, listing and grouping by pack include the files not in tables yet."""
        entries = make_entries(500, seed=46)
        index = loaded(entries)
        assert len(index) == 500
        index = loaded(entries)
        assert sorted(index.entries(), key=lambda e: e.blob_id) == sorted(entries, key=lambda e: e.blob_id)
        assert loaded(entries).pack_ids() == {e.pack_id for e in entries}
        assert set(loaded(entries).pack_entries()) == {e.pack_id for e in entries}


class TestEntryChecks:
    @pytest.mark.parametrize("length", [Envelope.OVERHEAD, Envelope.OVERHEAD + 1, 256 + 5, 2**24 + 1, 2**32 - 1])
    def test_lengths_from_the_overhead_on_are_accepted(self, length):
        """Only a length below the envelope's overhead is refused, whatever its low byte."""
        entry = IndexEntry(os.urandom(32), KIND_DATA, "ab" * 16, 0, length, 1)
        assert decode_index_columns(encode_index([entry])).index_entries() == [entry]

    @pytest.mark.parametrize("at", [0, 7, 19])
    def test_a_short_length_anywhere_is_refused(self, at):
        """A length below the overhead in any entry of a pack makes the file malformed."""
        entries = [IndexEntry(os.urandom(32), KIND_DATA, "ab" * 16, 0, 1000 + i, 1) for i in range(20)]
        entries[at] = IndexEntry(entries[at].blob_id, KIND_DATA, "ab" * 16, 0, Envelope.OVERHEAD - 1, 1)
        with pytest.raises(IntegrityError):
            decode_index_columns(encode_index(entries))


def test_a_few_lookups_import_no_numpy(tmp_path):
    """Loading index files and looking a few blobs up, as a restore of one file does,
    leaves numpy unimported (it costs about 40 ms of every such command's start)."""
    entries = make_entries(2000, seed=47)
    path = tmp_path / "index"
    path.write_bytes(encode_index(entries))
    code = f"""
import sys
from strongroom.repository.index import Index
from strongroom.repository.indexfile import decode_index_columns
index = Index()
index.add_decoded(decode_index_columns(open({str(path)!r}, "rb").read()))
found = index.lookup_many([bytes.fromhex({entries[5].blob_id.hex()!r})] * 3)
assert found[0] is not None and found[0].offset == {entries[5].offset}
assert index.lookup(bytes(32)) is None
print("numpy" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _run_with_a_loaded_index(tmp_path, count: int, seed: int, body: str) -> list[str]:
    """What ``body`` prints (as words), run in a fresh interpreter once an index file of
    ``count`` entries is loaded as a vault's is: ``index``, and the ids in it, ``ids``."""
    path = tmp_path / "index"
    path.write_bytes(encode_index(make_entries(count, seed=seed)))
    code = f"""
import os, random, sys
from strongroom.repository.index import Index
from strongroom.repository.indexfile import decode_index_columns
from strongroom.repository.pack import IndexEntry
index = Index()
decoded = decode_index_columns(open({str(path)!r}, "rb").read())
ids = [e.blob_id for e in decoded.index_entries()]
index.add_decoded(decoded)
"""
    return subprocess.run([sys.executable, "-c", code + body], capture_output=True, text=True, check=True).stdout.split()


def test_an_unchanged_backup_s_lookups_in_a_vault_of_50000_blobs_import_no_numpy(tmp_path):
    """Thousands of lookups and a search for what is missing among 50,000 ids, as an
    unchanged backup of a vault that size makes, leave numpy unimported (about 40 ms of
    CPU and 14 MiB)."""
    assert _run_with_a_loaded_index(tmp_path, 50_000, 53, """
for blob_id in random.Random(1).sample(ids, 3000):
    assert index.lookup(blob_id).blob_id == blob_id
assert index.missing(ids + [bytes(32)]) == {bytes(32)}
print("numpy" in sys.modules, index.has_tables)
""") == ["False", "False"]


def test_a_backup_adding_packs_to_a_small_index_imports_no_numpy(tmp_path):
    """Loading a vault's index, adding packs of new blobs and looking ids up and for what
    is missing, as a backup with new data does, leave numpy unimported."""
    assert _run_with_a_loaded_index(tmp_path, 20_000, 64, """
for k in range(100):
    pack = os.urandom(16).hex()
    new = [IndexEntry(os.urandom(32), 1, pack, i * 100, 100, 60) for i in range(50)]
    assert all(index.lookup(e.blob_id) is None for e in new[:5])
    index.add(new)
    assert index.lookup(new[3].blob_id) == new[3]
    assert index.missing(ids[k::100] + [new[0].blob_id, bytes(32)]) == {bytes(32)}
print("numpy" in sys.modules, index.has_tables)
""") == ["False", "False"]


def test_a_new_vault_s_index_filled_pack_by_pack_imports_no_numpy():
    """A first backup asks an empty index what is missing, then adds its packs one by
    one and looks ids up: every answer is right, and no table is built nor numpy
    imported (about 50 ms with the interpreter's lock held, and 14 MiB; counting the
    entries would build the tables, and a backup does not count them)."""
    code = """
import os, sys
from strongroom.repository.index import Index
from strongroom.repository.pack import IndexEntry
index = Index()
asked = [os.urandom(32) for _ in range(50)]
assert index.missing(asked + [b"short"]) == set(asked) | {b"short"}
assert index.lookup(asked[0]) is None and index.lookup_many(asked[:3]) == [None] * 3
added = []
for k in range(60):
    pack = os.urandom(16).hex()
    new = [IndexEntry(os.urandom(32), 1, pack, i * 100, 100, 60) for i in range(40)]
    known = [added[-1].blob_id] if added else []
    assert index.missing([e.blob_id for e in new] + known) == {e.blob_id for e in new}
    index.add(new)
    added += new
    assert index.lookup(new[7].blob_id) == new[7] and added[0].blob_id in index
assert index.missing([e.blob_id for e in added]) == set()
print("numpy" in sys.modules, index.has_tables)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_pack_entries_total_length_without_building_entries():
    """The sealed lengths of some packs' entries, summed as building them would; a pack
    the index does not hold counts 0."""
    entries = make_entries(3000, seed=48, per_pack=70)
    by_pack = loaded(entries).pack_entries()
    some = sorted(by_pack)[::3] + ["00" * 16]
    assert by_pack.total_length(some) == sum(e.length for p in some for e in by_pack.get(p, ()))
    assert by_pack.total_length([]) == 0 and Index().pack_entries().total_length(some) == 0
