"""Two backups of one item at once store the same data twice: verify reads every copy, and
rebuild-index and repair leave an index of intact copies (the issue's case 1)."""

from __future__ import annotations

import json

import pytest
from repairkit import (
    assert_every_point_restores, chosen, chunks_of, copies, damage, make_source, point_path,
    two_backups_at_once,
)

from strongroom.repository.pack import pack_name
from strongroom.testing import Cli
from strongroom.vault import Vault

QUARANTINE = "quarantine/"


@pytest.fixture
def doubled(tmp_path, vault_url):
    """A vault whose item was backed up twice at once: every blob is stored in two packs."""
    source = make_source(tmp_path / "src")
    vault = Vault.create(vault_url, name="doubled")
    vault.protect("files", "data", {"paths": [str(source)]})
    points = two_backups_at_once(vault_url, "data")
    stored = copies(vault)
    assert len(vault.repo.pack_ids_on_storage()) >= 2
    assert all(len(found) == 2 for found in stored.values()), "both backups must have stored every blob"
    return vault, source, points


def _other(vault, blob: bytes):
    """(the copy the index names, the other copy) of ``blob``."""
    used = chosen(vault, blob)
    other = next(e for e in copies(vault)[blob] if e.pack_id != used.pack_id)
    return used, other


class TestVerifyReadsEveryCopy:
    def test_verify_reads_every_pack_and_notes_the_duplicates(self, doubled):
        """--read-data reads all packs on storage, packs of extra copies included; they are notes."""
        vault, _, _ = doubled
        report = vault.reopen().verify(read_data=True)
        assert report.ok, report.problems
        assert report.packs_read == report.packs == len(vault.repo.pack_ids_on_storage())
        assert report.duplicate_packs >= 1
        assert any("extra copies" in note for note in report.notes)

    def test_damage_to_the_copy_the_index_does_not_use_then_to_the_one_it_uses(self, doubled, vault_url):
        """Each damaged copy is a problem naming its pack and the intact copy, whichever the index uses."""
        vault, source, points = doubled
        cli = Cli(vault_url)
        a = chunks_of(vault, points[0], point_path(source) + "/a.bin")[0]
        b = chunks_of(vault, points[0], point_path(source) + "/b.bin")[0]
        used_a, spare_a = _other(vault, a)
        damage(vault.store, spare_a)
        res = cli("vault", "verify", "--read-data", expect=51)
        assert pack_name(spare_a.pack_id) in res.stderr
        assert f"an intact copy is in {pack_name(used_a.pack_id)}" in res.stderr
        assert "1 problem(s)" in res.stdout

        used_b, spare_b = _other(vault, b)
        damage(vault.store, used_b)
        problems = json.loads(cli("vault", "verify", "--read-data", "--json", expect=51).stdout)["problems"]
        assert len(problems) == 2
        assert any(pack_name(spare_a.pack_id) in p for p in problems)
        used = [p for p in problems if p.startswith(pack_name(used_b.pack_id))]
        assert used and f"an intact copy is in {pack_name(spare_b.pack_id)}" in used[0]
        assert "the index uses the damaged copy" in used[0]


    def test_a_damaged_pack_that_no_index_names_is_read_and_reported(self, doubled):
        """A pack left unindexed (its index file gone) is still read: its damage is a problem."""
        vault, source, points = doubled
        a = chunks_of(vault, points[0], point_path(source) + "/a.bin")[0]
        _, spare = _other(vault, a)
        for name, entries in vault.repo.read_index_files(sorted(vault.store.list("index/"))):
            if any(e.pack_id == spare.pack_id for e in entries):
                vault.store.delete(name)
        damage(vault.store, spare)
        report = vault.reopen().verify(read_data=True)
        assert report.unreferenced_packs == 1
        assert any(n.startswith(pack_name(spare.pack_id) + ": in no index") for n in report.notes)
        assert [p for p in report.problems if p.startswith(pack_name(spare.pack_id))], report.problems


class TestRebuildAndRepairChooseIntactCopies:
    @pytest.mark.parametrize("command", [("vault", "rebuild-index"), ("vault", "repair", "--apply")])
    def test_every_point_restores_when_each_blob_has_an_intact_copy(self, doubled, vault_url, tmp_path, command):
        """Copy A of one blob and copy B of another are damaged: after the command every point restores."""
        vault, source, points = doubled
        cli = Cli(vault_url)
        a = chunks_of(vault, points[0], point_path(source) + "/a.bin")[0]
        b = chunks_of(vault, points[0], point_path(source) + "/b.bin")[0]
        _, spare_a = _other(vault, a)
        used_b, _ = _other(vault, b)
        damage(vault.store, spare_a)
        damage(vault.store, used_b)
        damaged_packs = {pack_name(spare_a.pack_id), pack_name(used_b.pack_id)}

        cli(*command)
        assert_every_point_restores(vault, "data", source, tmp_path)
        after = cli("vault", "verify", "--read-data", "--json")
        assert '"ok": true' in after.stdout
        quarantined = {n[len(QUARANTINE):] for n in vault.store.list(QUARANTINE)}
        assert damaged_packs <= quarantined, "damaged packs are moved aside, never deleted"
        assert not damaged_packs & {pack_name(p) for p in vault.repo.pack_ids_on_storage()}

    def test_the_index_moves_to_the_intact_copy_the_index_did_not_use(self, doubled, tmp_path):
        """Only the used copy is damaged: restore fails before the repair and succeeds after it."""
        vault, source, points = doubled
        a = chunks_of(vault, points[0], point_path(source) + "/a.bin")[0]
        used_a, spare_a = _other(vault, a)
        damage(vault.store, used_a)
        with pytest.raises(Exception) as failed:
            vault.reopen().restore("data", None, str(tmp_path / "before"))
        assert getattr(failed.value, "exit_code", 0) == 50
        report = vault.reopen().repair(apply=True)
        assert report.ok and report.blobs_lost == 0
        assert chosen(vault, a).pack_id != used_a.pack_id
        assert_every_point_restores(vault, "data", source, tmp_path)
