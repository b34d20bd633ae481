"""The sqlite workload passes strongroom's workload contract (strongroom.testing.WorkloadContract)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from strongroom.testing import WorkloadCase, WorkloadContract

from sqlitedbs import dump, files_under, make_shop, row_counts, rows, schema_names


class TestSqliteContract(WorkloadContract):
    workload = "sqlite"

    @pytest.fixture
    def workload_case(self, tmp_path):
        shop = make_shop(tmp_path / "shop.db", "wal", customers=2000)
        notes = make_shop(tmp_path / "notes.sqlite3", "delete", customers=20)
        text = tmp_path / "readme.txt"
        text.write_text("plain text, not a database\n" * 10)
        (tmp_path / "empty.db").touch()

        def check_restore(vault, item, scratch):
            vault.restore(item, None, scratch)
            assert files_under(scratch) == ["databases/notes.sqlite", "databases/shop.sqlite", "manifest.json"]
            for name, source in (("shop", shop), ("notes", notes)):
                restored = Path(scratch) / "databases" / f"{name}.sqlite"
                assert dump(restored) == dump(source)
                assert row_counts(restored) == row_counts(source)

        def check_item_restore(vault, item, scratch):
            vault.restore(item, None, scratch, options={"sqlite_table": "shop/orders", "sqlite_format": "sqlite"})
            assert files_under(scratch) == ["shop.orders.sqlite"]
            restored = Path(scratch) / "shop.orders.sqlite"
            assert rows(restored, "orders") == rows(shop, "orders")
            assert {name for _, name in schema_names(restored)} == {"orders", "orders_by_item", "orders_audit"}

        def change_source():
            conn = sqlite3.connect(shop)
            conn.execute("UPDATE customers SET balance = balance + 1 WHERE id % 7 = 0")
            conn.commit()
            conn.close()

        return WorkloadCase(
            source={"databases": [str(shop), str(notes)]},
            check_restore=check_restore,
            item_path="shop/orders",
            check_item_restore=check_item_restore,
            bad_sources=(
                ({"databases": [str(tmp_path / "missing.db")]}, "does not exist"),
                ({"databases": [str(text)]}, "is not a SQLite database"),
                ({"databases": [str(tmp_path / "empty.db")]}, "is empty"),
                ({"databases": [str(tmp_path)]}, "is not a file"),
                ({"databases": [str(shop), os.path.join(tmp_path, ".", "shop.db")]}, "given twice"),
                ({"databases": []}, "at least one database"),
                ({}, "at least one database"),
            ),
            consistency="application-consistent",
            change_source=change_source,
        )
