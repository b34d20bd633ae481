"""strongroom's postgres backup against plain ``pg_dump -Fc`` to a local file, on a ~1 GB database.

A temporary PostgreSQL cluster is started (as the ``postgres`` user when run as root) and
filled with generated data (``--rows`` orders, about 1.2 GiB on disk and a 1 GB dump for
the default 8 million).  Then, as child processes, exactly as a user would run them:

- ``pg_dump -Fc`` to a file (default compression): the baseline; and ``pg_dump -Fc -Z0``;
- ``strongroom backup`` into a new local vault (pg_dump -Fc -Z0 streamed through chunking,
  hashing, zstd and encryption), then again unchanged, then after 1% of the rows changed;
- ``pg_restore`` of the baseline file into a new database, and ``strongroom restore
  --to-database`` of the first point (streamed from the vault into pg_restore);
- two more backups: after 1% of the orders changed as a range, then scattered.

Each timing is the best of ``--repeat`` runs (interleaved); peak memory is the child's
maximum resident set.  The ratio reported is strongroom's time over pg_dump -Fc's.

    python -m bench.postgres.run [--rows 8000000] [--repeat 2] [--output bench/postgres/RESULTS-logical.md]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from bench.machine import describe_machine

HERE = os.path.dirname(os.path.abspath(__file__))
STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")
MIB = 1 << 20

DATA_SQL = """
create table orders(id bigint primary key, customer int not null, amount numeric(12,2) not null,
                    status text not null, note text, created timestamptz not null);
insert into orders select g, g % 50000, (g::bigint * 7919) % 100000 / 100.0,
       (array['new', 'paid', 'shipped', 'done'])[1 + g % 4], md5(g::text) || md5((g + 1)::text),
       timestamptz '2024-01-01' + g * interval '1 second' from generate_series(1, {rows}) g;
create index orders_customer on orders(customer);
create table customers(id int primary key, name text, email text);
insert into customers select g, 'customer ' || g, 'c' || g || '@example.org' from generate_series(1, 50000) g;
create table events(id bigserial primary key, at timestamptz, payload jsonb);
insert into events(at, payload) select timestamptz '2024-01-01' + g * interval '1 minute',
       jsonb_build_object('g', g, 'kind', g % 7, 'text', repeat(md5(g::text), 3)) from generate_series(1, {events}) g;
analyze;
"""


class Cluster:
    def __init__(self) -> None:
        self.bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        self.root = tempfile.mkdtemp(prefix="strongroom-pgbench-")
        self.asuser = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.asuser:
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "postgres", "postgres")
        self.data = os.path.join(self.root, "data")
        subprocess.run(self.asuser + [f"{self.bindir}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], check=True, capture_output=True)
        subprocess.run(self.asuser + [f"{self.bindir}/pg_ctl", "-D", self.data, "-l", f"{self.root}/log", "-w",
                                      "start", "-o", f"-p 5433 -k {self.root} -c listen_addresses='' -c fsync=off"
                                      " -c max_wal_size=4GB -c maintenance_work_mem=512MB"],
                       check=True, capture_output=True)
        self.env = {**os.environ, "PGHOST": self.root, "PGPORT": "5433", "PGUSER": "postgres"}

    def psql(self, sql: str, db: str = "postgres") -> str:
        return subprocess.run([f"{self.bindir}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db],
                              input=sql, env=self.env, capture_output=True, text=True, check=True).stdout.strip()

    def stop(self) -> None:
        subprocess.run(self.asuser + [f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run ``argv``; wall time, peak RSS of it and its children (bytes), standard output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv[:3])} failed:\n{err.read().decode()}")
        return elapsed, usage.ru_maxrss * 1024, out.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS-logical.md"))
    args = parser.parse_args()

    cluster = Cluster()
    work = tempfile.mkdtemp(prefix="strongroom-pgbench-work-")
    try:
        print(f"building the database ({args.rows} orders)...", flush=True)
        cluster.psql("create database bench")
        cluster.psql(DATA_SQL.format(rows=args.rows, events=args.rows // 8), "bench")
        db_size = int(cluster.psql("select pg_database_size('bench')"))
        version = cluster.psql("select version()").split(" on ")[0]
        env = {**cluster.env, "STRONGROOM_HOME": os.path.join(work, "home")}
        pg_dump, pg_restore = f"{cluster.bindir}/pg_dump", f"{cluster.bindir}/pg_restore"
        best: dict[str, tuple[float, int]] = {}

        def keep(name: str, seconds: float, rss: int) -> None:
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, rss)
            print(f"  {name}: {seconds:.2f} s, peak RSS {rss / MIB:.0f} MiB", flush=True)

        dump_file = os.path.join(work, "bench.dump")
        sizes: dict[str, int] = {}
        point_stats: dict[str, dict] = {}
        for run in range(args.repeat):
            print(f"run {run + 1} of {args.repeat}", flush=True)
            seconds, rss, _ = measured([pg_dump, "-Fc", "-Z0", "-d", "bench", "-f", dump_file + ".z0"], cluster.env)
            keep("pg_dump -Fc -Z0 to a file", seconds, rss)
            sizes["z0"] = os.path.getsize(dump_file + ".z0")
            seconds, rss, _ = measured([pg_dump, "-Fc", "-d", "bench", "-f", dump_file], cluster.env)
            keep("pg_dump -Fc to a file", seconds, rss)
            sizes["fc"] = os.path.getsize(dump_file)
            vault = os.path.join(work, f"vault{run}")
            venv = {**env, "STRONGROOM_VAULT": vault}
            subprocess.run([STRONGROOM, "vault", "create", vault], env=venv, check=True, capture_output=True)
            subprocess.run([STRONGROOM, "protect", "postgres", "bench", "--host", cluster.root, "--port", "5433",
                            "--user", "postgres", "--database", "bench"], env=venv, check=True, capture_output=True)
            seconds, rss, out = measured([STRONGROOM, "backup", "--json", "bench"], venv)
            keep("strongroom backup (first)", seconds, rss)
            point_stats["first"] = json.loads(out)["stats"]
            seconds, rss, out = measured([STRONGROOM, "backup", "--json", "bench"], venv)
            keep("strongroom backup (unchanged)", seconds, rss)
            point_stats["unchanged"] = json.loads(out)["stats"]
            sizes["vault"] = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(vault) for f in fs)
            cluster.psql("create database restored")
            seconds, rss, _ = measured([pg_restore, "-d", "restored", dump_file], cluster.env)
            keep("pg_restore of the pg_dump -Fc file", seconds, rss)
            cluster.psql("drop database restored")
            cluster.psql("create database restored")
            seconds, rss, _ = measured(["sh", "-c", f"{pg_restore} -d restored < {dump_file}.z0"], cluster.env)
            keep("pg_restore of the -Z0 file from standard input", seconds, rss)
            cluster.psql("drop database restored")
            os.unlink(dump_file + ".z0")
            seconds, rss, _ = measured([STRONGROOM, "restore", "bench", "--to-database", "restored"], venv)
            keep("strongroom restore --to-database", seconds, rss)
            cluster.psql("drop database restored")
            if run == args.repeat - 1:
                cluster.psql(f"update orders set status = 'refunded', amount = amount + 1"
                             f" where id > {args.rows - args.rows // 100}", "bench")
                seconds, rss, out = measured([STRONGROOM, "backup", "--json", "bench"], venv)
                keep("strongroom backup (1% of orders changed)", seconds, rss)
                point_stats["changed"] = json.loads(out)["stats"]
                cluster.psql("update orders set status = 'audited' where id % 100 = 7", "bench")
                seconds, rss, out = measured([STRONGROOM, "backup", "--json", "bench"], venv)
                keep("strongroom backup (1% of orders changed, scattered)", seconds, rss)
                point_stats["scattered"] = json.loads(out)["stats"]
            else:
                shutil.rmtree(vault)
        report = render(args, describe_machine(), version, db_size, sizes, best, point_stats)
        with open(args.output, "w") as fh:
            fh.write(report)
        print(report)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def render(args, host: str, version: str, db_size: int, sizes: dict, best: dict, stats: dict) -> str:
    dump = stats["first"]["bytes_read"]
    ratio = best["strongroom backup (first)"][0] / best["pg_dump -Fc to a file"][0]
    restore_ratio = best["strongroom restore --to-database"][0] / best["pg_restore of the pg_dump -Fc file"][0]
    stream_ratio = best["strongroom restore --to-database"][0] / best["pg_restore of the -Z0 file from standard input"][0]
    rows = "\n".join(f"| {name} | {seconds:.2f} | {rss / MIB:.0f} |" for name, (seconds, rss) in best.items())
    new_changed = stats["changed"]["new_bytes"]
    scattered = stats["scattered"]["new_bytes"]
    return f"""# postgres workload: strongroom backup against pg_dump -Fc

