"""Packs: writing, reading the trailer back (whole or by ranged reads), damage detection."""

from __future__ import annotations

import os
import re
import struct

import pytest

from strongroom.errors import IntegrityError, ObjectNotFound
from strongroom.repository.blobid import blob_id
from strongroom.repository.envelope import KIND_DATA, KIND_TREE, Envelope
from strongroom.repository.pack import (
    PACK_TARGET_SIZE,
    IndexEntry,
    PackWriter,
    pack_name,
    parse_pack,
    read_trailer,
)
from strongroom.storage import MemoryStore

ID_KEY = bytes(32)


@pytest.fixture
def env():
    return Envelope(os.urandom(32), b"kid1")


class CountingStore(MemoryStore):
    """A MemoryStore that records how it was read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, int, int]] = []

    def get(self, name):
        self.reads.append(("get", 0, self.size(name)))
        return super().get(name)

    def get_range(self, name, offset, length):
        self.reads.append(("range", offset, length))
        return super().get_range(name, offset, length)


def build_pack(env: Envelope, blobs: list[tuple[int, bytes]]):
    writer = PackWriter(env)
    for kind, plain in blobs:
        bid = blob_id(ID_KEY, plain)
        writer.add(bid, kind, env.seal(kind, bid, plain), len(plain))
    data, entries = writer.finish()
    return writer, data, entries


BLOBS = [(KIND_DATA, os.urandom(1000)), (KIND_TREE, b'{"tree": 1}' * 50), (KIND_DATA, b"x" * 70000)]


class TestPackWriter:
    def test_pack_ids_and_names(self, env):
        """Pack ids are 32 lowercase hex digits, distinct, stored under data/<xx>/."""
        a, b = PackWriter(env), PackWriter(env)
        assert re.fullmatch(r"[0-9a-f]{32}", a.pack_id) and a.pack_id != b.pack_id
        assert pack_name(a.pack_id) == f"data/{a.pack_id[:2]}/{a.pack_id}"
        with pytest.raises(ValueError):
            pack_name("ABCDEF" * 5 + "00")
        assert PACK_TARGET_SIZE == 8 * 1024 * 1024

    def test_size_and_count_track_additions(self, env):
        """size is the sum of the sealed blobs and count their number."""
        writer = PackWriter(env)
        total = 0
        for kind, plain in BLOBS:
            sealed = env.seal(kind, blob_id(ID_KEY, plain), plain)
            writer.add(blob_id(ID_KEY, plain), kind, sealed, len(plain))
            total += len(sealed)
        assert writer.size == total and writer.count == len(BLOBS)

    def test_layout_and_entries(self, env):
        """Blobs sit back to back from offset 0; the footer gives the trailer length and magic."""
        writer, data, entries = build_pack(env, BLOBS)
        assert data[-4:] == b"SRPK"
        (trailer_len,) = struct.unpack("<I", data[-8:-4])
        assert entries[0].offset == 0
        for prev, nxt in zip(entries, entries[1:], strict=False):
            assert nxt.offset == prev.offset + prev.length
        assert entries[-1].offset + entries[-1].length == len(data) - 8 - trailer_len
        for entry, (kind, plain) in zip(entries, BLOBS, strict=True):
            assert entry.pack_id == writer.pack_id and entry.kind == kind
            assert entry.raw_length == len(plain)
            sealed = data[entry.offset : entry.offset + entry.length]
            assert env.open(sealed, entry.blob_id, kind=kind) == plain

    def test_finish_once(self, env):
        """finish may be called once, and nothing can be added afterwards."""
        writer, _, _ = build_pack(env, BLOBS[:1])
        with pytest.raises(RuntimeError):
            writer.finish()
        with pytest.raises(RuntimeError):
            writer.add(bytes(32), KIND_DATA, b"x" * 40, 2)

    def test_rejects_bad_blob_ids(self, env):
        """Blob ids must be 32 bytes."""
        with pytest.raises(ValueError):
            PackWriter(env).add(b"short", KIND_DATA, b"x" * 40, 1)


class TestReadingPacks:
    def test_parse_pack_round_trip(self, env):
        """parse_pack returns exactly the writer's entries."""
        writer, data, entries = build_pack(env, BLOBS)
        assert parse_pack(data, writer.pack_id, env) == entries
        assert all(isinstance(e, IndexEntry) for e in entries)

    def test_empty_pack(self, env):
        """A pack with no blobs is valid and lists nothing."""
        writer = PackWriter(env)
        data, entries = writer.finish()
        assert entries == [] and parse_pack(data, writer.pack_id, env) == []

    def test_read_trailer_uses_ranged_reads_only(self, env):
        """read_trailer never fetches the whole pack: one tail read of at most 64 KiB."""
        blobs = [(KIND_DATA, os.urandom(300_000)) for _ in range(8)]
        writer, data, entries = build_pack(env, blobs)
        store = CountingStore()
        store.put(pack_name(writer.pack_id), data)
        assert read_trailer(store, writer.pack_id, env) == entries
        assert [kind for kind, _, _ in store.reads] == ["range"]
        assert sum(length for _, _, length in store.reads) <= 64 * 1024 < len(data)

    def test_large_trailer_needs_a_second_range(self, env):
        """A trailer longer than the tail read is fetched with one more ranged read."""
        blobs = [(KIND_TREE, f"node {i}".encode()) for i in range(2000)]
        writer, data, entries = build_pack(env, blobs)
        store = CountingStore()
        store.put(pack_name(writer.pack_id), data)
        assert read_trailer(store, writer.pack_id, env) == entries
        assert [kind for kind, _, _ in store.reads] == ["range", "range"]

    def test_small_pack_is_read_whole_by_range(self, env):
        """A pack smaller than the tail read is read with one range covering all of it."""
        writer, data, entries = build_pack(env, BLOBS[:1])
        store = CountingStore()
        store.put(pack_name(writer.pack_id), data)
        assert read_trailer(store, writer.pack_id, env) == entries

    def test_missing_pack(self, env):
        """A pack that is not stored raises ObjectNotFound."""
        with pytest.raises(ObjectNotFound):
            read_trailer(MemoryStore(), "0" * 32, env)

    def test_not_a_pack_id(self, env):
        """A stray object name in data/ is reported as damage, not a crash."""
        with pytest.raises(IntegrityError):
            read_trailer(MemoryStore(), "README", env)


