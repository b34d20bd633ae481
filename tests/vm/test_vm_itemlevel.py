"""Item-level restore: browse and extract files from inside the disks of a point."""

from __future__ import annotations

import os
import random
import stat

import pytest

from strongroom.errors import PathNotInPoint, UsageError
from strongroom_vm.errors import DiskNotInPoint, UnknownFilesystem
from vmkit import MIB, CountingStore, backed_up_ntfs_disk, ext4_at, fat_at, partition, write_at


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    """A sparse 2 GiB GPT disk: a 1 GiB ext4 partition holding 320 MiB of incompressible
    files, a 1 MiB target file and a folder tree; the rest of the disk is holes."""
    root = tmp_path_factory.mktemp("big")
    tree = root / "tree"
    rng = random.Random(7)
    for i in range(20):
        path = tree / "var" / "data" / f"blob{i:02}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(16 * MIB))
    target = tree / "home" / "alice" / "wanted.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(rng.randbytes(MIB))
    for i in range(5):
        (tree / "home" / "alice" / "project" / f"sub{i % 2}").mkdir(parents=True, exist_ok=True)
        (tree / "home" / "alice" / "project" / f"sub{i % 2}" / f"f{i}.txt").write_bytes(b"line\n" * (i + 1) * 100)
    os.symlink("../wanted.bin", tree / "home" / "alice" / "project" / "link")
    image = root / "disk2g.img"
    parts = partition(image, 2048, "label: gpt\nstart=2048, size=1GiB, type=L, name=root\n")
    ext4_at(image, tree, parts[0]["start"], 1024)
    return image, tree


def _counted(vault) -> CountingStore:
    counting = CountingStore(vault.repo.store)
    vault.repo.store = counting
    return counting


class TestBrowse:
    def test_top_lists_disks_and_config(self, vault, gpt_image, tmp_path):
        """The top of a point lists the disks and the config folder."""
        config = tmp_path / "vm.conf"
        config.write_text("-m 1024\n")
        vault.protect("vm", "web", {"disks": [str(gpt_image)], "config": str(config)})
        vault.backup("web")
        rows = {r.name: r for r in vault.browse("web", None, "")}
        assert rows["system"].type == "disk" and rows["system"].path == "system:/"
        assert "config" in rows and "vm.json" in rows
        assert [r.name for r in vault.browse("web", None, "config")] == ["vm.conf"]

    def test_partitions_and_files(self, vault, gpt_image):
        """A disk lists its GPT partitions with their file systems; a partition lists its files."""
        vault.protect("vm", "web", {"disks": [str(gpt_image)]})
        vault.backup("web")
        parts = vault.browse("web", None, "system:/")
        assert [(p.name, p.type) for p in parts] == [("p1", "partition"), ("p2", "partition")]
        assert "ext4" in parts[0].detail and "fat32" in parts[1].detail
        ext = {r.name: r for r in vault.browse("web", None, "system:/p1/home/alice")}
        assert set(ext) == {"docs", "notes.txt"}
        assert ext["notes.txt"].size == 1400 and ext["notes.txt"].mode == 0o600
        assert ext["docs"].path == "system:/p1/home/alice/docs"
        fat = {r.name for r in vault.browse("web", None, "system:/p2/home/alice")}
        assert fat == {"docs", "notes.txt"}
        # with one disk, DISK: may be left out
        assert {r.name for r in vault.browse("web", None, "/p1/etc")} == {"hosts", "motd"}

    def test_bare_filesystem_and_mbr(self, vault, tree, tmp_path):
        """A disk without partition table is one file system; MBR partitions are numbered as Linux does."""
        bare = tmp_path / "bare.img"
        with open(bare, "wb") as fh:
            fh.truncate(64 * MIB)
        ext4_at(bare, tree[0], 0, 64)
        mbr = tmp_path / "mbr.img"
        parts = partition(mbr, 160, f"label: dos\n{mbr}1 : start=2048, size=40MiB, type=83\n"
                          f"{mbr}2 : size=100MiB, type=5\n{mbr}5 : size=40MiB, type=c\n")
        logical = [p for p in parts if p["type"] == "c"][0]
        ext4_at(mbr, tree[0], parts[0]["start"], 40)
        fat_at(mbr, tree[0], logical["start"], 40)
        vault.protect("vm", "two", {"disks": [str(bare), str(mbr)]})
        vault.backup("two")
        assert {r.name for r in vault.browse("two", None, "bare:/")} == {"etc", "home", "lost+found"}
        names = [r.name for r in vault.browse("two", None, "mbr:/")]
        assert names == ["p1", "p5"]
        assert {r.name for r in vault.browse("two", None, "mbr:/p5/etc")} == {"hosts", "motd"}

    def test_ntfs(self, vault, tmp_path):
        """Files on an NTFS partition are listed and extracted."""
        payload = backed_up_ntfs_disk(vault, tmp_path, 200_000)
        assert "ntfs" in vault.browse("win", None, "win:/")[0].detail
        names = {r.name for r in vault.browse("win", None, "win:/p1")}
        assert names == {"report.txt"}, names  # NTFS metadata files ($MFT...) are hidden
        vault.restore("win", None, str(tmp_path / "out"), options={"files": ["win:/p1/report.txt"]})
        assert (tmp_path / "out" / "win" / "p1" / "report.txt").read_bytes() == payload.read_bytes()


