"""Incremental backups of images at rest, and the truthful "read" figure.

- An image (raw or qcow2) whose size, times, inode and device are those recorded by the
  parent point is not opened at all: the backup reads 0 bytes of it (the read figure
  counts only the small manifest), and the point restores byte-identical.
- An image that changed is read again; "read" counts the bytes read from the image,
  not the holes of a sparse file (a 200 MiB image with a few MiB of data reads a few MiB).
- A qcow2 image gets a persistent dirty bitmap with each backup: the next backup reads
  only the chunks it marks; a backup that fails before its commit resets nothing, so the
  next still reads the change; a missing bitmap means a full read and one warning.
"""

from __future__ import annotations

import json
import os

import pytest
from strongroom import StorageError

import strongroom_vm.offline as offline
from vaultkit import fail_pack_uploads
from vmkit import MIB, run, sha256_file, sparse_image, to_qcow2, write_at

SMALL = 64 * 1024  # more than vm.json and the config: what a backup that reads no disk reads


@pytest.fixture
def images(tmp_path, gpt_image):
    """The GPT system image (raw, sparse) and a 64 MiB qcow2 data disk with 3 MiB of data."""
    raw = sparse_image(tmp_path / "data-content.img", 64 * MIB, (5 * MIB, os.urandom(3 * MIB)))
    return gpt_image, to_qcow2(raw, tmp_path / "data.qcow2")


def _not_opened(*args, **kwargs):
    raise AssertionError("an unchanged image was opened")


