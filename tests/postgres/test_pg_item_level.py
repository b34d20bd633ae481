"""Item-level restore: one table or one schema comes back complete, the rest untouched."""

from __future__ import annotations

import re
import subprocess

import pytest

from pgshop import build_shop
from strongroom_postgres.errors import NotInDump, ObjectsExist, PostgresRestoreFailed
from strongroom.vault import Vault


@pytest.fixture(scope="module")
def items(pg_cluster, tmp_path_factory):
    """Database ``items`` (20k orders) and a vault with one point of it."""
    build_shop(pg_cluster, "items", rows=20_000)
    home = str(tmp_path_factory.mktemp("pghome"))
    vault = Vault.create(str(tmp_path_factory.mktemp("pgvault") / "vault"), home=home)
    vault.protect("postgres", "db", {
        "connection": {"params": {"host": pg_cluster.socket, "port": str(pg_cluster.port), "user": "postgres"}},
        "databases": ["items"]})
    vault.backup("db")
    yield vault
    pg_cluster.dropdb("items")


def table_schema(cluster, db: str, table: str) -> list[str]:
    """The statements of ``pg_dump --schema-only -t TABLE``: the table with its keys,
    indexes, triggers, sequences and grants."""
    out = subprocess.run([f"{cluster.bindir}/pg_dump", "--schema-only", "-t", table, "-d", db],
                         env=cluster.env, capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if not line.startswith("--")
             and not re.match(r"\\(un)?restrict ", line)]
    return [" ".join(s.split()) for s in "\n".join(lines).split(";\n") if s.strip()]


def digests(cluster, db: str, skip: tuple[str, ...] = ()) -> dict:
    return {t: cluster.table_digest(db, t) for t in cluster.tables(db) if t not in skip}


