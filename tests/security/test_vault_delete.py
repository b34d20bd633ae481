"""vault delete: only an empty vault, soft-deleted points keep it until purged, a guard's ticket."""

from __future__ import annotations

import datetime as dt
import json

from strongroom.services import tickets
from strongroom.testing import Cli, make_tree


def test_only_an_empty_vault_is_deleted_and_soft_deleted_points_keep_it(tmp_path, strongroom_isolated_home):
    vault = tmp_path / "vault"
    source = make_tree(str(tmp_path / "src"), big_mib=1, small_files=3)
    cli = Cli(str(vault))
    cli("vault", "create", str(vault))
    cli("protect", "files", "web", "--path", source)
    cli("backup", "web")
    refused = cli("vault", "delete", "--yes", expect=14)
    assert "still protected" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    cli("items", "stop", "web", "--delete-data", "--yes")
    refused = cli("vault", "delete", "--yes", expect=14)
    assert "soft-deleted points stay until their purge time" in refused.stderr
    assert (vault / "strongroom.json").exists()
    cli("vault", "soft-delete", "--disable")  # from now on deleting data expires the points at once
    cli("items", "undelete", "web")
    cli("items", "stop", "web", "--delete-data", "--yes")
    cli("prune", "--grace", "0")
    deleted = json.loads(cli("vault", "delete", "--yes", "--json").stdout)
    assert deleted["deleted"] > 10 and deleted["kept"] == []
    assert not vault.exists()
    assert cli("points", expect=11).exit_code == 11  # VaultNotFound


def test_with_a_guard_it_needs_a_vault_delete_ticket(tmp_path, strongroom_isolated_home):
    vault = tmp_path / "vault"
    cli = Cli(str(vault))
    cli("vault", "create", str(vault))
    cli("guard", "keygen", "--out", str(tmp_path / "guard"))
    cli("vault", "guard", "link", str(tmp_path / "guard.pub"))
    needs = cli("vault", "delete", "--yes", expect=66)
    assert "vault.delete" in needs.stderr and (vault / "strongroom.json").exists()
    vault_id = json.loads(cli("vault", "info", "--json").stdout)["vault_id"]
    ticket = tickets.sign_ticket(tickets.load_private_key(tmp_path / "guard"), vault_id, "vault.delete", {},
                                 dt.timedelta(hours=1), dt.datetime.now(dt.timezone.utc))
    (tmp_path / "ticket").write_text(ticket)
    cli("vault", "delete", "--yes", "--ticket", str(tmp_path / "ticket"))
    assert not vault.exists()
