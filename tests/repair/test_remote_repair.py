"""Repair on remote storage: the issue's case 1 on the S3 and SFTP location fixtures."""

from __future__ import annotations

import pytest
from repairkit import (
    assert_every_point_restores, chosen, chunks_of, copies, damage, make_source, point_path,
    two_backups_at_once,
)

from strongroom.repository.pack import pack_name
from strongroom.vault import Vault


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_repair_chooses_intact_copies_on_remote_storage(kind, request, tmp_path, strongroom_isolated_home):
    """Two backups at once, one copy of each of two blobs damaged: verify names both, repair
    moves both packs aside and every point restores byte for byte."""
    location = request.getfixturevalue(f"strongroom_{kind}_location")
    options = dict(location.storage_options)
    source = make_source(tmp_path / "src")
    vault = Vault.create(location.url, name="remote", storage_options=options)
    vault.protect("files", "data", {"paths": [str(source)]})
    points = two_backups_at_once(location.url, "data", options)
    a = chunks_of(vault, points[0], point_path(source) + "/a.bin")[0]
    b = chunks_of(vault, points[0], point_path(source) + "/b.bin")[0]
    spare_a = next(e for e in copies(vault)[a] if e.pack_id != chosen(vault, a).pack_id)
    used_b = chosen(vault, b)
    damage(vault.store, spare_a)
    damage(vault.store, used_b)

    report = Vault.open(location.url, storage_options=options).verify(read_data=True)
    assert {pack_name(spare_a.pack_id), pack_name(used_b.pack_id)} <= {p.split(" ")[0] for p in report.problems}
    repaired = Vault.open(location.url, storage_options=options).repair(apply=True)
    assert repaired.ok and {pack_name(spare_a.pack_id), pack_name(used_b.pack_id)} <= set(repaired.moved_aside)
    assert_every_point_restores(vault, "data", source, tmp_path)
    assert Vault.open(location.url, storage_options=options).verify(read_data=True).ok
