"""Every operation that changes the vault leaves audit journal entries: a ``started`` entry
before it acts and its outcome after, with the host, the user, the operation and the
parameters that identify the change; operations that only read (or a dry run) leave none.
``strongroom vault audit`` lists them."""

from __future__ import annotations

import json

import pytest

from strongroom.vault import Vault
from vaultkit import FIXTURES, assert_one_line_error, install_fixture_vault


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n" * 50)
    return folder


@pytest.fixture
def auditor(monkeypatch):
    monkeypatch.setenv("STRONGROOM_USER", "auditor")
    monkeypatch.setenv("SPARE", "spare passphrase")


def _entries(url: str) -> list:
    return Vault.open(url).journal.entries()


def _new(url: str, before: int) -> list:
    return _entries(url)[before:]


class TestEveryChangeIsJournaled:
    STEPS = [
        # (command, operation, the params that must be recorded)
        (["policy", "create", "gold", "--daily", "02:00", "--keep-daily", "30"], "policy.create", {"policy": "gold"}),
        (["protect", "files", "docs", "--path", "{src}", "--policy", "gold"], "items.protect",
         {"item": "docs", "workload": "files", "policy": "gold"}),
        (["policy", "update", "gold", "--keep-daily", "45"], "policy.update", {"policy": "gold"}),
        (["policy", "floors", "--enable"], "policy.floors", {}),
        (["prune", "settings", "--grace", "2h"], "prune.settings", {"grace": 7200.0}),
        (["backup", "docs"], "backup", {"item": "docs", "trigger": "on_demand"}),
        (["restore", "docs", "--target", "{out}"], "restore", {"item": "docs", "target": "{out}"}),
        (["items", "stop", "docs", "--retain", "forever"], "items.stop", {"item": "docs", "retain": "forever"}),
        (["items", "resume", "docs"], "items.resume", {"item": "docs"}),
        (["vault", "key", "add", "--new-passphrase-env", "SPARE", "--label", "spare"], "key.add",
         {"provider": "passphrase", "label": "spare"}),
        (["vault", "key", "upgrade"], "key.upgrade", {}),
        (["prune"], "prune", {}),
        (["vault", "repair", "--apply"], "repair", {}),
        (["vault", "rebuild-index"], "rebuild-index", {}),
        (["policy", "create", "silver", "--daily", "03:00", "--keep-daily", "30"], "policy.create", {"policy": "silver"}),
        (["policy", "delete", "silver"], "policy.delete", {"policy": "silver"}),
    ]

    def test_each_command_appends_started_and_its_outcome(self, vault_url, cli, src, tmp_path, auditor):
        """Each changing command appends exactly (started, succeeded) for its operation, by this
        host and user, with the parameters that identify what changed."""
        cli("vault", "create", vault_url)
        (created,) = _entries(vault_url)
        assert (created.operation, created.outcome, created.user) == ("vault.create", "succeeded", "auditor")
        out = str(tmp_path / "out")
        for args, operation, params in self.STEPS:
            before = len(_entries(vault_url))
            cli(*[a.format(src=src, out=out) for a in args])
            added = _new(vault_url, before)
            mine = [e for e in added if e.operation == operation]
            assert [e.outcome for e in mine] == ["started", "succeeded"], (args, added)
            for entry in mine:
                assert entry.host and entry.user == "auditor" and entry.time
                for key, value in params.items():
                    value = value.format(out=out) if isinstance(value, str) else value
                    assert entry.params.get(key) == value, (operation, entry.params)
        chain = Vault.open(vault_url).journal.verify()
        assert chain.intact and chain.entries == len(_entries(vault_url))

    def test_key_remove_and_settings(self, vault, auditor):
        """Removing a key slot and writing settings are journaled with the slot and the fields."""
        from strongroom.repository.keyproviders import PassphraseSource

        slot = vault.keys.add("passphrase", label="spare", passphrase=PassphraseSource(env_var="SPARE"))
        vault.keys.remove(slot.slot_id)
        vault.update_settings(name="renamed")
        ops = [(e.operation, e.outcome, e.params.get("slot") or e.params.get("changed")) for e in _entries(vault.url)]
        assert ("key.remove", "succeeded", slot.slot_id) in ops
        assert ("settings.update", "succeeded", ["name"]) in ops

    def test_reading_and_dry_runs_write_nothing(self, vault_url, cli, src):
        """points, browse, verify, audit, prune --dry-run and repair without --apply journal nothing."""
        cli("vault", "create", vault_url)
        cli("protect", "files", "docs", "--path", str(src))
        cli("backup", "docs")
        before = _entries(vault_url)
        for args in (["points"], ["browse", "docs"], ["vault", "verify"], ["vault", "audit"],
                     ["vault", "audit", "--verify"], ["prune", "--dry-run"], ["vault", "repair"],
                     ["vault", "upgrade"], ["items"], ["vault", "guard", "show"]):
            cli(*args)
        assert _entries(vault_url) == before

    def test_a_failed_operation_is_journaled_failed(self, vault_url, cli, src):
        """A backup that fails leaves (started, failed) with the error's line."""
        cli("vault", "create", vault_url)
        cli("protect", "files", "docs", "--path", str(src))
        src.rename(src.with_name("gone"))
        before = len(_entries(vault_url))
        result = cli("backup", "docs", expect=None)
        assert result.exit_code != 0
        backup = [e for e in _new(vault_url, before) if e.operation == "backup"]
        assert [e.outcome for e in backup] == ["started", "failed"] and backup[1].detail

    def test_scheduled_backups_are_journaled(self, tmp_path, src):
        """run-due's backups go through the journal, as scheduled backups."""
        import datetime as dt

        from strongroom.policy.options import policy_from_options

        now = [dt.datetime(2031, 3, 1, 0, 30, tzinfo=dt.timezone.utc)]
        vault = Vault.create(str(tmp_path / "sched"))
        vault.clock = lambda: now[0]
        vault.policies.create(policy_from_options("four", {"every": "4h", "keep_daily": 7}))
        vault.protect("files", "docs", {"paths": [str(src)]}, policy="four")
        now[0] += dt.timedelta(hours=5)
        vault.run_due()
        backups = [e for e in _entries(vault.url) if e.operation == "backup"]
        assert [(e.outcome, e.params["trigger"]) for e in backups] == [("started", "scheduled"),
                                                                      ("succeeded", "scheduled")]


