"""``prune --keep-last N``: an ad hoc shortening of retention, under the same rules as any other."""

from __future__ import annotations

import json

from strongroom.testing import Cli, make_tree


def test_prune_keep_last_is_a_retention_shortening(tmp_path, strongroom_isolated_home):
    """``prune --keep-last N`` expires all but the newest N points of each item: soft-deleted while
    soft delete is on, refused by immutability, and needing a retention.shorten ticket with a guard."""
    source = tmp_path / "src"
    make_tree(str(source), big_mib=1, small_files=3)
    cli = Cli(str(tmp_path / "vault"))
    cli("vault", "create", str(tmp_path / "vault"))
    cli("protect", "files", "web", "--path", str(source))
    for n in range(3):
        (source / "n.txt").write_text(str(n))
        cli("backup", "web")
    points = [p["point_id"] for p in json.loads(cli("points", "web", "--json").stdout)]
    cli("vault", "immutability", "enable")
    refused = cli("prune", "--keep-last", "1", expect=68)
    assert "may not be deleted before it expires" in refused.stderr
    assert [p["point_id"] for p in json.loads(cli("points", "web", "--json").stdout)] == points
    cli("guard", "keygen", "--out", str(tmp_path / "guard"))
    cli("vault", "guard", "link", str(tmp_path / "guard.pub"))
    vault_id = json.loads(cli("vault", "info", "--json").stdout)["vault_id"]
    ticket = tmp_path / "ticket"
    cli("guard", "sign", "--key", str(tmp_path / "guard"), "--vault-id", vault_id, "--operation",
        "immutability.disable", "--valid", "1h", "--output", str(ticket))
    cli("vault", "immutability", "disable", "--ticket", str(ticket))
    needs = cli("prune", "--keep-last", "1", expect=66)
    assert "retention.shorten" in needs.stderr and "keep_last=1" in needs.stderr
    ticket.unlink()
    cli("guard", "sign", "--key", str(tmp_path / "guard"), "--vault-id", vault_id, "--operation",
        "retention.shorten", "--param", "keep_last=1", "--valid", "1h", "--output", str(ticket))
    report = json.loads(cli("prune", "--keep-last", "1", "--ticket", str(ticket), "--json").stdout)
    assert sorted(p["point"] for p in report["points_soft_deleted"]) == sorted(points[:2])
    assert [p["point_id"] for p in json.loads(cli("points", "web", "--json").stdout)] == points[-1:]
    deleted = json.loads(cli("points", "web", "--deleted", "--json").stdout)
    assert sorted(p["point_id"] for p in deleted) == sorted(points[:2])
