"""Incremental backups of images at rest, and the truthful "read" figure.

- An image (raw or qcow2) whose size, times, inode and device are those recorded by the
  parent point is not opened at all: the backup reads 0 bytes of it (the read figure
  counts only the small manifest), and the point restores byte-identical.
- An image that changed is read again; "read" counts the bytes read from the image,
  not the holes of a sparse file (a 200 MiB image with a few MiB of data reads a few MiB).
"""

from __future__ import annotations

import json
import os

import pytest

import strongroom_vm.offline as offline
from vmkit import MIB, run, sha256_file, write_at

SMALL = 64 * 1024  # more than vm.json and the config: what a backup that reads no disk reads


@pytest.fixture
def images(tmp_path, gpt_image):
    """The GPT system image (raw, sparse) and a 64 MiB qcow2 data disk with 3 MiB of data."""
    raw = tmp_path / "data-content.img"
    with open(raw, "wb") as fh:
        fh.truncate(64 * MIB)
    write_at(raw, 5 * MIB, os.urandom(3 * MIB))
    data = tmp_path / "data.qcow2"
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, data)
    return gpt_image, data


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


def first_chunk(vault) -> int:
    """The chunk size of the disks of the item's latest point."""
    view = vault.point_view("web")
    return view.lookup("disks/system").chunk_size
