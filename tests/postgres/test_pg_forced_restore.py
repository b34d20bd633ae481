"""Item-level restores a DBA can trust, on a schema-rich database: ``--force`` over a
partitioned table, a partition and a referenced table; cross-schema keys; dependents
reported transitively; grants exactly the source's whatever the target's default
privileges; every comparison against the source's catalog (pg_constraint, aclexplode,
pg_inherits, pg_policy) and data.

Before each test the database ``rich`` is restored whole from the point (which also
checks that a whole restore brings back the extension, RLS and large objects exactly),
then the target gets default privileges the source never had.
"""

from __future__ import annotations

import json

import pytest

from strongroom.testing import Cli
from strongroom.vault import Vault
from strongroom_postgres.errors import ForeignKeysNotValid, PostgresRestoreFailed

SCHEMAS = "('app', 'ref')"

RICH_SQL = """
do $$ begin
  if not exists (select from pg_roles where rolname = 'rich_reader') then create role rich_reader; end if;
  if not exists (select from pg_roles where rolname = 'rich_writer') then create role rich_writer; end if;
end $$;
create extension if not exists citext;
create schema app;
create schema ref;
create table ref.countries(code text primary key, name text not null);
grant select on ref.countries to rich_reader;
create table app.cities(id int primary key, name text not null, country text not null references ref.countries(code));
create table ref.capitals(city int primary key references app.cities(id), since int);
create table app.users(id int primary key, email citext unique not null);
create table app.measurements(id int, at date, city int not null references app.cities(id), v numeric,
                              primary key (id, at)) partition by range (at);
create table app.measurements_2023 partition of app.measurements for values from ('2023-01-01') to ('2024-01-01');
create table app.measurements_2024 partition of app.measurements for values from ('2024-01-01') to ('2025-01-01');
create table app.measurements_2025 partition of app.measurements for values from ('2025-01-01') to ('2026-01-01');
create index measurements_city_idx on app.measurements(city);
create table app.readings(id int primary key, measurement int not null, at date not null,
                          foreign key (measurement, at) references app.measurements(id, at));
create type app.mood as enum ('calm', 'busy');
create function app.city_label(city int) returns text language sql stable
  as $f$ select name || ' (' || country || ')' from app.cities where id = city $f$;
grant execute on function app.city_label(int) to rich_reader;
create table app.notes(id serial primary key, author text not null, body text);
alter table app.notes enable row level security;
create policy notes_own on app.notes using (author = current_user);
create view app.big_cities as select id, name from app.cities where id % 2 = 0;
create view app.big_city_names as select name from app.big_cities;
insert into ref.countries select 'c' || g, 'country ' || g from generate_series(1, 50) g;
insert into app.cities select g, 'city ' || g, 'c' || (1 + g % 50) from generate_series(1, 500) g;
insert into ref.capitals select g * 10, 1900 + g from generate_series(1, 50) g;
insert into app.users select g, 'User' || g || '@Example.org' from generate_series(1, 300) g;
insert into app.measurements select g, date '2023-01-01' + g % 1000, 1 + g % 500, g / 7.0 from generate_series(1, 6000) g;
insert into app.readings select g, g, date '2023-01-01' + g % 1000 from generate_series(1, 3000) g;
insert into app.notes select g, 'author' || g % 3, 'note ' || g from generate_series(1, 100) g;
select lo_from_bytea(0, convert_to(repeat('blob ' || g, 500), 'UTF8')) from generate_series(1, 3) g;
grant usage on schema app to rich_reader;
grant select on app.cities, app.big_cities to rich_reader;
grant select, insert on app.users to rich_reader;
analyze;
"""


