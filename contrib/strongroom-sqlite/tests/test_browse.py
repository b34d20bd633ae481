"""Browse: databases at the top, then their tables, views, indexes and triggers, then columns."""

from __future__ import annotations

import pytest

from sqlitedbs import ODD, row_counts
from strongroom_sqlite.errors import DatabaseNotInPoint, TableNotInDatabase


@pytest.fixture
def backed_up(vault, shop):
    vault.protect("sqlite", "shop", {"databases": [str(shop)]})
    vault.backup("shop")
    return vault


def test_top_lists_the_databases_and_the_manifest(backed_up, shop):
    """The top has one database row (path = its name, its source in the detail) and the manifest."""
    rows = {row.path: row for row in backed_up.browse("shop")}
    assert set(rows) == {"shop", "manifest.json"}
    assert rows["shop"].type == "database" and str(shop) in rows["shop"].detail
    assert rows["shop"].size == backed_up.point_view("shop").lookup("databases/shop.sqlite").size


def test_a_database_lists_its_objects_with_row_counts(backed_up, shop):
    """Browsing a database lists every table with its row count, the view, the indexes and the trigger."""
    rows = {row.name: row for row in backed_up.browse("shop", None, "shop")}
    counts = row_counts(shop)
    for table in ("customers", "orders", "audit", ODD):
        assert rows[table].type == "table" and rows[table].path == f"shop/{table}"
        assert rows[table].detail == f"{counts[table]} rows"
    assert rows["big_orders"].type == "view"
    assert (rows["orders_by_item"].type, rows["orders_by_item"].detail) == ("index", "on orders")
    assert (rows["orders_audit"].type, rows["orders_audit"].detail) == ("trigger", "on orders")


def test_a_table_lists_its_columns(backed_up):
    """Browsing DB/TABLE lists its columns in order with their types and constraints."""
    rows = backed_up.browse("shop", None, "shop/customers")
    assert [row.name for row in rows] == ["id", "name", "email", "balance", "name_length"]
    assert {row.type for row in rows} == {"column"}
    assert rows[0].detail == "INTEGER, primary key" and rows[1].detail == "TEXT, not null"
    assert "generated" in rows[4].detail


def test_unknown_names_list_what_exists(backed_up):
    """An unknown database or table is one line naming the ones that exist."""
    with pytest.raises(DatabaseNotInPoint, match="it has: shop"):
        backed_up.browse("shop", None, "nope")
    with pytest.raises(TableNotInDatabase, match="audit, customers"):
        backed_up.browse("shop", None, "shop/nope")
