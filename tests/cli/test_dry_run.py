"""--dry-run on every destructive command: the real command's checks (a refusal exits with the
real command's code), nothing written (every file under the vault folder byte for byte the
same), the output names what would change, and the real command then does what it said."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest

from strongroom.models import utcnow
from strongroom.services.tickets import load_private_key, sign_ticket
from vaultkit import assert_one_line_error


def snapshot(vault_url: str) -> dict[str, str]:
    """Every file under the vault folder: its path and the SHA-256 of its bytes."""
    root = Path(vault_url)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def dry(cli, vault_url: str, *args: str, expect: int | None = 0, env: dict | None = None):
    """Run ``args`` with --dry-run (no --yes) and check that the vault did not change."""
    before = snapshot(vault_url)
    result = cli(*args, "--dry-run", expect=expect, env=env)
    assert snapshot(vault_url) == before, f"{args} --dry-run changed the vault"
    return result


@pytest.fixture
def ready(vault, cli, tmp_path):
    """Item 'docs' with two points; returns their ids, oldest first."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(20_000))
    cli("protect", "files", "docs", "--path", str(src))
    cli("backup", "docs")
    (src / "b.bin").write_bytes(os.urandom(20_000))
    cli("backup", "docs")
    return [p["id"] for p in json.loads(cli("points", "docs", "--json").stdout)]


@pytest.fixture
def guarded(vault, cli, tmp_path):
    """A guard linked to the vault; returns ``sign(operation, params) -> ticket file``."""
    cli("guard", "keygen", "--out", str(tmp_path / "g.key"))
    cli("vault", "guard", "link", str(tmp_path / "g.key.pub"))

    def sign(operation: str, params: dict, name: str = "ticket") -> str:
        path = tmp_path / name
        path.write_text(sign_ticket(load_private_key(tmp_path / "g.key"), vault.vault_id, operation, params,
                                    dt.timedelta(hours=1), utcnow()))
        return str(path)
    return sign


def slots(cli) -> list[dict]:
    return json.loads(cli("vault", "key", "list", "--json").stdout)


class TestKeyRemove:
    def test_dry_run_names_the_slot_then_the_real_run_removes_it(self, vault, cli, vault_url):
        """The dry run names the slot and leaves both slots; the real run removes that one."""
        cli("vault", "key", "add", "--provider", "local", "--label", "spare")
        spare = next(s for s in slots(cli) if s["label"] == "spare")
        out = dry(cli, vault_url, "vault", "key", "remove", spare["slot"]).stdout
        assert f"Would remove key slot {spare['slot']}" in out
        doc = json.loads(dry(cli, vault_url, "vault", "key", "remove", spare["slot"], "--json").stdout)
        assert (doc["slot"], doc["dry_run"], doc["removed"]) == (spare["slot"], True, False)
        assert len(slots(cli)) == 2
        cli("vault", "key", "remove", spare["slot"])
        assert [s["label"] for s in slots(cli)] != [] and spare["slot"] not in [s["slot"] for s in slots(cli)]

    def test_the_last_slot_is_refused_as_the_real_run_refuses_it(self, vault, cli, vault_url):
        (only,) = slots(cli)
        real = cli("vault", "key", "remove", only["slot"], expect=None)
        assert real.exit_code != 0
        assert_one_line_error(dry(cli, vault_url, "vault", "key", "remove", only["slot"], expect=None),
                              real.exit_code, "last key slot")

    def test_with_a_guard_the_ticket_is_checked_and_not_used(self, vault, cli, vault_url, guarded):
        """Without a ticket: exit 66 as the real run; with one: the dry run passes and the same
        ticket still authorizes the real removal (a dry run does not use it)."""
        cli("vault", "key", "add", "--provider", "local", "--label", "spare")
        spare = next(s for s in slots(cli) if s["label"] == "spare")
        assert_one_line_error(dry(cli, vault_url, "vault", "key", "remove", spare["slot"], expect=None), 66,
                              "key.remove")
        ticket = guarded("key.remove", {"slot": spare["slot"]})
        assert "Would remove" in dry(cli, vault_url, "vault", "key", "remove", spare["slot"], "--ticket", ticket).stdout
        cli("vault", "key", "remove", spare["slot"], "--ticket", ticket)
        assert spare["slot"] not in [s["slot"] for s in slots(cli)]


