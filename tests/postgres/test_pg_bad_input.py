"""Bad input and credentials: one clear line and a stable exit code; secrets never stored."""

from __future__ import annotations

import json
import os

import pytest

from vaultkit import Cli

PASSWORD = "s3cret-Pa55-qx7Zw"


def one_line_error(result, code: int, *words: str) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strongroom: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def app_db(pg_cluster):
    """Database ``appdb`` owned by role ``app`` (password login over TCP), with one table."""
    pg_cluster.psql(f"create role app login password '{PASSWORD}'")
    pg_cluster.psql("create database appdb owner app")
    pg_cluster.psql("create table t(id int primary key, v text); insert into t select g, 'v' || g"
                    " from generate_series(1, 1000) g; alter table t owner to app", "appdb")
    yield
    pg_cluster.dropdb("appdb")
    pg_cluster.psql("drop role app")


@pytest.fixture
def cli(vault_url):
    cli = Cli(vault_url)
    cli("vault", "create", vault_url)
    return cli


def tcp_args(cluster) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(cluster.port), "--user", "app", "--database", "appdb"]


class TestCredentials:
    def test_password_from_env_works_and_is_stored_nowhere(self, pg_cluster, app_db, cli, vault_url):
        """With --password-env only the variable's name is stored: the password is in no
        file of the vault storage, no item, job or point document, and no error."""
        env = {"APP_PW": PASSWORD}
        cli("protect", "postgres", "app", *tcp_args(pg_cluster), "--password-env", "APP_PW", env=env)
        cli("backup", "app", env=env)
        for root, _, files in os.walk(vault_url):
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    assert PASSWORD.encode() not in fh.read(), name
        items = cli("items", "--json").stdout
        assert "APP_PW" in items and PASSWORD not in items
        assert PASSWORD not in cli("jobs", "--json").stdout + cli("points", "--json").stdout
        failed = cli("backup", "app", env={"APP_PW": "wrong" + PASSWORD}, expect=None)
        line = one_line_error(failed, 81, "password authentication failed", "app@127.0.0.1")
        assert PASSWORD not in failed.output
        assert PASSWORD not in cli("jobs", "--json").stdout
        assert "password authentication failed" in line

    def test_unset_password_variable_is_named(self, pg_cluster, app_db, cli):
        """A password variable that is not set at backup time is named in the error (exit 36)."""
        cli("protect", "postgres", "app", *tcp_args(pg_cluster), "--password-env", "APP_PW",
            env={"APP_PW": PASSWORD})
        one_line_error(cli("backup", "app", expect=None), 36, "env:APP_PW", "APP_PW is not set")

    def test_password_file_and_passfile(self, pg_cluster, app_db, cli, tmp_path):
        """--password-file stores the path; --passfile uses libpq's password file."""
        pwfile = tmp_path / "pw"
        pwfile.write_text(PASSWORD + "\n")
        cli("protect", "postgres", "byfile", *tcp_args(pg_cluster), "--password-file", str(pwfile))
        cli("backup", "byfile")
        pgpass = tmp_path / "pgpass"
        pgpass.write_text(f"127.0.0.1:{pg_cluster.port}:*:app:{PASSWORD}\n")
        pgpass.chmod(0o600)
        env = {"PGPASSFILE": str(pgpass), "PGPASSWORD": "wrong"}
        cli("protect", "postgres", "bypass", *tcp_args(pg_cluster), "--passfile", env=env)
        cli("backup", "bypass", env=env)
        described = json.loads(cli("items", "--json").stdout)
        assert PASSWORD not in json.dumps(described)

    def test_dsn_with_a_password_is_refused(self, pg_cluster, cli):
        """A DSN holding a password is refused (it would be stored) without echoing it."""
        dsn = f"postgresql://app:{PASSWORD}@127.0.0.1:{pg_cluster.port}/appdb"
        line = one_line_error(cli("protect", "postgres", "x", "--dsn", dsn, expect=None), 47, "password")
        assert PASSWORD not in line

    def test_wrong_password_at_protect(self, pg_cluster, app_db, cli):
        """Protecting with a wrong password fails at once with the server's reason."""
        res = cli("protect", "postgres", "x", *tcp_args(pg_cluster), "--password-env", "APP_PW",
                  env={"APP_PW": "nope"}, expect=None)
        one_line_error(res, 81, "password authentication failed")
        assert "x" not in [i["name"] for i in json.loads(cli("items", "--json").stdout)]


