"""The in-memory index and the index file format."""

from __future__ import annotations

import os
import random
import struct
import threading
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import IntegrityError
from strongroom.repository.envelope import KIND_DATA, KIND_TREE
from strongroom.repository.index import Index
from strongroom.repository.indexfile import decode_index, encode_index
from strongroom.repository.pack import IndexEntry


def make_entries(count: int, seed: int = 0, per_pack: int = 40) -> list[IndexEntry]:
    rng = random.Random(seed)
    packs = [rng.randbytes(16).hex() for _ in range(count // per_pack + 1)]
    return [
        IndexEntry(
            rng.randbytes(32),
            KIND_DATA if i % 7 else KIND_TREE,
            packs[i // per_pack],
            (i % per_pack) * 1_000_000,
            rng.randrange(38, 9_000_000),
            rng.randrange(0, 8_388_608),
        )
        for i in range(count)
    ]


class TestIndex:
    def test_add_lookup_contains_len(self):
        """Added entries are found whole; absent ids are not."""
        entries = make_entries(500)
        index = Index()
        index.add(entries)
        assert len(index) == 500
        for entry in entries:
            assert index.lookup(entry.blob_id) == entry
            assert entry.blob_id in index
        assert index.lookup(os.urandom(32)) is None
        assert os.urandom(32) not in index
        assert index.lookup(b"short") is None and b"short" not in index

    def test_empty_index(self):
        """A new index is empty and finds nothing."""
        index = Index()
        assert len(index) == 0 and index.lookup(bytes(32)) is None
        assert list(index.entries()) == [] and index.pack_ids() == set()

    def test_many_small_batches_are_merged(self):
        """Entries added a few at a time are all found, before and after pending merges."""
        entries = make_entries(20_000, seed=1)
        index = Index()
        for i in range(0, len(entries), 25):
            index.add(entries[i : i + 25])
            if i % 2500 == 0:
                assert index.lookup(entries[i].blob_id) == entries[i]
        assert len(index) == 20_000
        assert all(index.lookup(e.blob_id) == e for e in entries)
        assert index.bytes_per_entry() <= 64

    def test_two_hundred_thousand_entries_within_budget(self):
        """200k entries cost at most 64 bytes each, by the index's own count and by tracemalloc."""
        entries = make_entries(200_000, seed=2)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            index = Index()
            index.add(entries)
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(index) == 200_000
        assert index.bytes_per_entry() <= 64
        assert used / 200_000 <= 64
        sample = random.Random(3).sample(entries, 2000)
        assert all(index.lookup(e.blob_id) == e for e in sample)

    def test_duplicates_are_kept_once(self):
        """The same blob id added again (same call, later call, other pack) is stored once."""
        entries = make_entries(10_000, seed=4)
        index = Index()
        index.add(entries + entries[:100])
        index.add(entries[:5000])
        index.add(entries[:10])
        moved = [
            IndexEntry(e.blob_id, e.kind, "ab" * 16, 0, e.length, e.raw_length)
            for e in entries[:30]
        ]
        index.add(moved)
        assert len(index) == 10_000
        assert len(list(index.entries())) == 10_000
        assert index.lookup(entries[0].blob_id) in (entries[0], moved[0])

    def test_ids_sharing_their_first_eight_bytes(self):
        """Ids that differ only after the first 8 bytes are told apart."""
        prefix = os.urandom(8)
        entries = [
            IndexEntry(prefix + os.urandom(24), KIND_DATA, "cd" * 16, i * 100, 100, 50)
            for i in range(5)
        ]
        index = Index()
        index.add(entries[:3])
        index.add(make_entries(5000, seed=5))  # forces a merge of the pending three
        index.add(entries[3:])
        index.add(make_entries(5000, seed=6))
        for entry in entries:
            assert index.lookup(entry.blob_id) == entry
        assert index.lookup(prefix + bytes(24)) is None
        index.add(entries)
        assert len(index) == 10_005

    def test_missing_finds_absent_ids_in_one_search(self):
        """``missing`` names exactly the ids no table holds, in main and recent alike."""
        entries = make_entries(9000, seed=3)
        index = Index()
        index.add(entries[:8000])  # merged into main
        index.add(entries[8000:8010])  # still in recent
        prefix = entries[5].blob_id[:8]
        absent = [os.urandom(32), prefix + os.urandom(24), entries[8500].blob_id]
        present = [entries[0].blob_id, entries[7999].blob_id, entries[8005].blob_id]
        assert index.missing(present + absent + [b"short"]) == set(absent) | {b"short"}
        assert index.missing([]) == set()
        assert Index().missing(present) == set(present)

    def test_listing(self):
        """entries, entries_by_pack and pack_ids cover everything, grouped and ordered by offset."""
        entries = make_entries(1000, seed=7, per_pack=10)
        index = Index()
        index.add(entries[:990])
        index.add(entries[990:])  # stays pending
        assert sorted(index.entries(), key=lambda e: e.blob_id) == sorted(
            entries, key=lambda e: e.blob_id
        )
        groups = index.entries_by_pack()
        assert set(groups) == index.pack_ids() == {e.pack_id for e in entries}
        for pack_id, group in groups.items():
            assert group == [e for e in entries if e.pack_id == pack_id]

    def test_pack_entries_builds_each_pack_when_asked(self):
        """pack_entries() holds what entries_by_pack() does, built per pack; packs
        without entries are not in it, and later adds do not change the snapshot."""
        entries = make_entries(1000, seed=7, per_pack=10)
        index = Index()
        index.add(entries[:990])
        index.add(entries[990:])  # stays pending
        groups, lazy = index.entries_by_pack(), index.pack_entries()
        assert set(lazy) == set(groups) and len(lazy) == len(groups)
        assert all(lazy[pack_id] == group for pack_id, group in groups.items())
        assert lazy.get("0" * 32, ()) == () and "0" * 32 not in lazy
        index.add(make_entries(10, seed=70, per_pack=10))
        assert set(lazy) == set(groups)
        assert Index().pack_entries().get("0" * 32) is None

    def test_lookups_during_concurrent_adds(self):
        """Readers always find entries added earlier while a writer keeps adding and merging."""
        first = make_entries(5000, seed=8)
        later = make_entries(50_000, seed=9)
        index = Index()
        index.add(first)
        stop = threading.Event()
        errors: list[str] = []

        def reader() -> None:
            rng = random.Random()
            while not stop.is_set():
                entry = rng.choice(first)
                if index.lookup(entry.blob_id) != entry:
                    errors.append(entry.blob_id.hex())

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(0, len(later), 50):
            index.add(later[i : i + 50])
        stop.set()
        for t in threads:
            t.join()
        assert not errors
        assert len(index) == 55_000
        assert all(e.blob_id in index for e in later[::97])


class TestIndexFiles:
    def test_round_trip(self):
        """decode_index(encode_index(entries)) gives the same entries, grouped by pack."""
        entries = make_entries(3000, seed=10)
        assert decode_index(encode_index(entries)) == entries

    def test_layout(self):
        """Version, pack count, then per pack its raw 16-byte id, count and 45-byte entries."""
        entry = IndexEntry(bytes(range(32)), KIND_TREE, "0f" * 16, 7, 100, 60)
        data = encode_index([entry])
        assert data[:5] == struct.pack("<BI", 1, 1)
        assert data[5:21] == bytes.fromhex("0f" * 16)
        assert data[21:25] == struct.pack("<I", 1)
        assert data[25:] == bytes(range(32)) + struct.pack("<BIII", KIND_TREE, 7, 100, 60)
        assert len(data) == 5 + 20 + 45

    def test_empty(self):
        """An index file may list nothing."""
        assert decode_index(encode_index([])) == []

    def test_rejects_bad_pack_ids_when_encoding(self):
        """Pack ids must be 32 lowercase hex digits."""
        with pytest.raises(ValueError):
            encode_index([IndexEntry(bytes(32), KIND_DATA, "nothex", 0, 100, 1)])

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda d: d[:-1],
            lambda d: d + b"\x00",
            lambda d: b"\x02" + d[1:],
            lambda d: d[:3],
            lambda d: d[:5] + d[5:21] + struct.pack("<I", 10**9) + d[25:],
            lambda d: d[:1] + struct.pack("<I", 2**32 - 1) + d[5:],
        ],
    )
    def test_malformed_files(self, mutate):
        """Truncation, extra bytes, another version and absurd counts raise IntegrityError."""
        data = encode_index(make_entries(20, seed=11, per_pack=20))
        with pytest.raises(IntegrityError) as info:
            decode_index(mutate(data))
        assert info.value.fields["what"] == "index"

    @settings(max_examples=400, deadline=None)
    @given(garbage=st.binary(max_size=300), version_one=st.booleans())
    def test_garbage_only_raises_integrity_error(self, garbage, version_one):
        """Arbitrary bytes either decode or raise IntegrityError, never anything else."""
        if version_one:
            garbage = b"\x01" + garbage
        try:
            entries = decode_index(garbage)
        except IntegrityError:
            return
        key = lambda e: (e.pack_id, e.blob_id, e.offset)  # noqa: E731
        assert sorted(decode_index(encode_index(entries)), key=key) == sorted(entries, key=key)

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.builds(
                IndexEntry,
                blob_id=st.binary(min_size=32, max_size=32),
                kind=st.integers(1, 255),
                pack_id=st.sampled_from(["aa" * 16, "0123456789abcdef" * 2]),
                offset=st.integers(0, 2**32 - 1),
                length=st.integers(38, 2**32 - 1),
                raw_length=st.integers(0, 2**32 - 1),
            ),
            max_size=50,
        )
    )
    def test_round_trip_property(self, entries):
        """Any valid entries survive encoding (as a multiset, grouped by pack)."""
        back = decode_index(encode_index(entries))
        key = lambda e: (e.pack_id, e.blob_id, e.offset)  # noqa: E731
        assert sorted(back, key=key) == sorted(entries, key=key)


