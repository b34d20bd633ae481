"""Geo replication between two SeaweedFS servers: replicate, restore from the secondary with
the primary gone, incremental copies, refusals, and a secondary out of reach."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import pytest

from geokit import UNREACHABLE, geo_pair, geo_vault, geo_vault_out_of_reach, start_server, tree_bytes, write_files
from geokit import two_servers  # noqa: F401  (a fixture)
from strongroom.policy.redundancy import Redundancy
from strongroom.policy.security import SoftDelete
from strongroom.repository.names import kind_of
from strongroom.services.replication import ReplicationRefused, Replicator
from strongroom.storage import open_store
from strongroom.testing import Cli
from strongroom.vault import Vault


def vault_names(store) -> set[str]:
    return {n for n in store.list("") if kind_of(n) is not None and not n.startswith("leases/")}


@pytest.fixture
def no_auto_replication(monkeypatch):
    """Backups do not replicate by themselves (a replication bound of zero seconds)."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")


class TestReplicateAndRestore:
    def test_restore_from_the_secondary_once_the_primary_server_is_stopped(self, strongroom_home, two_servers, tmp_path):
        """Replicated points list and restore byte for byte from the secondary with the primary's server stopped,
        through --from-secondary and through --vault SECONDARY_URL."""
        _, secondary_server = two_servers
        primary_server = start_server()  # stopped by this test
        try:
            vault, secondary_url = geo_vault(strongroom_home, primary_server, secondary_server)
            src = write_files(tmp_path / "src")
            Cli(vault.url)("protect", "files", "docs", "--path", str(src))
            Cli(vault.url)("backup", "docs")
            report = json.loads(Cli(vault.url)("vault", "replicate", "--wait", "--json").stdout)
            assert report["complete"] and report["secondary"] == secondary_url
            points = vault.points("docs")
        finally:
            primary_server.stop()
        cli = Cli(vault.url)
        listed = json.loads(cli("points", "docs", "--from-secondary", "--json").stdout)
        assert [p["id"] for p in listed] == [p.point_id for p in points]
        target = tmp_path / "out"
        cli("restore", f"docs@{points[-1].point_id}", "--from-secondary", "--target", str(target))
        assert tree_bytes(target / str(src).lstrip("/")) == tree_bytes(src)
        again = json.loads(Cli(secondary_url)("points", "--json").stdout)
        assert [p["id"] for p in again] == [p.point_id for p in points]
        backup = cli("--from-secondary", "backup", "docs", expect=None)
        assert backup.exit_code != 0 and "read-only" in backup.output

    def test_the_secondary_verifies_and_is_no_rollback_of_the_primary(self, strongroom_home, two_servers, tmp_path,
                                                                      no_auto_replication):
        """An older secondary (the primary backed up since) verifies clean: it keeps its own rollback record."""
        vault, secondary_url = geo_vault(strongroom_home, *two_servers)
        src = write_files(tmp_path / "src")
        vault.protect("files", "docs", {"paths": [str(src)]})
        vault.backup("docs")
        vault.replicate()
        (src / "late.txt").write_text("after the replication")
        vault.backup("docs")
        secondary = Vault.open(secondary_url)
        assert secondary.is_secondary
        assert len(secondary.points("docs")) == 1
        assert secondary.verify(read_data=True).ok
        assert vault.verify().ok

    def test_an_incremental_replication_copies_only_the_new_objects(self, strongroom_home, two_servers, tmp_path,
                                                                   no_auto_replication):
        """After a small change and a backup, a replication copies exactly what the secondary lacks."""
        vault, secondary_url = geo_vault(strongroom_home, *two_servers)
        src = write_files(tmp_path / "src", count=30)
        vault.protect("files", "docs", {"paths": [str(src)]})
        vault.backup("docs")
        first = vault.replicate()
        assert first.complete and first.copied > 10
        secondary = open_store(secondary_url, two_servers[1].storage_options)
        left = vault_names(vault.store) - vault_names(secondary)
        assert len(left) == 1 and next(iter(left)).startswith("journal/")  # the replication's "succeeded"
        (src / "sub" / "note.txt").write_text("a small change")
        vault.backup("docs")
        lacking = vault_names(vault.store) - vault_names(secondary)
        lag = vault.geo.replicator().lag()
        assert lag.objects == len(lacking) and lag.points == 1 and lag.oldest_point is not None
        second = vault.replicate()
        # the replication's own journal entry ("started") is written before it lists
        assert second.complete and second.copied == len(lacking) + 1
        assert second.copied < first.copied
        left = vault_names(vault.store) - vault_names(secondary)
        assert len(left) == 1 and next(iter(left)).startswith("journal/")  # the replication's "succeeded"
        assert vault.geo.replicator().lag().objects == 1

    def test_the_secondary_follows_the_primary_s_prune(self, strongroom_home, two_servers, tmp_path,
                                                       no_auto_replication):
        """Points the primary pruned go from the secondary first, their packs in a later run."""
        vault, secondary_url = geo_vault(strongroom_home, *two_servers)
        vault.security.change(attrs.evolve(vault.security.settings, soft_delete=SoftDelete(state="disabled")))
        src = write_files(tmp_path / "src", count=4)
        vault.protect("files", "docs", {"paths": [str(src)]})
        vault.backup("docs")
        for i in range(3):
            write_files(src, count=2, seed=str(i))
            vault.backup("docs")
        vault.replicate()
        vault.prune(keep_last=1, grace=0)
        secondary = open_store(secondary_url, two_servers[1].storage_options)
        report = vault.replicate()
        assert report.complete and report.deleted > 0 and report.deferred_deletes > 0
        assert {n for n in vault_names(secondary) if n.startswith("points/")} == \
               {n for n in vault_names(vault.store) if n.startswith("points/")}
        vault.replicate()
        assert {n for n in vault_names(secondary) if n.startswith("data/")} == \
               {n for n in vault_names(vault.store) if n.startswith("data/")}
        assert Vault.open(secondary_url).verify(read_data=True).ok


