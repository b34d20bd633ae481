"""WAL retention follows the base backups: after a base backup, the WAL points that the
oldest base backup the vault still has does not need are deleted (soft delete), the rest
are kept."""

from __future__ import annotations

import pytest

import pgphysical
from conftest import _bindir


@pytest.fixture(scope="module")
def phys():
    with pgphysical.running(_bindir()) as cluster:
        pgphysical.protect_physical(cluster)
        yield cluster


def test_wal_before_the_oldest_base_backup_goes_and_the_rest_stays(phys, tmp_path):
    for _ in range(4):  # the base backup starts well after segment 2
        phys.psql("create table if not exists t(i int); insert into t values (1); select pg_switch_wal()")
    old = ["000000010000000000000001", "000000010000000000000002"]
    later = "0000000100000000000000FF"
    for name in [*old, later]:
        (tmp_path / name).write_bytes(name.encode() * 64)
        phys.strongroom("wal", "push", "db", str(tmp_path / name))
    assert len(phys.strongroom_json("points", "db.wal")) == 3

    phys.strongroom("backup", "db")

    left = phys.strongroom_json("points", "db.wal")
    assert len(left) == 1
    listing = phys.strongroom_json("wal", "list", "db")
    assert [(row["first"], row["last"]) for row in listing["timelines"]] == [(later, later)]
    deleted = phys.strongroom_json("points", "db.wal", "--deleted")
    assert len(deleted) == 2  # soft-deleted, as points delete does: undelete brings them back

    phys.strongroom("backup", "db")  # the older base backup is still there: nothing more goes
    assert len(phys.strongroom_json("points", "db.wal")) == 1


def test_a_base_backup_of_another_item_leaves_this_items_wal_alone(phys, tmp_path):
    """'fresh' has no base backup: a base backup of 'db' deletes none of its WAL."""
    phys.strongroom("protect", "postgres", "fresh", "--physical", "--host", phys.root,
                    "--port", str(phys.port), "--user", "postgres")
    name = "000000010000000000000001"
    (tmp_path / name).write_bytes(b"x" * 512)
    phys.strongroom("wal", "push", "fresh", str(tmp_path / name))
    phys.strongroom("backup", "db")
    assert len(phys.strongroom_json("points", "fresh.wal")) == 1
