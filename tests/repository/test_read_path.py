"""The read side as restore uses it: index files loaded as columns, lookups in bulk,
blobs opened into a reused buffer, packs read in pieces from a local store."""

from __future__ import annotations

import os
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.errors import IntegrityError
from strongroom.repository.envelope import KIND_DATA, KIND_TREE, Envelope, Scratch
from strongroom.repository.index import Index
from strongroom.repository.indexfile import DecodedIndex, decode_index, decode_index_columns, encode_index
from strongroom.repository.masterkey import MasterKey
from strongroom.repository.pack import IndexEntry, pack_name
from strongroom.repository.repository import Repository
from strongroom.storage import MemoryStore, open_store

from test_index import make_entries


def columns_as_entries(decoded: DecodedIndex) -> list[IndexEntry]:
    """The entries an index holding only ``decoded`` lists, in file order."""
    index = Index()
    index.add_decoded(decoded)
    by_id = {e.blob_id: e for e in index.entries()}
    keys = decoded.entries["key"].astype(">u8").tobytes()
    rests = decoded.entries["rest"].astype("<u8").tobytes()
    return [by_id[keys[i * 8 : i * 8 + 8] + rests[i * 24 : i * 24 + 24]] for i in range(decoded.count)]


class TestIndexColumns:
    def test_same_entries_as_decode_index(self):
        """Columns decode to exactly the entries decode_index gives, pack by pack."""
        entries = make_entries(3000, seed=21, per_pack=37)
        decoded = decode_index_columns(encode_index(entries))
        assert decoded.count == 3000 and len(decoded.pack_ids) == len(set(e.pack_id for e in entries))
        assert columns_as_entries(decoded) == decode_index(encode_index(entries))

    def test_add_decoded_equals_add(self):
        """An index filled from columns answers every lookup as one filled entry by entry,
        repeated ids included, and names the same packs."""
        entries = make_entries(5000, seed=22)
        repeated = [IndexEntry(e.blob_id, e.kind, "ab" * 16, 0, 100, 1) for e in entries[:50]]
        files = [encode_index(entries[:2000]), encode_index(entries[2000:] + repeated)]
        one, other = Index(), Index()
        for data in files:
            one.add(decode_index(data))
        other.add_decoded(DecodedIndex.join(decode_index_columns(d) for d in files))
        assert len(one) == len(other) == 5000
        assert one.named_pack_ids() == other.named_pack_ids()
        for entry in entries + repeated:
            assert other.lookup(entry.blob_id) == one.lookup(entry.blob_id)

    def test_added_to_a_filled_index(self):
        """Columns added to an index that holds entries merge like add() does."""
        entries = make_entries(9000, seed=23)
        index = Index()
        index.add(entries[:6000])
        index.add_decoded(decode_index_columns(encode_index(entries[5000:])))
        assert len(index) == 9000
        assert all(index.lookup(e.blob_id) == e for e in entries[::7])

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda d: d[:-1],
            lambda d: d + b"\x00",
            lambda d: b"\x02" + d[1:],
            lambda d: d[:3],
            lambda d: d[:5] + d[5:21] + struct.pack("<I", 10**9) + d[25:],
            lambda d: d[:1] + struct.pack("<I", 2**32 - 1) + d[5:],
            lambda d: d[:25 + 32] + b"\x00" + d[25 + 33 :],  # kind 0
            lambda d: d[:25 + 37] + struct.pack("<I", 5) + d[25 + 41 :],  # shorter than sealed
        ],
    )
    def test_malformed_files(self, mutate):
        """What decode_index refuses, the columns refuse too, with IntegrityError."""
        data = mutate(encode_index(make_entries(20, seed=11, per_pack=20)))
        with pytest.raises(IntegrityError):
            decode_index(data)
        with pytest.raises(IntegrityError) as info:
            decode_index_columns(data)
        assert info.value.fields["what"] == "index"

    @settings(max_examples=300, deadline=None)
    @given(garbage=st.binary(max_size=300), version_one=st.booleans())
    def test_garbage_agrees_with_decode_index(self, garbage, version_one):
        """On any bytes, the columns decode what decode_index decodes, or both refuse."""
        if version_one:
            garbage = b"\x01" + garbage
        try:
            entries = decode_index(garbage)
        except IntegrityError:
            with pytest.raises(IntegrityError):
                decode_index_columns(garbage)
            return
        decoded = decode_index_columns(garbage)
        assert decoded.count == len(entries)


class TestLookupMany:
    def test_same_answers_as_lookup(self):
        """Present ids, absent ids, ids sharing their first 8 bytes and malformed ids get
        what lookup() gives, across the main and the recent table."""
        entries = make_entries(9000, seed=31)
        prefix = entries[10].blob_id[:8]
        twins = [IndexEntry(prefix + os.urandom(24), KIND_DATA, "cd" * 16, 0, 64, 1) for _ in range(3)]
        index = Index()
        index.add(entries[:8000] + twins[:1])  # merged into main
        index.add(entries[8000:] + twins[1:2])  # still in recent
        wanted = [e.blob_id for e in random.Random(1).sample(entries, 500)]
        wanted += [t.blob_id for t in twins] + [os.urandom(32), prefix + os.urandom(24), b"short", b""]
        assert index.lookup_many(wanted) == [index.lookup(b) for b in wanted]

    def test_empty_index_and_no_ids(self):
        """Nothing is found in an empty index; no ids give no answers."""
        assert Index().lookup_many([os.urandom(32), b"x"]) == [None, None]
        assert Index().lookup_many([]) == []


