"""A killed or terminated PostgreSQL backup or restore leaves nothing behind: no pg_dump
or pg_restore, no half-restored or ``strongroom_restore_<hex>`` database, no temporary
dump folder; or the next restore removes them.

The moments are made deterministic: a backup's pg_dump waits for a table another session
holds locked; a restore's pg_restore is stopped (SIGSTOP) as soon as it appears, so the
signal to strongroom always lands while it restores.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest

from strongroom import list_processes
from vaultkit import wait_until

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")




def children(pid: int, program: str) -> list:
    return [p for p in list_processes(program) if p.ppid == pid]


def resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
def pgvault(pg_cluster, pg_args, tmp_path):
    """Database ``intr`` (20,000 rows) backed up once; ``cli`` runs strongroom in a child
    process with its own TMPDIR; ``started`` are the processes it started."""
    for db in pg_cluster.databases():
        if db.startswith(("intr", "strongroom_")):
            pg_cluster.dropdb(db)
    pg_cluster.createdb("intr")
    pg_cluster.script("create table t (id int primary key, body text);"
                      " insert into t select g, repeat(md5(g::text), 8) from generate_series(1, 20000) g;", db="intr")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "STRONGROOM_VAULT": str(tmp_path / "vault"), "TMPDIR": str(tmpdir)}
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen([STRONGROOM, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        started.append(proc)
        return proc

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([STRONGROOM, *args], env=env, capture_output=True, text=True)

    assert cli("vault", "create", env["STRONGROOM_VAULT"]).returncode == 0
    assert cli("protect", "postgres", "db", *pg_args, "--database", "intr").returncode == 0
    yield start, cli, tmpdir
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for db in pg_cluster.databases():
        if db.startswith(("intr", "strongroom_")):
            pg_cluster.dropdb(db)


def job_states(cli) -> list[tuple[str, str]]:
    return [(j["type"], j["state"]) for j in json.loads(cli("jobs", "--json").stdout)]


def start_restore(start, *args: str) -> tuple[subprocess.Popen, int]:
    """Start a restore of ``intr``; stop its pg_restore as soon as it runs.  A short one (the
    pre-data section) may end between being seen and being stopped: then the next one is."""
    proc = start("restore", "db", "--database", "intr", *args)
    while True:
        child = wait_until(lambda: children(proc.pid, "pg_restore"), "the restore started pg_restore")[0]
        try:
            os.kill(child.pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        return proc, child.pid


def running(pid: int) -> bool:
    return any(p.pid == pid for p in list_processes())


def leftovers(pg_cluster, tmpdir) -> tuple[list[str], list[str]]:
    databases = sorted(d for d in pg_cluster.databases() if d.startswith(("intr_", "strongroom_")))
    return databases, sorted(os.listdir(tmpdir))


class TestKilledRestore:
    def test_sigkill_leaves_a_database_the_next_restore_drops(self, pg_cluster, pgvault):
        """SIGKILL mid-restore: pg_restore ends; the half-restored database is dropped by the
        next restore to the server (a warning names it); the job is abandoned."""
        start, cli, tmpdir = pgvault
        assert cli("backup", "db").returncode == 0
        proc, child = start_restore(start, "--to-database", "intr_copy")
        proc.kill()
        proc.wait()
        resume(child)
        wait_until(lambda: not running(child), "pg_restore ended")
        assert "intr_copy" in pg_cluster.databases()  # what the killed restore had created

        again = cli("restore", "db", "--database", "intr", "--to-database", "intr_again")
        assert again.returncode in (0, 1), again.stderr  # restored, with a warning
        assert "intr_copy: dropped" in again.stderr
        assert leftovers(pg_cluster, tmpdir) == (["intr_again"], [])
        assert pg_cluster.psql("select count(*) from t", "intr_again") == "20000"
        assert pg_cluster.psql("select shobj_description(oid, 'pg_database') from pg_database"
                               " where datname = 'intr_again'") == ""
        assert job_states(cli) == [("backup", "completed"), ("restore", "abandoned"),
                                   ("restore", "completed_with_warnings")]

    def test_sigkill_of_a_parallel_forced_restore(self, pg_cluster, pgvault):
        """--jobs 2 --force over an existing database, killed: pg_restore does not go on
        restoring; the next restore removes the temporary database and the temporary
        folder; the original database is untouched."""
        start, cli, tmpdir = pgvault
        pg_cluster.createdb("intr_target")
        pg_cluster.psql("create table keep (x int); insert into keep values (42)", "intr_target")
        assert cli("backup", "db").returncode == 0
        proc, child = start_restore(start, "--to-database", "intr_target", "--force", "--jobs", "2")
        build = [d for d in pg_cluster.databases() if d.startswith("strongroom_restore_")]
        assert len(build) == 1 and len(os.listdir(tmpdir)) == 1  # the dump's TOC, in a folder of its own
        proc.kill()
        proc.wait()
        resume(child)
        wait_until(lambda: not running(child), "pg_restore ended")
        assert pg_cluster.psql("select x from keep", "intr_target") == "42"

        again = cli("restore", "db", "--database", "intr", "--to-database", "intr_other")
        assert again.returncode in (0, 1), again.stderr
        assert f"{build[0]}: dropped" in again.stderr
        assert leftovers(pg_cluster, tmpdir) == (["intr_other", "intr_target"], [])
        assert pg_cluster.psql("select x from keep", "intr_target") == "42"


class TestTerminatedRestore:
    def test_sigterm_cancels_and_drops_at_once(self, pg_cluster, pgvault):
        """SIGTERM mid-restore: exit 143 with one line, job cancelled, the new database
        dropped, no pg_restore, no temporary folder."""
        start, cli, tmpdir = pgvault
        assert cli("backup", "db").returncode == 0
        proc, child = start_restore(start, "--to-database", "intr_copy", "--jobs", "2")
        proc.send_signal(signal.SIGTERM)
        resume(child)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 143, err
        assert err.strip().splitlines() == ["strongroom: terminated (SIGTERM)"]
        assert leftovers(pg_cluster, tmpdir) == ([], []) and not running(child)
        assert job_states(cli) == [("backup", "completed"), ("restore", "cancelled")]

    def test_sigterm_while_the_tables_load_in_parallel(self, pg_cluster, pgvault):
        """SIGTERM while the loaders feed the tables from the vault (one of them stopped):
        exit 143, every loader ends, the new database is dropped, no temporary folder."""
        start, cli, tmpdir = pgvault
        pg_cluster.script("create table big as select g, repeat(md5(g::text), 4) as body"
                          " from generate_series(1, 300000) g;", db="intr")
        assert cli("backup", "db").returncode == 0
        proc = start("restore", "db", "--database", "intr", "--to-database", "intr_copy")

        def loaders() -> list:
            return [p for p in children(proc.pid, "pg_restore") if any(a.startswith("--use-list") for a in p.argv)]

        loader = wait_until(loaders, "the restore started its loaders")[0]
        os.kill(loader.pid, signal.SIGSTOP)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        resume(loader.pid)
        assert proc.returncode == 143, err
        assert err.strip().splitlines() == ["strongroom: terminated (SIGTERM)"]
        wait_until(lambda: not running(loader.pid) and not loaders(), "the loaders ended")
        assert leftovers(pg_cluster, tmpdir) == ([], [])
        assert job_states(cli) == [("backup", "completed"), ("restore", "cancelled")]


class TestInterruptedBackup:
    @pytest.fixture
    def locked(self, pg_cluster):
        """Another session holds table t locked: a pg_dump of intr waits for it."""
        holder = subprocess.Popen([f"{pg_cluster.bindir}/psql", "-X", "-q", "-d", "intr"], env=pg_cluster.env,
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        holder.stdin.write("begin; lock table t in access exclusive mode;\n")
        holder.stdin.flush()
        wait_until(lambda: pg_cluster.psql("select count(*) from pg_locks where mode = 'AccessExclusiveLock'"
                                           " and relation = 't'::regclass and granted", "intr") == "1",
                   "the lock is held")
        yield
        holder.stdin.close()
        holder.wait()

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
    def test_a_signal_during_a_dump_ends_pg_dump(self, pg_cluster, pgvault, locked, signum):
        """pg_dump waits for the lock; SIGTERM (exit 143, job cancelled) or SIGKILL (job
        abandoned) of strongroom ends pg_dump too: the server has no session of it left."""
        start, cli, tmpdir = pgvault
        proc = start("backup", "db")
        dump = wait_until(lambda: children(proc.pid, "pg_dump"), "the backup started pg_dump")[0]
        wait_until(lambda: pg_cluster.psql("select count(*) from pg_locks where not granted", "intr") != "0",
                   "pg_dump waits for the lock")
        proc.send_signal(signum)
        proc.communicate(timeout=120)
        assert proc.returncode == (143 if signum == signal.SIGTERM else -signal.SIGKILL)
        wait_until(lambda: not running(dump.pid), "pg_dump ended")
        wait_until(lambda: pg_cluster.psql("select count(*) from pg_locks where not granted", "intr") == "0",
                   "pg_dump's session ended")
        expected = "cancelled" if signum == signal.SIGTERM else "abandoned"
        assert job_states(cli) == [("backup", expected)]
