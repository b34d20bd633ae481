"""Tree nodes, path lookup and random access to content through the repository."""

from __future__ import annotations

import io
import os

import pytest

from strongroom.catalog.entry import DIR, FILE, Entry
from strongroom.catalog.reader import ContentReader
from strongroom.catalog.tree import TreeReader, decode_tree, encode_tree, normalize_path
from strongroom.errors import IntegrityError, PathNotInPoint, UsageError
from strongroom.repository.envelope import KIND_DATA, KIND_TREE
from strongroom.repository.masterkey import MasterKey
from strongroom.repository.repository import Repository
from strongroom.storage import MemoryStore


@pytest.fixture
def repo():
    return Repository(MemoryStore(), MasterKey.generate())


class TestTreeNodes:
    def test_round_trip_keeps_every_field(self):
        """Encoding and decoding a node keeps every entry field, sorted by name."""
        entries = [
            Entry(name="b", type=FILE, mode=0o600, uid=7, xattrs=(("user.a", b"\x00\xff"),), chunks=(b"\x01" * 32,)),
            Entry(name=os.fsdecode(b"a\xff\nb"), type=DIR, subtree=b"\x02" * 32, mtime_ns=123),
        ]
        assert decode_tree(encode_tree(entries)) == sorted(entries, key=lambda e: os.fsencode(e.name))

    def test_malformed_nodes_are_integrity_errors(self):
        """A node that is not valid JSON, has another version or hostile names is damage."""
        for raw in (b"not json", b'{"v": 2, "entries": []}', b'{"v":1,"entries":[{"name":"../x","type":"file"}]}'):
            with pytest.raises(IntegrityError):
                decode_tree(raw)

    def test_normalize_path(self):
        """User paths lose leading slashes and dots; '..' is refused."""
        assert normalize_path("/srv//www/./x/") == "srv/www/x"
        assert normalize_path("/") == ""
        with pytest.raises(UsageError):
            normalize_path("srv/../etc")


class TestTreeReader:
    def _point(self, repo):
        with repo.writer() as w:
            content = [w.add(KIND_DATA, bytes([i]) * 1000) for i in range(3)]
            leaf = w.add(KIND_TREE, encode_tree([Entry(name="f", type=FILE, size=3000, chunks=tuple(content))]))
            root = w.add(KIND_TREE, encode_tree([Entry(name="d", type=DIR, subtree=leaf)]))
        return TreeReader(repo, root, point="p1")

    def test_lookup_listdir_walk(self, repo):
        """Paths resolve through directory nodes; walk is pre-order with full paths."""
        tree = self._point(repo)
        assert tree.lookup("d/f").size == 3000
        assert [e.name for e in tree.listdir("d")] == ["f"]
        assert [p for p, _ in tree.walk()] == ["d", "d/f"]
        with pytest.raises(PathNotInPoint):
            tree.lookup("d/nope")
        with pytest.raises(PathNotInPoint):
            tree.lookup("d/f/under-a-file")

    def test_content_reader_seeks_and_fetches_only_needed_chunks(self, repo):
        """A seekable reader returns exact bytes anywhere and fetches only the chunks touched."""
        tree = self._point(repo)
        reader = ContentReader(repo, tree.lookup("d/f"))
        assert reader.size == 3000
        reader.seek(1500)
        assert reader.read(10) == bytes([1]) * 10
        assert reader.chunks_fetched == 1
        reader.seek(-1, io.SEEK_END)
        assert reader.read(5) == bytes([2])
        reader.seek(990)
        assert reader.read(20) == bytes([0]) * 10 + bytes([1]) * 10
        assert reader.read(0) == b""
        reader.seek(0)
        assert reader.read() == bytes([0]) * 1000 + bytes([1]) * 1000 + bytes([2]) * 1000


class TestBlobWriter:
    def test_deduplicates_and_indexes_after_flush(self, repo):
        """The same blob added twice is stored once, and is findable once flushed."""
        data = os.urandom(100_000)
        with repo.writer() as w:
            a = w.add(KIND_DATA, data)
            b = w.add(KIND_DATA, data)
        assert a == b and w.new_blobs == 1
        assert repo.get_blob(a) == data
        assert len(list(repo.store.list("index/"))) == 1

    def test_packs_roll_over_at_target_size(self, repo):
        """Blobs beyond the pack size go into further packs, each with its index file."""
        with repo.writer(pack_size=300_000) as w:
            ids = [w.add(KIND_DATA, os.urandom(100_000)) for _ in range(10)]
        assert len(repo.pack_ids_on_storage()) >= 3
        assert all(repo.get_blob(i) for i in ids)

    def test_storage_errors_surface_from_flush(self, repo):
        """An upload failure in the background raises from flush, not silently."""

        class Broken(MemoryStore):
            def put(self, name, data):
                raise OSError("disk full")

        broken = Repository(Broken(), repo.master)
        w = broken.writer()
        w.add(KIND_DATA, b"x" * 10)
        with pytest.raises(OSError, match="disk full"):
            w.flush()
        w.close()

    def test_unindexed_packs_are_adopted(self, repo):
        """A pack uploaded without its index (a killed backup) is found again from its trailer."""
        with repo.writer() as w:
            blob = w.add(KIND_DATA, b"orphan" * 1000)
        for name in list(repo.store.list("index/")):
            repo.store.delete(name)
        fresh = Repository(repo.store, repo.master)
        fresh.load_index()
        assert blob not in fresh.index
        assert fresh.adopt_unindexed_packs() == (1, [])
        assert fresh.get_blob(blob) == b"orphan" * 1000
