"""A postgres backup reports its progress: the databases' size is the expected total
before the first dump is read (BackupContext.progress), the bytes done grow as the dump
streams are read, and --progress-json ends at the bytes the dumps had."""

from __future__ import annotations

import json


class TestPgProgress:
    def test_the_database_size_is_expected_before_the_dump_is_read(self, pg_cluster, pg_source, vault):
        """The first report expects the database's size; the bytes done grow to what was read."""
        pg_cluster.createdb("progress")
        pg_cluster.script("create table t(id int, body text);"
                          " insert into t select g, md5(g::text) from generate_series(1, 20000) g;", db="progress")
        vault.protect("postgres", "progress", {**pg_source, "databases": ["progress"]})
        seen: list[tuple[int, int]] = []
        point = vault.backup("progress", progress=lambda s: seen.append((s.bytes_done, s.bytes_expected)))
        size = int(pg_cluster.psql("select pg_database_size('progress')").strip())
        assert seen[0] == (0, size)
        done = [d for d, _expected in seen]
        assert done == sorted(done) and done[-1] == point.stats["bytes_read"] > 0

    def test_progress_json_events_end_at_the_dumps_bytes(self, pg_cluster, pg_args, cli):
        """--progress-json: status events, the first already with a total, then the summary."""
        pg_cluster.createdb("progressjson")
        cli("vault", "create", cli.vault_url, "--name", "pg-progress")
        cli("protect", "postgres", "pj", *pg_args, "--database", "progressjson")
        docs = [json.loads(line) for line in cli("backup", "pj", "--progress-json").stdout.splitlines()]
        status = [d for d in docs if d["type"] == "status"]
        assert docs[-1]["type"] == "summary" and docs[-1]["workload"] == "postgres"
        assert status[0]["total"] > 0
        assert status[-1]["bytes"] == status[-1]["total"] == docs[-1]["stats"]["bytes_read"]