class TestServerAndTools:
    def test_unreachable_server(self, cli):
        """A server that does not answer is a one-line connection error naming it."""
        res = cli("protect", "postgres", "x", "--dsn", "host=127.0.0.1 port=1 user=postgres", expect=None)
        one_line_error(res, 81, "127.0.0.1:1", "refused")

    def test_unknown_database(self, pg_cluster, pg_args, cli):
        """Protecting a database the server does not have names it (exit 83)."""
        res = cli("protect", "postgres", "x", *pg_args, "--database", "nosuch", expect=None)
        one_line_error(res, 83, "nosuch")

    def test_tools_folder_without_tools(self, pg_args, cli, tmp_path):
        """--bindir without the PostgreSQL tools is refused (exit 82)."""
        res = cli("protect", "postgres", "x", *pg_args, "--bindir", str(tmp_path), expect=None)
        one_line_error(res, 82, str(tmp_path))

    def test_dump_failure_fails_the_backup_and_writes_no_point(self, pg_cluster, app_db, cli):
        """A pg_dump that fails (no right to read a table) fails the backup with its reason."""
        pg_cluster.psql("create table private(x int)", "appdb")
        env = {"APP_PW": PASSWORD}
        try:
            cli("protect", "postgres", "app", *tcp_args(pg_cluster), "--password-env", "APP_PW", env=env)
            pg_cluster.psql("alter table private owner to postgres; revoke all on private from app", "appdb")
            res = cli("backup", "app", env=env, expect=None)
            one_line_error(res, 87, "pg_dump of database 'appdb' failed", "permission denied")
            assert json.loads(cli("points", "--json").stdout) == []
        finally:
            pg_cluster.psql("drop table private", "appdb")


class TestRestoreInput:
    @pytest.fixture
    def point(self, pg_cluster, app_db, cli, pg_args):
        cli("protect", "postgres", "app", *pg_args, "--database", "appdb")
        cli("backup", "app")
        return cli

    def test_existing_database_is_not_touched_without_force(self, pg_cluster, point):
        """Restoring onto an existing database is refused (exit 84) and changes nothing."""
        before = pg_cluster.table_digest("appdb", "t")
        one_line_error(point("restore", "app", "--to-database", "appdb", expect=None), 84, "appdb", "--force")
        assert pg_cluster.table_digest("appdb", "t") == before

    def test_table_not_in_the_point(self, point):
        """A table the point does not have is exit 86, naming it."""
        res = point("restore", "app", "--to-database", "appdb", "--table", "public.nosuch", expect=None)
        one_line_error(res, 86, "public.nosuch", "appdb")

    def test_database_not_in_the_point(self, point):
        """A database the point does not have is exit 86, listing those it has."""
        res = point("restore", "app", "--database", "other", "--to-database", "x", expect=None)
        one_line_error(res, 86, "other", "appdb")

    def test_restore_needs_a_destination(self, point, tmp_path):
        """Without --to-database or --target, or with both, restore says what to give (exit 3)."""
        one_line_error(point("restore", "app", expect=None), 3, "--to-database", "--target")
        res = point("restore", "app", "--to-database", "x", "--target", str(tmp_path), expect=None)
        one_line_error(res, 3, "choose one")

    def test_restore_to_an_unreachable_server(self, point):
        """Restoring to another server that does not answer is a connection error (exit 81)."""
        res = point("restore", "app", "--to-database", "x", "--host", "127.0.0.1", "--port", "1", expect=None)
        one_line_error(res, 81, "127.0.0.1:1")

    def test_failed_whole_restore_drops_the_new_database(self, pg_cluster, cli, pg_args):
        """A restore that fails (a role of the point is missing) drops the database it
        created; --no-owner then restores without owners and grants."""
        pg_cluster.psql("create role lonely")
        pg_cluster.createdb("lonelydb")
        pg_cluster.psql("create table t(x int); alter table t owner to lonely; insert into t values (1)", "lonelydb")
        cli("protect", "postgres", "lonely", *pg_args, "--database", "lonelydb")
        cli("backup", "lonely")
        pg_cluster.dropdb("lonelydb")
        pg_cluster.psql("drop role lonely")
        res = cli("restore", "lonely", "--to-database", "lonely2", expect=None)
        one_line_error(res, 88, "lonely2", "role \"lonely\" does not exist", "the new database was dropped")
        assert "lonely2" not in pg_cluster.databases()
        cli("restore", "lonely", "--to-database", "lonely2", "--no-owner")
        try:
            assert pg_cluster.psql("select x from t", "lonely2") == "1"
        finally:
            pg_cluster.dropdb("lonely2")
