"""``strongroom mount DIR ITEM[@POINT]`` on a vm point: each disk is a read-only raw file
(``DIR/disks/<name>``) that QEMU's tools and ``cmp`` read as the source disk.

Through a real FUSE mount in a child process; skipped, with the reason, where
``/dev/fuse``, mfusepy or fusermount3 is missing (under CI, a FUSE that is there must mount).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from fusekit import cannot_mount, require_fuse
from vaultkit import wait_until
from vmkit import run


@pytest.fixture
def mount(vault_url, tmp_path):
    """``mount(spec)``: ``strongroom mount DIR spec`` in a child process; returns DIR."""
    require_fuse()
    started: list[tuple[str, subprocess.Popen]] = []

    def start(spec: str):
        where = tmp_path / f"mnt{len(started)}"
        where.mkdir()
        exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
        proc = subprocess.Popen([exe, "--vault", vault_url, "mount", str(where), spec],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append((str(where), proc))
        wait_until(lambda: os.path.ismount(where) or proc.poll() is not None, "the point is mounted", limit=30)
        if proc.poll() is not None:
            cannot_mount(proc.communicate()[1])
        return where

    yield start
    for where, proc in started:
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-u", where], capture_output=True)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class TestDiskFiles:
    def test_disks_are_raw_files_identical_to_the_sources(self, vault, mount, gpt_image, tmp_path):
        """A raw and a qcow2 disk read back through the mount byte for byte; QEMU sees the partition table."""
        data = tmp_path / "data.qcow2"
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", gpt_image, data)
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 20M 1M", data)
        vault.protect("vm", "web", {"disks": [str(gpt_image), str(data)]})
        point = vault.backup("web")
        where = mount(f"web@{point.short_id}")
        disks = where / "disks"
        assert sorted(os.listdir(disks)) == ["data", "system"]
        assert os.path.getsize(disks / "system") == os.path.getsize(gpt_image)
        assert subprocess.run(["cmp", gpt_image, disks / "system"]).returncode == 0
        same = subprocess.run(["qemu-img", "compare", "-f", "qcow2", data, "-F", "raw", disks / "data"],
                              capture_output=True, text=True)
        assert same.returncode == 0, same.stdout + same.stderr
        table = json.loads(run("sfdisk", "-J", disks / "system").stdout)["partitiontable"]
        assert table["label"] == "gpt" and len(table["partitions"]) == 2
        with pytest.raises(OSError) as caught:
            open(disks / "system", "r+b")
        assert caught.value.errno in (errno.EROFS, errno.EACCES)

    def test_a_changed_source_no_longer_compares_equal(self, vault, mount, gpt_image):
        """The comparison is real: a byte changed in the source after the backup makes cmp fail."""
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        with open(gpt_image, "r+b") as fh:
            fh.seek(3 * 1024 * 1024 + 5)
            fh.write(b"\xff")
        where = mount("sys")
        disk = where / "latest" / "disks" / "system"
        done = subprocess.run(["cmp", gpt_image, disk], capture_output=True, text=True)
        assert done.returncode == 1 and "differ" in done.stdout


class TestFilesInside:
    def test_files_of_each_partition_read_as_the_originals(self, vault, mount, gpt_image, tree):
        """files/<disk>/<pN>/... shows the ext4 and FAT partitions' files, equal to the tree they were made from."""
        root, files = tree
        vault.protect("vm", "sys", {"disks": [str(gpt_image)]})
        vault.backup("sys")
        where = mount("sys") / "latest"
        assert sorted(os.listdir(where)) == ["disks", "files", "vm.json"]
        assert os.listdir(where / "files") == ["system"]
        assert sorted(os.listdir(where / "files" / "system")) == ["p1", "p2"]
        for part in ("p1", "p2"):
            inside = where / "files" / "system" / part
            for rel, data in files.items():
                assert (inside / rel).read_bytes() == data, f"{part}/{rel}"
            done = subprocess.run(["cmp", root / "home/alice/docs/report.bin", inside / "home/alice/docs/report.bin"])
            assert done.returncode == 0
        notes = os.stat(where / "files" / "system" / "p1" / "home/alice/notes.txt")
        assert notes.st_mode & 0o777 == 0o600 and notes.st_mtime_ns == 1_600_000_000_000_000_000
        with open(where / "files" / "system" / "p1" / "home/alice/docs/report.bin", "rb") as fh:
            fh.seek(250_000)  # a read in the middle, then back to the start
            assert fh.read(1000) == files["home/alice/docs/report.bin"][250_000:251_000]
            fh.seek(0)
            assert fh.read(10) == files["home/alice/docs/report.bin"][:10]
        with pytest.raises(FileNotFoundError):
            os.stat(where / "files" / "system" / "p3")


class TestLuksInside:
    def test_a_luks_disk_shows_its_files_only_with_the_key(self, vault, mount, tree, tmp_path, monkeypatch):
        """A whole-disk LUKS2 volume holding ext4: with STRONGROOM_LUKS_PASSPHRASE set in the mount's
        environment its files read as the originals; without a key they are not shown."""
        from lukskit import luks_volume

        root, files = tree
        inner = tmp_path / "inner.ext4"
        run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", root, inner, "24M")
        image = tmp_path / "crypt.img"
        luks_volume(image, inner.read_bytes(), "luks2")
        vault.protect("vm", "safe", {"disks": [f"crypt={image}"]})
        vault.backup("safe")

        monkeypatch.delenv("STRONGROOM_LUKS_PASSPHRASE", raising=False)
        locked = mount("safe") / "latest" / "files" / "crypt"
        assert not os.path.exists(locked / "home") and os.path.exists(locked.parent.parent / "disks" / "crypt")

        monkeypatch.setenv("STRONGROOM_LUKS_PASSPHRASE", "pw")
        unlocked = mount("safe") / "latest" / "files" / "crypt"
        for rel, data in files.items():
            assert (unlocked / rel).read_bytes() == data, rel
        notes = os.stat(unlocked / "home/alice/notes.txt")
        assert notes.st_mode & 0o777 == 0o600 and notes.st_mtime_ns == 1_600_000_000_000_000_000
