"""XFS inside a disk point: browse and restore files with their content and metadata.

Images are real XFS file systems made by ``mkfs.xfs -p PROTOFILE`` (xfskit), on a whole
disk and as a GPT partition beside ext4; they are read through libfsxfs, never mounted.
"""

from __future__ import annotations

import os
import random
import stat

import pytest

from strongroom.errors import PathNotInPoint
from strongroom_vm.errors import UnknownFilesystem
from vmkit import MIB, CountingStore, ext4_at, partition, write_at
from xfskit import inode_times, need_xfsprogs, set_times, xfs_image

OWNERS = {"home/alice": (1000, 1000), "home/alice/notes.txt": (1000, 1001), "home/alice/docs": (1000, 1000),
          "home/alice/docs/report.bin": (1000, 1000), "home/alice/link": (1000, 1000)}


@pytest.fixture
def xfs_tree(tree):
    need_xfsprogs()
    root, files = tree
    os.symlink("docs/report.bin", root / "home" / "alice" / "link")
    os.chmod(root / "home" / "alice" / "docs" / "report.bin", 0o640)
    os.chmod(root / "home" / "alice", 0o750)
    return root, files


def lstat(path):
    return os.lstat(path)


class TestWholeDiskXfs:
    @pytest.fixture
    def image(self, tmp_path, xfs_tree):
        path = tmp_path / "rhel.img"
        xfs_image(path, xfs_tree[0], 64, owners=OWNERS)
        return path

    def test_browse_lists_files_with_mode_owner_and_times(self, vault, image):
        """Browsing an XFS disk lists its files with the mode, owner and mtime its inodes hold."""
        vault.protect("vm", "rhel", {"disks": [f"vda={image}"]})
        vault.backup("rhel")
        assert sorted(r.name for r in vault.browse("rhel", None, "vda:/")) == ["etc", "home"]
        rows = {r.name: r for r in vault.browse("rhel", None, "vda:/home/alice")}
        assert rows["notes.txt"].mode == 0o600 and rows["notes.txt"].owner == "1000:1001"
        assert rows["notes.txt"].size == len(b"alice's notes\n" * 100)
        assert rows["docs"].type == "dir" and rows["link"].type == "symlink"
        assert rows["link"].target == "docs/report.bin"
        assert rows["notes.txt"].mtime_ns == inode_times(image, "/home/alice/notes.txt")["mtime"]

    def test_restore_is_byte_identical_with_metadata(self, vault, image, xfs_tree, tmp_path):
        """Files restored from XFS have the original bytes, mode, owner, times; links stay links."""
        vault.protect("vm", "rhel", {"disks": [f"vda={image}"]})
        vault.backup("rhel")
        vault.restore("rhel", None, str(tmp_path / "out"), options={"files": ["vda:/home", "vda:/etc/motd"]})
        out = tmp_path / "out" / "vda"
        for rel, data in xfs_tree[1].items():
            if rel.startswith("home/") or rel == "etc/motd":
                assert (out / rel).read_bytes() == data, rel
        report = lstat(out / "home/alice/docs/report.bin")
        assert stat.S_IMODE(report.st_mode) == 0o640 and (report.st_uid, report.st_gid) == (1000, 1000)
        notes = lstat(out / "home/alice/notes.txt")
        assert stat.S_IMODE(notes.st_mode) == 0o600 and (notes.st_uid, notes.st_gid) == (1000, 1001)
        assert stat.S_IMODE(lstat(out / "home/alice").st_mode) == 0o750
        times = inode_times(image, "/home/alice/docs/report.bin")
        assert report.st_mtime_ns == times["mtime"] and times["mtime"] % 1_000_000_000  # nanoseconds kept
        assert os.readlink(out / "home/alice/link") == "docs/report.bin"
        assert (out / "home/alice/link").read_bytes() == xfs_tree[1]["home/alice/docs/report.bin"]

    def test_missing_path_is_refused(self, vault, image, tmp_path):
        """A path that is not in the XFS file system is refused as not in the point."""
        vault.protect("vm", "rhel", {"disks": [f"vda={image}"]})
        vault.backup("rhel")
        with pytest.raises(PathNotInPoint):
            vault.restore("rhel", None, str(tmp_path / "out"), options={"files": ["vda:/home/carol"]})


