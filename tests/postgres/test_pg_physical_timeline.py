"""A timeline switch in the archive of one item, on a real PostgreSQL 15: a restore to a
moment, promoted (timeline 2) and archiving into the same item, while the first server
goes on (timeline 1).  A restore to latest follows timeline 2; a restore to a time before
the switch ends on timeline 1 at that time; ``--timeline 1`` gives back the first server's
own history past the switch, ``--timeline 2`` the promoted copy's, an unknown timeline is
refused; the history file is archived and kept."""

from __future__ import annotations

import contextlib
import datetime as dt
import os

import pytest

import pgphysical
from conftest import _bindir
from strongroom_postgres.recoverywal import Until, plan
from vaultkit import wait_until


def mark(phys, n: int, *, port: int | None = None) -> dt.datetime:
    return dt.datetime.fromisoformat(phys.psql(f"insert into marker values ({n}, clock_timestamp())"
                                               " returning to_json(at)#>>'{}'", port=port))


def markers(phys, port: int) -> list[int]:
    return [int(n) for n in phys.psql("select n from marker order by at", port=port).splitlines()]


def wait_archived(phys, port: int | None = None) -> None:
    segment = phys.psql("select pg_walfile_name(pg_switch_wal())", port=port)
    wait_until(lambda: phys.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver", port=port)
               >= segment, f"{segment} archived", limit=120, step=0.2)


def timeline(phys, port: int) -> int:
    return int(phys.psql("select timeline_id from pg_control_checkpoint()", port=port))


@pytest.fixture(scope="module")
def forked():
    """Markers 1-10 on timeline 1 (base backup before them); a restore to between 5 and
    6, promoted, archiving into the same item, with markers 101-103 on timeline 2.
    Yields (cluster, marker times by number, the clone's data directory and port)."""
    with pgphysical.running(_bindir()) as phys:
        phys.psql("create table marker(n int, at timestamptz not null)")
        pgphysical.protect_physical(phys)
        phys.strongroom("wal", "setup", "db", "--apply")
        phys.strongroom("backup", "db")
        times = {n: mark(phys, n) for n in range(1, 11)}
        wait_archived(phys)
        clone = os.path.join(phys.root, "clone")
        port = pgphysical.free_port()
        target = times[5] + (times[6] - times[5]) / 2
        phys.strongroom("restore", "db", "--data-dir", clone, "--to-time", target.isoformat(), "--start",
                        "--host", phys.root, "--port", str(port))
        assert markers(phys, port) == [1, 2, 3, 4, 5] and timeline(phys, port) == 2
        # the promoted copy now archives into the item it came from (archive_mode was off at its promotion)
        command = phys.strongroom_json("wal", "setup", "db")["archive_command"]
        phys.psql("alter system set archive_mode = 'on'", port=port)
        phys.psql("alter system set archive_command = '" + command.replace("'", "''") + "'", port=port)
        pgphysical.server_stop(clone)
        pgphysical.server_start(phys, clone, port)
        times.update({n: mark(phys, n, port=port) for n in (101, 102, 103)})
        wait_archived(phys, port)
        yield phys, times, clone, port


def test_the_history_file_of_the_new_timeline_is_archived(forked):
    """Archived by the first push from timeline 2 although the copy was promoted with
    archive_mode off; listed beside both timelines."""
    phys, _, _, _ = forked
    listing = phys.strongroom_json("wal", "list", "db")
    assert "00000002.history" in listing["history"]
    assert [row["timeline"] for row in listing["timelines"]] == [1, 2]


def test_a_restore_to_latest_follows_the_new_timeline(forked, tmp_path):
    phys, _, _, _ = forked
    data = str(tmp_path / "latest")
    with restored(phys, data) as (port, done):
        assert markers(phys, port) == [1, 2, 3, 4, 5, 101, 102, 103]
        assert timeline(phys, port) == 3
        assert "timeline 2" in done.stdout


def test_a_restore_to_a_time_before_the_switch_ends_on_timeline_1(forked, tmp_path):
    phys, times, _, _ = forked
    data = str(tmp_path / "before")
    target = times[3] + (times[4] - times[3]) / 2
    with restored(phys, data, "--to-time", target.isoformat()) as (port, _):
        assert markers(phys, port) == [1, 2, 3]


def test_timeline_1_to_a_time_after_the_switch_gives_the_first_servers_rows(forked, tmp_path):
    """Markers 6-10 went on timeline 1 after the copy branched off at 5: latest cannot give
    them back, --timeline 1 does, up to the target time exactly."""
    phys, times, _, _ = forked
    data = str(tmp_path / "tl1")
    target = times[8] + (times[9] - times[8]) / 2
    with restored(phys, data, "--to-time", target.isoformat(), "--timeline", "1") as (port, done):
        assert markers(phys, port) == [1, 2, 3, 4, 5, 6, 7, 8]
        assert "following timeline 1;" in done.stdout, done.stdout
        with open(os.path.join(data, "postgresql.auto.conf")) as fh:
            assert "recovery_target_timeline = '1'" in fh.read()


