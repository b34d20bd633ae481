"""Geo replication against a plain boto3 copy of the same objects, between two SeaweedFS servers.

Two SeaweedFS instances on loopback (``strongroom.testing.S3Server``), a vault on the first
with ``--mib`` MiB of random files (``--files`` files) backed up once (not timed), then:

- ``strongroom``: ``Vault.replicate()`` to a new bucket on the second server (listing both
  sides, the checks, the journal entries of the operation, copying in commit order with the
  secondary's concurrency, 8); the secondary's store is opened before the timer starts, as
  the boto3 clients are;
- ``boto3``: a loop copying the same objects (the vault's objects as listed on the primary,
  less leases) with ``get_object`` and ``put_object``, one after the other, into another new
  bucket on the second server: what a script would do;
- ``boto3 x8``: the same with a pool of 8 threads;
- ``stores x8``: the same objects copied with strongroom's own stores (``open_store``:
  s3fs, the retry decorator) and a flat pool of 8 threads, in no order, with nothing
  listed or checked: the floor of what the storage layer allows, which tells the cost of
  the commit order and the checks (strongroom over it) from the storage layer's (it over
  boto3 x8).

Every target bucket is new and gets one small object first (SeaweedFS grows a bucket's
volumes on its first write; not timed).  Each is timed start to end, the four back to back
in each of ``--repeat`` rounds (a new bucket each time); the best and the median of the
rounds are reported, and the ratios of strongroom's time over each copy's: best over best,
median over median, and the median of each round's own ratio (the copies of one round run
back to back, so this one is the least swayed by a machine shared with others).  Then one file
in a hundred (at least one) is rewritten, backed up, and an incremental replicate timed:
the objects it copied against the objects the secondary lacked before it (its lag).

    python -m bench.replication.run [--mib 64] [--files 100] [--repeat 5] [--output bench/replication/RESULTS.md]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from strongroom.policy.redundancy import Redundancy
from strongroom.repository.names import kind_of
from strongroom.storage import open_store
from strongroom.testing.servers import S3Server


def _configure(home: Path, server: S3Server, bucket: str) -> None:
    path = home / "config.toml"
    text = path.read_text() if path.exists() else ""
    text += f'\n[storage."s3://{bucket}"]\n' + "".join(
        f'{key} = "{value}"\n' for key, value in server.storage_options.items())
    path.write_text(text)


def _warm_bucket(server: S3Server) -> str:
    """A new bucket with one object in it, not timed: SeaweedFS grows a bucket's volumes on its
    first write, which would otherwise fall on whichever copy runs first."""
    bucket = server.create_bucket()
    server.client().put_object(Bucket=bucket, Key="warm", Body=b"warm")
    return bucket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="strongroom-bench-replication-"))
    home = work / "home"
    home.mkdir()
    os.environ["STRONGROOM_HOME"] = str(home)
    os.environ["STRONGROOM_REPLICATION_TIMEOUT"] = "0"  # the backups do not replicate by themselves
    from strongroom.vault import Vault

    primary, secondary = S3Server().start(), S3Server().start()
    try:
        src_bucket = primary.create_bucket()
        _configure(home, primary, src_bucket)
        src = work / "src"
        src.mkdir()
        size = args.mib * 1024 * 1024 // args.files
        for i in range(args.files):
            (src / f"f{i:04d}.bin").write_bytes(os.urandom(size))
        rows = []
        times: dict[str, list[float]] = {"strongroom": [], "boto3": [], "boto3 x8": [], "stores x8": [],
                                         "incremental": []}
        copied = 0
        changed = max(1, args.files // 100)
        for run in range(args.repeat):
            bucket = _warm_bucket(secondary)
            _configure(home, secondary, bucket)
            url = f"s3://{src_bucket}/vault" if run == 0 else f"s3://{src_bucket}/vault{run}"
            vault = Vault.create(url, name="bench", redundancy=Redundancy("geo", f"s3://{bucket}/vault"))
            vault.protect("files", "data", {"paths": [str(src)]})
            vault.backup("data")
            vault.geo.secondary_store()  # opened (its client made) before the timer, as boto3's clients are
            start = time.perf_counter()
            report = vault.replicate()
            times["strongroom"].append(time.perf_counter() - start)
            assert report.complete, report
            copied = report.copied
            names = [n for n in vault.store.list("") if kind_of(n) is not None and not n.startswith("leases/")]
            prefix = url.split("/", 3)[3]
            for threads, label in ((1, "boto3"), (8, "boto3 x8")):
                times[label].append(_boto_copy_prefixed(primary, src_bucket, prefix, secondary, names, threads))
            times["stores x8"].append(_store_copy(primary, src_bucket, prefix, secondary, names))
            for i in range(changed):
                (src / f"f{i:04d}.bin").write_bytes(os.urandom(size))
            vault.backup("data")
            lacking = vault.geo.replicator().lag().objects
            start = time.perf_counter()
            again = vault.replicate()
            times["incremental"].append(time.perf_counter() - start)
            rows.append((run, report.copied, report.copied_bytes, lacking, again.copied, again.copied_bytes))
        mib = args.mib
        best = {label: min(values) for label, values in times.items()}
        median = {label: statistics.median(values) for label, values in times.items()}
        lines = [
            "# Geo replication: strongroom against a boto3 copy loop",
            "",
            f"`python -m bench.replication.run --mib {args.mib} --files {args.files} --repeat {args.repeat}`;"
            f" {platform.machine()}, {os.cpu_count()} CPUs (shared), two SeaweedFS servers on loopback."
            " Seconds, best and median of the rounds.",
            "",
            "| Copy | Objects | Best | Median | MiB/s (best) | strongroom / this (best) | strongroom / this (median)"
            " | strongroom / this (median of the rounds' ratios) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for label in ("strongroom", "boto3", "boto3 x8", "stores x8"):
            ratios = statistics.median(a / b for a, b in zip(times["strongroom"], times[label]))
            lines.append(f"| {label} | {copied} | {best[label]:.2f} | {median[label]:.2f} | {mib / best[label]:.1f} |"
                         f" {best['strongroom'] / best[label]:.2f} | {median['strongroom'] / median[label]:.2f} |"
                         f" {ratios:.2f} |")
        lines += [
            "",
            f"Incremental replicate after {changed} of {args.files} files ({size // 1024} KiB each) changed:"
            f" {best['incremental']:.2f} s best, {median['incremental']:.2f} s median;"
            f" {rows[-1][4]} objects ({rows[-1][5] // 1024} KiB) copied, the secondary lacking {rows[-1][3]}"
            " (the run's own journal entry, written before it lists, is one more).",
            "",
            "| Round | strongroom s | boto3 s | boto3 x8 s | stores x8 s | Objects copied | Bytes copied |"
            " Lacking before the incremental | Incremental objects | Incremental bytes |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *(f"| {r[0]} | {times['strongroom'][i]:.2f} | {times['boto3'][i]:.2f} | {times['boto3 x8'][i]:.2f} |"
              f" {times['stores x8'][i]:.2f} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |" for i, r in enumerate(rows)),
            "",
        ]
        Path(args.output).write_text("\n".join(lines))
        print("\n".join(lines))
    finally:
        primary.stop()
        secondary.stop()


def _boto_copy_prefixed(primary: S3Server, src_bucket: str, prefix: str, secondary: S3Server,
                        names: list[str], threads: int) -> float:
    source, target = primary.client(), secondary.client()
    bucket = _warm_bucket(secondary)

    def copy(name: str) -> None:
        body = source.get_object(Bucket=src_bucket, Key=f"{prefix}/{name}")["Body"].read()
        target.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body)

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(threads) as pool:
        list(pool.map(copy, names))
    return time.perf_counter() - start


def _store_copy(primary: S3Server, src_bucket: str, prefix: str, secondary: S3Server, names: list[str]) -> float:
    source = open_store(f"s3://{src_bucket}/{prefix}", primary.storage_options)
    bucket = _warm_bucket(secondary)
    target = open_store(f"s3://{bucket}/{prefix}", secondary.storage_options)
    source.exists("warm")  # their clients made before the timer, as boto3's are
    target.exists("warm")

    def copy(name: str) -> None:
        target.put(name, source.get(name))

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(copy, names))
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