class TestAuditCommand:
    def _vault(self, vault_url, cli, src):
        cli("vault", "create", vault_url)
        cli("protect", "files", "docs", "--path", str(src))
        cli("backup", "docs")

    def test_lists_entries_oldest_first(self, vault_url, cli, src, auditor):
        """The table names each entry's user, operation, outcome and parameters, oldest first."""
        self._vault(vault_url, cli, src)
        lines = cli("vault", "audit").stdout.splitlines()
        assert lines[0].split()[:6] == ["TIME", "HOST", "USER", "OPERATION", "OUTCOME", "PARAMETERS"]
        ops = [line.split()[5] for line in lines[1:]]  # after the time's date, clock and offset
        assert ops == ["vault.create", "items.protect", "items.protect", "backup", "backup"]
        assert all("auditor" in line for line in lines[1:]) and "item=docs" in lines[-1]

    def test_json(self, vault_url, cli, src):
        """--json gives every field of every entry, the chain links included."""
        self._vault(vault_url, cli, src)
        data = json.loads(cli("vault", "audit", "--json").stdout)
        assert [d["outcome"] for d in data] == ["succeeded", "started", "succeeded", "started", "succeeded"]
        assert data[0]["prev"] is None and all(d["prev"] and d["prev_name"] == p["name"] for p, d in zip(data, data[1:]))
        assert {"time", "host", "user", "operation", "params", "outcome", "ticket"} <= set(data[0])

    def test_since(self, vault_url, cli, src):
        """--since takes a duration back from now or a date; a bad one is one line, exit 3."""
        self._vault(vault_url, cli, src)
        assert len(json.loads(cli("vault", "audit", "--since", "1h", "--json").stdout)) == 5
        assert json.loads(cli("vault", "audit", "--since", "2999-01-01", "--json").stdout) == []
        assert "no entries since then" in cli("vault", "audit", "--since", "2999-01-01").stdout
        assert_one_line_error(cli("vault", "audit", "--since", "last tuesday", expect=None), 3, "--since")


class TestUpgradeIsJournaled:
    def test_upgrade_apply_is_journaled_and_the_dry_run_is_not(self, tmp_path, strongroom_home):
        """vault upgrade of the frozen format-1 vault: the dry run writes nothing, --apply
        writes (started, succeeded) with the format it moved from."""
        url = install_fixture_vault(FIXTURES / "vault-format-1", tmp_path / "old", strongroom_home)
        vault = Vault.open(url)
        before = vault.journal.entries()
        vault.upgrade()
        assert vault.journal.entries() == before
        vault.upgrade(apply=True)
        added = Vault.open(url).journal.entries()[len(before):]
        assert [(e.operation, e.outcome, e.params) for e in added] == [
            ("upgrade", "started", {"from_format": 1}), ("upgrade", "succeeded", {"from_format": 1})]