class TestTable:
    def test_dropped_table_comes_back_complete_and_others_stay_untouched(self, pg_cluster, items):
        """After DROP TABLE, restoring only that table brings back its rows, identity sequence,
        keys, index, check, trigger and grants; its foreign key to a table of the database is
        added back (and said), the views that use it are reported."""
        before = digests(pg_cluster, "items")
        schema_before = table_schema(pg_cluster, "items", "sales.orders")
        last_id = pg_cluster.psql("select last_value from sales.orders_id_seq", "items")
        pg_cluster.psql("drop table sales.orders cascade", "items")
        others = digests(pg_cluster, "items")
        result = items.restore("db", None, None, options={"to_database": "items", "tables": ("sales.orders",)})
        assert digests(pg_cluster, "items") == before
        assert digests(pg_cluster, "items", skip=("sales.orders",)) == others
        fk = [statement for statement in schema_before if "FOREIGN KEY" in statement]
        assert len(fk) == 1
        after = table_schema(pg_cluster, "items", "sales.orders")
        assert after == schema_before
        assert "foreign keys to tables in the target added back: sales.orders.orders_customer_id_fkey" in result.summary
        assert any("PRIMARY KEY" in line for line in after)
        assert any("CREATE TRIGGER orders_stamp" in line for line in after)
        assert pg_cluster.psql("select last_value from sales.orders_id_seq", "items") == last_id
        assert pg_cluster.psql("select has_table_privilege('shop_reader', 'sales.orders', 'select')", "items") == "t"
        warnings = "\n".join(result.warnings)
        assert "orders_customer_id_fkey" not in warnings
        assert "sales.big_orders" in warnings and "sales.customer_totals" in warnings

    def test_existing_table_is_refused_without_force_and_replaced_with_it(self, pg_cluster, items):
        """A table that exists is not touched without --force; with it, it is replaced, with
        its foreign key to a table of the database."""
        before = pg_cluster.table_digest("items", "hr.badges")
        pg_cluster.psql("delete from hr.badges where no % 2 = 0", "items")
        changed = pg_cluster.table_digest("items", "hr.badges")
        with pytest.raises(ObjectsExist, match="hr.badges"):
            items.restore("db", None, None, options={"to_database": "items", "tables": ("hr.badges",)})
        assert pg_cluster.table_digest("items", "hr.badges") == changed
        result = items.restore("db", None, None,
                               options={"to_database": "items", "tables": ("hr.badges",), "force": True})
        assert pg_cluster.table_digest("items", "hr.badges") == before
        assert not [w for w in result.warnings if "badges_staff_fkey" in w]
        assert "hr.badges.badges_staff_fkey" in result.summary
        assert pg_cluster.psql("select count(*) from pg_constraint where conname = 'badges_staff_fkey'", "items") == "1"

    def test_forced_restore_that_fails_changes_nothing(self, pg_cluster, items):
        """With --force, a table a view that is not restored still uses cannot be dropped: the
        restore fails in its single transaction, naming the view, and the database is left
        as it was."""
        pg_cluster.psql("create view public.staff_names as select name from hr.staff", "items")
        before = digests(pg_cluster, "items")
        try:
            with pytest.raises(PostgresRestoreFailed, match="nothing was changed") as failed:
                items.restore("db", None, None,
                              options={"to_database": "items", "tables": ("hr.staff",), "force": True})
            assert "view staff_names depends on table hr.staff" in str(failed.value)
            assert digests(pg_cluster, "items") == before
        finally:
            pg_cluster.psql("drop view public.staff_names", "items")

    def test_table_into_a_new_database_with_its_schema(self, pg_cluster, items):
        """A table restored into a new database brings its schema, and both ends of a
        self-referencing foreign key."""
        items.restore("db", None, None, options={"to_database": "staff_only", "tables": ('hr."staff"',)})
        try:
            assert pg_cluster.tables("staff_only") == ["hr.staff"]
            assert pg_cluster.table_digest("staff_only", "hr.staff") == pg_cluster.table_digest("items", "hr.staff")
            assert any("staff_boss_fkey" in line for line in table_schema(pg_cluster, "staff_only", "hr.staff"))
        finally:
            pg_cluster.dropdb("staff_only")

    def test_failed_restore_drops_the_database_it_created(self, pg_cluster, items):
        """sales.orders needs its trigger function: into a new database the restore fails and
        the database it created is dropped."""
        with pytest.raises(PostgresRestoreFailed, match="new database was dropped"):
            items.restore("db", None, None, options={"to_database": "orders_only", "tables": ("sales.orders",)})
        assert "orders_only" not in pg_cluster.databases()

    def test_table_not_in_the_point_is_named(self, items):
        """A table the point does not have is a NotInDump error naming it and the point."""
        with pytest.raises(NotInDump, match="sales.nosuch"):
            items.restore("db", None, None, options={"to_database": "items", "tables": ("sales.nosuch",)})


class TestSchema:
    def test_dropped_schema_comes_back_complete(self, pg_cluster, items):
        """DROP SCHEMA hr CASCADE, then restoring schema hr brings back every table, sequence
        and key of it exactly; other schemas are untouched."""
        hr_tables = ("hr.badges", "hr.staff")
        before = digests(pg_cluster, "items")
        schema_before = pg_cluster.schema_dump("items")
        seq = pg_cluster.psql("select last_value from hr.badge_seq", "items")
        pg_cluster.psql("drop schema hr cascade", "items")
        others = digests(pg_cluster, "items")
        items.restore("db", None, None, paths=["items/hr"], options={"to_database": "items"})
        assert digests(pg_cluster, "items") == before
        assert {t: d for t, d in digests(pg_cluster, "items").items() if t not in hr_tables} == others
        assert pg_cluster.schema_dump("items") == schema_before
        assert pg_cluster.psql("select last_value from hr.badge_seq", "items") == seq

    def test_schema_not_in_the_point_is_named(self, items):
        """A schema the point does not have is a NotInDump error naming it."""
        with pytest.raises(NotInDump, match="nosuch"):
            items.restore("db", None, None, options={"to_database": "items", "schemas": ("nosuch",)})