class TestXfsPartition:
    def test_an_xfs_partition_beside_ext4(self, vault, cli, xfs_tree, tmp_path):
        """A GPT disk with ext4 (p1) and XFS (p2, bigtime off, times set by xfs_db): both listed
        with their file system; files come out of p2 with the times the inode holds."""
        image = tmp_path / "disk.img"
        parts = partition(image, 160, "label: gpt\nstart=2048, size=40MiB, type=L\nsize=64MiB, type=L\n")
        ext4_at(image, xfs_tree[0], parts[0]["start"], 40)
        volume = tmp_path / "p2.xfs"
        xfs_image(volume, xfs_tree[0], 64, bigtime=False, owners=OWNERS)
        set_times(volume, "/etc/hosts", mtime=1_600_000_000, atime=1_500_000_000)
        write_at(image, parts[1]["start"] * 512, volume.read_bytes())
        vault.protect("vm", "web", {"disks": [f"vda={image}"]})
        vault.backup("web")
        rows = {r.name: r.detail for r in vault.browse("web", None, "vda:/")}
        assert rows["p1"].startswith("ext4") and rows["p2"].startswith("xfs")
        out = cli("browse", "web", "vda:/p2/etc")
        assert "hosts" in out.stdout and "motd" in out.stdout
        vault.restore("web", None, str(tmp_path / "out"), options={"files": ["vda:/p2/etc"]})
        hosts = tmp_path / "out" / "vda" / "p2" / "etc" / "hosts"
        before = hosts.stat()  # before reading it: reading moves the access time on
        assert before.st_mtime_ns == 1_600_000_000 * 10**9 and before.st_atime_ns == 1_500_000_000 * 10**9
        assert hosts.read_bytes() == xfs_tree[1]["etc/hosts"]

    def test_a_damaged_xfs_superblock_is_one_clear_refusal(self, vault, xfs_tree, tmp_path):
        """An XFS volume whose superblock is damaged is refused with one line naming XFS."""
        image = tmp_path / "broken.img"
        xfs_image(image, xfs_tree[0], 64)
        write_at(image, 4, bytes(100))  # block size, counts and geometry gone; the magic stays
        vault.protect("vm", "rhel", {"disks": [f"vda={image}"]})
        vault.backup("rhel")
        with pytest.raises(UnknownFilesystem, match=r"disk vda: an XFS volume libfsxfs cannot read") as info:
            vault.browse("rhel", None, "vda:/etc")
        assert "\n" not in str(info.value)


class TestFetchedBytes:
    def test_one_file_fetches_a_small_part_of_the_point(self, vault, tmp_path):
        """Extracting a 1 MiB file from an XFS disk holding 64 MiB of incompressible files fetches
        under 10% of the point's stored bytes: only the chunks with XFS metadata and the file."""
        need_xfsprogs()
        rng = random.Random(5)
        root = tmp_path / "big"
        for i in range(4):
            (root / "var").mkdir(parents=True, exist_ok=True)
            (root / "var" / f"blob{i}.bin").write_bytes(rng.randbytes(16 * MIB))
        (root / "home").mkdir()
        wanted = rng.randbytes(MIB)
        (root / "home" / "wanted.bin").write_bytes(wanted)
        image = tmp_path / "big.img"
        xfs_image(image, root, 320)
        vault.protect("vm", "big", {"disks": [f"vda={image}"]})
        stored = vault.backup("big").stats["stored_bytes"]
        counting = CountingStore(vault.repo.store)
        vault.repo.store = counting
        vault.restore("big", None, str(tmp_path / "out"), options={"files": ["vda:/home/wanted.bin"]})
        assert (tmp_path / "out" / "vda" / "home" / "wanted.bin").read_bytes() == wanted
        print(f"xfs: fetched {counting.bytes} bytes in {counting.reads} reads of {stored} stored "
              f"({100 * counting.bytes / stored:.2f}%)")
        assert counting.bytes < 0.10 * stored
