"""`vault repair`: a dry run by default, damage moved aside (never deleted), losses named
exactly, lost data written again by the next backup, a hook to heal from elsewhere."""

from __future__ import annotations

import json

import pytest
from repairkit import (
    assert_every_point_restores, chunks_of, copies, damage, make_source, objects, point_path,
)

from strongroom.errors import IntegrityError
from strongroom.repository.leases import Lease
from strongroom.repository.pack import pack_name
from strongroom.services.pointstatus import PointStatus, write_status
from strongroom.testing import Cli
from strongroom.vault import Vault

QUARANTINE = "quarantine/"


@pytest.fixture
def backed_up(tmp_path, vault_url):
    """A vault with one item backed up once (one copy of everything)."""
    source = make_source(tmp_path / "src")
    vault = Vault.create(vault_url, name="single")
    vault.protect("files", "data", {"paths": [str(source)]})
    point = vault.backup("data")
    return vault, source, point


def _flip_object(store, name: str) -> bytes:
    data = bytearray(store.get(name))
    data[len(data) // 2] ^= 0x01
    store.put(name, bytes(data))
    return bytes(data)


class TestLostData:
    def test_dry_run_names_the_lost_file_and_changes_nothing(self, backed_up, vault_url):
        """Without --apply the report names point and file, exits 53, and only a job record is written."""
        vault, source, point = backed_up
        lost = chunks_of(vault, point, point_path(source) + "/a.bin")[-1]  # its chunk count follows the vault's random gear seed
        damage(vault.store, copies(vault)[lost][0])
        before = {n: d for n, d in objects(vault.store).items() if not n.startswith("jobs/")}
        res = Cli(vault_url)("vault", "repair", expect=53)
        assert f"data@{point.short_id} {point_path(source)}/a.bin: lost 1 chunk(s)" in res.stderr
        assert "Would move aside: " + pack_name(copies(vault)[lost][0].pack_id) in res.stdout
        assert res.stderr.strip().splitlines()[-1].startswith("strongroom: error: 1 recovery point(s) lost data")
        after = {n: d for n, d in objects(vault.store).items() if not n.startswith("jobs/")}
        assert after == before

    def test_apply_quarantines_names_the_loss_and_the_next_backup_stores_it_again(self, backed_up, vault_url, tmp_path):
        """--apply keeps the pack under quarantine/, copies its intact blobs out, reports exactly
        the lost file; the next backup reads that file again and both points restore whole."""
        vault, source, point = backed_up
        lost = chunks_of(vault, point, point_path(source) + "/a.bin")[-1]  # its chunk count follows the vault's random gear seed
        entry = copies(vault)[lost][0]
        damage(vault.store, entry)
        damaged_bytes = vault.store.get(pack_name(entry.pack_id))
        res = Cli(vault_url)("vault", "repair", "--apply", "--json", expect=53)
        report = json.loads(res.stdout)
        assert [(f["point"], f["path"], f["kind"]) for f in report["lost_files"]] == [
            (point.point_id, point_path(source) + "/a.bin", "file")]
        assert report["lost_points"] == [] and report["blobs_lost"] == 1
        assert report["blobs_rescued"] > 0  # the pack's other blobs were copied out first
        assert vault.store.get(QUARANTINE + pack_name(entry.pack_id)) == damaged_bytes
        assert entry.pack_id not in vault.repo.pack_ids_on_storage()

        fresh = vault.reopen()
        second = fresh.backup("data")
        assert second.stats["files_read"] >= 1 and second.stats["bytes_read"] >= (source / "a.bin").stat().st_size
        assert_every_point_restores(vault, "data", source, tmp_path)  # the old point is whole again too
        assert vault.reopen().verify(read_data=True).ok
        again = vault.reopen().repair(apply=True)
        assert not again.changes and again.ok, "a second repair finds nothing to do"

    def test_a_lost_folder_listing_is_named_as_a_folder(self, backed_up):
        """A damaged tree node loses its folder: the report names the folder, not a blob."""
        vault, source, point = backed_up
        tree = vault.reopen().tree(point)
        folder = tree.lookup(point_path(source) + "/docs").subtree
        damage(vault.store, copies(vault)[folder][0])
        report = vault.reopen().repair()
        assert [(f.get("path"), f.get("kind")) for f in report.lost_files] == [
            (point_path(source) + "/docs", "folder")]


class TestHealHook:
    def test_a_blob_healed_from_elsewhere_is_written_and_nothing_is_lost(self, backed_up, tmp_path):
        """``heal`` is asked for a blob no intact copy holds; a correct answer is stored again."""
        vault, source, point = backed_up
        blob = chunks_of(vault, point, point_path(source) + "/b.bin")[0]
        vault.index.load()
        plaintext = bytes(vault.repo.get_blob(blob))
        damage(vault.store, copies(vault)[blob][0])
        asked = []

        def heal(blob_id: bytes):
            asked.append(blob_id)
            return plaintext if blob_id == blob else None

        report = vault.reopen().repair(apply=True, heal=heal)
        assert asked == [blob]
        assert report.ok and report.blobs_healed == 1 and report.blobs_lost == 0
        assert_every_point_restores(vault, "data", source, tmp_path)

    def test_a_wrong_answer_from_heal_is_ignored(self, backed_up):
        """Plaintext that does not hash to the blob id is not stored; the file stays lost."""
        vault, source, point = backed_up
        blob = chunks_of(vault, point, point_path(source) + "/b.bin")[0]
        damage(vault.store, copies(vault)[blob][0])
        report = vault.reopen().repair(apply=True, heal=lambda blob_id: b"not the data")
        assert report.blobs_healed == 0 and report.blobs_lost == 1
        assert [f["path"] for f in report.lost_files] == [point_path(source) + "/b.bin"]


class TestDamagedDocuments:
    def test_header_status_settings_and_index_are_moved_aside(self, backed_up, tmp_path):
        """Each damaged document goes to quarantine/ byte for byte; the point with the damaged
        header is reported lost; every other point restores; verify is clean afterwards."""
        vault, source, first = backed_up
        second = vault.backup("data")
        write_status(vault.repo, PointStatus(second.point_id, second.item_id, reason="test"), vault.clock())
        vault.update_settings(name="renamed")
        names = {
            "header": first.object_name,
            "status": next(iter(vault.store.list(f"point-status/{second.item_id}/{second.point_id}/"))),
            "settings": sorted(vault.store.list("settings/"))[-1],
            "index": sorted(vault.store.list("index/"))[0],
        }
        damaged = {kind: _flip_object(vault.store, name) for kind, name in names.items()}
        report = vault.reopen().repair(apply=True)
        for kind, name in names.items():
            assert vault.store.get(QUARANTINE + name) == damaged[kind], kind
            assert name in report.moved_aside and not vault.store.exists(name)
        assert [(p["point"], p["item"]) for p in report.lost_points] == [(first.point_id, "data")]
        assert report.lost_files == []
        reopened = vault.reopen()
        assert [p.point_id for p in reopened.points("data")] == [second.point_id]
        assert reopened.settings.name == "single"  # the damaged newer settings are set aside
        assert reopened.verify(read_data=True).ok
        assert_every_point_restores(vault, "data", source, tmp_path)


class TestExclusive:
    def test_apply_refuses_to_run_beside_a_prune(self, backed_up, vault_url):
        """repair --apply refuses to run beside a prune (exit 76); the dry run needs no lease."""
        vault, _, _ = backed_up
        with Lease(vault.repo, "prune", ttl=60):
            Cli(vault_url)("vault", "repair", "--apply", expect=76)
            Cli(vault_url)("vault", "repair")

    def test_repair_is_a_job(self, backed_up, vault_url):
        """Each run leaves a `repair` job, its dry-run flag in the details."""
        Cli(vault_url)("vault", "repair")
        jobs = json.loads(Cli(vault_url)("jobs", "--type", "repair", "--json").stdout)
        assert [(j["type"], j["state"], j["details"]["apply"]) for j in jobs] == [("repair", "completed", False)]


def test_damage_to_the_only_copy_fails_restore_before_repair(backed_up, tmp_path):
    """A control: the damage these tests make is real (restore fails on it before any repair)."""
    vault, source, point = backed_up
    blob = chunks_of(vault, point, point_path(source) + "/a.bin")[0]
    damage(vault.store, copies(vault)[blob][0])
    with pytest.raises(IntegrityError):
        vault.reopen().restore("data", None, str(tmp_path / "out"))
