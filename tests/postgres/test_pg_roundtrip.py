"""A database backed up and restored whole comes back equal: every row, the schema,
sequences, large objects and grants; as files it is usable by plain pg_restore."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from pgshop import build_shop, large_objects
from strongroom.vault import Vault
from strongroom_postgres.feed import read_dump_toc
from strongroom_postgres.layout import read_manifest
from vaultkit import Cli


@pytest.fixture(scope="module")
def shop(pg_cluster, tmp_path_factory):
    """The sample database ``shop`` (120k orders) backed up once: (vault, point, home)."""
    build_shop(pg_cluster, "shop")
    home = str(tmp_path_factory.mktemp("pghome"))
    url = str(tmp_path_factory.mktemp("pgvault") / "vault")
    vault = Vault.create(url, home=home)
    vault.protect("postgres", "db", {
        "connection": {"params": {"host": pg_cluster.socket, "port": str(pg_cluster.port), "user": "postgres"}},
        "databases": ["shop"]})
    started = time.monotonic()
    point = vault.backup("db")
    print(f"\nbackup of shop: {point.stats['bytes_read']} bytes read, {point.stats['new_bytes']} new,"
          f" {point.stats['stored_bytes']} stored in {time.monotonic() - started:.2f} s")
    yield vault, point, home
    pg_cluster.dropdb("shop")


def sequences(cluster, db: str) -> list[str]:
    return cluster.psql("select format('%I.%I=%s', schemaname, sequencename, last_value) from pg_sequences"
                        " order by 1", db).splitlines()


class TestWholeDatabase:
    def test_restored_copy_equals_the_source(self, pg_cluster, shop):
        """Every table's rows, the schema (pg_dump --schema-only), sequences, large objects
        and grants of the restored copy equal the source's."""
        vault, point, _ = shop
        started = time.monotonic()
        result = vault.restore("db", point.point_id, None, options={"to_database": "shop_copy"})
        print(f"\nrestore of shop: {result.stats.bytes_written} bytes in {time.monotonic() - started:.2f} s")
        try:
            tables = pg_cluster.tables("shop")
            assert len(tables) == 8 and pg_cluster.tables("shop_copy") == tables
            for table in tables:
                assert pg_cluster.table_digest("shop_copy", table) == pg_cluster.table_digest("shop", table), table
            assert pg_cluster.table_digest("shop", "sales.orders")[0] == 120_000
            assert pg_cluster.schema_dump("shop_copy") == pg_cluster.schema_dump("shop")
            assert sequences(pg_cluster, "shop_copy") == sequences(pg_cluster, "shop")
            assert large_objects(pg_cluster, "shop_copy") == large_objects(pg_cluster, "shop")
            assert len(large_objects(pg_cluster, "shop")) == 5
            assert pg_cluster.psql("select has_table_privilege('shop_reader', 'sales.orders', 'select')",
                                   "shop_copy") == "t"
            dump = vault.tree(point).lookup("databases/shop.dump")
            assert result.stats.files == 1 and result.stats.bytes_written == dump.size > 5_000_000
        finally:
            pg_cluster.dropdb("shop_copy")

    def test_parallel_restore_through_a_temporary_file(self, pg_cluster, shop):
        """--jobs 2 restores the same content through a temporary file and pg_restore -j."""
        vault, point, _ = shop
        vault.restore("db", point.point_id, None, options={"to_database": "shop_par", "jobs": 2})
        try:
            for table in ("sales.orders", "hr.staff", "sales.events_2025"):
                assert pg_cluster.table_digest("shop_par", table) == pg_cluster.table_digest("shop", table)
        finally:
            pg_cluster.dropdb("shop_par")

    def test_force_replaces_an_existing_database(self, pg_cluster, shop):
        """--force replaces an existing database with the point's and leaves no temporary one."""
        vault, point, _ = shop
        pg_cluster.createdb("shop_old")
        pg_cluster.psql("create table junk(x int)", "shop_old")
        before = pg_cluster.databases()
        vault.restore("db", point.point_id, None, options={"to_database": "shop_old", "force": True})
        try:
            assert pg_cluster.databases() == before
            assert "public.junk" not in pg_cluster.tables("shop_old")
            assert pg_cluster.table_digest("shop_old", "hr.badges") == pg_cluster.table_digest("shop", "hr.badges")
        finally:
            pg_cluster.dropdb("shop_old")


