"""How a restore creates its database: created and marked through one connection, with
the server's default locale when the point's is missing there, and dropped when the
marking fails or the creation is interrupted; the statements of one ``psql`` stop at the
first that fails."""

from __future__ import annotations

import attrs
import pytest

from strongroom_postgres import restore as pgrestore
from strongroom_postgres import server as pgserver
from strongroom_postgres.conninfo import Connection
from strongroom_postgres.errors import PostgresError
from strongroom_postgres.layout import DatabaseRecord, Manifest
from strongroom_postgres.restore import DatabaseRestore, Request


@pytest.fixture
def conn(pg_source) -> Connection:
    return Connection.from_dict(pg_source["connection"])


def restorer(pg_cluster, conn: Connection, target: str, **record: str) -> DatabaseRestore:
    """A restore of a point's database ``db`` into ``target`` (only its creation is used)."""
    manifest = Manifest({"tools": {"pg_dump": "15.0"}})
    request = Request(record=DatabaseRecord(name="db", entry="databases/db.dump", **record), target=target)
    return DatabaseRestore(None, manifest, conn, request, bindir=pg_cluster.bindir)  # type: ignore[arg-type]


def comment_of(pg_cluster, name: str) -> str:
    return pg_cluster.psql(f"select shobj_description(oid, 'pg_database') from pg_database where datname = '{name}'")


class TestExecuteEach:
    def test_statements_stop_at_the_first_failure(self, pg_cluster, conn):
        """Three statements through one psql, the second fails: one succeeded, the error is
        the server's line, and the third was not run."""
        pg_cluster.createdb("each_db")
        try:
            server = pgserver.Server(conn, pgserver.first_toolset(pg_cluster.bindir))
            done, error = server.execute_each(
                ["create table first_one()", "select no_such_column from pg_class", "create table third_one()"],
                "each_db")
            assert done == 1 and isinstance(error, PostgresError) and "no_such_column" in str(error)
            assert pg_cluster.tables("each_db") == ["public.first_one"]
            assert server.execute_each(["create table third_one()", "select 1"], "each_db") == (2, None)
        finally:
            pg_cluster.dropdb("each_db")


class TestCreate:
    def test_created_with_the_points_locale_and_marked(self, pg_cluster, conn):
        """The new database has the point's encoding and collation, and the mark of this restore."""
        restore = restorer(pg_cluster, conn, "create_marked", encoding="UTF8", collate="C", ctype="C")
        try:
            restore._create("create_marked")
            assert comment_of(pg_cluster, "create_marked") == pgrestore._mark_text(restore.process)
            assert pg_cluster.psql("select datcollate from pg_database where datname = 'create_marked'") == "C"
            assert restore.warnings == []
        finally:
            pg_cluster.dropdb("create_marked")

    def test_a_locale_the_server_lacks_falls_back_with_a_warning(self, pg_cluster, conn):
        """A point made where xx_YY.UTF-8 existed: created with the server's default locale,
        marked, and a warning names the locale."""
        restore = restorer(pg_cluster, conn, "create_fallback", encoding="UTF8", collate="xx_YY.UTF-8",
                           ctype="xx_YY.UTF-8")
        try:
            restore._create("create_fallback")
            assert comment_of(pg_cluster, "create_fallback") == pgrestore._mark_text(restore.process)
            assert len(restore.warnings) == 1 and "xx_YY.UTF-8" in restore.warnings[0]
        finally:
            pg_cluster.dropdb("create_fallback")

    def test_a_failed_mark_drops_the_new_database(self, pg_cluster, conn, monkeypatch):
        """The database is created but its mark fails: it is dropped, and the error raised."""
        restore = restorer(pg_cluster, conn, "create_unmarked")
        real = pgserver.Server.execute_each
        monkeypatch.setattr(pgserver.Server, "execute_each",
                            lambda self, statements: real(self, [statements[0], "select no_such_column from pg_class"]))
        with pytest.raises(PostgresError, match="no_such_column"):
            restore._create("create_unmarked")
        assert "create_unmarked" not in pg_cluster.databases()

    def test_an_interrupted_creation_drops_the_database(self, pg_cluster, conn, monkeypatch):
        """Ctrl-C once the database exists but before the call returned: it is dropped."""
        restore = restorer(pg_cluster, conn, "create_interrupted")
        real = pgserver.Server.execute_each

        def interrupted(self, statements):
            real(self, statements[:1])
            raise KeyboardInterrupt

        monkeypatch.setattr(pgserver.Server, "execute_each", interrupted)
        with pytest.raises(KeyboardInterrupt):
            restore._create("create_interrupted")
        assert "create_interrupted" not in pg_cluster.databases()

    def test_only_an_unmarked_or_own_database_is_dropped_after_an_interruption(self, pg_cluster, conn):
        """After an interruption, a database with another comment is left alone."""
        restore = restorer(pg_cluster, conn, "x")
        pg_cluster.createdb("create_other")
        pg_cluster.psql("comment on database create_other is 'someone else'")
        try:
            restore._drop_if_unmarked("create_other")
            restore._drop_if_unmarked("create_never_made")
            assert "create_other" in pg_cluster.databases()
        finally:
            pg_cluster.dropdb("create_other")


def test_leftovers_and_existence_in_one_query(pg_cluster, conn):
    """The target exists unless it was a leftover of a gone process, which is dropped."""
    restore = restorer(pg_cluster, conn, "left_target")
    pg_cluster.createdb("left_target")
    try:
        assert restore._drop_leftovers("left_target") is True
        boot = restore.process.start.partition("/")[0]
        gone = attrs.evolve(restore.process, start=f"{boot}/1")  # this pid, started at another tick: gone
        pg_cluster.psql(f"comment on database left_target is '{pgrestore._mark_text(gone)}'")
        assert restore._drop_leftovers("left_target") is False
        assert "left_target" not in pg_cluster.databases() and restore.warnings
        assert restore._drop_leftovers("left_target") is False
    finally:
        pg_cluster.dropdb("left_target")
