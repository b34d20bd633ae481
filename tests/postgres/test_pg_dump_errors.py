"""A backup whose server goes away in the middle of a dump: one line, ours and pg_dump's,
with the cause pg_dump gives on a line of its own.

The moment is made deterministic: pg_dump is stopped (SIGSTOP) while its server session
sends the rows of a large table, so the session blocks writing to it; the session is
then terminated as a server shutdown would, and pg_dump resumed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from functools import partial

import pytest

from strongroom import list_processes
from strongroom_postgres import server as pgserver
from vaultkit import wait_until as poll_until

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")


wait_until = partial(poll_until, step=0.01)


class TestToolError:
    def test_copy_failure_keeps_the_server_message(self):
        """pg_dump's 'PQgetCopyData() failed' line gets the cause from its next line."""
        text = ('pg_dump: error: Dumping the contents of table "t" failed: PQgetCopyData() failed.\n'
                "pg_dump: detail: Error message from server: server closed the connection unexpectedly\n"
                "\tThis probably means the server terminated abnormally\n"
                "pg_dump: detail: Command was: COPY public.t (id, b) TO stdout;\n")
        assert pgserver.tool_error(text) == ('Dumping the contents of table "t" failed: PQgetCopyData() failed:'
                                             " server closed the connection unexpectedly")

    def test_psql_error_keeps_the_server_detail(self):
        """psql's line prefix is removed and the server's DETAIL kept."""
        text = ("psql:<stdin>:7: ERROR:  cannot drop table t because other objects depend on it\n"
                "DETAIL:  view v depends on table t\nHINT:  Use DROP ... CASCADE.\n")
        assert pgserver.tool_error(text) == ("ERROR: cannot drop table t because other objects depend on it"
                                             " (view v depends on table t)")


class TestServerGoesAway:
    @pytest.fixture
    def bigdb(self, pg_cluster):
        pg_cluster.dropdb("bigdump")
        pg_cluster.createdb("bigdump")
        pg_cluster.script("create table big(id int, body text);"
                          " insert into big select g, repeat(md5(g::text), 6) from generate_series(1, 250000) g;",
                          db="bigdump")
        yield
        pg_cluster.dropdb("bigdump")

    def test_session_ended_mid_copy(self, pg_cluster, pg_args, bigdb, tmp_path):
        """The backup fails with exit 87 and one line: pg_dump of the database failed,
        pg_dump's own line, and the server's message after it."""
        env = {**os.environ, "STRONGROOM_VAULT": str(tmp_path / "vault"), "STRONGROOM_HOME": str(tmp_path / "home")}

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([STRONGROOM, *args], env=env, capture_output=True, text=True)

        assert cli("vault", "create", env["STRONGROOM_VAULT"]).returncode == 0
        assert cli("protect", "postgres", "db", *pg_args, "--database", "bigdump").returncode == 0
        proc = subprocess.Popen([STRONGROOM, "backup", "db"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            copying = ("select pid from pg_stat_activity where datname = 'bigdump'"
                       " and query like 'COPY public.big %'")
            backend = wait_until(lambda: pg_cluster.psql(copying), "pg_dump copies table big")
            dump = [p for p in list_processes("pg_dump") if p.ppid == proc.pid][0]
            os.kill(dump.pid, signal.SIGSTOP)
            wait_until(lambda: pg_cluster.psql(f"select wait_event from pg_stat_activity where pid = {backend}")
                       in ("ClientWrite", ""), "the session waits for pg_dump")
            pg_cluster.psql(f"select pg_terminate_backend({backend})")
            os.kill(dump.pid, signal.SIGCONT)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 87, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        # PQgetCopyData() or PQgetResult(), as the session ended in or just after the rows
        assert re.match(r"strongroom: error: pg_dump of database 'bigdump' failed:"
                        r' Dumping the contents of table "big" failed: PQget\w+\(\) failed: ', lines[0]), err
        assert "terminating connection" in lines[0] or "server closed the connection" in lines[0], err