class TestUnchangedImages:
    def test_unchanged_images_are_not_read(self, vault, images, tmp_path, monkeypatch):
        """Second backup of unchanged raw and qcow2 images: nothing opened, 0 bytes of them read,
        every chunk taken from the parent, and the point restores both disks byte-identical."""
        system, data = images
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        first = vault.backup("web")
        assert first.stats["bytes_read"] > 3 * MIB
        monkeypatch.setattr(offline, "open_image", _not_opened)
        second = vault.backup("web")
        monkeypatch.undo()
        assert second.warnings == ()
        assert second.stats["bytes_read"] < SMALL  # the manifest only
        assert second.stats["files_unchanged"] == 2
        chunks = (200 * MIB + 64 * MIB) // first_chunk(vault)
        assert second.stats["chunks_reused"] == chunks
        vault.restore("web", second.point_id, str(tmp_path / "out"))
        assert sha256_file(tmp_path / "out" / "disks" / "system.img") == sha256_file(system)
        assert sha256_file(tmp_path / "out" / "disks" / "data.img") == sha256_file(data, fmt="qcow2")
        manifest = json.loads((tmp_path / "out" / "vm.json").read_text())
        assert all(d["unchanged"] for d in manifest["disks"])

    def test_a_changed_time_or_content_is_read_again(self, vault, images, tmp_path):
        """A new modification time alone makes the image read again; so does a write (whose
        content the point then has); the untouched disk is still not read."""
        system, data = images
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        vault.backup("web")
        st = os.stat(system)
        os.utime(system, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        touched = vault.backup("web")
        assert touched.stats["files_unchanged"] == 1 and touched.stats["bytes_read"] > SMALL
        write_at(system, 150 * MIB + 7, b"changed at rest" * 100)
        changed = vault.backup("web")
        assert changed.stats["files_unchanged"] == 1
        vault.restore("web", changed.point_id, str(tmp_path / "out"))
        assert sha256_file(tmp_path / "out" / "disks" / "system.img") == sha256_file(system)
        assert sha256_file(tmp_path / "out" / "disks" / "data.img") == sha256_file(data, fmt="qcow2")

    def test_a_disk_that_changed_during_its_read_is_read_next_time(self, vault, images):
        """A parent whose read saw the disk change is no basis for skipping it."""
        system, data = images
        vault.protect("vm", "web", {"disks": [str(system)]})
        parent = offline.identity(str(system))
        record = {"name": "system", "size": 200 * MIB, "format": "raw", "source": str(system), "identity": parent}
        assert offline.unchanged(dict(record), dict(record))
        assert not offline.unchanged(dict(record), {**record, "changed_during_read": ["modification time"]})
        assert not offline.unchanged(dict(record), {**record, "in_use": True})
        assert not offline.unchanged({**record, "identity": None}, dict(record))


class TestTruthfulRead:
    def test_read_counts_bytes_read_not_holes(self, vault, images):
        """A sparse 200 MiB raw image and a 64 MiB qcow2 with 3 MiB of data: "read" is about the
        data the images hold, not the 264 MiB of their guest size (which the old figure said)."""
        system, data = images
        vault.protect("vm", "web", {"disks": [str(system), str(data)]})
        point = vault.backup("web")
        allocated = os.stat(system).st_blocks * 512
        assert 3 * MIB < point.stats["bytes_read"] <= allocated + 3 * MIB + 4 * MIB
        assert point.stats["bytes_read"] < 100 * MIB


def bitmaps_of(image) -> list[str]:
    info = json.loads(run("qemu-img", "info", "--output=json", image).stdout)
    return sorted(b["name"] for b in info["format-specific"]["data"].get("bitmaps", []))


def bitmaps_of_shared(image) -> list[str]:
    """The image's bitmaps while a qemu-nbd holds it (``qemu-img info -U``)."""
    info = json.loads(run("qemu-img", "info", "-U", "--output=json", image).stdout)
    return sorted(b["name"] for b in info["format-specific"]["data"].get("bitmaps", []))


def guest_write(image, offset: int, length: int, pattern: int) -> None:
    """Write into a qcow2 image through QEMU's block layer, as a VM would (bitmaps record it)."""
    run("qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} {length}", image)


class TestQcow2Bitmaps:
    def test_only_dirty_chunks_are_read(self, vault, images, tmp_path):
        """A 64 KiB write after a backup: the next reads one cluster, not the disk, and restores equal."""
        _, data = images
        item = vault.protect("vm", "db", {"disks": [str(data)]})
        first = vault.backup("db")
        [checkpoint] = bitmaps_of(data)
        assert checkpoint.startswith(f"sr-{item.item_id}-")
        guest_write(data, 40 * MIB, 64 * 1024, 0x33)
        second = vault.backup("db")
        assert second.warnings == ()
        assert first.stats["bytes_read"] > 3 * MIB and second.stats["bytes_read"] < 256 * 1024
        assert second.stats["chunks_reused"] == 64 * MIB // first_chunk(vault, "db") - 1
        vault.restore("db", second.point_id, str(tmp_path / "out"))
        assert sha256_file(tmp_path / "out" / "disks" / "data.img") == sha256_file(data, fmt="qcow2")
        manifest = json.loads((tmp_path / "out" / "vm.json").read_text())
        [record] = manifest["disks"]
        assert record["changed_chunks"] == 1 and record["bitmap"] != checkpoint
        assert bitmaps_of(data) == sorted([checkpoint, record["bitmap"]])  # the parent's goes later
        third = vault.backup("db")  # unchanged: not read, the image not touched, its checkpoint still counts
        assert third.stats["bytes_read"] < SMALL and bitmaps_of(data) == sorted([checkpoint, record["bitmap"]])
        guest_write(data, 50 * MIB, 4096, 0x34)
        fourth = vault.backup("db")
        assert fourth.stats["bytes_read"] < 256 * 1024
        assert checkpoint not in bitmaps_of(data) and record["bitmap"] in bitmaps_of(data)

    def test_a_backup_killed_before_its_commit_resets_nothing(self, vault, images, tmp_path, monkeypatch):
        """The backup after a failed one still reads the change made before the failure."""
        _, data = images
        vault.protect("vm", "db", {"disks": [str(data)]})
        vault.backup("db")
        guest_write(data, 20 * MIB, 4096, 0x44)
        fail_pack_uploads(monkeypatch, vault)
        with pytest.raises(StorageError):
            vault.backup("db")
        monkeypatch.undo()
        assert len(bitmaps_of(data)) == 2  # the parent's and the failed attempt's
        guest_write(data, 60 * MIB, 4096, 0x45)
        point = vault.backup("db")
        assert point.warnings == () and point.stats["bytes_read"] < 512 * 1024
        vault.restore("db", point.point_id, str(tmp_path / "out"))
        assert sha256_file(tmp_path / "out" / "disks" / "data.img") == sha256_file(data, fmt="qcow2")

    def test_a_backup_sigkilled_before_its_commit_loses_no_change(self, vault, vault_url, images, tmp_path):
        """``strongroom backup`` killed (SIGKILL) once it has added its checkpoint and started qemu-nbd,
        long before its commit: no point, and the next backup still reads the change made before."""
        import signal
        import subprocess
        import sys

        from strongroom import list_processes
        from vaultkit import wait_until

        _, data = images
        vault.protect("vm", "db", {"disks": [str(data)]})
        vault.backup("db")
        guest_write(data, 20 * MIB, 4096, 0x47)
        strongroom = os.path.join(os.path.dirname(sys.executable), "strongroom")
        proc = subprocess.Popen([strongroom, "--vault", vault_url, "backup", "db"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            server = wait_until(lambda: [p for p in list_processes("qemu-nbd") if p.ppid == proc.pid],
                                "the backup started qemu-nbd")[0]
            os.kill(server.pid, signal.SIGSTOP)  # the backup waits for it: the kill lands before any commit
            assert len(bitmaps_of_shared(data)) == 2  # its checkpoint is added
        finally:
            proc.kill()
            proc.wait()
        wait_until(lambda: not [p for p in list_processes("qemu-nbd") if p.ppid in (proc.pid, 1)
                                and str(data) in p.argv], "its qemu-nbd ended")
        assert len(vault.points("db")) == 1
        point = vault.backup("db")
        assert point.warnings == () and point.stats["bytes_read"] < 512 * 1024
        vault.restore("db", point.point_id, str(tmp_path / "out"))
        assert sha256_file(tmp_path / "out" / "disks" / "data.img") == sha256_file(data, fmt="qcow2")

    def test_a_missing_bitmap_means_a_full_read_and_one_warning(self, vault, images, tmp_path):
        """Someone removed the checkpoint: the disk is read whole, the backup says why in one warning."""
        _, data = images
        vault.protect("vm", "db", {"disks": [str(data)]})
        vault.backup("db")
        [checkpoint] = bitmaps_of(data)
        run("qemu-img", "bitmap", "--remove", data, checkpoint)
        guest_write(data, 30 * MIB, 4096, 0x46)
        point = vault.backup("db")
        [warning] = point.warnings
        assert "disk data" in warning and "read whole" in warning and "bitmap of the last point is missing" in warning
        assert point.stats["bytes_read"] > 3 * MIB
        vault.restore("db", point.point_id, str(tmp_path / "out"))
        assert sha256_file(tmp_path / "out" / "disks" / "data.img") == sha256_file(data, fmt="qcow2")
        assert len(bitmaps_of(data)) == 1  # a new checkpoint: the next backup is incremental again


def first_chunk(vault, item: str = "web") -> int:
    """The chunk size of the disks of the item's latest point."""
    view = vault.point_view(item)
    return next(e for e in view.listdir("disks")).chunk_size


class TestChunkSize:
    def test_new_items_take_the_default_and_chunk_size_is_kept(self, cli, vault_url, images, tmp_path):
        """--chunk-size sets an offline item's chunk size; without it new items get the default; a
        size that is not a power of two from 64K to 16M, or one for a live VM, is refused at protect time."""
        from strongroom_vm.layout import DEFAULT_CHUNK_SIZE

        system, data = images
        cli("vault", "create", vault_url)
        cli("protect", "vm", "small", "--disk", data, "--chunk-size", "256K")
        cli("protect", "vm", "plain", "--disk", system)
        out = cli("protect", "vm", "bad", "--disk", data, "--chunk-size", "3M", expect=47)
        assert "--chunk-size 3M" in out.stderr and out.stderr.count("\n") == 1
        out = cli("protect", "vm", "live", "--qmp", tmp_path / "qmp.sock", "--chunk-size", "1M", expect=47)
        assert "--chunk-size is for the disks of an offline VM" in out.stderr
        cli("backup", "small")
        cli("backup", "plain")
        cli("restore", "small", "--target", tmp_path / "out")
        assert sha256_file(tmp_path / "out" / "disks" / "data.img") == sha256_file(data, fmt="qcow2")
        from strongroom_vm.layout import item_chunk_size

        assert item_chunk_size({}) == 4 << 20  # items protected before the choice keep 4 MiB
        from strongroom_vm.workload import VmWorkload

        saved = {"mode": "offline", "disks": [{"name": "data", "path": str(data), "format": "qcow2", "kind": "file"}],
                 "config": None}
        assert "chunk_size" not in VmWorkload().validate_source(saved)  # validated again: still 4 MiB
        assert DEFAULT_CHUNK_SIZE in (64 << 10, 256 << 10, 1 << 20, 4 << 20)

    def test_the_chunk_size_is_that_of_the_disk_entries(self, vault, images):
        """The item's chunk size is the disk entries'; an unchanged disk reuses every chunk of it."""
        system, data = images
        vault.protect("vm", "small", {"disks": [str(data)], "chunk_size": "64K"})
        point = vault.backup("small")
        assert first_chunk(vault, "small") == 64 << 10
        assert point.stats["chunks_reused"] == 0
        second = vault.backup("small")  # unchanged: every 64 KiB chunk from the parent
        assert second.stats["chunks_reused"] == 64 * MIB // (64 << 10)


class TestFetchedFigures:
    def test_item_level_restore_reports_the_packs_it_fetched(self, vault, images, tmp_path):
        """Files out of a disk: packs_read counts the packs fetched (> 0), seconds
        is the time taken (> 0); the old figures were 0 and 0.0."""
        system, _ = images
        vault.protect("vm", "web", {"disks": [str(system)]})
        vault.backup("web")
        result = vault.restore("web", None, str(tmp_path / "out"), options={"files": ["/p1/home/alice/docs"]})
        assert result.stats.files == 2 and result.stats.packs_read >= 1 and result.stats.seconds > 0
        assert (tmp_path / "out" / "system" / "p1" / "home" / "alice" / "docs" / "report.bin").stat().st_size == 300_000