def facts(cluster, db: str) -> dict:
    """What must be equal between the source and a restore: data, keys, grants,
    partitions, policies, views, large objects."""
    def rows(sql: str) -> list[str]:
        return cluster.psql(sql, db).splitlines()

    tables = [t for t in cluster.tables(db) if t.split(".")[0] in ("app", "ref")]
    return {
        "data": {t: cluster.table_digest(db, t) for t in tables},
        "constraints": rows(
            "select conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated"
            f" from pg_constraint where connamespace::regnamespace::text in {SCHEMAS} order by 1"),
        "grants": rows(
            "select c.oid::regclass || ' ' || a.grantee::regrole || ' ' || a.privilege_type from pg_class c,"
            " aclexplode(coalesce(c.relacl, acldefault((case c.relkind when 'S' then 's' else 'r' end)::\"char\", c.relowner))) a"
            f" where c.relnamespace::regnamespace::text in {SCHEMAS} and c.relkind in ('r', 'p', 'v', 'm', 'S')"
            " and a.grantee <> 0 order by 1"),
        "partitions": rows(
            "select inhrelid::regclass || ' of ' || inhparent::regclass || ' '"
            " || coalesce(pg_get_expr(c.relpartbound, c.oid), '') from pg_inherits join pg_class c on c.oid = inhrelid"
            f" where c.relnamespace::regnamespace::text in {SCHEMAS} order by 1"),
        "routines": rows(
            "select p.oid::regprocedure || ' ' || coalesce(a.grantee::regrole::text, 'public') || ' ' || a.privilege_type"
            " from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
            f" where p.pronamespace::regnamespace::text in {SCHEMAS} order by 1"),
        "types": rows(
            "select t.oid::regtype || ' ' || coalesce(a.grantee::regrole::text, 'public') || ' ' || a.privilege_type"
            " from pg_type t, aclexplode(coalesce(t.typacl, acldefault('T', t.typowner))) a"
            f" where t.typnamespace::regnamespace::text in {SCHEMAS} and t.typtype = 'e' order by 1"),
        "policies": rows("select polrelid::regclass || ' ' || polname || ' ' || pg_get_expr(polqual, polrelid)"
                         " from pg_policy order by 1") + rows(
            f"select oid::regclass from pg_class where relrowsecurity and relnamespace::regnamespace::text in {SCHEMAS}"),
        "views": rows(f"select schemaname || '.' || viewname || ' ' || definition from pg_views"
                      f" where schemaname in {SCHEMAS} order by 1"),
        "objects": rows("select oid || ':' || md5(lo_get(oid)) from pg_largeobject_metadata order by oid"),
        "extensions": rows("select extname from pg_extension order by 1"),
    }


@pytest.fixture(scope="module")
def rich(pg_cluster, tmp_path_factory):
    """Database ``rich`` backed up once; yields (vault, home, the source's facts)."""
    pg_cluster.dropdb("rich")
    pg_cluster.createdb("rich")
    sql = RICH_SQL
    if pg_cluster.psql("select count(*) from pg_available_extensions where name = 'citext'") == "0":
        sql = sql.replace("create extension if not exists citext;", "").replace("email citext", "email text")
    pg_cluster.script(sql, db="rich")
    home = str(tmp_path_factory.mktemp("pghome"))
    vault = Vault.create(str(tmp_path_factory.mktemp("pgvault") / "vault"), home=home)
    vault.protect("postgres", "db", {
        "connection": {"params": {"host": pg_cluster.socket, "port": str(pg_cluster.port), "user": "postgres"}},
        "databases": ["rich"]})
    vault.backup("db")
    source = facts(pg_cluster, "rich")
    yield vault, home, source
    for db in ("rich", "rich_cities"):
        pg_cluster.dropdb(db)


@pytest.fixture
def fresh(pg_cluster, rich):
    """``rich`` restored whole from the point (exactly the source), then default
    privileges in it that grant everything new in ``app`` to rich_writer."""
    vault, home, source = rich
    vault.restore("db", None, None, options={"to_database": "rich", "force": True})
    assert facts(pg_cluster, "rich") == source
    pg_cluster.psql("alter default privileges in schema app grant all on tables to rich_writer", "rich")
    pg_cluster.psql("alter default privileges in schema app grant all on sequences to rich_writer", "rich")
    pg_cluster.psql("alter default privileges in schema app grant execute on functions to rich_writer", "rich")
    pg_cluster.psql("alter default privileges revoke execute on functions from public", "rich")
    pg_cluster.psql("alter default privileges in schema app grant usage on types to rich_writer", "rich")
    return vault, home, source


