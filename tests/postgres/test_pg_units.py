"""The postgres workload's parts on their own: connection strings, names, TOC parsing,
tool choice, error lines."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from strongroom import InvalidSecretReference, SecretNotAvailable, SecretResolver
from strongroom.errors import UsageError
from strongroom_postgres.errors import PostgresToolsMismatch
from strongroom_postgres import server as pgserver
from strongroom_postgres.conninfo import Connection, PasswordRef, parse_dsn, render
from strongroom_postgres.layout import dump_path, quote_name, unquote_name
from strongroom_postgres.selection import split_table
from strongroom_postgres.toc import DumpFormatError, read_toc


class TestConnectionStrings:
    def test_uri_with_hosts_port_database_and_parameters(self):
        """A URI gives user, hosts, ports, database and query parameters, percent-decoded."""
        assert parse_dsn("postgresql://ad%40min@db1:5433,[::1]:5434/my%2Fdb?sslmode=require") == {
            "user": "ad@min", "host": "db1,::1", "port": "5433,5434", "dbname": "my/db", "sslmode": "require"}
        assert parse_dsn("postgres://") == {}

    def test_keyword_string_with_quotes_and_escapes(self):
        """key=value strings accept spaces around '=', quoted values and backslash escapes."""
        assert parse_dsn("host = /tmp dbname='my db' user=o\\'neil application_name='a \\'b\\''") == {
            "host": "/tmp", "dbname": "my db", "user": "o'neil", "application_name": "a 'b'"}

    def test_render_round_trips(self):
        """Rendered strings parse back to the same parameters."""
        params = {"host": "/tmp/x y", "dbname": "it's \\ odd", "user": "u"}
        assert parse_dsn(render(params)) == params

    def test_malformed_keyword_string(self):
        """A keyword without '=' or an unterminated quote is a usage error."""
        with pytest.raises(UsageError):
            parse_dsn("host")
        with pytest.raises(UsageError):
            parse_dsn("host='x")

    def test_passwords_in_a_dsn_are_refused(self):
        """password and sslpassword in a DSN are refused: nothing secret is ever stored."""
        for dsn in ("postgresql://u:pw@h/db", "host=h password=pw", "host=h sslpassword=x"):
            with pytest.raises(UsageError, match="--password-ref"):
                Connection.from_options({"dsn": dsn})

    def test_restore_options_override_the_item_connection(self):
        """--host/--port/--user change the item's parameters; --dsn replaces them."""
        base = Connection.from_options({"host": "a", "port": "1", "user": "u", "password_env": "PW"})
        moved = Connection.from_options({"port": "2"}, base=base)
        assert dict(moved.params) == {"host": "a", "port": "2", "user": "u"}
        assert moved.password == PasswordRef("ref", "env:PW")
        other = Connection.from_options({"dsn": "host=b", "password_file": "pw"}, base=base)
        assert dict(other.params) == {"host": "b"}
        assert other.password == PasswordRef("ref", "file:" + os.path.abspath("pw"))

    def test_one_password_source_at_a_time(self):
        """Two password options at once are refused."""
        for given in ({"password_env": "A", "passfile": True}, {"password_ref": "env:A", "password_file": "f"}):
            with pytest.raises(UsageError, match="only one of --password-ref, --password-env"):
                PasswordRef.from_options(given, SecretResolver.builtin())

    def test_password_options_are_references(self, tmp_path, monkeypatch):
        """--password-env VAR and --password-file F store env:VAR and file:/abs/F, as
        --password-ref does; items stored with the older kinds env and file read the same."""
        monkeypatch.chdir(tmp_path)
        builtin = SecretResolver.builtin()
        assert PasswordRef.from_options({"password_ref": "file:pw"}, builtin) == PasswordRef(
            "ref", f"file:{tmp_path / 'pw'}")
        assert PasswordRef.from_options({"password_env": "PW"}, builtin).to_dict() == {
            "kind": "ref", "value": "env:PW"}
        assert PasswordRef.from_dict({"kind": "env", "value": "PW"}) == PasswordRef("ref", "env:PW")
        assert PasswordRef.from_dict({"kind": "file", "value": "/p"}) == PasswordRef("ref", "file:/p")
        with pytest.raises(InvalidSecretReference, match="unknown scheme 'vault'"):
            PasswordRef.from_options({"password_ref": "vault:db"}, builtin)

    def test_password_reaches_the_environment_only(self, monkeypatch, tmp_path):
        """The password goes to PGPASSWORD, read at every start of a tool; --passfile
        removes an inherited PGPASSWORD."""
        monkeypatch.setenv("PW_VAR", "hunter2")
        conn = Connection((("host", "h"),), PasswordRef("ref", "env:PW_VAR"))
        assert conn.environment()["PGPASSWORD"] == "hunter2"
        assert "PW_VAR" not in conn.environment()  # the password reaches the tools once
        monkeypatch.setenv("PW_VAR", "changed")
        assert conn.environment()["PGPASSWORD"] == "changed"
        assert "changed" not in conn.conninfo("db") and "changed" not in repr(conn)
        monkeypatch.setenv("PGPASSWORD", "inherited")
        assert "PGPASSWORD" not in Connection((), PasswordRef("passfile")).environment()
        (tmp_path / "pw").write_text("from-file\r\n")
        assert Connection((), PasswordRef("ref", f"file:{tmp_path / 'pw'}")).environment()["PGPASSWORD"] == "from-file"
        with pytest.raises(SecretNotAvailable, match="No such file"):
            Connection((), PasswordRef("ref", f"file:{tmp_path / 'missing'}")).environment()
        monkeypatch.delenv("PW_VAR")
        with pytest.raises(SecretNotAvailable, match="environment variable PW_VAR is not set"):
            conn.environment()


