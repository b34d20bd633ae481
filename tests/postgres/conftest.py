"""A real PostgreSQL cluster for the postgres workload tests, one per test session.

``initdb`` and ``postgres`` refuse to run as root: as root the cluster runs as the
``postgres`` user (``runuser -u postgres --``) in a temporary folder that user owns.
Local (socket) connections are trusted; TCP connections on 127.0.0.1 need a password
(SCRAM), so the password tests connect over TCP and everything else over the socket.
Without the PostgreSQL server binaries the tests are skipped, saying what to install,
except under ``CI`` where that is a failure.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile

import attrs
import pytest


def _bindir() -> str | None:
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(directory, "initdb")):
            return directory
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@attrs.frozen
class Cluster:
    """A running cluster: ``socket`` is its socket folder, ``port`` its TCP port."""

    bindir: str
    root: str
    socket: str
    port: int

    @property
    def env(self) -> dict[str, str]:
        """Environment for client tools: the socket, as superuser postgres (trusted)."""
        return {**os.environ, "PGHOST": self.socket, "PGPORT": str(self.port), "PGUSER": "postgres"}

    def psql(self, sql: str, db: str = "postgres", *, check: bool = True) -> str:
        done = subprocess.run(
            [f"{self.bindir}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
            env=self.env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError(f"psql failed: {done.stderr}")
        return done.stdout.strip()

    def script(self, sql: str, db: str = "postgres") -> None:
        subprocess.run([f"{self.bindir}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db],
                       input=sql, env=self.env, check=True, capture_output=True, text=True)

    def createdb(self, name: str) -> None:
        self.psql(f'create database "{name}"')

    def dropdb(self, name: str) -> None:
        self.psql(f'drop database if exists "{name}"')

    def databases(self) -> set[str]:
        return set(self.psql("select datname from pg_database").splitlines())

    def table_digest(self, db: str, table: str) -> tuple[int, str]:
        """Row count and a digest of ``COPY (SELECT * ... ORDER BY every column) TO STDOUT``."""
        columns = self.psql(
            f"select string_agg(quote_ident(attname), ',' order by attnum) from pg_attribute"
            f" where attrelid = '{table}'::regclass and attnum > 0 and not attisdropped", db)
        out = subprocess.run(
            [f"{self.bindir}/psql", "-X", "-d", db, "-c",
             f"copy (select * from {table} order by {columns}) to stdout"],
            env=self.env, capture_output=True, check=True).stdout
        return out.count(b"\n"), hashlib.sha256(out).hexdigest()

    def tables(self, db: str) -> list[str]:
        return self.psql(
            "select format('%I.%I', schemaname, tablename) from pg_tables"
            " where schemaname not in ('pg_catalog', 'information_schema') order by 1", db).splitlines()

    def schema_dump(self, db: str) -> str:
        """``pg_dump --schema-only`` without what differs between two dumps of equal schemas."""
        out = subprocess.run([f"{self.bindir}/pg_dump", "--schema-only", "-d", db],
                             env=self.env, capture_output=True, text=True, check=True).stdout
        return "\n".join(line for line in out.splitlines()
                         if not re.match(r"\\(un)?restrict |-- Dumped (from|by)", line))


def _start(bindir: str) -> Cluster:
    root = tempfile.mkdtemp(prefix="strongroom-pgtest-")
    asuser = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if asuser:
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres", "postgres")
    data, port = os.path.join(root, "data"), _free_port()
    pwfile = os.path.join(root, "pw")
    with open(pwfile, "w") as fh:
        fh.write("superpass\n")
    if asuser:
        shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run(asuser + [f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth-local=trust",
                             "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                             "--locale=C.UTF-8", "--no-sync"], check=True, capture_output=True)
    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
               " -c full_page_writes=off -c synchronous_commit=off -c max_wal_size=2GB")
    subprocess.run(asuser + [f"{bindir}/pg_ctl", "-D", data, "-l", f"{root}/log", "-w", "start", "-o", options],
                   check=True, capture_output=True)
    return Cluster(bindir, root, root, port)


def _stop(cluster: Cluster) -> None:
    asuser = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(asuser + [f"{cluster.bindir}/pg_ctl", "-D", f"{cluster.root}/data", "-m", "fast", "-w", "stop"],
                   capture_output=True)
    shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    bindir = _bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found (Debian: apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = _start(bindir)
    try:
        yield cluster
    finally:
        _stop(cluster)


@pytest.fixture
def pg_source(pg_cluster) -> dict:
    """The source of an item on the test cluster (over its socket, trusted)."""
    return {"connection": {"params": {"host": pg_cluster.socket, "port": str(pg_cluster.port),
                                      "user": "postgres"}, "password": {"kind": "none", "value": ""}},
            "databases": [], "bindir": None}


@pytest.fixture
def pg_args(pg_cluster) -> list[str]:
    """``protect postgres`` options that reach the test cluster over its socket."""
    return ["--host", pg_cluster.socket, "--port", str(pg_cluster.port), "--user", "postgres"]
