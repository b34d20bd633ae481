"""strongroom physical mode beside pgBackRest on the same PostgreSQL 15 cluster.

    .venv/bin/python bench/postgres/vs_pgbackrest.py [--scale 10] [--rounds 1]

One cluster (pgbench -i -s SCALE), archive_command pushing every segment to both
(``strongroom wal push`` then ``pgbackrest archive-push``), then, tool by tool
alternating: full backup; 1% of pgbench_accounts rows changed (a range); incremental
backup (pgBackRest --type=incr, strongroom's next base backup); restore to latest into a
new data directory, server started and promoted.  Stored sizes are ``du`` of the vault
and of the pgBackRest repository (zst level 3, as the vault's zstd), WAL included.
Prints a table and the load average.  As root it runs through a user namespace
(tests/postgres/pgphysical.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "postgres"))
import pgphysical  # noqa: E402
from conftest import _bindir  # noqa: E402


def du(path: str) -> int:
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout.split()[0])


def timed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def wait_promoted(phys, port: int) -> None:
    while True:
        try:
            if phys.psql("select pg_is_in_recovery()", port=port) == "f":
                return
        except AssertionError:
            pass
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    phys = pgphysical.start(_bindir())
    repo = os.path.join(phys.root, "pgbackrest")
    conf = os.path.join(phys.root, "pgbackrest.conf")
    with open(conf, "w") as fh:
        fh.write(f"[global]\nrepo1-path={repo}\nlog-path={phys.root}\nlock-path={phys.root}/lock\n"
                 f"spool-path={phys.root}/spool\ncompress-type=zst\ncompress-level=3\nstart-fast=y\nlog-level-console=warn\n"
                 f"[bench]\npg1-path={phys.data}\npg1-socket-path={phys.root}\npg1-port={phys.port}\n"
                 f"pg1-user=postgres\n")

    def brest(*argv: str, data: str | None = None) -> None:
        extra = [f"--pg1-path={data}"] if data else []
        done = subprocess.run(pgphysical.ASUSER + ["pgbackrest", f"--config={conf}", "--stanza=bench", *extra, *argv],
                              capture_output=True, text=True, env=phys.env)
        if done.returncode != 0:
            raise SystemExit(f"pgbackrest {' '.join(argv)}: exit {done.returncode}: {done.stdout} {done.stderr}")

    try:
        phys.pg("pgbench", "-i", "-q", "-s", str(args.scale), "-h", phys.root, "-p", str(phys.port),
                "-U", "postgres", "postgres")
        size = int(phys.psql("select pg_database_size('postgres')"))
        phys.strongroom("protect", "postgres", "db", "--physical", "--host", phys.root, "--port", str(phys.port),
                        "--user", "postgres")
        push = phys.strongroom("wal", "setup", "db").stdout.splitlines()[1].split("=", 1)[1].strip().strip("'")
        command = f"{push} && pgbackrest --config={conf} --stanza=bench archive-push %p"
        phys.psql("alter system set archive_command = '" + command.replace("'", "''") + "'")
        phys.psql("select pg_reload_conf()")
        brest("stanza-create")
        rows = args.scale * 100_000
        print(f"cluster: pgbench -s {args.scale}, database {size / 2**20:.0f} MiB; load {open('/proc/loadavg').read().split()[:3]}")
        for rnd in range(args.rounds):
            results: dict[str, dict[str, float]] = {"strongroom": {}, "pgbackrest": {}}
            sr0, pb0 = du(phys.vault), du(repo)
            results["pgbackrest"]["full s"] = timed(lambda: brest("backup", "--type=full"))
            results["strongroom"]["full s"] = timed(lambda: phys.strongroom("backup", "db"))
            sr1, pb1 = du(phys.vault), du(repo)
            results["strongroom"]["full MiB"], results["pgbackrest"]["full MiB"] = (sr1 - sr0) / 2**20, (pb1 - pb0) / 2**20
            lo = rows - rows // 100 * (rnd + 1)
            phys.psql(f"update pgbench_accounts set abalance = abalance + 1 where aid > {lo} and aid <= {lo + rows // 100}")
            phys.psql("checkpoint")
            results["strongroom"]["incr s"] = timed(lambda: phys.strongroom("backup", "db"))
            results["pgbackrest"]["incr s"] = timed(lambda: brest("backup", "--type=incr"))
            sr2, pb2 = du(phys.vault), du(repo)
            results["strongroom"]["incr MiB"], results["pgbackrest"]["incr MiB"] = (sr2 - sr1) / 2**20, (pb2 - pb1) / 2**20
            last = phys.psql("select pg_walfile_name(pg_switch_wal())")
            while phys.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver") < last:
                time.sleep(0.1)
            for tool in ("pgbackrest", "strongroom"):
                data = os.path.join(phys.root, f"restore-{tool}-{rnd}")
                port = pgphysical.free_port()

                def restore() -> None:
                    if tool == "strongroom":
                        phys.strongroom("restore", "db", "--data-dir", data, "--start", "--host", phys.root,
                                        "--port", str(port))
                    else:
                        os.makedirs(data, mode=0o700)
                        brest("restore", data=data)
                        pgphysical.server_start(phys, data, port)
                        wait_promoted(phys, port)

                results[tool]["restore s"] = timed(restore)
                ok = phys.psql("select sum(abalance) from pgbench_accounts", port=port) == \
                    phys.psql("select sum(abalance) from pgbench_accounts")
                results[tool]["restore ok"] = float(ok)
                pgphysical.server_stop(data)
            results["strongroom"]["stored MiB"], results["pgbackrest"]["stored MiB"] = du(phys.vault) / 2**20, du(repo) / 2**20
            print(f"round {rnd + 1}:")
            keys = list(results["strongroom"])
            print("  " + " | ".join(f"{k:>11}" for k in ["tool", *keys]))
            for tool in ("strongroom", "pgbackrest"):
                print("  " + " | ".join([f"{tool:>11}", *(f"{results[tool][k]:11.2f}" for k in keys)]))
            print("  " + " | ".join([f"{'ratio':>11}", *(f"{results['strongroom'][k] / results['pgbackrest'][k]:11.2f}"
                                                            if results['pgbackrest'][k] else f"{'-':>11}" for k in keys)]))
        print("load average:", open("/proc/loadavg").read().strip())
    finally:
        pgphysical.stop(phys)


if __name__ == "__main__":
    main()
