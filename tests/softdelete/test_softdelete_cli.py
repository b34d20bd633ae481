"""The command line of soft delete: points delete/undelete/--deleted, items undelete, vault
security and vault soft-delete, and their bad input (one line, a stable exit code, nothing
changed)."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from strongroom.models import utcnow
from strongroom.services.tickets import load_private_key, sign_ticket
from vaultkit import assert_one_line_error


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


def settings(cli) -> dict:
    return json.loads(cli("vault", "security", "--json").stdout)


class TestPointsCommands:
    def test_delete_lists_deleted_and_undelete(self, ready, cli, tmp_path):
        """points delete hides the point from 'points', shows it in 'points --deleted' with its
        purge time; restore is refused (exit 69); points undelete brings it back."""
        first = ready[0]
        done = json.loads(cli("points", "delete", f"docs@{first[:8]}", "--yes", "--json").stdout)
        assert done["soft"] and done["points"] == [first] and done["purge_at"]
        assert [p["id"] for p in json.loads(cli("points", "docs", "--json").stdout)] == ready[1:]
        (listed,) = json.loads(cli("points", "--deleted", "--json").stdout)
        assert (listed["id"], listed["purge_at"], listed["deleted_by"]) == (first, done["purge_at"], "points delete")
        assert first[:8] in cli("points", "docs", "--deleted").stdout
        assert "1 soft-deleted point(s) not shown" in cli("points").stderr
        refusal = cli("restore", f"docs@{first[:8]}", "--target", str(tmp_path / "out"), expect=None)
        assert_one_line_error(refusal, 69, "soft-deleted", f"strongroom points undelete docs@{first[:8]}")
        assert "Undeleted point" in cli("points", "undelete", f"docs@{first[:8]}").stdout
        assert [p["id"] for p in json.loads(cli("points", "docs", "--json").stdout)] == ready
        assert json.loads(cli("points", "--deleted", "--json").stdout) == []

    def test_items_stop_delete_data_and_items_undelete(self, ready, cli):
        out = cli("items", "stop", "docs", "--delete-data", "--yes").stdout
        assert "soft-deleted its points" in out and "strongroom items undelete docs" in out
        assert sorted(p["id"] for p in json.loads(cli("points", "--deleted", "--json").stdout)) == sorted(ready)
        assert settings(cli)["soft_deleted_points"] == 2
        back = json.loads(cli("items", "undelete", "docs", "--json").stdout)
        assert back["state"] == "stopped-retain-forever"
        assert [p["id"] for p in json.loads(cli("points", "docs", "--json").stdout)] == ready

    def test_unknown_point_and_bad_specs(self, ready, cli):
        """An unknown point: exit 43; a point that is not soft-deleted cannot be undeleted;
        a spec without @POINT is a usage error; nothing changed."""
        assert_one_line_error(cli("points", "delete", "docs@ffffffff", "--yes", expect=None), 43, "ffffffff")
        assert_one_line_error(cli("points", "undelete", f"docs@{ready[0][:8]}", expect=None), 43,
                              "not soft-deleted")
        assert_one_line_error(cli("points", "delete", "nosuch@abc", "--yes", expect=None), 41, "nosuch")
        assert cli("points", "delete", "docs", "--yes", expect=None).exit_code == 2
        assert [p["id"] for p in json.loads(cli("points", "docs", "--json").stdout)] == ready

    def test_delete_with_a_guard_needs_the_ticket(self, ready, vault, cli, tmp_path):
        """With a guard linked, points delete without --ticket: exit 66; with one: done."""
        cli("guard", "keygen", "--out", str(tmp_path / "g.key"))
        cli("vault", "guard", "link", str(tmp_path / "g.key.pub"))
        first = ready[0]
        assert_one_line_error(cli("points", "delete", f"docs@{first}", "--yes", expect=None), 66, "points.delete")
        ticket = tmp_path / "ticket"
        ticket.write_text(sign_ticket(load_private_key(tmp_path / "g.key"), vault.vault_id, "points.delete",
                                      {"item": "docs", "point": first}, dt.timedelta(hours=1), utcnow()))
        cli("points", "delete", f"docs@{first}", "--yes", "--ticket", str(ticket))
        assert [p["id"] for p in json.loads(cli("points", "--deleted", "--json").stdout)] == [first]


class TestVaultSoftDelete:
    def test_security_shows_the_defaults(self, vault, cli):
        shown = settings(cli)
        assert shown["soft_delete"] == {"state": "enabled", "days": 14}
        assert shown["immutability"]["state"] == "disabled"
        assert shown["guard"] == {"linked": False, "fingerprint": None, "linked_at": None}
        assert shown["soft_deleted_points"] == 0
        assert shown["storage_object_lock"]["description"]
        text = cli("vault", "security").stdout
        assert "soft delete:" in text and "enabled, 14 days" in text

    @pytest.mark.parametrize("days", ["7", "181", "13"])
    def test_days_out_of_bounds(self, vault, cli, days):
        """--days outside 14-180: one line, exit 3, nothing changed."""
        assert_one_line_error(cli("vault", "soft-delete", "--days", days, expect=None), 3, "14 to 180", days)
        assert settings(cli)["soft_delete"] == {"state": "enabled", "days": 14}

    def test_days_disable_enable(self, vault, cli):
        assert "30 days" in cli("vault", "soft-delete", "--days", "30").stdout
        assert settings(cli)["soft_delete"] == {"state": "enabled", "days": 30}
        cli("vault", "soft-delete", "--disable")
        assert settings(cli)["soft_delete"]["state"] == "disabled"
        cli("vault", "soft-delete", "--enable", "--days", "180")
        assert settings(cli)["soft_delete"] == {"state": "enabled", "days": 180}

    def test_always_on_is_irreversible(self, vault, cli):
        """After --always-on, --disable and --enable are refused (exit 65); days may still grow."""
        cli("vault", "soft-delete", "--always-on")
        for option in ("--disable", "--enable"):
            assert_one_line_error(cli("vault", "soft-delete", option, expect=None), 65, "always-on")
        assert settings(cli)["soft_delete"]["state"] == "always-on"
        cli("vault", "soft-delete", "--days", "60")
        assert settings(cli)["soft_delete"] == {"state": "always-on", "days": 60}

    def test_nothing_given_is_a_usage_error(self, vault, cli):
        assert_one_line_error(cli("vault", "soft-delete", expect=None), 3, "--days")

    def test_disable_with_a_guard_needs_a_ticket(self, vault, cli, tmp_path):
        cli("guard", "keygen", "--out", str(tmp_path / "g.key"))
        cli("vault", "guard", "link", str(tmp_path / "g.key.pub"))
        assert settings(cli)["guard"]["fingerprint"].startswith("SHA256:")
        assert_one_line_error(cli("vault", "soft-delete", "--disable", expect=None), 66, "soft-delete.disable")
        assert settings(cli)["soft_delete"]["state"] == "enabled"
        ticket = tmp_path / "t"
        cli("guard", "sign", "--key", str(tmp_path / "g.key"), "--vault-id", vault.vault_id,
            "--operation", "soft-delete.disable", "--valid", "1h", "--output", str(ticket))
        cli("vault", "soft-delete", "--disable", "--ticket", str(ticket))
        assert settings(cli)["soft_delete"]["state"] == "disabled"
