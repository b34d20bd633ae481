"""Disk images: fixed-size chunks, holes for zeros, changed-block maps, random reads."""

from __future__ import annotations

import os
import shutil

import attrs
import pytest

from strongroom.catalog.entry import DIR, DISK, Entry
from strongroom.vault import Vault
from strongroom.workload import Workload
from vaultkit import workload_host

MIB = 1 << 20
CHUNK = 4 * MIB
SIZE = 16 * CHUNK + 1234  # the last chunk is partial
CHANGED: dict[str, object] = {"chunks": None}


@attrs.frozen
class DiskSource:
    path: str
    entry: Entry
    image: str
    changed_chunks: object = None

    def open(self):
        return open(self.image, "rb")


class ImageWorkload(Workload):
    name = "testdisk"

    def backup(self, ctx):
        image = ctx.item.source["image"]
        yield DiskSource("disks", Entry(name="disks", type=DIR, mode=0o755), image)
        size = os.path.getsize(image)
        entry = Entry(name="d0", type=DISK, mode=0o600, size=size, chunk_size=CHUNK)
        yield DiskSource("disks/d0", entry, image, CHANGED["chunks"])


def _write_at(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


@pytest.fixture
def disk_vault(tmp_path):
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(SIZE)
    _write_at(image, 1 * CHUNK + 100, os.urandom(MIB))
    _write_at(image, 5 * CHUNK, os.urandom(CHUNK))
    _write_at(image, 16 * CHUNK, os.urandom(1234))  # the partial last chunk
    vault = Vault.create(str(tmp_path / "vault"), plugins=workload_host("testdisk", testdisk=ImageWorkload))
    vault.protect("testdisk", "vm", {"image": str(image)})
    CHANGED["chunks"] = None
    yield vault, image
    CHANGED["chunks"] = None


def _same(a, b) -> bool:
    return open(a, "rb").read() == open(b, "rb").read()


class TestDiskEntries:
    def test_zero_chunks_are_holes_and_restore_is_sparse(self, disk_vault, tmp_path):
        """All-zero chunks are not stored; the restored image is equal and sparse."""
        vault, image = disk_vault
        point = vault.backup("vm")
        entry = vault.tree(point).lookup("disks/d0")
        assert [i for i, c in enumerate(entry.chunks) if c] == [1, 5, 16]
        assert point.stats["new_bytes"] < 3 * CHUNK + 64 * 1024
        vault.restore("vm", None, str(tmp_path / "out"))
        restored = tmp_path / "out" / "disks" / "d0"
        assert os.path.getsize(restored) == SIZE and _same(image, restored)
        assert os.stat(restored).st_blocks * 512 < 8 * MIB, "restored image is not sparse"

    def test_changed_block_map_reads_only_changed_chunks(self, disk_vault, tmp_path):
        """With a changed-block map the next backup reads only those chunks; both points restore exactly."""
        vault, image = disk_vault
        vault.backup("vm")
        first_copy = tmp_path / "first.img"
        shutil.copyfile(image, first_copy)
        _write_at(image, 5 * CHUNK + 10, b"changed!" * 1000)
        _write_at(image, 12 * CHUNK, b"new data" * 1000)
        CHANGED["chunks"] = {5, 12}
        second = vault.backup("vm")
        assert second.stats["bytes_read"] == 2 * CHUNK
        assert second.stats["chunks_reused"] == 15
        points = vault.points("vm")
        vault.restore("vm", points[0].point_id, str(tmp_path / "p1"))
        vault.restore("vm", points[1].point_id, str(tmp_path / "p2"))
        assert _same(first_copy, tmp_path / "p1" / "disks" / "d0")
        assert _same(image, tmp_path / "p2" / "disks" / "d0")

    def test_changed_map_without_parent_reads_everything_and_warns(self, disk_vault):
        """A changed-block map with no parent point falls back to a full read, with a warning."""
        vault, _ = disk_vault
        CHANGED["chunks"] = {3}
        point = vault.backup("vm")
        assert point.stats["bytes_read"] == SIZE
        assert any("reading the whole disk" in w for w in point.warnings)

    def test_random_reads_fetch_only_touched_chunks(self, disk_vault):
        """The point reader returns exact bytes; holes cost no fetch."""
        vault, image = disk_vault
        vault.backup("vm")
        reader = vault.open_file("vm", None, "disks/d0")
        assert reader.size == SIZE
        with open(image, "rb") as original:
            for offset, length in ((0, 4096), (CHUNK + 50, 2 * MIB), (9 * CHUNK, CHUNK), (SIZE - 2000, 5000)):
                original.seek(offset)
                reader.seek(offset)
                assert reader.read(length) == original.read(length)
        assert reader.chunks_fetched == 2  # chunk 1 and the partial last chunk; the rest are holes

    def test_verify_read_data_accepts_holes(self, disk_vault):
        """Points with holes verify clean."""
        vault, _ = disk_vault
        vault.backup("vm")
        report = vault.verify(read_data=True)
        assert report.ok, report.problems

    def test_empty_changed_map_takes_the_parent_disk_without_opening_it(self, disk_vault, tmp_path, monkeypatch):
        """An empty changed-block map (the workload knows the disk is the parent's): the source is
        never opened, nothing is read, the disk counts as unchanged and the point restores equal."""
        vault, image = disk_vault
        vault.backup("vm")

        def no_open(self):
            raise AssertionError("opened")

        monkeypatch.setattr(DiskSource, "open", no_open)
        CHANGED["chunks"] = frozenset()
        second = vault.backup("vm")
        monkeypatch.undo()
        assert second.stats["bytes_read"] == 0 and second.stats["files_unchanged"] == 1
        assert second.stats["chunks_reused"] == 17 and second.warnings == ()
        vault.restore("vm", None, str(tmp_path / "out"))
        assert _same(image, tmp_path / "out" / "disks" / "d0")

    def test_read_counts_what_the_reader_says_it_read(self, disk_vault, monkeypatch):
        """A reader with ``bytes_from_source`` (holes it did not read) is believed: "read" is its count."""
        vault, image = disk_vault

        class Counting:
            def __init__(self, fh):
                self.fh, self.bytes_from_source = fh, 0

            def read(self, n):
                data = self.fh.read(n)
                self.bytes_from_source += len(data.rstrip(b"\0"))  # zeros "not read"
                return data

            def seek(self, *args):
                return self.fh.seek(*args)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

        monkeypatch.setattr(DiskSource, "open", lambda self: Counting(open(self.image, "rb")))
        point = vault.backup("vm")
        assert 4 * MIB <= point.stats["bytes_read"] < 2 * MIB + CHUNK + 2000  # not SIZE: 64 MiB
