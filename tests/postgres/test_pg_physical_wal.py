"""WAL archiving through a real archive_command: push, get, list, refusals, retries."""

from __future__ import annotations

import os
import shutil

import pytest

import pgphysical
from conftest import _bindir
from vaultkit import wait_until


@pytest.fixture(scope="module")
def phys():
    with pgphysical.running(_bindir()) as cluster:
        yield cluster


def archived(phys) -> tuple[int, int, str]:
    row = phys.psql("select archived_count, failed_count, coalesce(last_archived_wal, '') from pg_stat_archiver")
    count, failed, last = row.split("|")
    return int(count), int(failed), last


def wait_archived(phys, segment: str, limit: float = 60) -> None:
    wait_until(lambda: archived(phys)[2] >= segment, f"{segment} archived", limit=limit, step=0.2)


def switch(phys) -> str:
    phys.psql("create table if not exists t(i int); insert into t values (1)")
    return phys.psql("select pg_walfile_name(pg_switch_wal())")


def test_a_missing_item_fails_the_archive_command_and_a_later_retry_archives_everything(phys):
    """archive_command names an item that is not protected yet: PostgreSQL retries (nothing
    is lost), and once the item exists every segment reaches the archive."""
    command = pgphysical.STRONGROOM + f" --vault {phys.vault} wal push db %p"
    phys.psql(f"alter system set archive_command = 'STRONGROOM_HOME={phys.home} {command}'")
    phys.psql("select pg_reload_conf()")
    first = switch(phys)
    wait_until(lambda: archived(phys)[1] > 0, "a failed archive_command", limit=30, step=0.2)
    assert archived(phys)[0] == 0
    assert "is not a protected postgres item of this vault" in open(f"{phys.data}.log").read()
    phys.strongroom("protect", "postgres", "db", "--physical", "--host", phys.root, "--port", str(phys.port),
                    "--user", "postgres")
    second = switch(phys)
    wait_archived(phys, second)
    listing = phys.strongroom_json("wal", "list", "db")
    (timeline,) = listing["timelines"]
    assert timeline["timeline"] == 1 and timeline["gaps"] == []
    assert timeline["first"] <= first and timeline["last"] == second


def test_get_writes_a_segment_and_exits_1_silently_for_one_not_archived(phys, tmp_path):
    segment = phys.strongroom_json("wal", "list", "db")["timelines"][0]["last"]
    out = tmp_path / "seg"
    phys.strongroom("wal", "get", "db", segment, str(out))
    assert out.stat().st_size == 16 * 2**20
    missing = phys.strongroom("wal", "get", "db", "00000001000000FF000000FF", str(tmp_path / "x"), check=False)
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "", "")
    history = phys.strongroom("wal", "get", "db", "00000002.history", str(tmp_path / "h"), check=False)
    assert (history.returncode, history.stderr) == (1, "")
    assert not (tmp_path / "x").exists()


def test_an_identical_segment_again_is_success_another_one_with_its_name_is_refused(phys, tmp_path):
    segment = phys.strongroom_json("wal", "list", "db")["timelines"][0]["last"]
    copy = tmp_path / segment
    phys.strongroom("wal", "get", "db", segment, str(copy))
    phys.strongroom("wal", "push", "db", str(copy))
    with open(copy, "r+b") as fh:
        fh.write(b"other")
    done = phys.strongroom("wal", "push", "db", str(copy), check=False)
    assert done.returncode == 114 and "already archived with other content" in done.stderr


def test_async_push_spools_and_flush_commits_one_point(phys, tmp_path):
    names = [f"0000000900000000000000{i:02X}" for i in range(1, 4)]
    for name in names:
        path = tmp_path / name
        path.write_bytes(os.urandom(1024) * 16384)
        phys.strongroom("wal", "push", "db", str(path), "--async", "--batch", "10")
    listing = phys.strongroom_json("wal", "list", "db")
    assert listing["spooled"] == 3
    before = len(phys.strongroom_json("points", "db.wal"))
    assert phys.strongroom("wal", "flush", "db").stdout.strip() == "3 segment(s) committed"
    assert len(phys.strongroom_json("points", "db.wal")) == before + 1
    listing = phys.strongroom_json("wal", "list", "db")
    assert listing["spooled"] == 0
    row = [r for r in listing["timelines"] if r["timeline"] == 9][0]
    assert (row["first"], row["last"], row["gaps"]) == (names[0], names[-1], [])
    extra = tmp_path / "00000009000000000000000A"
    extra.write_bytes(os.urandom(1024) * 16)
    phys.strongroom("wal", "push", "db", str(extra), "--async", "--batch", "10")
    flushed = phys.strongroom_json("wal", "flush", "db")
    assert flushed == {"schema": 1, "item": "db", "committed": 1}
    shutil.rmtree(tmp_path)


