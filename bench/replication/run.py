"""Geo replication against a plain boto3 copy of the same objects, between two SeaweedFS servers.

Two SeaweedFS instances on loopback (``strongroom.testing.S3Server``), a vault on the first
with ``--mib`` MiB of random files (``--files`` files) backed up once (not timed), then:

- ``strongroom``: ``Vault.replicate()`` to a new bucket on the second server (listing both
  sides, copying in commit order with the secondary's concurrency, 8);
- ``boto3``: a loop copying the same objects (the vault's objects as listed on the primary,
  less leases) with ``get_object`` and ``put_object``, one after the other, into another new
  bucket on the second server: what a script would do;
- ``boto3 x8``: the same with a pool of 8 threads.

Every target bucket is new and gets one small object first (SeaweedFS grows a bucket's
volumes on its first write; not timed).  Each is timed start to end (best of ``--repeat`` runs, a new bucket each time); the ratio
is strongroom's time over each loop's.  Then a second backup after a small change and an
incremental replicate are timed, with the objects it copied.

    python -m bench.replication.run [--mib 64] [--files 32] [--repeat 3] [--output bench/replication/RESULTS.md]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import platform
import tempfile
import time
from pathlib import Path

from strongroom.policy.redundancy import Redundancy
from strongroom.repository.names import kind_of
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
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
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
        best: dict[str, float] = {}
        copied = 0
        for run in range(args.repeat):
            bucket = _warm_bucket(secondary)
            _configure(home, secondary, bucket)
            url = f"s3://{src_bucket}/vault" if run == 0 else f"s3://{src_bucket}/vault{run}"
            vault = Vault.create(url, name="bench", redundancy=Redundancy("geo", f"s3://{bucket}/vault"))
            vault.protect("files", "data", {"paths": [str(src)]})
            vault.backup("data")
            start = time.perf_counter()
            report = vault.replicate()
            best["strongroom"] = min(best.get("strongroom", 1e9), time.perf_counter() - start)
            copied = report.copied
            names = [n for n in vault.store.list("") if kind_of(n) is not None and not n.startswith("leases/")]
            prefix = url.split("/", 3)[3]
            for threads, label in ((1, "boto3"), (8, "boto3 x8")):
                elapsed = _boto_copy_prefixed(primary, src_bucket, prefix, secondary, names, threads)
                best[label] = min(best.get(label, 1e9), elapsed)
            (src / "f0000.bin").write_bytes(os.urandom(size))
            vault.backup("data")
            start = time.perf_counter()
            again = vault.replicate()
            best["incremental"] = min(best.get("incremental", 1e9), time.perf_counter() - start)
            rows.append((run, report.copied, report.copied_bytes, again.copied, again.copied_bytes))
        mib = args.mib
        lines = [
            "# Geo replication: strongroom against a boto3 copy loop",
            "",
            f"`python -m bench.replication.run --mib {args.mib} --files {args.files} --repeat {args.repeat}`;"
            f" {platform.machine()}, {os.cpu_count()} CPUs (shared), two SeaweedFS servers on loopback."
            " Best of the runs, seconds.",
            "",
            "| Copy | Objects | Seconds | MiB/s | strongroom / this |",
            "|---|---|---|---|---|",
        ]
        for label in ("strongroom", "boto3", "boto3 x8"):
            lines.append(f"| {label} | {copied} | {best[label]:.2f} | {mib / best[label]:.1f} |"
                         f" {best['strongroom'] / best[label]:.2f} |")
        lines += [
            "",
            f"Incremental replicate after one {size // 1024} KiB file changed: {best['incremental']:.2f} s,"
            f" {rows[-1][3]} objects ({rows[-1][4] // 1024} KiB) copied.",
            "",
            "| Run | Objects copied | Bytes copied | Incremental objects | Incremental bytes |",
            "|---|---|---|---|---|",
            *(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} |" for r in rows),
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


if __name__ == "__main__":
    main()