class TestNames:
    def test_database_names_become_safe_entry_names(self):
        """'/' and '%' are percent-encoded; '.' and '..' cannot arise (the suffix)."""
        for name in ("a/b", "50%", "..", ".", "x%2Fy", "naïve db"):
            assert unquote_name(quote_name(name)) == name
            assert "/" not in quote_name(name)
        assert dump_path("..") == "databases/...dump"

    def test_table_specs(self):
        """[SCHEMA.]TABLE, with double quotes around parts holding dots or quotes."""
        assert split_table("orders") == (None, "orders")
        assert split_table("sales.orders") == ("sales", "orders")
        assert split_table('"odd ""name"".s"."ta.ble x"') == ('odd "name".s', "ta.ble x")
        assert split_table("a.b.c") == ("a", "b.c")


class TestTocParser:
    def test_garbage_is_not_a_dump(self):
        """Data without the PGDMP signature, or cut inside the TOC, is a DumpFormatError."""
        with pytest.raises(DumpFormatError, match="PGDMP"):
            read_toc(io.BytesIO(b"not a dump"))
        with pytest.raises(DumpFormatError, match="ends inside"):
            read_toc(io.BytesIO(b"PGDMP\x01\x0e\x00\x04\x08\x01"))

    def test_unknown_archive_versions_are_refused(self):
        """Archive versions outside 1.12-1.16 are refused, naming the version."""
        with pytest.raises(DumpFormatError, match="1.99"):
            read_toc(io.BytesIO(b"PGDMP\x01\x63\x00\x04\x08\x01"))

    def test_real_dump_matches_its_header(self, pg_cluster):
        """The header of a real dump gives the database, versions and no compression."""
        dump = subprocess.run([f"{pg_cluster.bindir}/pg_dump", "-Fc", "-Z0", "-d", "postgres"],
                              env=pg_cluster.env, capture_output=True, check=True).stdout
        toc = read_toc(io.BytesIO(dump))
        assert toc.database == "postgres" and toc.compression == 0
        assert toc.version[:2] >= (1, 14) and toc.dump_version.startswith(str(pgserver.find_toolsets()[0].major))
        assert [e.desc for e in toc.entries][:3] == ["ENCODING", "STDSTRINGS", "SEARCHPATH"]


class TestTools:
    def test_newer_server_than_the_tools_says_what_to_install(self):
        """A server newer than every installed pg_dump is refused, naming the version to install."""
        with pytest.raises(PostgresToolsMismatch, match="postgresql-client-99"):
            pgserver.for_server(990001, "99.1", "h:5432", None)

    def test_tools_are_chosen_by_major_version(self):
        """The installed tools of the server's major version are chosen; older servers are fine."""
        installed = pgserver.find_toolsets()[0]
        assert pgserver.for_server(installed.major * 10000 + 1, "x", "h", None).major == installed.major
        assert pgserver.for_server(120005, "12.5", "h", None).major >= 12
        with pytest.raises(PostgresToolsMismatch, match="9.2"):
            pgserver.for_server(90100, "9.1", "h", None)
        with pytest.raises(PostgresToolsMismatch, match="pg_restore"):
            pgserver.for_dump("99.0", None)

    def test_probing_stops_at_the_wanted_major_version(self):
        """Tool sets are probed in order only until one of the wanted major version; else the
        nearest newer one of all is taken."""
        made = lambda major: pgserver.Toolset(f"/opt/pg{major}/bin", f"{major}.1", major)
        probed: list[int] = []

        def found(*majors):
            for major in majors:
                probed.append(major)
                yield made(major)

        assert pgserver._pick(found(16, 15, 17), 15)[0].major == 15 and probed == [16, 15]
        probed.clear()
        assert pgserver._pick(found(17, 16, 18), 15)[0].major == 16 and probed == [17, 16, 18]
        assert pgserver._pick(found(13, 14), 15)[0] is None
        assert pgserver.first_toolset() == pgserver.find_toolsets()[0]

    def test_error_line_is_the_one_that_says_what_failed(self):
        """The first error line of a tool's output is kept, its prefix and spacing cleaned."""
        text = ("pg_restore: connecting to database for restore\n"
                "pg_restore: error: could not execute query: ERROR:  relation \"t\" already exists\n"
                "Command was: CREATE TABLE t ();\n")
        assert pgserver.tool_error(text) == 'could not execute query: ERROR: relation "t" already exists'
        assert pgserver.tool_error("") == "no error message"
