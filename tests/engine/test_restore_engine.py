"""The restorer on crafted points: batches, files across packs, shared blobs, damage."""

from __future__ import annotations

import os

import pytest

import strongroom.engine.restore as restore_module
from strongroom.catalog.entry import DIR, FILE, HARDLINK, Entry
from strongroom.catalog.tree import TreeReader, encode_tree
from strongroom.engine.restore import Restorer
from strongroom.errors import PathInTheWay
from strongroom.repository.envelope import KIND_DATA, KIND_TREE
from strongroom.repository.masterkey import MasterKey
from strongroom.repository.pack import pack_name
from strongroom.repository.repository import Repository
from strongroom.storage import MemoryStore

OLD_NS = 1_400_000_000_000_000_001
CHUNK = 10_000


class Point:
    """Files written into small packs, and the tree naming them."""

    def __init__(self) -> None:
        self.repo = Repository(MemoryStore(), MasterKey.generate())
        self.content: dict[str, bytes] = {}
        self._pending: list[tuple[str, dict]] = []

    def file(self, relpath: str, data: bytes, **fields) -> None:
        self.content[relpath] = data
        self._pending.append((relpath, {"data": data, **fields}))

    def hardlink(self, relpath: str, first: str) -> None:
        self._pending.append((relpath, {"link": first}))

    def tree(self) -> TreeReader:
        folders: dict[str, list[Entry]] = {"": []}
        with self.repo.writer(pack_size=3 * CHUNK) as writer:
            for relpath, spec in self._pending:
                parent, _, name = relpath.rpartition("/")
                folders.setdefault(parent, [])
                meta = {"mode": spec.get("mode", 0o640), "mtime_ns": OLD_NS, "atime_ns": OLD_NS,
                        "uid": spec.get("uid", os.geteuid()), "gid": spec.get("gid", os.getegid()),
                        "xattrs": tuple(spec.get("xattrs", ()))}
                if "link" in spec:
                    data = self.content[spec["link"]]
                    chunks = [writer.add(KIND_DATA, data[i : i + CHUNK]) for i in range(0, len(data), CHUNK)]
                    folders[parent].append(Entry(name=name, type=HARDLINK, target=spec["link"], size=len(data),
                                                 chunks=tuple(chunks), **meta))
                    continue
                data = spec["data"]
                chunks = []
                for i in range(0, len(data), CHUNK):
                    piece = data[i : i + CHUNK]
                    chunks.append(b"" if spec.get("sparse") and not any(piece) else writer.add(KIND_DATA, piece))
                folders[parent].append(Entry(name=name, type=FILE, size=len(data), chunks=tuple(chunks),
                                             sparse=bool(spec.get("sparse")),
                                             chunk_size=CHUNK if spec.get("sparse") else 0, **meta))
            root = None
            for folder in sorted(folders, key=lambda f: f.count("/") if f else -1, reverse=True):
                node = writer.add(KIND_TREE, encode_tree(folders[folder]))
                if not folder:
                    root = node
                    continue
                parent, _, name = folder.rpartition("/")
                folders.setdefault(parent, []).append(
                    Entry(name=name, type=DIR, mode=0o750, mtime_ns=OLD_NS, atime_ns=OLD_NS, subtree=node))
        return TreeReader(self.repo, root)


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(restore_module, "BATCH_FILES", 3)


