"""Restore: whole databases as files, one table as SQL or as a database, never over a file unasked."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess

import pytest
from strongroom import UsageError

from sqlitedbs import ODD, SHOP_TABLES, dump, files_under, make_shop, row_counts, rows, schema_names, sequence
from strongroom_sqlite.errors import DatabaseNotInPoint, TableNotInDatabase, TableNotRestorable, TargetExists

#: what a table restore brings with each table of the shop (besides the table itself)
WITH_TABLE = {
    "customers": {("index", "customers_by_name"), ("index", "customers_rich"),
                  ("index", "sqlite_autoindex_customers_1"), ("table", "sqlite_sequence")},
    "orders": {("index", "orders_by_item"), ("trigger", "orders_audit")},
    ODD: set(),  # WITHOUT ROWID: its primary key is the table itself
    "audit": set(),
}


@pytest.fixture
def backed_up(vault, shop):
    vault.protect("sqlite", "shop", {"databases": [str(shop)]})
    vault.backup("shop")
    return vault


def restore_table(vault, target, table: str, fmt: str | None = None, force: bool = False):
    options = {"sqlite_table": f"shop/{table}", "sqlite_format": fmt, "force": force}
    return vault.restore("shop", None, str(target), options=options)


class TestWholeRestore:
    def test_idle_database_restores_equal_to_the_source(self, backed_up, shop, tmp_path):
        """The restored file has the source's dump, tables and row counts, mode and modification time."""
        target = tmp_path / "restored"
        result = backed_up.restore("shop", None, str(target))
        restored = target / "databases" / "shop.sqlite"
        assert files_under(target) == ["databases/shop.sqlite", "manifest.json"]
        assert dump(restored) == dump(shop)
        assert row_counts(restored) == row_counts(shop)
        assert os.stat(restored).st_mode == os.stat(shop).st_mode
        assert os.stat(restored).st_mtime_ns == os.stat(shop).st_mtime_ns
        assert "shop" in result.summary

    def test_only_the_databases_named_are_restored(self, vault, shop, tmp_path):
        """restore ITEM NAME writes only that database."""
        notes = make_shop(tmp_path / "notes.db", "delete", customers=3)
        vault.protect("sqlite", "two", {"databases": [str(shop), str(notes)]})
        vault.backup("two")
        target = tmp_path / "restored"
        vault.restore("two", None, str(target), ["notes"])
        assert files_under(target) == ["databases/notes.sqlite"]
        assert dump(target / "databases" / "notes.sqlite") == dump(notes)

    def test_an_existing_file_is_replaced_only_with_force(self, backed_up, shop, tmp_path):
        """A database file already in the target is refused (TargetExists), and replaced with force."""
        target = tmp_path / "restored"
        (target / "databases").mkdir(parents=True)
        (target / "databases" / "shop.sqlite").write_text("keep me")
        with pytest.raises(TargetExists, match="shop.sqlite"):
            backed_up.restore("shop", None, str(target))
        assert (target / "databases" / "shop.sqlite").read_text() == "keep me"
        backed_up.restore("shop", None, str(target), options={"force": True})
        assert dump(target / "databases" / "shop.sqlite") == dump(shop)

    def test_unknown_database_and_table_paths_are_refused(self, backed_up, tmp_path):
        """A PATH that is no database names the ones there; a DB/TABLE path points to --sqlite-table."""
        with pytest.raises(DatabaseNotInPoint, match=r"it has: shop"):
            backed_up.restore("shop", None, str(tmp_path / "t"), ["nope"])
        with pytest.raises(UsageError, match="--sqlite-table shop/orders"):
            backed_up.restore("shop", None, str(tmp_path / "t"), ["shop/orders"])
        with pytest.raises(UsageError, match="--target"):
            backed_up.restore("shop", None, None)
        assert not (tmp_path / "t").exists()


class TestTableRestore:
    @pytest.mark.parametrize("fmt", ["sql", "sqlite"])
    @pytest.mark.parametrize("table", SHOP_TABLES)
    def test_table_restores_alone_with_its_rows(self, backed_up, shop, tmp_path, table, fmt):
        """The table's rows equal the source's; only the table, its indexes, triggers and counter come along."""
        target = tmp_path / "restored"
        result = restore_table(backed_up, target, table, fmt)
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", table)
        assert files_under(target) == [f"shop.{safe}.{fmt}"]
        made = target / f"shop.{safe}.{fmt}"
        if fmt == "sql":
            database = tmp_path / "loaded.db"
            loader = sqlite3.connect(database)
            loader.executescript(made.read_text())
            loader.close()
        else:
            database = made
        assert rows(database, table) == rows(shop, table)
        assert schema_names(database) == {("table", table)} | WITH_TABLE[table]
        assert sequence(database, table) == sequence(shop, table)
        assert f"({len(rows(shop, table))} rows)" in result.summary

    @pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 shell is not installed")
    def test_sql_file_loads_with_the_sqlite3_shell(self, backed_up, shop, tmp_path):
        """`sqlite3 new.db < file.sql` loads the restored table with all its rows."""
        restore_table(backed_up, tmp_path / "restored", "customers")
        with open(tmp_path / "restored" / "shop.customers.sql", "rb") as script:
            subprocess.run(["sqlite3", str(tmp_path / "new.db")], stdin=script, check=True)
        assert rows(tmp_path / "new.db", "customers") == rows(shop, "customers")

    def test_an_existing_file_is_replaced_only_with_force(self, backed_up, tmp_path):
        """A second restore of the same table is refused, and allowed with force."""
        target = tmp_path / "restored"
        restore_table(backed_up, target, "orders", "sqlite")
        with pytest.raises(TargetExists, match="shop.orders.sqlite"):
            restore_table(backed_up, target, "orders", "sqlite")
        restore_table(backed_up, target, "orders", "sqlite", force=True)
        assert files_under(target) == ["shop.orders.sqlite"]

    def test_unknown_names_are_refused_with_what_exists(self, backed_up, tmp_path):
        """An unknown table lists the tables; an unknown database lists the databases; nothing is written."""
        target = tmp_path / "restored"
        with pytest.raises(TableNotInDatabase) as info:
            restore_table(backed_up, target, "nope")
        assert "audit, customers" in str(info.value) and "\n" not in str(info.value)
        with pytest.raises(TableNotInDatabase):
            restore_table(backed_up, target, "big_orders")  # a view, not a table
        with pytest.raises(DatabaseNotInPoint, match="it has: shop"):
            backed_up.restore("shop", None, str(target), options={"sqlite_table": "other/orders"})
        with pytest.raises(UsageError, match="DB/TABLE"):
            backed_up.restore("shop", None, str(target), options={"sqlite_table": "shop"})
        assert not target.exists()

    def test_a_virtual_table_is_not_restored_alone(self, vault, tmp_path):
        """A virtual table (FTS) is refused: its content lives in its module's tables."""
        db = tmp_path / "notes.db"
        conn = sqlite3.connect(db)
        try:
            conn.execute("CREATE VIRTUAL TABLE notes USING fts5(body)")
        except sqlite3.OperationalError:
            pytest.skip("this SQLite has no FTS5")
        conn.execute("INSERT INTO notes VALUES ('hello')")
        conn.commit()
        conn.close()
        vault.protect("sqlite", "notes", {"databases": [str(db)]})
        vault.backup("notes")
        with pytest.raises(TableNotRestorable, match="virtual table"):
            vault.restore("notes", None, str(tmp_path / "t"), options={"sqlite_table": "notes/notes"})
