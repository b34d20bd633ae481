"""Rollback: storage put back to an older state is noticed by points, backup, verify and prune.

Whoever can write the vault's storage without the key can delete objects and put back
older copies of them.  These tests do exactly that on a real local vault folder (delete a
point header, put back an index file that a prune or rebuild-index removed, put back a
removed key slot, delete the newest settings or item version, delete or damage the vault
heads) and check the one-line warning (``points``) or error (exit 54: ``backup``,
``vault verify``, ``prune``), and that ordinary work (prunes, repairs, rebuild-index, key
changes, items stop --delete-data, concurrent backups, a second client, a vault without
heads) never raises a false alarm.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from strongroom.repository import maintenance
from strongroom.repository.envelope import KIND_INDEX
from strongroom.repository.indexfile import encode_index
from strongroom.services.head import HEAD_PREFIX, Rollback, replacement_name
from strongroom.testing import Cli, assert_same_tree
from strongroom.vault import Vault

ROLLBACK = 54


def _objects(url: str, prefix: str) -> list[Path]:
    folder = Path(url) / prefix
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _save(url: str, prefix: str) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in _objects(url, prefix)}


def _put_back(saved: dict[Path, bytes]) -> list[Path]:
    """Write back the saved objects that are gone now; returns them."""
    back = [path for path in saved if not path.exists()]
    for path in back:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(saved[path])
    return back


def _rel(url: str, path: Path) -> str:
    return path.relative_to(url).as_posix()


def _one_line_error(result, *words: str) -> str:
    assert result.exit_code == ROLLBACK, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("strongroom: error: The vault's storage went back to an older state: "), result.stderr
    for word in words:
        assert word in line, line
    return line


@pytest.fixture
def source(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha\n" * 100)
    (src / "b.bin").write_bytes(os.urandom(200_000))
    return src


@pytest.fixture
def cli(vault_url, source) -> Cli:
    """A vault with item 'web' protecting ``source``."""
    run = Cli(vault_url)
    run("vault", "create", vault_url)
    run("protect", "files", "web", "--path", str(source))
    return run


def _point_ids(vault_url: str) -> list[str]:
    return [p.name for p in _objects(vault_url, "points")]


class TestTheIssuesRollback:
    def test_a_deleted_header_and_a_replayed_index_file_are_named_by_points_backup_and_verify(self, cli, vault_url, source):
        """The issue's test: delete the newest point header and put back an index file that
        rebuild-index removed: points warns, backup and verify stop with exit 54 naming both."""
        cli("backup", "web")
        (source / "c.txt").write_text("gamma\n")
        cli("backup", "web")
        old_index = _save(vault_url, "index")
        cli("vault", "rebuild-index")
        replayed = _put_back(old_index)
        assert replayed
        newest = max(_objects(vault_url, "points"), key=lambda p: p.stat().st_mtime_ns)
        newest.unlink()

        listing = cli("points")
        assert listing.exit_code == 0
        warning = [line for line in listing.stderr.splitlines() if line.startswith("warning: ")]
        assert len(warning) == 1 and "went back to an older state" in warning[0]
        assert f"point {newest.name[:8]} of item 'web' is gone" in warning[0]
        assert f"index file {_rel(vault_url, replayed[0])} was removed" in warning[0]

        before = _point_ids(vault_url)
        _one_line_error(cli("backup", "web", expect=None), f"point {newest.name[:8]}", "is back")
        assert _point_ids(vault_url) == before  # nothing was committed

        verify = cli("vault", "verify", expect=None)
        _one_line_error(verify, f"point {newest.name[:8]}")
        assert f"rollback: index file {_rel(vault_url, replayed[0])} was removed" in verify.stderr
        prune = cli("prune", "--grace", "0", expect=None)
        _one_line_error(prune, f"point {newest.name[:8]}")

    def test_an_index_file_prune_removed_would_make_a_backup_skip_data_and_is_refused(self, cli, vault_url, tmp_path):
        """Put back an index file whose pack a prune deleted: a backup of the same data would
        take it for stored and skip it (the issue's danger); it is refused, and after
        rebuild-index the backup stores the data again and restores whole."""
        old = tmp_path / "old"
        old.mkdir()
        (old / "unique.bin").write_bytes(os.urandom(300_000))
        cli("protect", "files", "old", "--path", str(old))
        cli("backup", "old")
        saved = _save(vault_url, "index")
        packs_before = {p.name for p in _objects(vault_url, "data")}
        cli("vault", "soft-delete", "--disable")  # the prune deletes the pack now, not after a purge time
        cli("items", "stop", "old", "--delete-data", "--yes")
        cli("prune", "--grace", "0")
        assert packs_before - {p.name for p in _objects(vault_url, "data")}, "the prune deleted no pack"
        replayed = _put_back(saved)
        assert replayed

        cli("protect", "files", "again", "--path", str(old))
        _one_line_error(cli("backup", "again", expect=None), "index file", "is back")
        assert "rebuild-index" in cli("vault", "verify", expect=ROLLBACK).stderr.splitlines()[-1]

        cli("vault", "rebuild-index")
        assert not any(path.exists() for path in replayed)
        cli("backup", "again")
        cli("vault", "verify")
        target = tmp_path / "restored"
        cli("restore", "again", "--target", str(target))
        assert_same_tree(old, target / str(old.resolve()).lstrip("/"))


def test_the_issues_rollback_on_s3(strongroom_s3_location, source):
    """The issue's test on S3 (SeaweedFS): a header deleted and an index file that
    rebuild-index removed put back, through the object store itself."""
    location = strongroom_s3_location
    options = dict(location.storage_options)
    vault = Vault.create(location.url, storage_options=options)
    vault.protect("files", "web", {"paths": [str(source)]})
    vault.backup("web")
    newest = vault.backup("web")
    store = vault.store
    saved = {name: store.get(name) for name in store.list("index/")}
    vault.rebuild_index()
    for name, data in saved.items():
        store.put(name, data)
    store.delete(newest.object_name)
    run = Cli(location=location)
    assert f"point {newest.short_id} of item 'web' is gone" in run("points").stderr
    _one_line_error(run("backup", "web", expect=None), f"point {newest.short_id}", "is back")
    _one_line_error(run("vault", "verify", expect=None), f"point {newest.short_id}")


class TestWhatElseMustNotGoBack:
    def test_a_removed_key_slot_put_back(self, cli, vault_url):
        """A key slot removed with 'vault key remove' and put back is named: it was removed and is back."""
        added = cli("vault", "key", "add", "--new-passphrase-env", "NEW_PASS", "--json", env={"NEW_PASS": "x" * 12})
        slot = json.loads(added.stdout)["slot"]
        saved = _save(vault_url, "keys")
        cli("vault", "key", "remove", slot)
        assert _put_back(saved)
        _one_line_error(cli("vault", "verify", expect=None), f"key slot keys/{slot} was removed", "is back")

    def test_the_newest_settings_document_deleted(self, cli, vault_url):
        """Deleting the newest settings document (an older one would be in force) is named."""
        cli("prune", "settings", "--grace", "2h")
        cli("backup", "web")  # its head records the settings in force
        newest = _objects(vault_url, "settings")[-1]
        newest.unlink()
        _one_line_error(cli("vault", "verify", expect=None), "the newest settings document is gone")
        _one_line_error(cli("backup", "web", expect=None), "settings")

    def test_the_newest_settings_document_deleted_right_after_the_change(self, cli, vault_url):
        """A settings change writes a head itself: deleting the new settings before any backup
        is named too."""
        cli("backup", "web")
        cli("prune", "settings", "--grace", "2h")
        _objects(vault_url, "settings")[-1].unlink()
        _one_line_error(cli("vault", "verify", expect=None), "the newest settings document is gone")

    def test_the_newest_point_status_deleted(self, cli, vault_url):
        """Deleting a point's newest status (its retention would go back to an older one) is
        named; prune removing a point with its statuses is not."""
        cli("policy", "create", "daily", "--daily", "02:00", "--keep-daily", "7")
        cli("backup", "web")
        cli("items", "stop", "web", "--retain", "forever")
        cli("items", "resume", "web", "--policy", "daily")  # re-evaluated: the point gets a status
        statuses = _objects(vault_url, "point-status")
        assert statuses
        statuses[-1].unlink()
        _one_line_error(cli("vault", "verify", expect=None), "the newest status of point")

    def test_the_newest_item_version_deleted(self, cli, vault_url):
        """Deleting the version that stopped an item (so it looks protected again) is named."""
        cli("backup", "web")
        cli("items", "stop", "web", "--retain", "forever")
        newest = _objects(vault_url, "items")[-1]
        newest.unlink()
        _one_line_error(cli("vault", "verify", expect=None), "the newest version of item 'web' is gone")

    def test_every_head_deleted_or_an_older_one_left(self, cli, vault_url, tmp_path):
        """This client saw the newest head: storage with none, or only older ones, is a
        rollback of the heads themselves; a second client, which saw nothing, is not alarmed."""
        cli("backup", "web")
        cli("backup", "web")
        heads = _objects(vault_url, "heads")
        for path in heads[1:]:
            path.unlink()
        _one_line_error(cli("vault", "verify", expect=None), "the newest vault head is serial")
        heads[0].unlink()
        _one_line_error(cli("vault", "verify", expect=None), "no vault head is left on storage")
        second = tmp_path / "second-client"  # the same key, and no memory of this vault
        shutil.copytree(Path(os.environ["STRONGROOM_HOME"]) / "keys", second / "keys")
        cli("vault", "verify", env={"STRONGROOM_HOME": str(second)})

    def test_a_damaged_newest_head(self, cli, vault_url):
        """The newest head, damaged: it cannot be read, and nothing newer can: a rollback finding."""
        cli("backup", "web")
        newest = _objects(vault_url, "heads")[-1]
        data = bytearray(newest.read_bytes())
        data[len(data) // 2] ^= 1
        newest.write_bytes(bytes(data))
        _one_line_error(cli("vault", "verify", expect=None), f"vault head {_rel(vault_url, newest)} cannot be read")

    def test_the_alert_place_is_called_with_what_was_found(self, vault_url, source):
        """Every finding reaches ``on_rollback``, the one place where an alert will be raised."""
        vault = Vault.create(vault_url)
        vault.protect("files", "web", {"paths": [str(source)]})
        point = vault.backup("web")
        os.remove(os.path.join(vault_url, point.object_name))
        seen: list[Rollback] = []
        vault.heads.on_rollback = seen.append
        found = vault.heads.check()
        assert seen == [found] and found.missing == (point.object_name,)


def _kept(vault_url) -> dict:
    """Every object of the vault but job records and alerts, with its bytes."""
    return {p: p.read_bytes() for p in Path(vault_url).rglob("*")
            if p.is_file() and not {"jobs", "alerts", "alert-events"} & set(p.parts)}


class TestAccepting:
    def test_repair_dry_run_then_accept(self, cli, vault_url):
        """A dry run names the rollback (exit 54) and changes nothing; --apply alone leaves a gone
        header a finding; --apply --accept-rollback takes storage as it is: verify and backup pass."""
        cli("backup", "web")
        cli("backup", "web")
        gone = _objects(vault_url, "points")[-1]
        gone.unlink()
        before = _kept(vault_url)
        dry = cli("vault", "repair", "--accept-rollback", expect=ROLLBACK)
        assert f"rollback: point {gone.name[:8]} of item 'web' is gone" in dry.stderr
        assert _kept(vault_url) == before
        # the finding is a security alert: the one thing a dry run writes besides its job
        assert any(a.kind == "rollback.detected" for a in Vault.open(vault_url).alerts.list())
        cli("vault", "repair", "--apply", expect=ROLLBACK)
        accepted = cli("vault", "repair", "--apply", "--accept-rollback")
        assert "Accepted the storage as it is" in accepted.stdout
        cli("vault", "verify")
        cli("backup", "web")
        assert "warning" not in cli("points").stderr

    def test_accepting_passes_the_serial_this_client_saw(self, cli, vault_url):
        """Heads deleted down to an older one: the accepting head's serial passes the one seen."""
        cli("backup", "web")
        cli("backup", "web")
        for path in _objects(vault_url, "heads")[1:]:
            path.unlink()
        cli("vault", "repair", "--apply", "--accept-rollback")
        cli("vault", "verify")


class TestNoFalseAlarm:
    def test_prune_that_expires_points_and_sweeps_packs(self, cli, vault_url, tmp_path):
        """Points expired and packs swept (index files replaced and deleted) are no rollback."""
        other = tmp_path / "other"
        other.mkdir()
        (other / "x.bin").write_bytes(os.urandom(300_000))
        cli("protect", "files", "other", "--path", str(other))
        cli("backup", "other")
        cli("backup", "web")
        cli("vault", "soft-delete", "--disable")  # points and packs go in this prune (purges: tests/softdelete)
        cli("items", "stop", "other", "--delete-data", "--yes")
        report = json.loads(cli("prune", "--grace", "0", "--json").stdout)
        assert report["points_expired"] and report["packs_deleted"]
        assert "warning" not in cli("points").stderr
        cli("vault", "verify")
        cli("backup", "web")
        cli("prune", "--grace", "0")
        cli("vault", "verify")

    def test_repair_that_moves_a_damaged_header_aside(self, cli, vault_url):
        """A damaged point header moved aside by repair is announced first: no rollback after."""
        cli("backup", "web")
        cli("backup", "web")
        header = _objects(vault_url, "points")[0]
        data = bytearray(header.read_bytes())
        data[len(data) // 2] ^= 1
        header.write_bytes(bytes(data))
        cli("vault", "repair", "--apply", expect=53)  # the point is lost, not rolled back
        assert not header.exists()
        cli("vault", "verify")
        cli("backup", "web")

    def test_rebuild_index_key_changes_and_item_changes(self, cli, vault_url):
        """rebuild-index, key add and remove, items stop and resume: verify stays clean."""
        cli("backup", "web")
        cli("vault", "rebuild-index")
        cli("backup", "web")
        added = cli("vault", "key", "add", "--new-passphrase-env", "NEW_PASS", "--json", env={"NEW_PASS": "y" * 12})
        cli("vault", "key", "remove", json.loads(added.stdout)["slot"])
        cli("policy", "create", "daily", "--daily", "03:00", "--keep-daily", "7")
        cli("items", "stop", "web", "--retain", "forever")
        cli("items", "resume", "web", "--policy", "daily")
        cli("vault", "verify")
        cli("backup", "web")
        assert "warning" not in cli("points").stderr

    def test_two_backups_at_once_and_a_second_client(self, vault_url, source, tmp_path, monkeypatch):
        """Two backups at once write two heads from the same one: merged, no alarm; a second
        client (another home folder, the same key) sees the vault clean, and so does the first after it."""
        first = Vault.create(vault_url)
        first.protect("files", "web", {"paths": [str(source)]})
        first.backup("web")
        handles = [Vault.open(vault_url) for _ in range(2)]
        meet = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(vault: Vault) -> None:
            met: list[bool] = []

            def progress(stats) -> None:
                if not met:
                    met.append(True)
                    meet.wait(timeout=60)
            try:
                vault.backup("web", progress=progress)
            except BaseException as exc:  # reported below
                meet.abort()
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(h,)) for h in handles]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert not first.heads.check().found
        assert len(first.points("web")) == 3

        second_home = tmp_path / "second"
        shutil.copytree(os.environ["STRONGROOM_HOME"] + "/keys", second_home / "keys")
        second = Vault.open(vault_url, home=str(second_home))
        assert not second.heads.check().found
        second.backup("web")
        assert (second_home / "state" / f"{second.vault_id}.json").exists()
        assert not first.heads.check().found
        assert len(first.heads.read().tips) == 1

    def test_a_vault_without_heads_starts_cleanly(self, cli, vault_url):
        """A vault made before heads (none on storage, no state here) is taken as it is."""
        cli("backup", "web")
        shutil.rmtree(Path(vault_url) / "heads")
        shutil.rmtree(Path(os.environ["STRONGROOM_HOME"]) / "state")
        assert "warning" not in cli("points").stderr
        cli("vault", "verify")
        cli("backup", "web")
        assert len(_objects(vault_url, "heads")) == 1
        cli("vault", "verify")

    def test_a_prune_removal_a_racing_backup_did_not_see(self, vault_url, source, tmp_path):
        """A backup's head written from the heads before a prune's (the two raced) still lists
        the expired point; the prune's tombstone wins when the two are merged."""
        other = tmp_path / "other"
        other.mkdir()
        (other / "x.txt").write_text("x")
        vault = Vault.create(vault_url)
        vault.protect("files", "web", {"paths": [str(source)]})
        vault.protect("files", "other", {"paths": [str(other)]})
        vault.backup("web")
        vault.backup("other")
        vault.stop("other", delete_data=True)
        before = {p.name for p in _objects(vault_url, "heads")}
        vault.prune(grace=0)
        prune_heads = [p for p in _objects(vault_url, "heads") if p.name not in before]
        hidden = {p: p.read_bytes() for p in prune_heads}
        for path in hidden:
            path.unlink()
        vault.heads.record("backup")  # merges the heads before the prune: lists the expired point
        _put_back(hidden)
        assert len(vault.heads.read().tips) == 2
        assert not vault.heads.check().found

    def test_an_index_file_replaced_by_a_running_prune(self, vault, source):
        """While a prune sweeps, it replaces index files (keeping their time) before its head
        is written: a check meanwhile takes a replacement, even of a replacement, for what it
        is; an index file of that age that replaces nothing listed is a replay."""
        vault.protect("files", "web", {"paths": [str(source)]})
        vault.backup("web")
        entries = vault.repo.read_index_files(sorted(vault.store.list("index/")))[0][1]
        old = _write_index(vault, "index/20200101T000000000000Z-0badf00d", entries)
        vault.heads.record("prune", index_before=[])  # a generation that lists the old file
        first = maintenance.replace_index_file(vault.repo, old, entries)
        assert first == replacement_name(old)
        second = maintenance.replace_index_file(vault.repo, first, entries)
        assert second == replacement_name(first)
        assert not vault.heads.check().found
        stray = _write_index(vault, "index/20200101T000000000001Z-0badf00d", entries)
        assert vault.heads.check().replayed == (stray,)


def _write_index(vault: Vault, name: str, entries) -> str:
    """An index file written by the key holder under ``name`` (as an old vault has them)."""
    vault.store.put(name, vault.repo.envelope.seal(KIND_INDEX, name.encode(), encode_index(entries)))
    return name


def test_heads_are_kept_few(vault, source):
    """Writers delete heads older than the newest few."""
    vault.protect("files", "web", {"paths": [str(source)]})
    for _ in range(12):
        vault.heads.record("test")
    assert len(list(vault.store.list(HEAD_PREFIX))) == 8
    assert not vault.heads.check().found