class TestRestorer:
    def test_batches_shared_blobs_links_and_spread_files(self, tmp_path, small_batches):
        """Across batches of three files, every file comes back exactly: small ones, one
        spread over several packs, copies sharing blobs, empty and sparse ones, and a
        hard link to a file of an earlier batch."""
        point = Point()
        shared = os.urandom(CHUNK // 2)
        point.file("a/small", b"tiny")
        point.file("a/copy1", shared)
        point.file("a/empty", b"")
        point.file("b/spread", os.urandom(7 * CHUNK + 123), mode=0o600)
        point.file("b/sparse", bytes(CHUNK) + b"x" * CHUNK + bytes(2 * CHUNK), sparse=True)
        for i in range(7):
            point.file(f"c/f{i}", os.urandom(100 + i))
        point.file("d/copy2", shared)
        point.hardlink("d/link", "a/small")
        target = tmp_path / "t"
        result = Restorer(point.repo, point.tree(), str(target), threads=2).run()
        assert result.errors == () and result.damaged == ()
        for relpath, data in point.content.items():
            assert read(target / relpath) == data, relpath
            st = os.lstat(target / relpath)
            assert st.st_mtime_ns == OLD_NS
        assert os.lstat(target / "b/spread").st_mode & 0o7777 == 0o600
        assert os.lstat(target / "c/f3").st_mode & 0o7777 == 0o640
        assert os.lstat(target / "d/link").st_ino == os.lstat(target / "a/small").st_ino
        assert os.lstat(target / "b/sparse").st_blocks * 512 < 3 * CHUNK
        assert os.lstat(target / "b").st_mode & 0o7777 == 0o750
        assert result.stats.files == len(point.content) and result.stats.links == 1
        assert result.stats.bytes_written == sum(len(d) for d in point.content.values()) - 3 * CHUNK

    def test_damaged_blob_of_a_file_across_packs(self, tmp_path, small_batches):
        """A damaged blob in the middle of a file spread over packs: that file is removed
        and named, its hard link is not made, the other files are restored."""
        point = Point()
        point.file("x/before", b"before")
        point.file("x/spread", os.urandom(9 * CHUNK))
        point.file("x/after", b"after")
        point.hardlink("y/link", "x/spread")
        tree = point.tree()
        spread = tree.lookup("x/spread")
        middle = point.repo.lookup(spread.chunks[4])
        assert len({point.repo.lookup(c).pack_id for c in spread.chunks}) > 2
        raw = bytearray(point.repo.store.get(pack_name(middle.pack_id)))
        raw[middle.offset + 50] ^= 1
        point.repo.store.put(pack_name(middle.pack_id), bytes(raw))
        target = tmp_path / "t"
        result = Restorer(point.repo, tree, str(target), threads=2).run()
        assert result.damaged == ("x/spread",)
        assert "x/spread" in result.errors[0] and "authentication failed" in result.errors[0]
        assert not (target / "x/spread").exists() and not (target / "y/link").exists()
        assert read(target / "x/before") == b"before" and read(target / "x/after") == b"after"

    @pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files away")
    def test_owners_when_restoring_as_root(self, tmp_path):
        """Files in one folder get each its own owner, whether it is the restoring user's
        (no chown needed) or another."""
        point = Point()
        point.file("o/mine", b"1", uid=0, gid=0)
        point.file("o/theirs", b"2", uid=1234, gid=5678)
        point.file("o/group", b"3", uid=0, gid=5678)
        point.file("o/mine2", b"4", uid=0, gid=0)
        target = tmp_path / "t"
        Restorer(point.repo, point.tree(), str(target), restore_owner=True).run()
        owners = {n: (os.lstat(target / "o" / n).st_uid, os.lstat(target / "o" / n).st_gid)
                  for n in ("mine", "theirs", "group", "mine2")}
        assert owners == {"mine": (0, 0), "theirs": (1234, 5678), "group": (0, 5678), "mine2": (0, 0)}

    def test_restore_over_an_existing_copy(self, tmp_path, small_batches):
        """Into a target holding older versions (a longer file, an empty folder, a symlink
        out where files go), the files come back exactly and nothing outside is touched;
        a folder with a file in it where a file goes is kept and named, after the rest."""
        point = Point()
        for i in range(6):
            point.file(f"k/f{i}", os.urandom(50 + i))
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "precious").write_bytes(b"keep")
        target = tmp_path / "t"
        (target / "k" / "f1").mkdir(parents=True)
        (target / "k" / "f1" / "inner").write_bytes(b"old")
        (target / "k" / "f3").mkdir(parents=True)
        (target / "k" / "f0").write_bytes(b"old and much longer than the restored file" * 10)
        os.symlink(outside / "precious", target / "k" / "f2")
        with pytest.raises(PathInTheWay, match=r"Kept '.*/k/f1' in the restore target: a folder that is not empty"):
            Restorer(point.repo, point.tree(), str(target)).run()
        assert read(target / "k" / "f1" / "inner") == b"old"
        for relpath, data in point.content.items():
            if relpath != "k/f1":
                assert read(target / relpath) == data
        assert read(outside / "precious") == b"keep"
