"""The encodings format 3 adds for data keys: envelopes with several keys, keyed pack
trailers (version 2), keyed index files (version 2), data-key objects, slot last use."""

from __future__ import annotations

import json
import os

import pytest

from strongroom.errors import IntegrityError
from strongroom.repository import datakeys
from strongroom.repository.blobid import blob_id
from strongroom.repository.envelope import KIND_DATA, KIND_DOCUMENT, KIND_TREE, Envelope
from strongroom.repository.indexfile import decode_index, decode_index_columns, encode_index
from strongroom.repository.masterkey import MasterKey
from strongroom.repository.pack import IndexEntry, PackWriter, parse_pack
from strongroom.repository.repository import Repository
from strongroom.services import slotuse
from strongroom.storage import MemoryStore

ID_KEY = bytes(32)
FIRST, SECOND = os.urandom(32), os.urandom(32)


def envelope(format: int = 3) -> Envelope:
    return Envelope(FIRST, b"key1", format=format).with_key(SECOND, b"key2")


def pack_of(env: Envelope, key_id: bytes | None = None):
    writer = PackWriter(env, key_id)
    sealer = env if key_id in (None, env.key_id) else env.base()
    for kind, plain in ((KIND_DATA, os.urandom(500)), (KIND_TREE, b'{"v":1}' * 20)):
        bid = blob_id(ID_KEY, plain)
        writer.add(bid, kind, sealer.seal(kind, bid, plain), len(plain))
    return writer.finish()


class TestEnvelopeKeys:
    def test_objects_open_under_the_key_their_header_names(self):
        """An envelope writing with the second key still opens what the first sealed."""
        env = envelope()
        old = env.base().seal(KIND_DOCUMENT, b"doc", b"old")
        new = env.seal(KIND_DOCUMENT, b"doc", b"new")
        assert old[6:10] == b"key1" and new[6:10] == b"key2"
        assert env.open(old, b"doc", kind=KIND_DOCUMENT) == b"old"
        assert env.open(new, b"doc", kind=KIND_DOCUMENT) == b"new"

    def test_a_headerless_blob_opens_only_with_its_key_id(self):
        """A format-2/3 blob opens with the key id given, and fails with another."""
        env = envelope()
        sealed = env.seal(KIND_DATA, b"b" * 32, b"payload" * 10)
        assert env.open(sealed, b"b" * 32, kind=KIND_DATA, key_id=b"key2") == b"payload" * 10
        with pytest.raises(IntegrityError, match="authentication failed"):
            env.open(sealed, b"b" * 32, kind=KIND_DATA)  # the first key by default

    def test_an_unknown_key_id_is_resolved_or_refused(self):
        """A key id the envelope lacks is asked of its resolver; without one it is refused."""
        writer = Envelope(SECOND, b"key2", format=3)
        sealed = writer.seal(KIND_DOCUMENT, b"doc", b"x")
        with pytest.raises(IntegrityError, match="another key"):
            Envelope(FIRST, b"key1", format=3).open(sealed, b"doc", kind=KIND_DOCUMENT)
        asked = []
        reader = Envelope(FIRST, b"key1", format=3, resolve=lambda k: asked.append(k) or SECOND)
        assert reader.open(sealed, b"doc", kind=KIND_DOCUMENT) == b"x"
        assert reader.open(sealed, b"doc", kind=KIND_DOCUMENT) == b"x" and asked == [b"key2"]  # kept


