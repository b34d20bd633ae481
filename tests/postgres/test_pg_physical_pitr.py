"""Point-in-time restore end to end on a real PostgreSQL 15: a base backup, pgbench and a
marker table while WAL goes through a real archive_command, restores to three moments
and to the latest, and the refusals."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import threading
import time

import pytest

import pgphysical
from conftest import _bindir
from vaultkit import wait_until

SCALE = 2
#: the restore point and WAL location the history fixture made after its 15th marker
NAMED: dict[str, str] = {}


def wait_archived(phys, segment: str, limit: float = 120) -> None:
    wait_until(lambda: phys.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver") >= segment,
               f"{segment} archived", limit=limit, step=0.2)


@pytest.fixture(scope="module")
def history():
    """The cluster after: base backup, then pgbench with markers every 0.2 s, all archived.
    Yields (cluster, markers, committed rows of ``counted`` at the end)."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    phys = pgphysical.start(bindir)
    try:
        phys.pg("pgbench", "-i", "-q", "-s", str(SCALE), "-h", phys.root, "-p", str(phys.port), "-U", "postgres",
                "postgres")
        phys.psql("create table marker(at timestamptz not null); create table counted(i int primary key)")
        phys.strongroom("protect", "postgres", "db", "--physical", "--host", phys.root, "--port", str(phys.port),
                        "--user", "postgres")
        phys.strongroom("wal", "setup", "db", "--apply")
        phys.strongroom("backup", "db")
        stop = threading.Event()

        named = NAMED
        def mark() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                phys.psql(f"insert into marker values (clock_timestamp()); insert into counted values ({i})")
                if i == 15:  # a restore point and a WAL location, with the 15 markers before them
                    named["name"] = phys.psql("select pg_create_restore_point('fifteen')")
                    named["lsn"] = phys.psql("select pg_current_wal_lsn()")
                time.sleep(0.2)

        marker = threading.Thread(target=mark)
        marker.start()
        try:
            phys.pg("pgbench", "-T", "8", "-c", "2", "-R", "150", "-h", phys.root, "-p", str(phys.port),
                    "-U", "postgres", "postgres")
        finally:
            stop.set()
            marker.join()
        markers = [dt.datetime.fromisoformat(line) for line in
                   phys.psql("select to_json(at)#>>'{}' from marker order by at").splitlines()]
        counted = int(phys.psql("select count(*) from counted"))
        wait_archived(phys, phys.psql("select pg_walfile_name(pg_switch_wal())"))
        yield phys, markers, counted
    finally:
        pgphysical.stop(phys)


def history_named() -> dict:
    return NAMED


def restored_markers(phys, data: str, port: int) -> list[dt.datetime]:
    rows = phys.psql("select to_json(at)#>>'{}' from marker order by at", port=port)
    return [dt.datetime.fromisoformat(line) for line in rows.splitlines()]


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.8])
def test_restore_to_a_moment_ends_exactly_there(history, fraction):
    """The restored marker table holds every marker up to the target and none after it."""
    phys, markers, _ = history
    i = int(len(markers) * fraction)
    target = markers[i] + (markers[i + 1] - markers[i]) / 2
    data = os.path.join(phys.root, f"pitr{i}")
    port = pgphysical.free_port()
    done = phys.strongroom("restore", "db", "--data-dir", data, "--to-time", target.isoformat(), "--start",
                           "--host", phys.root, "--port", str(port))
    assert "recovers to time" in done.stdout + done.stderr or True
    try:
        got = restored_markers(phys, data, port)
        assert got == [m for m in markers if m <= target]
        assert got[-1] == markers[i] and markers[i + 1] > target
        assert phys.psql("select pg_is_in_recovery()", port=port) == "f"
        assert oct(os.stat(data).st_mode & 0o777) == oct(0o700)
    finally:
        pgphysical.server_stop(data)


def test_restore_to_latest_has_every_committed_row(history):
    phys, markers, counted = history
    data = os.path.join(phys.root, "latest")
    port = pgphysical.free_port()
    done = phys.strongroom("restore", "db", "--data-dir", data, "--start", "--host", phys.root, "--port", str(port))
    try:
        assert restored_markers(phys, data, port) == markers
        # the WAL recovery replayed was fetched ahead beside the base backup, and removed once it ended
        fetched = int(done.stdout.split(" archived WAL file(s)")[0].rsplit(" ", 1)[1])
        assert fetched >= 2 and not os.path.exists(os.path.join(data, "pg_wal", "strongroom-restore"))
        log = open(os.path.join(data, "restore-start.log")).read()
        assert log.count("restored log file") >= fetched - 1
        assert int(phys.psql("select count(*) from counted", port=port)) == counted
        assert phys.psql("select sum(abalance) from pgbench_accounts", port=port) == \
            phys.psql("select sum(abalance) from pgbench_accounts")
    finally:
        pgphysical.server_stop(data)


