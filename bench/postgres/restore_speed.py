"""strongroom's logical restore of a whole database against ``createdb`` + ``pg_restore -j 2``.

A temporary PostgreSQL cluster (:class:`bench.postgres.run.Cluster`) is filled by
``pgbench -i -s SCALE``; the database is dumped once with ``pg_dump -Fc`` to a file and
backed up once with ``strongroom backup`` into a new local vault.  Then, alternating,
``--rounds`` times, as child processes exactly as a user would run them:

- ``createdb r`` + ``pg_restore -j 2 -d r FILE`` (the peer: createdb is part of its time);
- ``strongroom restore ITEM --to-database r`` (default jobs; it creates the database);
- ``strongroom restore ITEM --to-database r --jobs 2``;
- optionally ``--extra-jobs 1`` etc.

Each restored database is dropped before the next run.  Printed and written: the
medians, the ratios to the peer, and the load average before and after.

    python -m bench.postgres.restore_speed [--scale 10] [--rounds 3] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile

from bench.machine import describe_machine
from bench.postgres.run import STRONGROOM, Cluster, measured


def _loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, action="append", default=None,
                        help="strongroom --jobs values to time besides the default (repeatable; default: 2)")
    parser.add_argument("--output", default=None, help="append the table to this file")
    args = parser.parse_args()
    extra_jobs = args.jobs or [2]

    cluster = Cluster()
    work = tempfile.mkdtemp(prefix="strongroom-pgrestore-")
    os.chmod(work, 0o755)
    try:
        subprocess.run([f"{cluster.bindir}/pgbench", "-i", "-q", "-s", str(args.scale), "postgres"],
                       env=cluster.env, check=True, capture_output=True)
        size = int(cluster.psql("select pg_database_size('postgres')"))
        dump = os.path.join(work, "db.dump")
        subprocess.run([f"{cluster.bindir}/pg_dump", "-Fc", "-f", dump, "postgres"], env=cluster.env, check=True)
        os.chmod(dump, 0o644)
        vault = os.path.join(work, "vault")
        env = {**cluster.env, "STRONGROOM_HOME": os.path.join(work, "home"), "STRONGROOM_VAULT": vault}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([STRONGROOM, "vault", "create", vault], env=env, check=True, capture_output=True)
        subprocess.run([STRONGROOM, "protect", "postgres", "pg", "--host", cluster.root, "--port", "5433",
                        "--user", "postgres", "--database", "postgres"], env=env, check=True, capture_output=True)
        subprocess.run([STRONGROOM, "backup", "pg"], env=env, check=True, capture_output=True)

        runs: dict[str, list[float]] = {}
        peer = "createdb + pg_restore -j 2 (-Fc file)"
        commands: list[tuple[str, list[str], dict[str, str]]] = [
            (peer, ["sh", "-c", f"{cluster.bindir}/createdb r && {cluster.bindir}/pg_restore -j 2 -d r {dump}"],
             cluster.env),
            ("strongroom restore --to-database (default jobs)",
             [STRONGROOM, "restore", "pg", "--to-database", "r"], env),
        ]
        for jobs in extra_jobs:
            commands.append((f"strongroom restore --to-database --jobs {jobs}",
                             [STRONGROOM, "restore", "pg", "--to-database", "r", "--jobs", str(jobs)], env))
        load_before = _loadavg()
        for round_ in range(args.rounds):
            for name, argv, cenv in commands:
                seconds, _, _ = measured(argv, cenv)
                cluster.psql("drop database r")
                runs.setdefault(name, []).append(seconds)
                print(f"round {round_ + 1}: {name}: {seconds:.2f} s", flush=True)
        load_after = _loadavg()
        base = statistics.median(runs[peer])
        rows = "\n".join(
            f"| {name} | {statistics.median(t):.2f} | {' / '.join(f'{x:.2f}' for x in t)} |"
            f" {statistics.median(t) / base:.2f} |" for name, t in runs.items())
        report = (f"\n### pgbench -s {args.scale} ({size / (1 << 20):.0f} MiB), medians of {args.rounds}"
                  f" alternating runs\n\n{describe_machine()}; load average {load_before} before,"
                  f" {load_after} after.\n\n| What | Median s | Runs | Ratio |\n|---|---|---|---|\n{rows}\n")
        print(report)
        if args.output:
            with open(args.output, "a") as fh:
                fh.write(report)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