def test_a_gap_is_listed_and_the_listing_exits_1(phys, tmp_path):
    for name in ("0000000A0000000000000001", "0000000A0000000000000004"):
        (tmp_path / name).write_bytes(b"x" * 1024)
        phys.strongroom("wal", "push", "db", str(tmp_path / name))
    done = phys.strongroom("wal", "list", "db", check=False)
    assert done.returncode == 1
    assert "timeline 10: 0000000A0000000000000001 .. 0000000A0000000000000004, 2 segment(s)," \
           " gaps: 0000000A0000000000000002..0000000A0000000000000003" in done.stdout
    alerts = [a for a in phys.strongroom_json("alerts") if a["kind"] == "postgres.wal-gap"]
    assert alerts and "0000000A0000000000000002..0000000A0000000000000003" in alerts[0]["summary"]
    assert alerts[0]["item"] == "db"


def test_wal_commands_refuse_a_logical_item(phys, tmp_path):
    phys.strongroom("protect", "postgres", "logical", "--host", phys.root, "--port", str(phys.port),
                    "--user", "postgres", "--database", "postgres")
    done = phys.strongroom("wal", "push", "logical", str(tmp_path / "000000010000000000000001"), check=False)
    assert done.returncode == 118 and "is a logical (pg_dump) item" in done.stderr


def test_setup_prints_the_archive_command(phys):
    out = phys.strongroom("wal", "setup", "db").stdout.splitlines()
    assert out[0] == "archive_mode = on"
    assert out[1].startswith("archive_command = 'STRONGROOM_HOME=") and out[1].endswith(" wal push db %p'")
    doc = phys.strongroom_json("wal", "setup", "db")
    assert doc["archive_mode"] == "on" and "'" + doc["archive_command"].replace("'", "''") + "'" == out[1].split(" = ", 1)[1]
    assert " wal get db %f %p" in doc["restore_command"]


def test_get_fetches_the_next_segments_ahead_and_the_next_get_takes_them(phys, tmp_path):
    phys.strongroom("protect", "postgres", "db", "--physical", "--host", phys.root, "--port", str(phys.port),
                    "--user", "postgres", check=False)  # when run alone
    names = [f"0000000B00000000000000{i:02X}" for i in range(1, 4)]
    for i, name in enumerate(names):
        (tmp_path / name).write_bytes(bytes([i]) * 4096)
        phys.strongroom("wal", "push", "db", str(tmp_path / name))
    cache = None
    phys.strongroom("--vault", phys.vault, "wal", "get", "db", names[0], str(tmp_path / "a"))
    for root, _, files in os.walk(os.path.join(phys.home, "wal-cache")):
        if names[1] in files:
            cache = root
    assert cache is not None and sorted(os.listdir(cache)) == [".listing", *names[1:]]
    phys.strongroom("--vault", phys.vault, "wal", "get", "db", names[1], str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == bytes([1]) * 4096
    assert sorted(os.listdir(cache)) == [".listing", names[2]]
    missing = phys.strongroom("--vault", phys.vault, "wal", "get", "db", "0000000B0000000000000009",
                              str(tmp_path / "c"), check=False)
    assert (missing.returncode, missing.stderr) == (1, "")
    # the listing the first get read answers "not archived" without the vault, until a push
    listing = os.path.join(cache, ".listing")
    assert "0000000B0000000000000009" not in open(listing).read()
    (tmp_path / "0000000B0000000000000009").write_bytes(b"9" * 4096)
    phys.strongroom("--vault", phys.vault, "wal", "push", "db", str(tmp_path / "0000000B0000000000000009"))
    assert not os.path.exists(listing)
    phys.strongroom("--vault", phys.vault, "wal", "get", "db", "0000000B0000000000000009", str(tmp_path / "d"))
    assert (tmp_path / "d").read_bytes() == b"9" * 4096