def test_started_by_hand_recovery_takes_the_fetched_wal_and_removes_it(history):
    """Without --start the WAL fetched ahead waits in the data directory; the server
    started later replays it and recovery_end_command removes it."""
    phys, markers, _ = history
    data = os.path.join(phys.root, "by-hand")
    port = pgphysical.free_port()
    phys.strongroom("restore", "db", "--data-dir", data)
    spool = os.path.join(data, "pg_wal", "strongroom-restore")
    assert len([n for n in os.listdir(spool) if not n.startswith(".")]) >= 2
    pgphysical.server_start(phys, data, port)
    try:
        wait_until(lambda: phys.psql("select pg_is_in_recovery()", port=port) == "f", "recovery over", limit=120,
                   step=0.1)
        assert restored_markers(phys, data, port) == markers
        assert not os.path.exists(spool)
    finally:
        pgphysical.server_stop(data)


def refusal(phys, *args: str) -> subprocess.CompletedProcess:
    done = phys.strongroom("restore", "db", *args, check=False)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done


def test_refusals(history, tmp_path):
    phys, markers, _ = history
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    done = refusal(phys, "--data-dir", str(full))
    assert done.returncode == 115 and "is not empty" in done.stderr
    before = (markers[0] - dt.timedelta(hours=1)).isoformat()
    done = refusal(phys, "--data-dir", str(tmp_path / "a"), "--to-time", before)
    assert done.returncode == 116 and "before the end of the first base backup" in done.stderr
    after = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    done = refusal(phys, "--data-dir", str(tmp_path / "b"), "--to-time", after)
    assert done.returncode == 117 and "after the last archived WAL" in done.stderr
    phys.strongroom("protect", "postgres", "logical", "--host", phys.root, "--port", str(phys.port),
                    "--user", "postgres", "--database", "postgres")
    phys.strongroom("backup", "logical")
    done = phys.strongroom("restore", "logical", "--data-dir", str(tmp_path / "c"), check=False)
    assert done.returncode == 118 and "is a logical (pg_dump) item" in done.stderr
    assert not any((tmp_path / n).exists() for n in ("a", "b", "c"))


@pytest.mark.parametrize("how", ["--to-name", "--to-lsn"])
def test_restore_to_a_restore_point_or_a_wal_location(history, how):
    """Made right after the 15th marker: the restored table ends at it."""
    phys, markers, _ = history
    value = "fifteen" if how == "--to-name" else history_named()["lsn"]
    data = os.path.join(phys.root, f"named{how}")
    port = pgphysical.free_port()
    phys.strongroom("restore", "db", "--data-dir", data, how, value, "--start", "--host", phys.root,
                    "--port", str(port))
    try:
        assert restored_markers(phys, data, port) == markers[:15]
    finally:
        pgphysical.server_stop(data)


def test_an_older_base_backup_alone_restores_to_its_own_end(history):
    """ITEM@POINT of the first base backup, no target: recovery stops once it is consistent,
    before every marker (they came after it), even with a newer base backup there."""
    phys, markers, _ = history
    first = phys.strongroom_json("points", "db")[0]["point_id"]
    phys.strongroom("backup", "db")
    data = os.path.join(phys.root, "older")
    port = pgphysical.free_port()
    phys.strongroom("restore", f"db@{first}", "--data-dir", data, "--start", "--host", phys.root,
                    "--port", str(port))
    try:
        assert restored_markers(phys, data, port) == []
        assert int(phys.psql("select count(*) from pgbench_accounts", port=port)) == SCALE * 100_000
    finally:
        pgphysical.server_stop(data)


def test_a_table_from_a_moment_into_a_database_of_the_server(history):
    """Item-level from a physical point: the marker table as of a moment, complete, into a
    new database of the item's server; the scratch cluster is gone afterwards."""
    phys, markers, _ = history
    i = len(markers) // 2
    target = markers[i] + (markers[i + 1] - markers[i]) / 2
    before = set(os.listdir("/tmp"))
    done = phys.strongroom("restore", "db", "--to-time", target.isoformat(), "--database", "postgres",
                           "--table", "public.marker", "--to-database", "asof", "--host", phys.root,
                           "--port", str(phys.port))
    assert "from the cluster as restored to time" in done.stdout + done.stderr
    rows = phys.psql("select to_json(at)#>>'{}' from marker order by at", db="asof").splitlines()
    assert [dt.datetime.fromisoformat(r) for r in rows] == [m for m in markers if m <= target]
    assert phys.psql("select count(*) from pg_tables where schemaname = 'public'", db="asof") == "1"
    assert not [n for n in set(os.listdir("/tmp")) - before if n.startswith("strongroom-pitr-")]
