"""The postgres workload against the workload contract of strongroom.testing.

The source is the sample database (``pgshop``) on the test cluster.  A whole restore
goes into a new database whose tables (rows) and schema must equal the source's; an
item-level restore brings one table into a new database, alone.

An unchanged database's next dump differs in its header (it carries the dump time), so
the next point stores the one content-defined chunk that holds it (at most the vault's
maximum chunk size, 4 MiB) and the manifest; the database is made large enough (a dump
of about 16 MB) that this bound shows the rest of the dump deduplicates.
"""

from __future__ import annotations

import pytest

from pgshop import build_shop
from strongroom.testing import WorkloadCase, WorkloadContract

DB = "contract_shop"
ROWS = 200_000
#: one maximum-size chunk (the dump's header) and the small manifest and folder nodes
UNCHANGED_LIMIT = 4 * 2**20 + 256 * 2**10
TABLE = "hr.staff"  # its only foreign key points at itself: it restores alone
COPY, ONE_TABLE, DAMAGED = "contract_copy", "contract_table", "contract_damaged"


@pytest.fixture(scope="module")
def shop_db(pg_cluster):
    """Database ``contract_shop`` with the sample content (200,000 orders)."""
    build_shop(pg_cluster, DB, rows=ROWS)
    yield DB
    pg_cluster.dropdb(DB)


def _assert_same_database(cluster, want: str, got: str) -> None:
    tables = cluster.tables(want)
    assert tables and cluster.tables(got) == tables
    for table in tables:
        assert cluster.table_digest(got, table) == cluster.table_digest(want, table), table
    assert cluster.schema_dump(got) == cluster.schema_dump(want)


class TestPostgresContract(WorkloadContract):
    workload = "postgres"

    @pytest.fixture
    def workload_case(self, pg_cluster, pg_source, shop_db):
        def check_restore(vault, item: str, scratch: str) -> None:
            vault.restore(item, None, None, options={"to_database": COPY})
            try:
                _assert_same_database(pg_cluster, shop_db, COPY)
            finally:
                pg_cluster.dropdb(COPY)

        def check_item_restore(vault, item: str, scratch: str) -> None:
            vault.restore(item, None, None, [f"{shop_db}/hr/staff"], options={"to_database": ONE_TABLE})
            try:
                assert pg_cluster.tables(ONE_TABLE) == [TABLE]
                assert pg_cluster.table_digest(ONE_TABLE, TABLE) == pg_cluster.table_digest(shop_db, TABLE)
            finally:
                pg_cluster.dropdb(ONE_TABLE)

        def change_source() -> None:
            pg_cluster.psql("insert into hr.staff select g, 1, 'hired later ' || g from generate_series(5001, 5010) g",
                            shop_db)

        unreachable = {"connection": {"params": {"host": "127.0.0.1", "port": "1", "user": "postgres"}},
                       "databases": []}
        yield WorkloadCase(
            source={**pg_source, "databases": [shop_db]},
            check_restore=check_restore,
            item_path=f"{shop_db}/hr/staff",
            check_item_restore=check_item_restore,
            bad_sources=(
                (unreachable, "127.0.0.1:1"),
                ({**pg_source, "databases": ["contract_nosuch"]}, "contract_nosuch"),
                ({"databases": [shop_db]}, "the source has no connection"),
            ),
            restore_options={"to_database": DAMAGED},
            unchanged_limit=UNCHANGED_LIMIT,
            restore_target=False,
            consistency="application-consistent",
            change_source=change_source,
        )
        pg_cluster.psql("delete from hr.staff where id > 5000", shop_db)
        for database in (COPY, ONE_TABLE, DAMAGED):
            pg_cluster.dropdb(database)

    def test_the_dump_dwarfs_the_unchanged_bound(self, backed_up):
        """The dump is several times the unchanged bound, so meeting it shows deduplication."""
        _, first = backed_up
        assert first.stats["bytes_read"] > 3 * UNCHANGED_LIMIT, first.stats