def test_timeline_1_to_a_time_after_its_last_archived_segment_is_refused(forked, tmp_path):
    """Marker 102 went to timeline 2 after timeline 1's last segment was archived: timeline 1
    cannot reach that time (PostgreSQL would stop at its end: no target reached)."""
    phys, times, _, _ = forked
    data = tmp_path / "tl1-late"
    done = phys.strongroom("restore", "db", "--data-dir", str(data), "--to-time", times[102].isoformat(),
                           "--timeline", "1", check=False)
    assert done.returncode == 117 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "on timeline 1" in done.stderr
    assert not data.exists()


def test_timeline_current_stays_on_the_base_backups_timeline_to_its_end(forked, tmp_path):
    phys, _, _, _ = forked
    data = str(tmp_path / "current")
    with restored(phys, data, "--timeline", "current") as (port, done):
        assert markers(phys, port) == list(range(1, 11))
        assert "following timeline 1;" in done.stdout, done.stdout


def test_timeline_2_to_latest_gives_the_promoted_copys_rows(forked, tmp_path):
    phys, _, _, _ = forked
    data = str(tmp_path / "tl2")
    with restored(phys, data, "--timeline", "2") as (port, done):
        assert markers(phys, port) == [1, 2, 3, 4, 5, 101, 102, 103]
        assert "following timeline 2 (timeline 1 until " in done.stdout, done.stdout


def test_a_timeline_the_archive_has_no_history_of_is_refused(forked, tmp_path):
    phys, _, _, _ = forked
    data = tmp_path / "tl7"
    done = phys.strongroom("restore", "db", "--data-dir", str(data), "--timeline", "7", check=False)
    assert done.returncode == 28 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "timeline 7 (--timeline 7)" in done.stderr and "00000007.history" in done.stderr
    bad = phys.strongroom("restore", "db", "--data-dir", str(data), "--timeline", "newest", check=False)
    assert bad.returncode == 3 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "--timeline 'newest'" in bad.stderr
    assert not data.exists()


@contextlib.contextmanager
def restored(phys, data: str, *args: str):
    """``restore db --data-dir DATA ARGS --start`` on a free port: (port, the command's
    result); the server is stopped afterwards."""
    port = pgphysical.free_port()
    done = phys.strongroom("restore", "db", "--data-dir", data, *args, "--start", "--host", phys.root,
                           "--port", str(port))
    try:
        yield port, done
    finally:
        pgphysical.server_stop(data)


def seg(tli: int, number: int) -> str:
    return f"{tli:08X}{0:08X}{number:08X}"


def test_the_fetch_plan_follows_the_timeline_asked_for():
    """After a switch at segment 5: timeline 1 is fetched on past it, timeline 2 from it."""
    at = dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc).isoformat()
    listing = {n: ("sha", "p", at) for n in (*(seg(1, n) for n in range(3, 9)), *(seg(2, n) for n in range(5, 8)),
                                                "00000002.history")}
    doc = {"start_wal_file": seg(1, 3), "timeline": 1, "stop_lsn": "0/4000100"}
    histories = {2: "1\t0/50000A0\tx\n"}
    assert plan(listing, histories, doc, Until(), 1) == ["00000002.history", *(seg(1, n) for n in range(3, 9))]
    to_2 = ["00000002.history", seg(1, 3), seg(1, 4), *(seg(2, n) for n in range(5, 8))]
    assert plan(listing, histories, doc, Until(), 2) == to_2 == plan(listing, histories, doc, Until())


def test_a_base_backup_of_timeline_1_after_the_switch_is_not_followed_onto_timeline_2(forked, tmp_path):
    """The first server goes on on timeline 1 and is backed up again: a restore to latest
    starts from the older base backup, the one timeline 2 branched from."""
    phys, _, _, _ = forked
    phys.strongroom("backup", "db")
    mark(phys, 11)
    wait_archived(phys)
    data = str(tmp_path / "after")
    with restored(phys, data) as (port, done):
        assert markers(phys, port) == [1, 2, 3, 4, 5, 101, 102, 103]
        newest = phys.strongroom_json("points", "db")[-1]["point_id"][:8]
        assert f"base backup {newest} is on timeline 1 past the switch" in done.stdout


def test_timeline_1_starts_from_the_newest_base_backup_on_it(forked, tmp_path):
    """The base backup of timeline 1 taken after the switch (previous test) is taken for it."""
    phys, _, _, _ = forked
    data = str(tmp_path / "tl1-newest")
    with restored(phys, data, "--timeline", "1") as (port, done):
        assert markers(phys, port) == list(range(1, 12))
        newest = phys.strongroom_json("points", "db")[-1]["point_id"][:8]
        assert f"base backup {newest} (" in done.stdout, done.stdout
        assert "following timeline 1;" in done.stdout


def test_without_a_base_backup_that_leads_to_the_new_timeline_the_restore_is_refused(forked, tmp_path):
    """Only base backups of timeline 1 taken after the switch are left: one line, exit 28,
    nothing written."""
    phys, _, _, _ = forked
    points = phys.strongroom_json("points", "db")
    phys.strongroom("points", "delete", f"db@{points[0]['point_id']}", "--yes")
    data = tmp_path / "refused"
    done = phys.strongroom("restore", "db", "--data-dir", str(data), check=False)
    assert done.returncode == 28 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "follows the newest timeline of the archive (2)" in done.stderr
    assert not data.exists()
