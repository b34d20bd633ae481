"""The vault unreachable while a real PostgreSQL 15 archives: every push fails with one
line and PostgreSQL keeps the segments; once the vault is back they are all archived,
and the outage is an alert in the vault and at its sink."""

from __future__ import annotations

import json
import os

import pgphysical
from conftest import _bindir
from vaultkit import wait_until


def archiver(phys) -> tuple[int, int, str]:
    row = phys.psql("select archived_count, failed_count, coalesce(last_archived_wal, '') from pg_stat_archiver")
    count, failed, last = row.split("|")
    return int(count), int(failed), last


def switch(phys) -> str:
    phys.psql("create table if not exists t(i int); insert into t values (1)")
    return phys.psql("select pg_walfile_name(pg_switch_wal())")


def test_an_unreachable_vault_loses_nothing_and_the_outage_is_an_alert(tmp_path):
    with pgphysical.running(_bindir()) as phys:
        pgphysical.protect_physical(phys)
        sent = tmp_path / "sent"
        os.chmod(tmp_path, 0o777)  # the sink runs as the server's user
        phys.strongroom("alerts", "sink", "add", "ops", "--type", "command",
                        "--option", f"command=sh -c 'cat >> {sent}'")
        phys.strongroom("wal", "setup", "db", "--apply")
        before = switch(phys)
        wait_until(lambda: archiver(phys)[2] >= before, f"{before} archived", limit=60, step=0.2)
        away = phys.vault + ".away"
        os.rename(phys.vault, away)  # as an unmounted share or a stopped server
        try:
            lost = [switch(phys) for _ in range(2)]
            wait_until(lambda: archiver(phys)[1] >= 2, "two failed archive_command runs", limit=60, step=0.2)
            assert archiver(phys)[2] == before
            lines = [line for line in open(f"{phys.data}.log") if "strongroom: " in line]
            assert lines and all("strongroom: error: " in line for line in lines)
            assert "of item 'db' was not archived" in lines[0] and lost[0] in lines[0]
            pending = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(phys.home, "wal-alerts")) for f in fs]
            assert len(pending) == 1 and json.load(open(pending[0]))["count"] >= 2
        finally:
            os.rename(away, phys.vault)
        wait_until(lambda: archiver(phys)[2] >= lost[-1], f"{lost[-1]} archived", limit=120, step=0.2)
        listing = phys.strongroom_json("wal", "list", "db")
        (timeline,) = listing["timelines"]
        assert timeline["gaps"] == [] and timeline["last"] >= lost[-1]
        alerts = [a for a in phys.strongroom_json("alerts") if a["kind"] == "postgres.wal-push-failed"]
        assert len(alerts) == 1 and alerts[0]["item"] == "db"
        assert "archived since" in alerts[0]["summary"] and alerts[0]["details"]["count"] >= 2
        assert "postgres.wal-push-failed" in sent.read_text()
        assert not [f for _, _, fs in os.walk(os.path.join(phys.home, "wal-alerts")) for f in fs]


def test_an_async_push_whose_segment_is_spooled_succeeds_while_the_vault_is_away(tmp_path):
    """The spool holds the segment (fsync'd): exit 0 although the batch cannot be
    committed; the flush once the vault is back commits both and raises the alert."""
    with pgphysical.running(_bindir()) as phys:
        pgphysical.protect_physical(phys)
        os.chmod(tmp_path, 0o777)
        names = ["000000010000000000000001", "000000010000000000000002"]
        for name in names:
            (tmp_path / name).write_bytes(os.urandom(4096))
        phys.strongroom("--vault", phys.vault, "wal", "push", "db", str(tmp_path / names[0]), "--async",
                        "--batch", "2")
        os.rename(phys.vault, phys.vault + ".away")
        try:
            done = phys.strongroom("--vault", phys.vault, "wal", "push", "db", str(tmp_path / names[1]), "--async",
                                   "--batch", "2", check=False)
            assert done.returncode == 0, done.stderr
            sync = phys.strongroom("--vault", phys.vault, "wal", "push", "db", str(tmp_path / names[1]), check=False)
            assert sync.returncode == 112 and len(sync.stderr.strip().splitlines()) == 1, sync.stderr
        finally:
            os.rename(phys.vault + ".away", phys.vault)
        assert phys.strongroom("--vault", phys.vault, "wal", "flush", "db").stdout.strip() == "2 segment(s) committed"
        alerts = [a for a in phys.strongroom_json("alerts") if a["kind"] == "postgres.wal-push-failed"]
        assert len(alerts) == 1 and alerts[0]["details"]["count"] == 2
