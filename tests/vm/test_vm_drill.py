"""`strongroom drill` of a vm point: the default, file-level drill over disk images (holes
included), and the report saying the vm workload has no drill of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from vmkit import MIB, sparse_image

from strongroom.errors import IntegrityError
from strongroom.repository.pack import pack_name


@pytest.fixture
def sparse_vm(vault, tmp_path):
    """A 64 MiB raw image with data in two places, protected as item 'big' and backed up."""
    image = sparse_image(tmp_path / "big.img", 64 * MIB, (5 * MIB, os.urandom(2 * MIB)),
                         (60 * MIB + 7, os.urandom(MIB)))
    vault.protect("vm", "big", {"disks": [f"disk0={image}"]})
    return vault.backup("big")


class TestVmDrill:
    def test_disk_images_are_compared_whole(self, vault, sparse_vm, tmp_path):
        """The disk image is restored and compared at its full size; the report says the check was file-level."""
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        report = vault.drill("big", scratch_root=str(scratch))
        assert report.ok and report.workload == "vm" and report.point == sparse_vm.point_id
        assert report.files >= 1 and report.bytes >= 64 * MIB
        assert "a file-level check only: the vm workload has no drill of its own" in report.method
        assert list(scratch.iterdir()) == []

    def test_a_damaged_disk_chunk_is_a_mismatch(self, vault, vault_url, sparse_vm, tmp_path):
        """Bytes flipped in a pack holding a chunk of the disk: the drill fails naming the disk."""
        fresh = vault.reopen()
        fresh.index.load()
        entry = fresh.point_view("big").lookup("disks/disk0")
        where = fresh.repo.index.lookup(next(c for c in entry.chunks if c))
        pack = Path(vault_url) / pack_name(where.pack_id)
        os.chmod(pack, 0o600)
        data = bytearray(pack.read_bytes())
        data[where.offset + where.length // 2] ^= 0x33
        pack.write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match="disks/disk0") as caught:
            vault.reopen().drill("big", scratch_root=str(tmp_path))
        assert [m.split(":", 1)[0] for m in caught.value.report.mismatches] == ["disks/disk0"]