def restore(vault, **options):
    return vault.restore("db", None, None, options={"to_database": "rich", **options})


class TestForcedPartitions:
    def test_partitioned_table_is_replaced_with_its_partition_tree(self, pg_cluster, fresh):
        """--force over a range-partitioned table with 3 partitions: the tree comes back
        exactly (rows, keys, attached indexes, bounds); the key of another table that
        references it is dropped and added back (and said); a partition the point does
        not have is detached and kept, with a warning saying how to attach it back."""
        vault, _, source = fresh
        pg_cluster.psql("delete from app.readings where id > 2000; delete from app.measurements where id > 2000;"
                        " update app.measurements set v = -1 where id < 100", "rich")
        pg_cluster.psql("create table app.measurements_2026 partition of app.measurements"
                        " for values from ('2026-01-01') to ('2027-01-01');"
                        " insert into app.measurements values (1, '2026-05-01', 1, 1)", "rich")
        result = restore(vault, tables=("app.measurements",), force=True)
        after = facts(pg_cluster, "rich")
        data = {t: d for t, d in after["data"].items() if t != "app.measurements_2026"}
        assert {t: d for t, d in data.items() if t.startswith("app.measurements")} == \
            {t: d for t, d in source["data"].items() if t.startswith("app.measurements")}
        assert [c for c in after["constraints"] if "measurements_2026" not in c] == source["constraints"]
        assert [p for p in after["partitions"] if "measurements_2026" not in p] == source["partitions"]
        assert pg_cluster.psql("select count(*) from pg_inherits where inhrelid = 'app.measurements_2026'::regclass",
                               "rich") == "0"
        assert pg_cluster.psql("select count(*) from app.measurements_2026", "rich") == "1"
        (kept,) = [w for w in result.warnings if "measurements_2026" in w]
        assert "detached and kept" in kept and "ATTACH PARTITION" in kept
        assert "app.readings.readings_measurement_at_fkey" in result.summary

    def test_partition_is_replaced_and_attached_again(self, pg_cluster, fresh):
        """--force over one partition whose rows another table references: the key to the
        partitioned table is dropped, the partition detached, replaced and attached again
        (its primary key attached to the parent's), the key added back (and said); the
        other partitions are not touched."""
        vault, _, source = fresh
        pg_cluster.psql("update app.measurements_2024 set v = 0 where id % 2 = 0", "rich")
        other = pg_cluster.table_digest("rich", "app.measurements_2023")
        result = restore(vault, tables=("app.measurements_2024",), force=True)
        assert "dropped and added back: app.readings.readings_measurement_at_fkey" in result.summary
        after = facts(pg_cluster, "rich")
        assert after["data"]["app.measurements_2024"] == source["data"]["app.measurements_2024"]
        assert pg_cluster.table_digest("rich", "app.measurements_2023") == other
        assert after["partitions"] == source["partitions"]
        assert after["constraints"] == source["constraints"]
        assert after["grants"] == source["grants"]


