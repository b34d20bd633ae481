"""A postgres point replicated to a geo secondary restores from it, with the primary's storage gone."""

from __future__ import annotations

import shutil

from pgshop import build_shop
from strongroom.policy.redundancy import Redundancy
from strongroom.vault import Vault


def test_a_database_restores_from_the_secondary_with_the_primary_gone(pg_cluster, pg_source, tmp_path, monkeypatch):
    """Backed up, replicated, primary folder removed: the copy restored from the secondary equals the source."""
    monkeypatch.setenv("STRONGROOM_REPLICATION_TIMEOUT", "0")  # the explicit replicate below copies everything
    build_shop(pg_cluster, "geoshop", rows=2000)
    primary, secondary = str(tmp_path / "primary"), str(tmp_path / "secondary")
    try:
        vault = Vault.create(primary, name="pg", redundancy=Redundancy("geo", secondary))
        vault.protect("postgres", "db", {**pg_source, "databases": ["geoshop"]})
        point = vault.backup("db")
        assert vault.replicate().complete
        shutil.rmtree(primary)
        copy = Vault.open(secondary)
        assert copy.is_secondary and [p.point_id for p in copy.points("db")] == [point.point_id]
        copy.restore("db", point.point_id, None, options={"to_database": "geoshop_copy"})
        tables = pg_cluster.tables("geoshop")
        assert tables and pg_cluster.tables("geoshop_copy") == tables
        for table in tables:
            assert pg_cluster.table_digest("geoshop_copy", table) == pg_cluster.table_digest("geoshop", table), table
    finally:
        for name in ("geoshop", "geoshop_copy"):
            if name in pg_cluster.databases():
                pg_cluster.dropdb(name)
