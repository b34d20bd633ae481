"""VM images at rest: chunk size against stored bytes and index size, and strongroom
against restic on an unchanged image and after a 5 MB change inside its file system.

    python -m bench.vm.atrest [--workdir DIR] [--size-mib 1536] [--data-mib 400] [--rounds 3]

The image is a sparse raw GPT disk with one ext4 partition filling it, made by
``mke2fs -d`` from a folder of files (four fifths incompressible, one fifth text).  The
5 MB change is a new 5 MB file written into the ext4 by ``debugfs -w`` (blocks, bitmaps,
inode and directory updated, as a guest would).  Measured, each as a child process:

1. for each chunk size (4M, 1M, 256K, 64K): a fresh vault, a first backup, the change
   made on a copy of the image, a second backup; the vault's growth by the second backup
   (stored bytes), its index folder and the second point's tree ("index size");
2. restic (content-defined chunks, about 1 MiB on average) on the same image and change;
3. the unchanged image: ``strongroom backup`` and ``restic backup`` run again on it,
   interleaved, ``--rounds`` times; medians of the wall times and their ratio;
4. the same disk as qcow2: a 5 MB write through ``qemu-io`` (strongroom reads the chunks
   its dirty bitmap marks), then unchanged backups, interleaved with restic's.

Prints a Markdown report (and writes it with ``--output``); the machine's load average is
read before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time

from bench.vm.shell import du, sh, timed

MIB = 1 << 20
BIN = os.path.dirname(sys.executable)
SIZES = (("4M", 4 << 20), ("1M", 1 << 20), ("256K", 256 << 10), ("64K", 64 << 10))
START = 2048  # sector of the ext4 partition


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def build_image(work: str, size_mib: int, data_mib: int) -> str:
    image = os.path.join(work, "disk.img")
    tree = os.path.join(work, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    rng = random.Random(7)
    written = i = 0
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(500)]
    while written < data_mib * MIB:
        size = rng.choice((8 << 10, 64 << 10, 300 << 10, 2 * MIB, 7 * MIB))
        folder = os.path.join(tree, f"srv/d{i % 37}")
        os.makedirs(folder, exist_ok=True)
        if i % 5 == 0:
            data = b" ".join(rng.choice(words) for _ in range(size // 6))[:size]
        else:
            data = rng.randbytes(size)
        with open(os.path.join(folder, f"f{i}.bin"), "wb") as fh:
            fh.write(data)
        written += size
        i += 1
    if os.path.exists(image):
        os.unlink(image)
    with open(image, "wb") as fh:
        fh.truncate(size_mib * MIB)
    sh("sfdisk", "-q", image, input="label: gpt\nstart=2048, type=L, name=root\n")
    fs_kib = (size_mib - 2) * 1024
    sh("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-E", f"offset={START * 512}", "-d", tree, image, f"{fs_kib}k")
    shutil.rmtree(tree)
    return image


def change(image: str, work: str) -> None:
    """A new 5 MB file inside the ext4 (debugfs writes it as the kernel would: blocks, bitmaps, inode, dir)."""
    src = os.path.join(work, "new5mb.bin")
    with open(src, "wb") as fh:
        fh.write(random.Random(99).randbytes(5_000_000))
    sh("debugfs", "-w", "-R", f"write {src} /srv/new5mb.bin", f"{image}?offset={START * 512}")
    os.unlink(src)


def copy(image: str, to: str) -> str:
    sh("cp", "--sparse=always", image, to)
    return to


def strongroom_sweep(work: str, image: str) -> list[dict]:
    rows = []
    for label, size in SIZES:
        base = os.path.join(work, f"sr-{label}")
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        env = {**os.environ, "STRONGROOM_HOME": os.path.join(base, "home"), "STRONGROOM_VAULT": os.path.join(base, "vault")}
        disk = copy(image, os.path.join(base, "disk.img"))
        sr = os.path.join(BIN, "strongroom")
        sh(sr, "vault", "create", env["STRONGROOM_VAULT"], env=env)
        sh(sr, "protect", "vm", "disk", "--disk", disk, "--chunk-size", label, env=env)
        first = timed(sr, "backup", "disk", env=env)
        before = du(env["STRONGROOM_VAULT"])
        index_before = du(os.path.join(env["STRONGROOM_VAULT"], "index"))
        change(disk, base)
        point = json.loads(sh(sr, "backup", "disk", "--json", env=env).stdout)
        stats = point.get("stats") or point.get("point", {}).get("stats") or {}
        rows.append({
            "chunk": label, "first_s": first, "stored": du(env["STRONGROOM_VAULT"]) - before,
            "new_bytes": stats.get("new_bytes"), "read": stats.get("bytes_read"),
            "index": du(os.path.join(env["STRONGROOM_VAULT"], "index")), "index_growth":
            du(os.path.join(env["STRONGROOM_VAULT"], "index")) - index_before,
            "vault": du(env["STRONGROOM_VAULT"]),
        })
        print(rows[-1], flush=True)
    return rows


def restic_run(work: str, image: str, rounds: int, sr_env: dict) -> dict:
    base = os.path.join(work, "restic")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": os.path.join(base, "repo"),
           "RESTIC_CACHE_DIR": os.path.join(base, "cache")}
    disk = copy(image, os.path.join(base, "disk.img"))
    sh("restic", "init", env=env)
    first = timed("restic", "backup", disk, env=env)
    before = du(env["RESTIC_REPOSITORY"])
    change(disk, base)
    sh("restic", "backup", disk, env=env)
    stored = du(env["RESTIC_REPOSITORY"]) - before
    # the unchanged image, interleaved with strongroom's backup of its own unchanged copy
    sr = os.path.join(BIN, "strongroom")
    times: dict[str, list[float]] = {"strongroom": [], "restic": []}
    for _ in range(rounds):
        times["strongroom"].append(timed(sr, "backup", "disk", env=sr_env))
        times["restic"].append(timed("restic", "backup", disk, env=env))
    return {"first_s": first, "stored": stored, "times": times}


def qcow2_run(work: str, image: str, rounds: int) -> dict:
    """The image as qcow2: strongroom (offline item, dirty bitmaps) and restic on the same
    file; a 5 MB write through QEMU (``qemu-io``, as a VM would write: the bitmap records
    it), then both back it up again; then unchanged backups, interleaved."""
    base = os.path.join(work, "qcow2")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    disk = os.path.join(base, "disk.qcow2")
    sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", image, disk)
    sr = os.path.join(BIN, "strongroom")
    env = {**os.environ, "STRONGROOM_HOME": os.path.join(base, "home"), "STRONGROOM_VAULT": os.path.join(base, "vault"),
           "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": os.path.join(base, "repo"),
           "RESTIC_CACHE_DIR": os.path.join(base, "cache")}
    sh(sr, "vault", "create", env["STRONGROOM_VAULT"], env=env)
    sh(sr, "protect", "vm", "disk", "--disk", disk, env=env)
    sh("restic", "init", env=env)
    sh(sr, "backup", "disk", env=env)
    sh("restic", "backup", disk, env=env)
    src = os.path.join(base, "new5mb.bin")
    with open(src, "wb") as fh:
        fh.write(random.Random(5).randbytes(5_000_000))
    sh("qemu-io", "-f", "qcow2", "-c", f"write -s {src} {900 * MIB + 4096} 5000000", disk)
    out: dict = {}
    for tool, argv, repo in (("strongroom", (sr, "backup", "disk", "--json"), env["STRONGROOM_VAULT"]),
                             ("restic", ("restic", "backup", disk), env["RESTIC_REPOSITORY"])):
        before = du(repo)
        started = time.perf_counter()
        done = sh(*argv, env=env)
        out[tool] = {"changed_s": time.perf_counter() - started, "stored": du(repo) - before}
        if tool == "strongroom":
            out[tool]["read"] = json.loads(done.stdout)["stats"]["bytes_read"]
    times: dict[str, list[float]] = {"strongroom": [], "restic": []}
    for _ in range(rounds):
        times["strongroom"].append(timed(sr, "backup", "disk", env=env))
        times["restic"].append(timed("restic", "backup", disk, env=env))
    out["times"] = times
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/var/tmp/strongroom-bench/vm-atrest")
    parser.add_argument("--size-mib", type=int, default=1536)
    parser.add_argument("--data-mib", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--unchanged-chunk", default="1M", help="the sweep's vault whose unchanged backups are timed")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    load_before = loadavg()
    image = build_image(args.workdir, args.size_mib, args.data_mib)
    rows = strongroom_sweep(args.workdir, image)
    base = os.path.join(args.workdir, f"sr-{args.unchanged_chunk}")
    sr_env = {**os.environ, "STRONGROOM_HOME": os.path.join(base, "home"), "STRONGROOM_VAULT": os.path.join(base, "vault")}
    restic = restic_run(args.workdir, image, args.rounds, sr_env)
    qcow2 = qcow2_run(args.workdir, image, args.rounds)
    load_after = loadavg()
    med = {tool: statistics.median(t) for tool, t in restic["times"].items()}
    lines = [
        f"Image: {args.size_mib} MiB sparse raw GPT disk, ext4 holding {args.data_mib} MiB of files "
        "(4/5 random, 1/5 text); change: a new 5 MB file written into the ext4 by `debugfs -w`.", "",
        "| chunk size | first backup s | stored by the 5 MB change | ratio to restic | index after 2 points | vault after 2 points |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['chunk']} | {row['first_s']:.1f} | {row['stored'] / MIB:.2f} MiB | "
                     f"{row['stored'] / restic['stored']:.2f}x | {row['index'] / 1024:.0f} KiB | {row['vault'] / MIB:.0f} MiB |")
    lines.append(f"| restic (CDC) | {restic['first_s']:.1f} | {restic['stored'] / MIB:.2f} MiB | 1.00x | | |")
    lines += ["", f"Unchanged image, {args.rounds} interleaved rounds (whole commands; strongroom's "
              f"{args.unchanged_chunk} vault): strongroom {', '.join(f'{t:.2f}' for t in restic['times']['strongroom'])} s, "
              f"restic {', '.join(f'{t:.2f}' for t in restic['times']['restic'])} s; medians "
              f"{med['strongroom']:.2f} s vs {med['restic']:.2f} s: **{med['strongroom'] / med['restic']:.2f}x**.",
              ""]
    qmed = {tool: statistics.median(t) for tool, t in qcow2["times"].items()}
    sq, rq = qcow2["strongroom"], qcow2["restic"]
    lines += [f"The same disk as qcow2 (dirty bitmaps; 1M chunks), a 5 MB write through `qemu-io`: strongroom read "
              f"{sq['read'] / MIB:.1f} MiB in {sq['changed_s']:.2f} s and stored {sq['stored'] / MIB:.2f} MiB; restic "
              f"{rq['changed_s']:.2f} s, stored {rq['stored'] / MIB:.2f} MiB "
              f"(**{sq['stored'] / rq['stored']:.2f}x**). Unchanged qcow2, {args.rounds} interleaved rounds: strongroom "
              f"{', '.join(f'{t:.2f}' for t in qcow2['times']['strongroom'])} s, restic "
              f"{', '.join(f'{t:.2f}' for t in qcow2['times']['restic'])} s; medians {qmed['strongroom']:.2f} s vs "
              f"{qmed['restic']:.2f} s: **{qmed['strongroom'] / qmed['restic']:.2f}x**.",
              "", f"Load average before {load_before}, after {load_after}."]
    report = "\n".join(lines)
    print(report)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(report + "\n")


if __name__ == "__main__":
    main()
