"""The command line: protect, backup, points, browse and restore a sqlite item; errors in one line."""

from __future__ import annotations

import json

import pytest

from sqlitedbs import dump, rows


def one_line_error(result, code: int, *words: str) -> str:
    """The command failed with ``code`` and printed one error line holding every word."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strongroom: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def cli(strongroom_cli, tmp_path):
    url = str(tmp_path / "vault")
    cli = strongroom_cli(url)
    cli("vault", "create", url)
    return cli


def test_protect_backup_browse_restore(cli, shop, tmp_path):
    """The whole round trip through the command line, as a user types it."""
    cli("protect", "sqlite", "shop", "--database", str(shop))
    cli("backup", "shop")
    points = json.loads(cli("points", "shop", "--json").stdout)
    assert len(points) == 1 and points[0]["workload"] == "sqlite"
    assert points[0]["consistency"] == "application-consistent"
    top = cli("browse", "shop").stdout
    assert "database" in top and "shop" in top and "manifest.json" in top
    assert "customers" in cli("browse", "shop", "shop").stdout
    assert "email" in cli("browse", "shop", "shop/customers").stdout
    listed = json.loads(cli("browse", "shop", "shop", "--json").stdout)
    assert {"path": "shop/orders", "type": "table"}.items() <= next(r for r in listed if r["name"] == "orders").items()

    out = tmp_path / "out"
    restored = cli("restore", "shop", "--target", str(out))
    assert "Restored 1 database(s)" in restored.stdout
    assert dump(out / "databases" / "shop.sqlite") == dump(shop)
    cli("restore", f"shop@{points[0]['id']}", "--target", str(out), "--sqlite-table", "shop/orders",
        "--sqlite-format", "sqlite")
    assert rows(out / "shop.orders.sqlite", "orders") == rows(shop, "orders")
    cli("restore", "shop", "--target", str(out), "--sqlite-table", "shop/orders")
    assert (out / "shop.orders.sql").read_text().startswith("-- table \"orders\" of database 'shop'")


def test_errors_are_one_line_with_the_plugins_exit_codes(cli, shop, tmp_path):
    """Bad sources and bad restores end with one error line and the exit codes in errors.py."""
    text = tmp_path / "notes.txt"
    text.write_text("not a database, just text that is long enough to have a header's worth of bytes")
    one_line_error(cli("protect", "sqlite", "bad", "--database", str(text), expect=None), 101,
                   str(text), "not a SQLite database")
    one_line_error(cli("protect", "sqlite", "bad", "--database", str(tmp_path / "missing.db"), expect=None), 101,
                   "does not exist")
    assert "bad" not in cli("items").stdout

    cli("protect", "sqlite", "shop", "--database", str(shop))
    cli("backup", "shop")
    out = str(tmp_path / "out")
    one_line_error(cli("restore", "shop", "--target", out, "--sqlite-table", "nope/orders", expect=None), 103,
                   "'nope'", "it has: shop")
    one_line_error(cli("restore", "shop", "--target", out, "--sqlite-table", "shop/nope", expect=None), 104,
                   "'nope'", "audit, customers")
    one_line_error(cli("restore", "shop", "--target", out, "--sqlite-format", "sql", expect=None), 3,
                   "--sqlite-table")
    one_line_error(cli("restore", "shop", expect=None), 3, "--target DIR")
    cli("restore", "shop", "--target", out)
    one_line_error(cli("restore", "shop", "--target", out, expect=None), 106, "shop.sqlite", "--force")
    cli("restore", "shop", "--target", out, "--force")

    shop.unlink()
    one_line_error(cli("backup", "shop", expect=None), 102, str(shop))
