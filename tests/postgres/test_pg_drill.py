"""`strongroom drill` of a postgres point: the dump files compared, every database restored
into a scratch database whose row counts match the dump's, and the scratch database dropped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pgshop import build_shop
from strongroom.repository.pack import pack_name
from strongroom.vault import Vault
from strongroom_postgres.drill import count_dump_rows
from vaultkit import Cli


@pytest.fixture
def shop(pg_cluster, pg_source, tmp_path):
    """A small ``drillshop`` database backed up once: (vault, url, point)."""
    build_shop(pg_cluster, "drillshop", rows=3000)
    url = str(tmp_path / "vault")
    vault = Vault.create(url)
    vault.protect("postgres", "db", {**pg_source, "databases": ["drillshop"]})
    point = vault.backup("db")
    yield vault, url, point
    pg_cluster.dropdb("drillshop")


def drill_databases(cluster) -> set[str]:
    return {name for name in cluster.databases() if name.startswith("strongroom_drill_")}


class TestPostgresDrill:
    def test_the_drill_restores_into_a_scratch_database_counts_rows_and_drops_it(self, pg_cluster, shop, tmp_path):
        """The drill passes, says it restored one database and counted its tables, and leaves no scratch database."""
        vault, url, point = shop
        doc = json.loads(Cli(url)("drill", "db", "--json", "--scratch", str(tmp_path)).stdout)
        assert doc["ok"] is True and doc["point"] == point.point_id and doc["workload"] == "postgres"
        assert "1 database(s) restored into scratch databases" in doc["method"]
        assert "the rows of 7 table(s) counted against the dump" in doc["method"]  # 8 less the partitioned parent
        assert doc["files"] == 4  # manifest.json, globals.sql, databases/drillshop.dump and .blocks
        assert drill_databases(pg_cluster) == set()
        assert not os.path.exists(doc["scratch"])

    def test_the_dump_row_counts_are_the_source_tables(self, pg_cluster, shop, tmp_path):
        """The rows counted in the dump are those of the source's tables (3000 orders among them)."""
        vault, _, point = shop
        target = tmp_path / "files"
        vault.restore("db", point.point_id, str(target))
        dump = next(target.rglob("drillshop.dump"))
        counts = count_dump_rows(os.path.join(pg_cluster.bindir, "pg_restore"), str(dump))
        assert counts["sales.orders"] == 3000
        for table, rows in counts.items():
            assert int(pg_cluster.psql(f"select count(*) from only {table}", "drillshop")) == rows, table

    def test_a_damaged_dump_fails_the_drill_without_a_scratch_database(self, pg_cluster, shop, tmp_path):
        """Bytes flipped in the dump's pack: the dump file is the mismatch, exit 50, no scratch database made."""
        vault, url, _ = shop
        fresh = vault.reopen()
        fresh.index.load()
        entry = fresh.point_view("db").lookup("databases/drillshop.dump")
        where = fresh.repo.index.lookup(entry.chunks[0])
        pack = Path(url) / pack_name(where.pack_id)
        os.chmod(pack, 0o600)
        data = bytearray(pack.read_bytes())
        data[where.offset + where.length // 2] ^= 0x5A
        pack.write_bytes(bytes(data))
        before = pg_cluster.databases()
        res = Cli(url)("drill", "db", "--json", "--scratch", str(tmp_path), expect=50)
        doc = json.loads(res.stdout)
        assert [m.split(":", 1)[0] for m in doc["mismatches"]] == ["databases/drillshop.dump"]
        assert "no scratch database: the dump files are damaged" in doc["method"]
        assert pg_cluster.databases() == before
        assert "databases/drillshop.dump" in res.stderr.strip().splitlines()[-1]

    def test_a_row_count_that_differs_is_a_mismatch_and_the_scratch_database_is_dropped(
            self, pg_cluster, shop, tmp_path, monkeypatch):
        """When the dump says one row more than the restored table has, the drill fails naming table and counts,
        and the scratch database is dropped all the same."""
        import strongroom_postgres.drill as pgdrill

        real = pgdrill.count_dump_rows

        def one_more(pg_restore, dump_file):
            counts = real(pg_restore, dump_file)
            counts["sales.orders"] += 1
            return counts

        monkeypatch.setattr(pgdrill, "count_dump_rows", one_more)
        _, url, _ = shop
        res = Cli(url)("drill", "db", "--json", "--scratch", str(tmp_path), expect=50)
        doc = json.loads(res.stdout)
        assert doc["mismatches"] == ["drillshop: table sales.orders: 3000 row(s) in the restored database,"
                                     " 3001 in the dump"]
        assert drill_databases(pg_cluster) == set()
