"""Physical base backups: pg_basebackup streamed into the vault, deduplicated."""

from __future__ import annotations

import json
import pytest

from strongroom.vault import Vault

import pgphysical
from conftest import _bindir

SCALE = 5  # pgbench_accounts: 500,000 rows, a cluster of about 100 MiB


@pytest.fixture(scope="module")
def phys():
    with pgphysical.running(_bindir()) as cluster:
        cluster.pg("pgbench", "-i", "-q", "-s", str(SCALE), "-h", cluster.root, "-p", str(cluster.port),
                   "-U", "postgres", "postgres")
        pgphysical.protect_physical(cluster)
        yield cluster


def test_a_base_backup_records_where_it_starts_and_ends(phys):
    point = phys.strongroom_json("backup", "db")
    vault = Vault.open(phys.vault, home=phys.home)
    view = vault.point_view("db", point["point_id"])
    doc = json.loads(view.read_bytes("physical.json"))
    sysid = phys.psql("select system_identifier from pg_control_system()")
    assert doc["system_identifier"] == sysid
    assert doc["timeline"] == 1 and doc["checksums"] is True
    assert doc["start_lsn"] and doc["stop_lsn"] and doc["start_lsn"] <= doc["stop_lsn"]
    assert view.exists("data/PG_VERSION") and view.exists("data/backup_label")
    assert view.exists("late/global/pg_control") or view.exists("data/global/pg_control")
    assert view.lookup("data/base").mode & 0o777 == 0o700
    assert view.exists("backup_manifest")


def test_a_second_base_backup_after_one_percent_changed_stores_far_less(phys):
    first = phys.strongroom_json("backup", "db")
    rows = SCALE * 100_000
    phys.psql(f"update pgbench_accounts set abalance = abalance + 1 where aid > {rows - rows // 100}")
    phys.psql("checkpoint")
    second = phys.strongroom_json("backup", "db")
    size = second["stats"]["bytes_read"]
    new = second["stats"]["new_bytes"]
    print(f"\nbase backup {size / 2**20:.1f} MiB read; after 1% of {rows} rows changed:"
          f" {new / 2**20:.1f} MiB new ({100 * new / size:.1f}%), {second['stats']['stored_bytes'] / 2**20:.1f} MiB stored;"
          f" first backup stored {first['stats']['stored_bytes'] / 2**20:.1f} MiB")
    # 1% of the rows (the newest accounts): their pages, the pages the new row versions
    # went to and the chunks around them are new; the rest of the cluster is not
    assert size > 60 * 2**20
    assert new < 0.15 * size


def test_a_logical_item_is_unchanged(phys):
    phys.strongroom("protect", "postgres", "logical", "--host", phys.root, "--port", str(phys.port),
                    "--user", "postgres", "--database", "postgres")
    vault = Vault.open(phys.vault, home=phys.home)
    assert "mode" not in vault.item("logical").source


def test_physical_refuses_a_second_tablespace(phys, tmp_path):
    place = tmp_path / "ts"
    place.mkdir()
    phys.psql(f"create tablespace extra location '{place}'")
    try:
        done = phys.strongroom("backup", "db", check=False)
        assert done.returncode == 111, done.stderr
        assert "tablespaces outside the data directory (extra)" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        phys.psql("drop tablespace extra")


def test_pg_basebackup_failing_keeps_its_line_and_writes_no_point(phys):
    """A user without REPLICATION: pg_basebackup's own error line, exit 110, no point."""
    phys.psql("create role norep login")
    phys.psql("grant pg_monitor to norep; grant execute on function pg_control_system() to norep;"
              " grant execute on function pg_control_checkpoint() to norep")
    phys.strongroom("protect", "postgres", "norep", "--physical", "--host", phys.root, "--port", str(phys.port),
                    "--user", "norep")
    done = phys.strongroom("backup", "norep", check=False)
    assert done.returncode == 110, done.stderr
    assert "pg_basebackup failed:" in done.stderr and "replication" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert phys.strongroom_json("points", "norep") == []
