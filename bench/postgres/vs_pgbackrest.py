"""strongroom physical mode beside pgBackRest on the same PostgreSQL 15 cluster.

    .venv/bin/python bench/postgres/vs_pgbackrest.py [--scale 10] [--rounds 3]

One cluster (pgbench -i -s SCALE), archive_command pushing every segment to both
(``strongroom wal push`` then ``pgbackrest archive-push``, each timed), then per round,
the tool that goes first alternating from one round to the next: full backup; 1% of
pgbench_accounts rows changed (a range); incremental backup (pgBackRest --type=incr,
strongroom's next base backup); a marker row, the target time, 1% more changed; restore
to latest and restore to the target time, each into a new data directory, server started
and promoted, checked (the sum of the balances, the marker).  Archive throughput is 16 MiB
over the mean time of one push of each tool, over the round's segments.  Stored sizes are
``du`` of the vault and of the pgBackRest repository (zst level 3, as the vault's zstd),
WAL included.  After the rounds, the logical mode's stored size after 1% of rows changed
(a pg_dump item in a vault of its own).  Prints each round, the medians and the load
average.  As root it runs through a user namespace (tests/postgres/pgphysical.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    phys = pgphysical.start(_bindir())
    repo = os.path.join(phys.root, "pgbackrest")
    conf = os.path.join(phys.root, "pgbackrest.conf")
    times = os.path.join(phys.root, "archive-times")
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

    def archived_all() -> None:
        last = phys.psql("select pg_walfile_name(pg_switch_wal())")
        while phys.psql("select coalesce(last_archived_wal, '') from pg_stat_archiver") < last:
            time.sleep(0.1)

    rounds: list[dict[str, dict[str, float]]] = []
    try:
        phys.pg("pgbench", "-i", "-q", "-s", str(args.scale), "-h", phys.root, "-p", str(phys.port),
                "-U", "postgres", "postgres")
        phys.psql("create table marker(n int)")
        size = int(phys.psql("select pg_database_size('postgres')"))
        phys.strongroom("protect", "postgres", "db", "--physical", "--host", phys.root, "--port", str(phys.port),
                        "--user", "postgres")
        push = phys.strongroom("wal", "setup", "db").stdout.splitlines()[1].split("=", 1)[1].strip().strip("'")
        push = push.replace("''", "'")
        command = (f"a=$(date +%s%N) && {push} && b=$(date +%s%N) && pgbackrest --config={conf} --stanza=bench"
                   f" archive-push %p && c=$(date +%s%N) && echo \"%f $a $b $c\" >> {times}")
        phys.psql("alter system set archive_command = '" + command.replace("'", "''") + "'")
        phys.psql("select pg_reload_conf()")
        brest("stanza-create")
        rows = args.scale * 100_000
        print(f"cluster: pgbench -s {args.scale}, database {size / 2**20:.0f} MiB;"
              f" load {open('/proc/loadavg').read().split()[:3]}", flush=True)
        for rnd in range(args.rounds):
            order = ("strongroom", "pgbackrest") if rnd % 2 == 0 else ("pgbackrest", "strongroom")
            results: dict[str, dict[str, float]] = {"strongroom": {}, "pgbackrest": {}}
            with open(times, "a"):
                pass
            seen = len(open(times).read().splitlines())
            backup = {"strongroom": {"full": lambda: phys.strongroom("backup", "db"),
                                     "incr": lambda: phys.strongroom("backup", "db")},
                      "pgbackrest": {"full": lambda: brest("backup", "--type=full"),
                                     "incr": lambda: brest("backup", "--type=incr")}}
            for kind in ("full", "incr"):
                if kind == "incr":
                    lo = rows - rows // 100 * (2 * rnd + 1)
                    phys.psql(f"update pgbench_accounts set abalance = abalance + 1"
                              f" where aid > {lo} and aid <= {lo + rows // 100}")
                    phys.psql("checkpoint")
                for tool in order:
                    where = phys.vault if tool == "strongroom" else repo
                    before = du(where)
                    results[tool][f"{kind} s"] = timed(backup[tool][kind])
                    results[tool][f"{kind} MiB"] = (du(where) - before) / 2**20
            phys.psql(f"insert into marker values ({rnd})")
            time.sleep(1.0)
            target = phys.psql("select clock_timestamp()::text")
            time.sleep(1.0)
            lo = rows - rows // 100 * (2 * rnd + 2)
            phys.psql(f"update pgbench_accounts set abalance = abalance + 1 where aid > {lo} and aid <= {lo + rows // 100}")
            phys.psql(f"insert into marker values ({rnd + 100})")
            archived_all()
            pushes = [line.split() for line in open(times).read().splitlines()[seen:]]
            for tool, (a, b) in (("strongroom", (1, 2)), ("pgbackrest", (2, 3))):
                mean = statistics.mean((int(p[b]) - int(p[a])) / 1e9 for p in pushes)
                results[tool]["archive MiB/s"] = 16 / mean
            latest = int(phys.psql("select sum(abalance) from pgbench_accounts"))
            for how in ("latest", "time"):
                for tool in order:
                    data = os.path.join(phys.root, f"restore-{tool}-{how}-{rnd}")
                    port = pgphysical.free_port()

                    def restore() -> None:
                        if tool == "strongroom":
                            extra = ["--to-time", target] if how == "time" else []
                            phys.strongroom("restore", "db", "--data-dir", data, *extra, "--start", "--host",
                                            phys.root, "--port", str(port))
                        else:
                            os.makedirs(data, mode=0o700)
                            extra = ["--type=time", f"--target={target}", "--target-action=promote"] \
                                if how == "time" else []
                            brest("restore", *extra, data=data)
                            pgphysical.server_start(phys, data, port)
                            wait_promoted(phys, port)

                    results[tool][f"restore {how} s"] = timed(restore)
                    got = int(phys.psql("select sum(abalance) from pgbench_accounts", port=port))
                    marks = phys.psql("select string_agg(n::text, ',' order by n) from marker", port=port)
                    want = latest if how == "latest" else latest - rows // 100
                    assert got == want and (str(rnd + 100) in marks.split(",")) == (how == "latest"), \
                        (tool, how, got, want, marks)
                    pgphysical.server_stop(data)
                    subprocess.run(["rm", "-rf", data], check=True)
            results["strongroom"]["stored MiB"], results["pgbackrest"]["stored MiB"] = \
                du(phys.vault) / 2**20, du(repo) / 2**20
            rounds.append(results)
            print(f"round {rnd + 1} ({order[0]} first; load {open('/proc/loadavg').read().split()[:3]}):", flush=True)
            table(results)
        if args.rounds > 1:
            print(f"medians of {args.rounds} rounds:")
            keys = list(rounds[0]["strongroom"])
            table({tool: {k: statistics.median(r[tool][k] for r in rounds) for k in keys}
                   for tool in ("strongroom", "pgbackrest")},
                  ratio={k: statistics.median(r["strongroom"][k] / r["pgbackrest"][k] for r in rounds) for k in keys})
        logical(phys, rows)
        print("load average:", open("/proc/loadavg").read().strip())
    finally:
        pgphysical.stop(phys)


def table(results: dict[str, dict[str, float]], ratio: dict[str, float] | None = None) -> None:
    keys = list(results["strongroom"])
    ratio = ratio or {k: results["strongroom"][k] / results["pgbackrest"][k] for k in keys if results["pgbackrest"][k]}
    print("| tool | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for tool in ("strongroom", "pgbackrest"):
        print(f"| {tool} | " + " | ".join(f"{results[tool][k]:.2f}" for k in keys) + " |")
    print("| ratio | " + " | ".join(f"{ratio[k]:.2f}" if k in ratio else "-" for k in keys) + " |", flush=True)


def logical(phys, rows: int) -> None:
    """The logical mode (pg_dump) after 1% of rows changed: a vault of its own, two backups."""
    vault = phys.vault + "-logical"
    pgphysical.Vault.create(vault, home=phys.home)
    env = {"STRONGROOM_VAULT": vault}
    phys.strongroom("protect", "postgres", "logical", "--host", phys.root, "--port", str(phys.port), "--user",
                    "postgres", "--database", "postgres", env=env)
    phys.strongroom("backup", "logical", env=env)
    full = du(vault)
    phys.psql(f"update pgbench_accounts set abalance = abalance + 1 where aid > {rows // 2} and aid <= {rows // 2 + rows // 100}")
    phys.psql("vacuum pgbench_accounts")
    phys.strongroom("backup", "logical", env=env)
    print(f"logical (pg_dump) item: full {full / 2**20:.2f} MiB stored, after 1% of rows changed"
          f" {(du(vault) - full) / 2**20:.2f} MiB more", flush=True)


if __name__ == "__main__":
    main()
