"""WAL generated per second by pgbench at full speed vs WAL archived per second by
``strongroom wal push`` (sync, and ``--async``), on a throwaway PostgreSQL 15 cluster.

    .venv/bin/python bench/postgres/wal_throughput.py [--seconds 15] [--scale 5]

For each mode: pgbench -c 2 runs ``--seconds``; generated = WAL bytes written during
the run / run time; archived = WAL bytes archived from the start until the archiver has
caught up with the last segment of the run (pg_stat_archiver) / that time.  Prints one
line per mode and the load average.  Runs as root through a user namespace (see
tests/postgres/pgphysical.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "postgres"))
import pgphysical  # noqa: E402
from conftest import _bindir  # noqa: E402


def lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def run(mode: str, seconds: int, scale: int) -> dict:
    phys = pgphysical.start(_bindir())
    try:
        phys.pg("pgbench", "-i", "-q", "-s", str(scale), "-h", phys.root, "-p", str(phys.port), "-U", "postgres",
                "postgres")
        phys.strongroom("protect", "postgres", "db", "--physical", "--host", phys.root, "--port", str(phys.port),
                        "--user", "postgres")
        phys.strongroom("wal", "setup", "db", "--apply", *(["--async"] if mode == "async" else []))
        phys.psql("select pg_switch_wal()")
        time.sleep(1)
        start_lsn = lsn(phys.psql("select pg_current_wal_lsn()"))
        t0 = time.monotonic()
        phys.pg("pgbench", "-T", str(seconds), "-c", "2", "-j", "2", "-h", phys.root, "-p", str(phys.port),
                "-U", "postgres", "postgres")
        t_run = time.monotonic() - t0
        end_lsn = lsn(phys.psql("select pg_current_wal_lsn()"))
        last = phys.psql("select pg_walfile_name(pg_switch_wal())")
        while phys.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver") < last:
            time.sleep(0.1)
        t_arch = time.monotonic() - t0
        if mode == "async":
            phys.strongroom("wal", "flush", "db")
            t_arch = time.monotonic() - t0
        generated = end_lsn - start_lsn
        stats = phys.psql("select archived_count, failed_count from pg_stat_archiver")
        return {"mode": mode, "wal_mib": generated / 2**20, "run_s": t_run, "gen_mib_s": generated / 2**20 / t_run,
                "archived_s": t_arch, "arch_mib_s": generated / 2**20 / t_arch, "archiver": stats}
    finally:
        pgphysical.stop(phys)


def capacity(count: int = 12) -> None:
    """Segments of 16 MiB (random content, incompressible) pushed back to back through the
    command line, as the archiver does: the ceiling of the archiving rate."""
    phys = pgphysical.start(_bindir())
    try:
        phys.strongroom("protect", "postgres", "db", "--physical", "--host", phys.root, "--port", str(phys.port),
                        "--user", "postgres")
        for mode in ("sync", "async"):
            paths = []
            for i in range(count):
                path = os.path.join(phys.root, f"{'0000000B' if mode == 'sync' else '0000000C'}00000000{i:08X}")
                with open(path, "wb") as fh:
                    fh.write(os.urandom(16 * 2**20))
                paths.append(path)
            t0 = time.monotonic()
            for path in paths:
                phys.strongroom("wal", "push", "db", path, *(["--async"] if mode == "async" else []))
            if mode == "async":
                phys.strongroom("wal", "flush", "db")
            took = time.monotonic() - t0
            print(f"{mode:5}: {count} segments pushed back to back in {took:.1f} s = {took / count:.2f} s/segment"
                  f" = {16 * count / took:.1f} MiB/s", flush=True)
    finally:
        pgphysical.stop(phys)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument("--modes", default="sync,async")
    parser.add_argument("--capacity", action="store_true", help="also push segments back to back")
    args = parser.parse_args()
    if args.capacity:
        capacity()
    for mode in args.modes.split(","):
        r = run(mode, args.seconds, args.scale)
        print(f"{r['mode']:5}: pgbench generated {r['wal_mib']:.0f} MiB of WAL in {r['run_s']:.1f} s"
              f" = {r['gen_mib_s']:.1f} MiB/s; all archived after {r['archived_s']:.1f} s"
              f" = {r['arch_mib_s']:.1f} MiB/s archived (archived|failed: {r['archiver']})", flush=True)
    print("load average:", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    main()