class TestScratch:
    TEXT = b"all work and no play makes a dull restore " * 5000

    @pytest.fixture
    def env(self):
        return Envelope(bytes(range(32)), b"\x01\x02\x03\x04")

    def test_same_plaintext_as_without(self, env):
        """Stored and compressed objects open to the same bytes with a scratch as without."""
        scratch = Scratch()
        for data, compress in ((os.urandom(300_000), False), (self.TEXT, True), (b"", False)):
            sealed = env.seal(KIND_DATA, b"n", data, compress=compress)
            assert bytes(env.open(sealed, b"n", scratch=scratch)) == env.open(sealed, b"n") == data

    def test_reused_and_grown(self, env):
        """Opening a larger object after a smaller one grows the buffer; views already
        given out keep the old buffer alive instead of failing."""
        scratch = Scratch()
        small = env.open(env.seal(KIND_DATA, b"a", b"x" * 100, compress=False), b"a", scratch=scratch)
        big = env.open(env.seal(KIND_DATA, b"b", b"y" * 100_000, compress=False), b"b", scratch=scratch)
        assert bytes(small) == b"x" * 100 and bytes(big) == b"y" * 100_000

    def test_tampering_still_refused(self, env):
        """A flipped byte or another name fails authentication with a scratch too."""
        sealed = env.seal(KIND_DATA, b"n", os.urandom(1000), compress=False)
        bad = bytearray(sealed)
        bad[100] ^= 1
        for data, name in ((bad, b"n"), (sealed, b"other")):
            with pytest.raises(IntegrityError, match="authentication failed"):
                env.open(data, name, scratch=Scratch())


@pytest.fixture(params=["memory", "local"])
def repo(request, tmp_path) -> Repository:
    store = MemoryStore() if request.param == "memory" else open_store(str(tmp_path / "store"), create=True)
    return Repository(store, MasterKey.generate())


class TestReadPackBlobs:
    def _pack(self, repo: Repository, sizes: list[int]) -> tuple[list[bytes], list[IndexEntry]]:
        data = [os.urandom(n) for n in sizes]
        with repo.writer(pack_size=1 << 30) as writer:
            ids = [writer.add(KIND_DATA, d) for d in data]
        return data, [repo.lookup(i) for i in ids]

    @pytest.mark.parametrize("read_size", [150_000, 1 << 30])
    def test_every_blob_in_pack_order(self, repo, monkeypatch, read_size):
        """Any subset of a pack comes back decrypted, in pack order, whether read in one
        request or in pieces, with or without a scratch."""
        import strongroom.repository.repository as module

        monkeypatch.setattr(module, "LOCAL_READ_SIZE", read_size)
        data, entries = self._pack(repo, [70_000, 5, 200_000, 90_000, 60_000, 1000, 300_000])
        (pack_id,) = {e.pack_id for e in entries}
        wanted = [entries[i] for i in (6, 0, 2, 3, 5)]
        for scratch in (None, Scratch()):
            got = [(e, bytes(d)) for e, d in repo.read_pack_blobs(pack_id, wanted, scratch=scratch)]
            assert got == [(entries[i], data[i]) for i in (0, 2, 3, 5, 6)]

    def test_damaged_blob_and_missing_pack(self, repo):
        """A damaged blob comes with its error and the others still come; a missing pack
        gives an error for every blob."""
        data, entries = self._pack(repo, [50_000, 50_000, 50_000])
        pack_id = entries[0].pack_id
        raw = bytearray(repo.store.get(pack_name(pack_id)))
        raw[entries[1].offset + 40] ^= 1
        repo.store.put(pack_name(pack_id), bytes(raw))
        got = [d if isinstance(d, IntegrityError) else bytes(d)
               for _, d in repo.read_pack_blobs(pack_id, entries, scratch=Scratch())]
        assert [got[0], got[2]] == [data[0], data[2]]
        assert isinstance(got[1], IntegrityError)
        repo.store.delete(pack_name(pack_id))
        assert all(isinstance(d, IntegrityError) for _, d in repo.read_pack_blobs(pack_id, entries))

    def test_index_loads_from_local_store_in_one_batch(self, repo):
        """load_index_files reads every index file (sequentially from a local store) into
        an index that finds every blob."""
        _, entries = self._pack(repo, [1000] * 20)
        _, more = self._pack(repo, [2000] * 5)
        fresh = Repository(repo.store, repo.master)
        assert fresh.load_index_files(sorted(repo.store.list("index/"))) == []
        assert [fresh.lookup(e.blob_id) for e in entries + more] == entries + more