Command: `python -m bench.postgres.run --rows {args.rows} --repeat {args.repeat}` (best of {args.repeat} runs).

Machine: {host}; {version}; data on the local disk (vault and dump file alike),
PostgreSQL with `fsync=off`.

Database: {db_size / MIB:.0f} MiB on disk (pg_database_size): {args.rows:,} orders with an index,
{args.rows // 8:,} jsonb events, 50,000 customers. Uncompressed dump (`-Fc -Z0`): {sizes["z0"] / MIB:.0f} MiB;
compressed dump (`-Fc`): {sizes["fc"] / MIB:.0f} MiB.

| What | Seconds | Peak RSS (MiB) |
|---|---|---|
{rows}

**Backup time ratio, strongroom / pg_dump -Fc to a local file: {ratio:.2f}.**
Restore time ratio, strongroom restore / pg_restore of the file: {restore_ratio:.2f}
(/ pg_restore of the uncompressed dump from standard input, which is what strongroom feeds it:
{stream_ratio:.2f}). Timings on a shared machine vary from run to run: compare within one table.

Vault after the first backup and an unchanged one: {sizes["vault"] / MIB:.0f} MiB
(the pg_dump -Fc file: {sizes["fc"] / MIB:.0f} MiB). New data: first backup
{stats["first"]["new_bytes"] / MIB:.0f} MiB raw, {stats["first"]["stored_bytes"] / MIB:.0f} MiB stored;
unchanged database {stats["unchanged"]["new_bytes"] / MIB:.1f} MiB raw
({100 * stats["unchanged"]["new_bytes"] / dump:.2f}% of the dump);
after 1% of the orders changed (the most recent ones, a range of ids) {new_changed / MIB:.1f} MiB raw,
{stats["changed"]["stored_bytes"] / MIB:.1f} MiB stored ({100 * new_changed / dump:.2f}% of the dump);
after then 1% of the orders changed scattered over the table (every 100th row)
{scattered / MIB:.0f} MiB raw, {stats["scattered"]["stored_bytes"] / MIB:.0f} MiB stored
({100 * scattered / dump:.0f}% of the dump: nearly every chunk of the table holds a changed row).

Peak memory of strongroom stays flat: it does not grow with the size of the dump (the
dump is streamed through bounded buffers, never held whole or staged on disk).
"""


if __name__ == "__main__":
    main()