class TestKeyRewrap:
    def test_dry_run_leaves_the_slot_and_its_key_then_the_real_run_rewraps(self, cli, vault_url,
                                                                          strongroom_home):
        cli("vault", "create", vault_url)
        key_file = next((strongroom_home / "keys").glob("*.key"))
        old_key = key_file.read_bytes()
        (old,) = slots(cli)
        assert f"Would re-wrap key slot {old['slot']}" in dry(cli, vault_url, "vault", "key", "rewrap",
                                                              old["slot"]).stdout
        doc = json.loads(dry(cli, vault_url, "vault", "key", "rewrap", old["slot"], "--json").stdout)
        assert (doc["old_slot"], doc["slot"], doc["dry_run"]) == (old["slot"], None, True)
        assert key_file.read_bytes() == old_key and [s["slot"] for s in slots(cli)] == [old["slot"]]
        new = json.loads(cli("vault", "key", "rewrap", old["slot"], "--json").stdout)
        assert [s["slot"] for s in slots(cli)] == [new["slot"]] != [old["slot"]]

    def test_an_unknown_slot_is_refused_as_the_real_run_refuses_it(self, vault, cli, vault_url):
        real = cli("vault", "key", "rewrap", "zzzz", expect=None)
        assert_one_line_error(dry(cli, vault_url, "vault", "key", "rewrap", "zzzz", expect=None),
                              real.exit_code, "zzzz")


class TestPolicyDelete:
    def test_dry_run_then_delete_and_the_in_use_refusal(self, ready, cli, vault_url):
        cli("policy", "create", "spare", "--daily", "01:00", "--keep-daily", "3")
        cli("policy", "create", "used", "--daily", "01:00", "--keep-daily", "3")
        cli("items", "update", "docs", "--policy", "used")
        assert "Would delete policy 'spare'" in dry(cli, vault_url, "policy", "delete", "spare").stdout
        doc = json.loads(dry(cli, vault_url, "policy", "delete", "spare", "--json").stdout)
        assert (doc["name"], doc["deleted"], doc["dry_run"]) == ("spare", False, True)
        real = cli("policy", "delete", "used", expect=None)
        assert real.exit_code != 0
        assert_one_line_error(dry(cli, vault_url, "policy", "delete", "used", expect=None), real.exit_code, "used")
        cli("policy", "delete", "spare")
        assert "spare" not in [p["name"] for p in json.loads(cli("policy", "list", "--json").stdout)]


class TestAlertSinkRemove:
    def test_dry_run_names_the_sink_then_the_real_run_removes_it(self, vault, cli, vault_url):
        cli("alerts", "sink", "add", "hook", "--type", "webhook", "--option", "url=http://127.0.0.1:9/hook")
        out = dry(cli, vault_url, "alerts", "sink", "remove", "hook").stdout
        assert "Would remove alert sink hook (webhook" in out
        assert json.loads(dry(cli, vault_url, "alerts", "sink", "remove", "hook", "--json").stdout)["dry_run"]
        real = cli("alerts", "sink", "remove", "nosuch", expect=None)
        assert_one_line_error(dry(cli, vault_url, "alerts", "sink", "remove", "nosuch", expect=None),
                              real.exit_code, "nosuch")
        cli("alerts", "sink", "remove", "hook")
        assert json.loads(cli("alerts", "sink", "list", "--json").stdout) == []


class TestItemsStop:
    def test_delete_data_dry_run_counts_the_points_then_the_real_run_soft_deletes_them(self, ready, cli,
                                                                                       vault_url):
        """No --yes needed; 'Would ... soft-delete 2 point(s) (purge at ...)'; then the real run."""
        out = dry(cli, vault_url, "items", "stop", "docs", "--delete-data").stdout
        assert "Would stop 'docs' and soft-delete 2 point(s) (purge at" in out
        doc = json.loads(dry(cli, vault_url, "items", "stop", "docs", "--delete-data", "--json").stdout)
        assert doc["dry_run"] and doc["state"] == "deleted" and sorted(doc["deletion"]["points"]) == sorted(ready)
        assert doc["deletion"]["soft"] and doc["deletion"]["purge_at"]
        assert json.loads(cli("items", "--json").stdout)[0]["state"] == "protected"
        cli("items", "stop", "docs", "--delete-data", "--yes")
        assert sorted(p["id"] for p in json.loads(cli("points", "--deleted", "--json").stdout)) == sorted(ready)

    def test_retain_dry_run_then_the_real_run(self, ready, cli, vault_url):
        assert "Would stop 'docs': stopped-retain-forever" in dry(cli, vault_url, "items", "stop", "docs",
                                                                  "--retain", "forever").stdout
        assert json.loads(cli("items", "--json").stdout)[0]["state"] == "protected"
        cli("items", "stop", "docs", "--retain", "forever")
        assert json.loads(cli("items", "--json").stdout)[0]["state"] == "stopped-retain-forever"
        real = cli("items", "stop", "docs", "--retain", "forever", expect=None)
        assert_one_line_error(dry(cli, vault_url, "items", "stop", "docs", "--retain", "forever", expect=None),
                              real.exit_code, "stopped that way already")

    def test_with_a_guard_the_dry_run_refuses_as_the_real_run_and_journals_nothing(self, ready, cli, vault_url,
                                                                                   guarded):
        assert_one_line_error(dry(cli, vault_url, "items", "stop", "docs", "--delete-data", expect=None), 66,
                              "items.delete-data")
        ticket = guarded("items.delete-data", {"item": "docs"})
        dry(cli, vault_url, "items", "stop", "docs", "--delete-data", "--ticket", ticket)
        cli("items", "stop", "docs", "--delete-data", "--yes", "--ticket", ticket)
        assert json.loads(cli("items", "--json").stdout)[0]["state"] == "deleted"