class TestDamagedPacks:
    @pytest.fixture
    def stored(self, env):
        writer, data, entries = build_pack(env, BLOBS)
        return writer.pack_id, data

    def check(self, env, pack_id, data):
        store = MemoryStore()
        store.put(pack_name(pack_id), data)
        with pytest.raises(IntegrityError):
            read_trailer(store, pack_id, env)
        with pytest.raises(IntegrityError):
            parse_pack(data, pack_id, env)

    @pytest.mark.parametrize("cut", [1, 4, 8, 9, 100, 1000])
    def test_truncated(self, env, stored, cut):
        """A pack missing its last bytes is damaged."""
        pack_id, data = stored
        self.check(env, pack_id, data[:-cut])

    def test_cut_to_almost_nothing(self, env, stored):
        """A pack of a few bytes is damaged, whatever they are."""
        pack_id, data = stored
        for size in (0, 3, 8, 20, 45):
            self.check(env, pack_id, data[:size])

    def test_bit_flips_in_trailer_and_footer(self, env, stored):
        """Flipping any bit of the sealed trailer or the footer is detected."""
        pack_id, data = stored
        (trailer_len,) = struct.unpack("<I", data[-8:-4])
        start = len(data) - 8 - trailer_len
        for pos in list(range(start, start + 30)) + list(range(len(data) - 40, len(data))):
            for bit in (0, 7):
                damaged = bytearray(data)
                damaged[pos] ^= 1 << bit
                self.check(env, pack_id, bytes(damaged))

    def test_extra_bytes_before_the_trailer(self, env, stored):
        """Bytes inserted between the blobs and the trailer make the pack inconsistent."""
        pack_id, data = stored
        (trailer_len,) = struct.unpack("<I", data[-8:-4])
        start = len(data) - 8 - trailer_len
        self.check(env, pack_id, data[:start] + b"junk" + data[start:])

    def test_trailer_of_another_pack(self, env, stored):
        """A pack stored under another pack's id fails authentication of its trailer."""
        _, data = stored
        self.check(env, "f" * 32, data)

    def test_other_key(self, stored):
        """A pack sealed with another key is not readable."""
        pack_id, data = stored
        self.check(Envelope(os.urandom(32), b"kid2"), pack_id, data)
