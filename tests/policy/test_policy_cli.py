"""The policy, schedule, items stop/resume and backup --retain-until commands, as a user runs them."""

from __future__ import annotations

import json

import pytest

from vaultkit import assert_one_line_error as one_line_error


@pytest.fixture
def ready(tmp_path, cli):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha")
    cli("vault", "create", cli.vault_url)
    cli("policy", "create", "gold", "--daily", "02:00,14:00", "--timezone", "Europe/Berlin",
        "--keep-daily", "30", "--keep-weekly", "12", "--keep-monthly", "24", "--keep-yearly", "10")
    cli("protect", "files", "docs", "--path", str(src), "--policy", "gold")
    return src


class TestBadInput:
    @pytest.mark.parametrize("args, words", [
        (["--weekly", "sum@03:00"], ["unknown weekday 'sum'"]),
        (["--daily", "25:00"], ["invalid time '25:00'"]),
        (["--daily", "02:00", "--keep-daily", "-1"], ["--keep-daily", "-1"]),
        (["--daily", "02:00", "--keep-weekly", "-3"], ["--keep-weekly", "-3"]),
        (["--daily", "02:00", "--timezone", "Mars/Olympus"], ["unknown timezone 'Mars/Olympus'"]),
        (["--every", "5h"], ["invalid interval '5h'"]),
        (["--every", "4h", "--daily", "02:00"], ["one of --every, --daily or --weekly"]),
        (["--keep-daily", "7"], ["needs a schedule"]),
    ])
    def test_policy_create_refuses_with_one_line(self, ready, cli, args, words):
        """Each bad option gives one line naming the problem, exit code 74."""
        one_line_error(cli("policy", "create", "bad", *args, expect=None), 74, *words)

    def test_deleting_a_policy_in_use(self, ready, cli):
        """policy delete of a policy an item follows exits 73 and names the item."""
        one_line_error(cli("policy", "delete", "gold", expect=None), 73, "gold", "'docs'")

    def test_unknown_policy(self, ready, cli, tmp_path):
        """policy show / protect --policy with an unknown name exits 71."""
        one_line_error(cli("policy", "show", "nosuch", expect=None), 71, "nosuch")
        one_line_error(cli("protect", "files", "other", "--path", str(ready), "--policy", "nosuch", expect=None),
                       71, "nosuch")

    def test_bad_retain_until(self, ready, cli):
        """backup --retain-until with a past or unreadable date exits 74."""
        one_line_error(cli("backup", "docs", "--retain-until", "2001-01-01", expect=None), 74, "not in the future")
        one_line_error(cli("backup", "docs", "--retain-until", "someday", expect=None), 74, "someday")

    def test_bad_lifecycle_changes(self, ready, cli):
        """Resuming a protected item, or stopping it twice the same way, exits 75."""
        one_line_error(cli("items", "resume", "docs", expect=None), 75, "not stopped")
        cli("items", "stop", "docs", "--retain", "forever")
        one_line_error(cli("items", "stop", "docs", "--retain", "forever", expect=None), 75, "already")

    def test_stop_needs_a_choice(self, ready, cli):
        """items stop without --retain or --delete-data is a usage error (exit 2)."""
        assert cli("items", "stop", "docs", expect=None).exit_code == 2


class TestCommands:
    def test_policy_list_show_update(self, ready, cli):
        """list shows the items using a policy; update changes only what is given."""
        listed = json.loads(cli("policy", "list", "--json").stdout)
        assert [(p["name"], p["items"]) for p in listed] == [("gold", ["docs"])]
        shown = json.loads(cli("policy", "show", "gold", "--json").stdout)
        assert shown["schedule"]["times"] == ["02:00", "14:00"] and len(shown["next_runs"]) == 5
        updated = json.loads(cli("policy", "update", "gold", "--keep-daily", "45", "--json").stdout)
        assert updated["retention"]["daily"] == 45 and updated["retention"]["yearly"] == 10
        assert updated["schedule"]["timezone"] == "Europe/Berlin"

    def test_backup_with_retain_until_records_it(self, ready, cli):
        """backup --retain-until 30d stores the date on the point, as an on-demand backup."""
        point = json.loads(cli("backup", "docs", "--retain-until", "30d", "--json").stdout)
        assert point["retain_until"] and point["trigger"] == "on_demand"
        assert "daily" in point["tags"] and "yearly" in point["tags"]

    def test_schedule_and_run_due(self, ready, cli):
        """A new item with a policy is due at once; run-due backs it up; then nothing is due."""
        rows = json.loads(cli("schedule", "--json").stdout)
        assert [(r["name"], r["due"]) for r in rows if r["kind"] == "backup"] == [("docs", True)]
        cli("prune", "settings", "--unscheduled")
        report = json.loads(cli("run-due", "--json").stdout)
        assert [(r["name"], r["outcome"]) for r in report["results"]] == [("docs", "completed")]
        assert "Nothing is due" in cli("run-due").stdout
        jobs = json.loads(cli("jobs", "--type", "backup", "--json").stdout)
        assert jobs[-1]["details"]["trigger"] == "scheduled"

    def test_stop_resume_round_trip(self, ready, cli):
        """items stop/resume change the state shown by items."""
        cli("items", "stop", "docs", "--retain", "policy")
        assert json.loads(cli("items", "--json").stdout)[0]["state"] == "stopped-retain-policy"
        cli("items", "resume", "docs")
        assert json.loads(cli("items", "--json").stdout)[0]["state"] == "protected"
        cli("items", "stop", "docs", "--delete-data", "--yes")
        assert json.loads(cli("items", "--json").stdout)[0]["state"] == "deleted"

    def test_floors_command(self, ready, cli):
        """policy floors --enable turns them on (Azure's values), --disable off."""
        assert json.loads(cli("policy", "floors", "--json").stdout) == {"schema": 1, "enabled": False}
        on = json.loads(cli("policy", "floors", "--enable", "--json").stdout)
        assert on == {"schema": 1, "enabled": True, "daily": 7, "weekly": 4, "monthly": 3, "yearly": 1}
        one_line_error(cli("policy", "create", "tiny", "--daily", "01:00", "--keep-daily", "2", expect=None),
                       74, "floor")
        cli("policy", "floors", "--disable")

    def test_prune_settings_and_dry_run(self, ready, cli):
        """prune settings changes the grace; prune --dry-run changes nothing."""
        shown = json.loads(cli("prune", "settings", "--grace", "2h", "--weekly", "sun@04:00", "--json").stdout)
        assert shown["grace"] == 7200 and shown["schedule"]["weekdays"] == [6]
        cli("vault", "soft-delete", "--disable")  # deleted data expires at once: what the dry run would free
        cli("backup", "docs")
        cli("items", "stop", "docs", "--delete-data", "--yes")
        dry = json.loads(cli("prune", "--dry-run", "--json").stdout)
        assert dry["dry_run"] and len(dry["points_expired"]) == 1
        assert len(json.loads(cli("points", "--json").stdout)) == 1