class TestPointsDelete:
    def test_dry_run_names_the_point_and_purge_time_then_the_real_run_deletes_it(self, ready, cli, vault_url):
        first = ready[0]
        out = dry(cli, vault_url, "points", "delete", f"docs@{first[:8]}").stdout
        assert f"Would soft-delete point {first[:8]} of 'docs' (purge at" in out
        doc = json.loads(dry(cli, vault_url, "points", "delete", f"docs@{first[:8]}", "--json").stdout)
        assert (doc["points"], doc["soft"], doc["dry_run"]) == ([first], True, True)
        done = json.loads(cli("points", "delete", f"docs@{first[:8]}", "--yes", "--json").stdout)
        assert done["points"] == [first] and not done["dry_run"]
        assert [p["id"] for p in json.loads(cli("points", "docs", "--json").stdout)] == ready[1:]

    def test_an_unknown_point_and_a_missing_ticket_refuse_with_the_real_codes(self, ready, cli, vault_url,
                                                                            guarded):
        assert_one_line_error(dry(cli, vault_url, "points", "delete", "docs@ffffffff", expect=None), 43, "ffffffff")
        assert_one_line_error(dry(cli, vault_url, "points", "delete", f"docs@{ready[0]}", expect=None), 66,
                              "points.delete")


    def test_under_immutability_the_dry_run_refuses_as_the_real_run(self, ready, cli, vault_url):
        """Immutability locked, points kept forever: the real run and the dry run both exit 68,
        for points delete and for items stop --delete-data; the dry run journals no refusal."""
        cli("vault", "immutability", "lock", "--client-side-only")
        real = cli("points", "delete", f"docs@{ready[0]}", "--yes", expect=None)
        assert real.exit_code == 68
        assert_one_line_error(dry(cli, vault_url, "points", "delete", f"docs@{ready[0]}", expect=None), 68,
                              "may not be deleted")
        assert_one_line_error(dry(cli, vault_url, "items", "stop", "docs", "--delete-data", expect=None), 68,
                              "may not be deleted")


class TestVaultDelete:
    def test_dry_run_counts_the_objects_then_the_real_run_deletes_them(self, vault, cli, vault_url):
        out = dry(cli, vault_url, "vault", "delete").stdout
        objects = len(snapshot(vault_url)) + 1  # and the journal entry the real run writes first
        assert f"Would delete vault 'test' at {vault_url}: {objects} object(s)" in out
        doc = json.loads(dry(cli, vault_url, "vault", "delete", "--json").stdout)
        assert (doc["deleted"], doc["dry_run"]) == (objects, True)
        assert json.loads(cli("vault", "delete", "--yes", "--json").stdout)["deleted"] == objects
        assert not Path(vault_url).exists()

    def test_a_vault_that_is_not_empty_is_refused_with_the_real_code(self, ready, cli, vault_url):
        real = cli("vault", "delete", "--yes", expect=None)
        assert real.exit_code != 0
        assert_one_line_error(dry(cli, vault_url, "vault", "delete", expect=None), real.exit_code, "docs")


class TestRebuildIndex:
    def test_dry_run_reports_what_the_real_run_then_does(self, ready, cli, vault_url):
        out = dry(cli, vault_url, "vault", "rebuild-index").stdout
        assert "Would rebuild the index from" in out and "index file(s) replaced" in out
        planned = json.loads(dry(cli, vault_url, "vault", "rebuild-index", "--json").stdout)
        assert planned["dry_run"] and planned["packs_read"] > 0
        done = json.loads(cli("vault", "rebuild-index", "--json").stdout)
        assert not done["dry_run"]
        for key in ("packs_read", "blobs_indexed", "index_files_written", "index_files_removed"):
            assert done[key] == planned[key], key