class TestForcedReferencedTable:
    def test_referencing_keys_are_dropped_and_added_back(self, pg_cluster, fresh):
        """--force over a table that a key of a table in another schema references: the key
        is dropped, the table replaced, the key added back valid; the command line names
        it in its output and in --json."""
        vault, home, source = fresh
        pg_cluster.psql("update ref.countries set name = 'renamed' where code < 'c3'", "rich")
        cli = Cli(vault.url)
        options = ("--to-database", "rich", "--table", "ref.countries", "--force")
        result = cli("restore", "db", *options, "--json", env={"STRONGROOM_HOME": home})
        summary = json.loads(result.stdout)["summary"]
        assert summary.endswith("; foreign keys of other tables dropped and added back: app.cities.cities_country_fkey")
        assert facts(pg_cluster, "rich") == source
        result = cli("restore", "db", *options, env={"STRONGROOM_HOME": home})
        assert "dropped and added back: app.cities.cities_country_fkey" in result.stdout
        after = facts(pg_cluster, "rich")
        assert after["data"] == source["data"]
        assert after["constraints"] == source["constraints"]
        assert after["grants"] == source["grants"]

    def test_views_and_keys_on_a_replaced_table_come_back(self, pg_cluster, fresh):
        """--force over a table that a view on a view uses and that keys of a table in
        another schema and of a partitioned table reference: the views are replaced from
        the point, the keys added back; the database ends as the source was."""
        vault, _, source = fresh
        pg_cluster.psql("update app.cities set name = 'renamed' where id < 100", "rich")
        result = restore(vault, tables=("app.cities",), force=True)
        assert "views that use them replaced from the point too: app.big_cities, app.big_city_names" in result.summary
        assert "ref.capitals.capitals_city_fkey" in result.summary
        assert "app.measurements.measurements_city_fkey" in result.summary
        assert not [w for w in result.warnings if "big_cit" in w]
        assert facts(pg_cluster, "rich") == source

    def test_a_key_the_restored_rows_break_is_not_left_missing(self, pg_cluster, fresh):
        """A key of another table that the restored rows no longer satisfy is added back
        NOT VALID, and the restore ends with exit 88 naming it and the VALIDATE statement;
        the table itself is restored."""
        vault, _, source = fresh
        pg_cluster.psql("insert into ref.countries values ('zz', 'new'); insert into app.cities values (9999, 'x', 'zz')",
                        "rich")
        with pytest.raises(ForeignKeysNotValid) as failed:
            restore(vault, tables=("ref.countries",), force=True)
        assert failed.value.exit_code == 88
        message = str(failed.value)
        assert "the restored rows break app.cities.cities_country_fkey: added back NOT VALID" in message
        assert 'ALTER TABLE "app"."cities" VALIDATE CONSTRAINT "cities_country_fkey"' in message
        assert pg_cluster.psql("select convalidated from pg_constraint where conname = 'cities_country_fkey'",
                               "rich") == "f"
        assert pg_cluster.table_digest("rich", "ref.countries") == source["data"]["ref.countries"]
        with pytest.raises(AssertionError, match="violates foreign key"):
            pg_cluster.psql("insert into app.cities values (8888, 'y', 'nowhere')", "rich")


