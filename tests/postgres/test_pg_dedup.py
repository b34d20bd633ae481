"""Large databases: dumps stream through with flat memory, and a day of changes
deduplicates against the previous point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from strongroom.vault import Vault

ROWS = 1_000_000
BULK_SQL = f"""
create table orders(id bigint primary key, customer int not null, amount numeric(12,2) not null,
                    status text not null, note text, created timestamptz not null);
insert into orders select g, g % 50000, (g::bigint * 7919) % 100000 / 100.0,
       (array['new', 'paid', 'shipped', 'done'])[1 + g % 4], md5(g::text) || md5((g + 1)::text),
       timestamptz '2024-01-01' + g * interval '1 second' from generate_series(1, {ROWS}) g;
create table customers(id int primary key, name text);
insert into customers select g, 'customer ' || g from generate_series(1, 50000) g;
"""
# 70,000 rows of 10 KiB: a 700 MiB dump of a database of 20 MiB (TOAST compresses it).
WIDE_SQL = "create table w(id int, body text); insert into w select g, repeat(md5(g::text), 320)" \
           " from generate_series(1, 70000) g;"


def _vault_with(cluster, tmp_path_factory, database: str, sql: str):
    cluster.createdb(database)
    cluster.script(sql, db=database)
    home = str(tmp_path_factory.mktemp("pghome"))
    url = str(tmp_path_factory.mktemp("pgvault") / "vault")
    vault = Vault.create(url, home=home)
    vault.protect("postgres", database, {
        "connection": {"params": {"host": cluster.socket, "port": str(cluster.port), "user": "postgres"}},
        "databases": [database]})
    return url, home


@pytest.fixture(scope="module")
def bulk(pg_cluster, tmp_path_factory):
    """Database ``bulk`` (1M orders, a dump of about 115 MiB) and a vault protecting it."""
    yield _vault_with(pg_cluster, tmp_path_factory, "bulk", BULK_SQL)
    pg_cluster.dropdb("bulk")


@pytest.fixture(scope="module")
def wide(pg_cluster, tmp_path_factory):
    """Database ``wide`` (a dump of about 700 MiB) and a vault protecting it."""
    yield _vault_with(pg_cluster, tmp_path_factory, "wide", WIDE_SQL)
    pg_cluster.dropdb("wide")


def run_measured(url: str, home: str, *args: str) -> tuple[dict | list, int]:
    """Run ``strongroom --json ARGS`` in a child process; its output and peak RSS (bytes)."""
    exe = os.path.join(os.path.dirname(sys.executable), "strongroom")
    env = {**os.environ, "STRONGROOM_VAULT": url, "STRONGROOM_HOME": home}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([exe, *args, "--json"], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        assert proc.returncode == 0, err.read().decode()
        return json.loads(out.read()), usage.ru_maxrss * 1024


class TestLargeDatabase:
    def test_memory_stays_flat_while_dumping(self, wide):
        """Backing up a 700 MiB dump raises peak memory by less than a third of it: the dump
        is streamed through bounded buffers, never held whole."""
        url, home = wide
        _, idle = run_measured(url, home, "items")
        point, peak = run_measured(url, home, "backup", "wide")
        dump = point["stats"]["bytes_read"]
        print(f"\nbackup of {dump / 2**20:.0f} MiB: peak RSS {peak / 2**20:.0f} MiB"
              f" (a command that only opens the vault: {idle / 2**20:.0f} MiB)")
        assert dump > 600 * 2**20
        assert peak - idle < dump / 3

    def test_a_day_of_changes_adds_little(self, pg_cluster, bulk):
        """After 1% of the rows change (a range of recent orders), the next point adds under
        5% of the dump's size; an unchanged database adds about one chunk (the TOC)."""
        url, home = bulk
        points, _ = run_measured(url, home, "points", "bulk")
        if not points:
            run_measured(url, home, "backup", "bulk")
        unchanged, _ = run_measured(url, home, "backup", "bulk")
        pg_cluster.psql(f"update orders set status = 'refunded', amount = amount + 1"
                        f" where id > {ROWS - ROWS // 100}", "bulk")
        changed, _ = run_measured(url, home, "backup", "bulk")
        size = unchanged["stats"]["bytes_read"]
        for name, point in (("unchanged", unchanged), ("1% changed", changed)):
            stats = point["stats"]
            print(f"\n{name}: {stats['new_bytes']} new bytes ({100 * stats['new_bytes'] / size:.2f}% of the dump),"
                  f" {stats['stored_bytes']} stored")
        # Unchanged: only the chunk holding the dump's header (it carries the dump time) is
        # new, plus the small manifest.  Content-defined chunks average 1 MiB; with the
        # vault's parameters one longer than 4 MiB has a probability below 1e-5.
        assert unchanged["stats"]["new_bytes"] < 4 * 2**20
        assert changed["stats"]["new_bytes"] < 0.05 * size