class TestRefusals:
    def test_a_secondary_holding_another_vault_is_refused(self, strongroom_home, two_servers):
        """The secondary's strongroom.json names another vault: exit 17, nothing copied."""
        url, secondary_url = geo_pair(strongroom_home, *two_servers)
        other = Vault.create(secondary_url, name="other")
        before = vault_names(other.store)
        Vault.create(url, name="geo", redundancy=Redundancy("geo", secondary_url))
        result = Cli(url)("vault", "replicate", "--wait", expect=17)
        assert "another vault" in result.stderr and "Traceback" not in result.output
        assert vault_names(other.store) == before

    def test_the_primary_itself_is_refused_by_url_and_by_storage(self, tmp_path):
        """The same URL, and the same storage under another URL (a symlinked folder), are refused."""
        vault = Vault.create(str(tmp_path / "p"), name="p")
        with pytest.raises(ReplicationRefused, match="own storage"):
            Replicator(vault.store, open_store(str(tmp_path / "p"), {})).run()
        os.symlink(tmp_path / "p", tmp_path / "alias")
        with pytest.raises(ReplicationRefused, match="another URL"):
            Replicator(vault.store, open_store(str(tmp_path / "alias"), {})).run()
        assert not [n for n in vault.store.list("") if "probe" in n]

    def test_a_vault_without_a_geo_secondary_says_so(self, tmp_path):
        """vault replicate on a local vault: one line, exit 2."""
        Vault.create(str(tmp_path / "p"), name="p")
        result = Cli(str(tmp_path / "p"))("vault", "replicate", expect=2)
        assert "no geo secondary" in result.stderr


class TestUnreachableSecondary:
    def test_backup_succeeds_and_the_lag_is_reported(self, strongroom_home, two_servers, tmp_path, monkeypatch):
        """With the secondary's server out of reach a backup still succeeds; vault info and an alert say so."""
        monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "2")
        primary_server, _ = two_servers
        vault = geo_vault_out_of_reach(strongroom_home, primary_server)
        src = write_files(tmp_path / "src", count=2)
        vault.protect("files", "docs", {"paths": [str(src)]})
        point = vault.backup("docs")
        assert vault.points("docs")[-1].point_id == point.point_id
        kinds = [(a.kind, a.dedupe) for a in vault.alerts.list() if a.open]
        assert ("replication.lag", f"replication.lag:{vault.vault_id}") in kinds
        vault.backup("docs")
        assert [k for k, _ in kinds if k == "replication.lag"] == ["replication.lag"]
        assert sum(a.kind == "replication.lag" and a.open for a in vault.alerts.list()) == 1  # deduplicated
        info = json.loads(Cli(vault.url)("vault", "info", "--json").stdout)
        assert info["replication"]["secondary"] == UNREACHABLE and info["replication"]["error"]

    def test_a_failed_replicate_command_is_one_line(self, strongroom_home, two_servers):
        """vault replicate to a secondary out of reach: one error line, a storage exit code."""
        primary_server, _ = two_servers
        vault = geo_vault_out_of_reach(strongroom_home, primary_server)
        result = Cli(vault.url)("vault", "replicate", expect=None)
        assert result.exit_code >= 20 and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_from_secondary_without_a_record_says_how(tmp_path):
    """--from-secondary for a vault this machine knows no secondary of: one line, exit 3."""
    result = Cli(str(tmp_path / "nowhere"))("points", "--from-secondary", expect=3)
    assert "--vault SECONDARY_URL" in result.stderr


def test_run_due_replicates_a_geo_vault_in_full(tmp_path, no_auto_replication):
    """run-due catches the secondary up whatever the bound of backups (here zero seconds)."""
    vault = Vault.create(str(tmp_path / "p"), name="p", redundancy=Redundancy("geo", str(tmp_path / "s")))
    src = write_files(tmp_path / "src", count=3)
    vault.protect("files", "docs", {"paths": [str(src)]})
    point = vault.backup("docs")
    assert vault.geo.replicator().lag().points == 1
    vault.run_due()
    assert vault.geo.replicator().lag().points == 0
    assert [p.point_id for p in Vault.open(str(tmp_path / "s")).points("docs")] == [point.point_id]