class TestPointContent:
    def test_point_holds_manifest_globals_and_one_stream_per_database(self, pg_cluster, shop):
        """The point is application-consistent and holds manifest.json, globals.sql, the dump
        and the dump's block map."""
        vault, point, _ = shop
        assert point.consistency == "application-consistent"
        tree = vault.tree(point)
        names = {path: entry.type for path, entry in tree.walk()}
        assert names == {"manifest.json": "stream", "globals.sql": "stream", "databases": "dir",
                         "databases/shop.dump": "stream", "databases/shop.blocks": "stream"}
        manifest = json.loads(vault.open_file("db", None, "manifest.json").read())
        assert manifest["server"]["version_num"] >= 90200
        assert [d["name"] for d in manifest["databases"]] == ["shop"]
        assert manifest["databases"][0]["size"] > 0 and manifest["tools"]["pg_dump"]
        assert b"CREATE ROLE shop_reader" in vault.open_file("db", None, "globals.sql").read()
        assert vault.open_file("db", None, "databases/shop.dump").read(5) == b"PGDMP"

    def test_toc_is_read_from_the_start_of_the_dump_only(self, pg_cluster, shop):
        """Reading the TOC through the vault fetches one or two chunks of a dump of many, and
        lists the same entries as pg_restore -l."""
        vault, point, _ = shop
        ctx = vault.point_view("db", point.point_id)
        record = read_manifest(ctx).databases[0]
        toc, fetched = read_dump_toc(ctx, record)
        assert len(ctx.lookup(record.entry).chunks) > 5 and fetched <= 2
        listing = subprocess.run(["pg_restore", "-l"], input=vault.open_file("db", None, record.entry).read(),
                                 capture_output=True, check=True).stdout.decode()
        ids = [int(line.split(";")[0]) for line in listing.splitlines() if line and not line.startswith(";")]
        assert sorted(ids) == sorted(e.dump_id for e in toc.entries if e.desc not in (
            "ENCODING", "STDSTRINGS", "SEARCHPATH", "DATABASE"))


class TestCommandLine:
    def test_restore_as_files_gives_dumps_plain_pg_restore_accepts(self, pg_cluster, shop, tmp_path):
        """restore --target DIR writes the dump (and its block map), globals and manifest;
        pg_restore restores the dump."""
        vault, _, home = shop
        cli = Cli(vault.url)
        cli("restore", "db", "--target", str(tmp_path / "out"), env={"STRONGROOM_HOME": home})
        out = tmp_path / "out"
        assert sorted(p.name for p in out.rglob("*")) == ["databases", "globals.sql", "manifest.json", "shop.blocks",
                                                          "shop.dump"]
        dump = out / "databases" / "shop.dump"
        assert os.stat(dump).st_mode & 0o077 == 0
        pg_cluster.createdb("shop_files")
        try:
            subprocess.run(["pg_restore", "--exit-on-error", "-d", "shop_files", str(dump)],
                           env=pg_cluster.env, check=True, capture_output=True)
            assert pg_cluster.table_digest("shop_files", "sales.orders") == pg_cluster.table_digest("shop", "sales.orders")
        finally:
            pg_cluster.dropdb("shop_files")

    def test_browse_lists_databases_schemas_and_tables(self, pg_cluster, shop):
        """browse goes from the databases to the schemas, their tables, and a table's parts."""
        vault, _, home = shop
        cli = Cli(vault.url)
        env = {"STRONGROOM_HOME": home}

        def rows(*path):
            return json.loads(cli("browse", "--json", "db", *path, env=env).stdout)

        top = rows()
        assert [(r["name"], r["type"]) for r in top] == [("shop", "database"), ("globals.sql", "globals")]
        assert top[0]["size"] > 5_000_000
        schemas = {r["name"]: r for r in rows("shop")}
        assert {"sales", "hr", 'odd "name".s'} <= set(schemas)
        assert "5 tables" in schemas["sales"]["detail"]
        assert any(r["type"] == "large-objects" for r in rows("shop"))
        sales = {r["name"]: r for r in rows("shop/sales")}
        assert sales["orders"]["type"] == "table" and "with data" in sales["orders"]["detail"]
        assert sales["big_orders"]["type"] == "view" and sales["customer_totals"]["type"] == "materialized view"
        parts = rows(sales["orders"]["path"])
        kinds = {r["type"] for r in parts}
        assert {"table", "table data", "index", "constraint", "sequence", "trigger",
                "not restored"} <= kinds
        odd = rows("shop/odd \"name\".s")
        assert [r["name"] for r in odd] == ["ta.ble x"]
        text = cli("browse", "db", "shop/sales", env=env).stdout
        assert "orders" in text and "TYPE" in text
