"""A VM disk image replicated to a geo secondary restores from it, with the primary's storage gone."""

from __future__ import annotations

import os
import shutil

from strongroom.policy.redundancy import Redundancy
from strongroom.vault import Vault
from vmkit import MIB, sha256_file, write_at


def test_a_disk_image_restores_from_the_secondary_with_the_primary_gone(tmp_path, monkeypatch):
    """Backed up, replicated, primary folder removed: the image restored from the secondary equals the source."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")  # the explicit replicate below copies everything
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(64 * MIB)
    write_at(image, 5 * MIB, os.urandom(3 * MIB))
    write_at(image, 50 * MIB + 11, b"end of the disk" * 1000)
    primary, secondary = str(tmp_path / "primary"), str(tmp_path / "secondary")
    vault = Vault.create(primary, name="vm", redundancy=Redundancy("geo", secondary))
    vault.protect("vm", "web", {"disks": [f"disk0={image}"]})
    point = vault.backup("web")
    assert vault.replicate().complete
    shutil.rmtree(primary)
    copy = Vault.open(secondary)
    assert copy.is_secondary and [p.point_id for p in copy.points("web")] == [point.point_id]
    copy.restore("web", point.point_id, str(tmp_path / "out"))
    assert sha256_file(tmp_path / "out" / "disks" / "disk0.img") == sha256_file(image)