class TestKeyedPacks:
    def test_a_format_3_trailer_names_the_blobs_key(self):
        """Format 3 writes trailer version 2 with the key id; parsing gives it back on every entry."""
        data, entries = pack_of(envelope())
        assert {e.key_id for e in entries} == {b"key2"}
        parsed = parse_pack(data, entries[0].pack_id, envelope())
        assert parsed == entries

    def test_copies_of_old_blobs_name_their_own_key(self):
        """A pack of blobs sealed with the first key (prune's copies) says so."""
        data, entries = pack_of(envelope(), key_id=b"key1")
        assert {e.key_id for e in parse_pack(data, entries[0].pack_id, envelope())} == {b"key1"}

    def test_format_2_writes_version_1_trailers(self):
        """Before format 3 nothing changes: trailer version 1, no key id on entries."""
        env = Envelope(FIRST, b"key1", format=2)
        data, entries = pack_of(env)
        assert {e.key_id for e in entries} == {b""}
        assert parse_pack(data, entries[0].pack_id, env) == entries


class TestKeyedIndexFiles:
    def entries(self, key_id: bytes, pack: str) -> list[IndexEntry]:
        return [IndexEntry(os.urandom(32), KIND_DATA, pack, i * 100, 100, 90, key_id) for i in range(3)]

    def test_round_trip_with_key_ids(self):
        """Entries with key ids are written as version 2 and read back with them, per pack."""
        entries = self.entries(b"key2", "a" * 32) + self.entries(b"key1", "b" * 32)
        plain = encode_index(entries)
        assert plain[0] == 2
        assert decode_index(plain) == entries
        assert decode_index_columns(plain).key_ids == (b"key2", b"key1")

    def test_entries_without_a_key_id_stay_version_1_or_take_the_default(self):
        """Version 1 when no entry has a key id; mixed, the first key is written for those."""
        plain = encode_index(self.entries(b"", "c" * 32))
        assert plain[0] == 1 and {e.key_id for e in decode_index(plain)} == {b""}
        mixed = self.entries(b"", "c" * 32) + self.entries(b"key2", "d" * 32)
        with pytest.raises(ValueError):
            encode_index(mixed)
        keys = {e.pack_id: e.key_id for e in decode_index(encode_index(mixed, default_key=b"key1"))}
        assert keys == {"c" * 32: b"key1", "d" * 32: b"key2"}


class TestDataKeyObjects:
    def test_write_load_and_tamper(self):
        """A data key loads back; under another name, or not matching its id, it is refused."""
        master = MasterKey.generate()
        repo = Repository(MemoryStore(), master)
        key = datakeys.generate(master, set(), "2026-12-04T00:00:00+00:00")
        datakeys.write(repo, key)
        assert datakeys.load(repo, key.key_id) == key
        other = datakeys.generate(master, {key.key_id}, "")
        repo.store.put(other.name, repo.store.get(key.name))  # a copy under another name
        with pytest.raises(IntegrityError, match=f"{other.name} does not open"):
            datakeys.load(repo, other.key_id)
        repo.store.delete(other.name)
        with pytest.raises(IntegrityError, match=f"{other.name} is missing"):
            datakeys.load(repo, other.key_id)
        forged = json.dumps({"key_id": other.key_id.hex(), "created": "",
                             "data_key": json.loads(key.to_json())["data_key"]}).encode()
        repo.store.put(other.name, repo.envelope.seal(KIND_DOCUMENT, other.name.encode(), forged))
        with pytest.raises(IntegrityError, match="does not match its id"):
            datakeys.load(repo, other.key_id)


class TestSlotUse:
    def test_recorded_outside_the_vault_and_damage_is_forgotten(self, tmp_path):
        """Each slot's last use is kept in the home; an unreadable file starts again."""
        assert slotuse.last_uses(tmp_path, "v" * 32) == {}
        slotuse.record_use(tmp_path, "v" * 32, "slot-a")
        uses = slotuse.last_uses(tmp_path, "v" * 32)
        assert list(uses) == ["slot-a"]
        path = tmp_path / "state" / f"{'v' * 32}.slots.json"
        assert path.stat().st_mode & 0o777 == 0o600
        path.write_text("not json")
        slotuse.record_use(tmp_path, "v" * 32, "slot-b")
        assert list(slotuse.last_uses(tmp_path, "v" * 32)) == ["slot-b"]