def test_named_pack_ids_include_packs_whose_blobs_are_all_duplicates():
    """A pack whose every blob is also in another pack is still a pack the index names."""
    from strongroom.repository.index import Index
    from strongroom.repository.pack import IndexEntry

    index = Index()
    blob = b"\x01" * 32
    index.add([IndexEntry(blob, 1, "a" * 32, 0, 10, 10)])
    index.add([IndexEntry(blob, 1, "b" * 32, 0, 10, 10)])
    assert len(index) == 1
    assert index.named_pack_ids() == {"a" * 32, "b" * 32}


def test_a_pack_of_duplicates_is_not_adopted_again(tmp_path):
    """A pack whose blobs all have copies elsewhere is known to the index, so backups don't re-adopt it."""
    from strongroom.repository.envelope import KIND_DATA
    from strongroom.repository.masterkey import MasterKey
    from strongroom.repository.repository import Repository
    from strongroom.storage import MemoryStore

    store, key = MemoryStore(), MasterKey.generate()
    first, second = Repository(store, key), Repository(store, key)
    for repo in (first, second):  # two writers store the same blob, each in its own pack
        with repo.writer() as writer:
            writer.add(KIND_DATA, b"same content" * 1000)
    fresh = Repository(store, key)
    fresh.load_index()
    assert len(fresh.pack_ids_on_storage()) == 2
    assert fresh.adopt_unindexed_packs() == (0, [])
    assert len(list(store.list("index/"))) == 2