class TestExtract:
    def test_one_file_reads_a_small_part_of_the_point(self, vault, big_image, tmp_path):
        """Extracting a 1 MiB file from a 2 GiB disk point fetches under 5% of the point's stored bytes."""
        image, tree = big_image
        vault.protect("vm", "big", {"disks": [str(image)]})
        point = vault.backup("big")
        stored = point.stats["stored_bytes"]
        assert stored > 300 * MIB
        counting = _counted(vault)
        vault.restore("big", None, str(tmp_path / "out"), options={"files": ["disk2g:/p1/home/alice/wanted.bin"]})
        got = (tmp_path / "out" / "disk2g" / "p1" / "home" / "alice" / "wanted.bin").read_bytes()
        assert got == (tree / "home" / "alice" / "wanted.bin").read_bytes()
        print(f"fetched {counting.bytes} bytes in {counting.reads} reads of {stored} stored "
              f"({100 * counting.bytes / stored:.2f}%)")
        assert counting.bytes < 0.05 * stored

    def test_folder_extracts_with_its_tree_and_metadata(self, vault, big_image, tmp_path):
        """A folder extracts with its sub-folders, files, symlinks, modes and times."""
        image, tree = big_image
        vault.protect("vm", "big", {"disks": [str(image)]})
        vault.backup("big")
        vault.restore("big", None, str(tmp_path / "out"), options={"files": ["disk2g:/p1/home/alice/project"]})
        out = tmp_path / "out" / "disk2g" / "p1" / "home" / "alice" / "project"
        src = tree / "home" / "alice" / "project"
        got = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        assert got == sorted(str(p.relative_to(src)) for p in src.rglob("*"))
        for path in src.rglob("*.txt"):
            twin = out / path.relative_to(src)
            assert twin.read_bytes() == path.read_bytes()
            assert stat.S_IMODE(twin.stat().st_mode) == stat.S_IMODE(path.stat().st_mode)
            assert int(twin.stat().st_mtime) == int(path.stat().st_mtime)
        assert os.readlink(out / "link") == "../wanted.bin"

    def test_files_from_fat_and_ext4(self, vault, gpt_image, tree, tmp_path):
        """The same files come out of the ext4 and the FAT partition, equal to the source."""
        vault.protect("vm", "web", {"disks": [str(gpt_image)]})
        vault.backup("web")
        vault.restore("web", None, str(tmp_path / "out"),
                      options={"files": ["system:/p1/home/alice/docs", "/p2/home/alice/docs/report.bin"]})
        expected = tree[1]["home/alice/docs/report.bin"]
        assert (tmp_path / "out/system/p1/home/alice/docs/report.bin").read_bytes() == expected
        assert (tmp_path / "out/system/p1/home/alice/docs/deep/er/file.txt").read_bytes() == b"deep\n"
        assert (tmp_path / "out/system/p2/home/alice/docs/report.bin").read_bytes() == expected


class TestBadLocations:
    @pytest.fixture
    def point(self, vault, gpt_image, tmp_path):
        other = tmp_path / "blank.img"
        with open(other, "wb") as fh:
            fh.truncate(8 * MIB)
        write_at(other, 0, b"not a file system" * 100)
        vault.protect("vm", "web", {"disks": [str(gpt_image), str(other)]})
        vault.backup("web")
        return vault

    def test_no_such_disk(self, point, tmp_path):
        """A disk the point does not have names the disks it has."""
        with pytest.raises(DiskNotInPoint, match="'vdz' not found .*blank, system"):
            point.browse("web", None, "vdz:/")
        with pytest.raises(DiskNotInPoint):
            point.restore("web", None, str(tmp_path / "o"), options={"disks": ["vdz"]})

    def test_no_such_path(self, point, tmp_path):
        """A path that is not in the file system is PathNotInPoint."""
        with pytest.raises(PathNotInPoint):
            point.browse("web", None, "system:/p1/nope")
        with pytest.raises(PathNotInPoint):
            point.restore("web", None, str(tmp_path / "o"), options={"files": ["system:/p9/etc"]})

    def test_unknown_filesystem(self, point):
        """A disk holding no file system strongroom reads is a clear error."""
        with pytest.raises(UnknownFilesystem, match="disk blank: no file system"):
            point.browse("web", None, "blank:/")

    def test_disk_must_be_named_when_several(self, point):
        """Without DISK: on a point with several disks the error says how to name one."""
        with pytest.raises(UsageError, match="2 disks"):
            point.browse("web", None, "/p1")

    def test_cli_exit_codes(self, cli, vault_url, gpt_image, tmp_path):
        """The CLI prints one line and the error's exit code."""
        cli("vault", "create", vault_url)
        cli("protect", "vm", "web", "--disk", gpt_image)
        cli("backup", "web")
        out = cli("browse", "web", "vdz:/", expect=94)
        assert out.stderr.count("\n") == 1 and "vdz" in out.stderr
        cli("restore", "web", "--target", tmp_path / "o", "--files", "system:/p1/missing", expect=45)
        cli("restore", "web", "--target", tmp_path / "o", "--files", "/p1/etc", "--disk", "system", expect=3)