class TestSchemaAndDependents:
    def test_schema_comes_back_with_its_keys_to_and_from_another_schema(self, pg_cluster, fresh):
        """DROP SCHEMA app CASCADE (which drops ref's key to it), then restoring schema app:
        the keys both ways between app and ref are recreated, and everything is as in the
        source: data, constraints, partitions, RLS policy, views, grants of tables,
        sequences, functions and types (the target's default privileges add none and take
        none away), the extension and large objects untouched."""
        vault, _, source = fresh
        pg_cluster.psql("drop schema app cascade", "rich")
        result = restore(vault, schemas=("app",))
        assert facts(pg_cluster, "rich") == source
        assert "ref.capitals.capitals_city_fkey" in result.summary
        assert not [w for w in result.warnings if "fkey" in w]

    def test_view_on_a_view_is_reported_too(self, pg_cluster, rich):
        """A table restored into a new database: the view on it and the view on that view
        are both listed as not restored, as is its key to a table the target lacks."""
        vault, _, _ = rich
        pg_cluster.dropdb("rich_cities")
        result = vault.restore("db", None, None, options={"to_database": "rich_cities", "tables": ("app.cities",)})
        warnings = "\n".join(result.warnings)
        assert "view app.big_cities not restored: it uses app.cities;" in warnings
        assert "view app.big_city_names not restored: it uses app.big_cities, which is not restored" in warnings
        assert "cities_country_fkey not restored" in warnings

    def test_own_key_the_restored_rows_break(self, pg_cluster, fresh):
        """A dropped table restored after a row it references was deleted: its key is
        added back NOT VALID (exit 88, named), the keys of other tables to it valid."""
        vault, _, source = fresh
        pg_cluster.psql("drop table app.cities cascade", "rich")
        pg_cluster.psql("delete from ref.capitals where city in (select id from generate_series(1, 500) id"
                        " where 'c' || (1 + id % 50) = 'c2'); delete from ref.countries where code = 'c2'", "rich")
        with pytest.raises(ForeignKeysNotValid, match="break app.cities.cities_country_fkey: added back NOT VALID"):
            restore(vault, tables=("app.cities",))
        valid = pg_cluster.psql("select conname || ' ' || convalidated from pg_constraint where conname in"
                                " ('cities_country_fkey', 'capitals_city_fkey', 'measurements_city_fkey')"
                                " and conparentid = 0 order by 1", "rich").splitlines()
        assert valid == ["capitals_city_fkey true", "cities_country_fkey false", "measurements_city_fkey true"]
        assert pg_cluster.table_digest("rich", "app.cities") == source["data"]["app.cities"]

    def test_table_gets_exactly_the_source_grants(self, pg_cluster, fresh):
        """A dropped table restored into a target whose default privileges grant all to
        rich_writer gets exactly the source's grants; its citext column comes back."""
        vault, _, source = fresh
        pg_cluster.psql("drop table app.users", "rich")
        pg_cluster.psql("create table app.probe(x int)", "rich")
        assert pg_cluster.psql("select has_table_privilege('rich_writer', 'app.probe', 'delete')", "rich") == "t"
        pg_cluster.psql("drop table app.probe", "rich")
        restore(vault, tables=("app.users",))
        assert pg_cluster.psql("select has_table_privilege('rich_writer', 'app.users', 'select')", "rich") == "f"
        assert pg_cluster.psql("select has_table_privilege('rich_reader', 'app.users', 'insert')", "rich") == "t"
        assert facts(pg_cluster, "rich") == source
        if "citext" not in source["extensions"]:
            pytest.skip("the citext extension is not installed with this PostgreSQL (Debian: postgresql-contrib)")
        assert pg_cluster.psql("select count(*) from app.users where email = 'user7@example.org'", "rich") == "1"

    def test_no_owner_restores_without_grants(self, pg_cluster, rich):
        """With --no-owner a table comes back owned by the restoring user, without the
        point's grants (and its grants are not touched)."""
        vault, _, source = rich
        pg_cluster.dropdb("rich_cities")
        vault.restore("db", None, None, options={"to_database": "rich_cities", "tables": ("ref.countries",),
                                                 "no_owner": True})
        assert pg_cluster.table_digest("rich_cities", "ref.countries") == source["data"]["ref.countries"]
        grants = pg_cluster.psql("select count(*) from pg_class c, aclexplode(c.relacl) a"
                                 " where c.oid = 'ref.countries'::regclass", "rich_cities")
        assert grants == "0"


class TestFailures:
    def test_pg_restore_failing_half_way_changes_nothing(self, pg_cluster, fresh, tmp_path):
        """A pg_restore that stops in the middle of a table's rows (its script cut short,
        exit 1): the forced restore fails with exit 88 and the database is as before,
        its keys and partitions included."""
        vault, _, _ = fresh
        pg_cluster.psql("delete from app.readings where id > 1000", "rich")
        before = facts(pg_cluster, "rich")
        bindir = tmp_path / "bin"
        bindir.mkdir()
        for tool in ("pg_dump", "pg_dumpall", "psql"):
            (bindir / tool).symlink_to(f"{pg_cluster.bindir}/{tool}")
        (bindir / "pg_restore").write_text(
            f"#!/bin/sh\n'{pg_cluster.bindir}/pg_restore' \"$@\" | head -c 60000\n"
            "echo 'pg_restore: error: could not read input file: end of file' >&2\nexit 1\n")
        (bindir / "pg_restore").chmod(0o755)
        with pytest.raises(PostgresRestoreFailed, match="could not read input file.*nothing was changed"):
            restore(vault, tables=("app.measurements", "app.readings"), force=True, bindir=str(bindir))
        assert facts(pg_cluster, "rich") == before
