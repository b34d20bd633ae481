"""VM disk benchmark: a 4 GiB disk image (half zeros, half data), strongroom against restic
and BorgBackup backing up the same image file.

    python -m bench.vm.run [--workdir DIR] [--size-gib 4] [--output bench/vm/RESULTS.md]

The image is a sparse GPT disk with one ext4 partition filling it, made by ``mke2fs -d``
from a folder of incompressible files (half of the disk); the rest is free space (zeros).
Measured, each as a child process, wall-clock:

1. first backup of the image file by ``strongroom`` (offline vm item), ``restic`` and ``borg``;
2. after 1% of the disk's 4 MiB blocks change (1 MiB of new data written in each), a second
   backup by each; strongroom's offline mode reads the whole image (no changed-block map
   exists for a file at rest) and stores only what changed;
3. the same change on a live QEMU VM (TCG, paused) using the image as its disk: strongroom's
   second backup reads only the chunks QEMU's dirty bitmap marks;
4. single-file restore of a 1 MiB file from inside the disk: strongroom extracts it from the
   point; restic and borg restore the whole image, then ``debugfs`` takes the file out.

restic and borgbackup are installed from Debian when missing (as root).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from bench.machine import describe_machine
from bench.vm.shell import du, sh, timed

MIB = 1 << 20
CHUNK = 4 * MIB
HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
PYTHON = sys.executable
TARGET = "home/alice/wanted.bin"


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("restic", "restic"), ("borg", "borgbackup"), ("debugfs", "e2fsprogs"))
               if shutil.which(tool) is None]
    if missing:
        if os.geteuid() != 0:
            raise SystemExit(f"please install: {' '.join(missing)}")
        sh("apt-get", "install", "-y", "-q", "--no-install-recommends", *missing,
           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def build_image(workdir: str, size_gib: int) -> tuple[str, int]:
    """The sparse image and the byte offset of its ext4 partition."""
    image = os.path.join(workdir, "disk.img")
    tree = os.path.join(workdir, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    rng = random.Random(42)
    data = size_gib * 1024 * MIB // 2 - MIB
    os.makedirs(os.path.join(tree, "var", "data"))
    written = 0
    i = 0
    while written < data:
        n = min(16 * MIB, data - written)
        with open(os.path.join(tree, "var", "data", f"blob{i:04}.bin"), "wb") as fh:
            fh.write(rng.randbytes(n))
        written += n
        i += 1
    os.makedirs(os.path.join(tree, "home", "alice"))
    with open(os.path.join(tree, TARGET), "wb") as fh:
        fh.write(rng.randbytes(MIB))
    if os.path.exists(image):
        os.unlink(image)
    with open(image, "wb") as fh:
        fh.truncate(size_gib * 1024 * MIB)
    subprocess.run(["sfdisk", "-q", image], input=b"label: gpt\nstart=2048, type=L, name=root\n", check=True)
    part = json.loads(sh("sfdisk", "-J", image).stdout)["partitiontable"]["partitions"][0]
    offset = part["start"] * 512
    sh("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-E", f"offset={offset}", "-d", tree, image,
       f"{part['size'] * 512 // 1024}k")
    shutil.rmtree(tree)
    return image, offset


def change_blocks(image: str, offset: int, size: int, seed: int) -> list[int]:
    """Write 1 MiB of new data into 1% of the disk's 4 MiB blocks (within the data half)."""
    rng = random.Random(seed)
    blocks = size // CHUNK
    data_blocks = range((offset + CHUNK) // CHUNK, blocks // 2)
    chosen = sorted(rng.sample(list(data_blocks), max(1, blocks // 100)))
    with open(image, "r+b") as fh:
        for b in chosen:
            fh.seek(b * CHUNK + MIB)
            fh.write(rng.randbytes(MIB))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/var/tmp/strongroom-bench/vm")
    parser.add_argument("--size-gib", type=int, default=4)
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    ensure_tools()
    os.makedirs(args.workdir, exist_ok=True)
    work = args.workdir
    for name in ("sr", "restic", "borg", "home", "out", "live"):
        shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    image, offset = build_image(work, args.size_gib)
    size = os.path.getsize(image)
    env = {**os.environ, "STRONGROOM_HOME": os.path.join(work, "home"), "STRONGROOM_VAULT": os.path.join(work, "sr"),
           "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": os.path.join(work, "restic"),
           "BORG_PASSPHRASE": "bench", "BORG_REPO": os.path.join(work, "borg"), "RESTIC_CACHE_DIR": os.path.join(work, "cache")}
    sr = os.path.join(BIN, "strongroom")
    sh(sr, "vault", "create", env["STRONGROOM_VAULT"], env=env)
    sh(sr, "protect", "vm", "disk", "--disk", image, env=env)
    sh("restic", "init", env=env)
    sh("borg", "init", "-e", "repokey-blake2", env=env)
    results: dict[str, dict[str, float]] = {"strongroom": {}, "restic": {}, "borg": {}}
    results["strongroom"]["full"] = timed(sr, "backup", "disk", env=env)
    results["restic"]["full"] = timed("restic", "backup", image, env=env)
    results["borg"]["full"] = timed("borg", "create", "::one", image, env=env)
    first_point = json.loads(sh(sr, "points", "disk", "--json", env=env).stdout)[0]["point_id"]
    change_blocks(image, offset, size, seed=1)
    results["strongroom"]["incremental"] = timed(sr, "backup", "disk", env=env)
    results["restic"]["incremental"] = timed("restic", "backup", image, env=env)
    results["borg"]["incremental"] = timed("borg", "create", "::two", image, env=env)
    for tool, path in (("strongroom", env["STRONGROOM_VAULT"]), ("restic", env["RESTIC_REPOSITORY"]),
                       ("borg", env["BORG_REPO"])):
        results[tool]["size"] = du(path)
    # single-file restore from the first point
    out = os.path.join(work, "out")
    results["strongroom"]["file"] = timed(sr, "restore", f"disk@{first_point}", "--target", out,
                                          "--files", f"disk:/p1/{TARGET}", env=env)
    shutil.rmtree(out)
    for tool, argv in (("restic", ["restic", "restore", "latest", "--target", out]),
                       ("borg", ["borg", "extract", "--sparse", "::one"])):
        os.makedirs(out)
        started = time.perf_counter()
        sh(*argv, env=env) if tool == "restic" else subprocess.run(argv, env=env, cwd=out, check=True, capture_output=True)
        restored = os.path.join(out, image.lstrip("/"))
        sh("debugfs", "-R", f"dump /{TARGET} {os.path.join(out, 'wanted.bin')}", f"{restored}?offset={offset}")
        results[tool]["file"] = time.perf_counter() - started
        shutil.rmtree(out)
    live = live_run(work, image, env, sr)
    write_results(args, results, live, size)


def live_run(work: str, image: str, env: dict, sr: str) -> dict[str, float]:
    """Full and incremental backups of a live VM using the image as its raw disk."""
    sock_dir = tempfile.mkdtemp(prefix="srbench-", dir="/tmp")
    qmp = os.path.join(sock_dir, "qmp.sock")
    control = os.path.join(sock_dir, "control.sock")
    proc = subprocess.Popen(["qemu-system-x86_64", "-nodefaults", "-display", "none", "-machine", "q35,accel=tcg",
                             "-m", "64", "-S", "-qmp", f"unix:{qmp},server=on,wait=off",
                             "-qmp", f"unix:{control},server=on,wait=off",
                             "-blockdev", f"driver=file,filename={image},node-name=f0",
                             "-blockdev", "driver=raw,file=f0,node-name=d0",
                             "-device", "virtio-blk-pci,drive=d0,id=vda"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from strongroom_vm.qmp import QmpClient

    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(control) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        env = {**env, "STRONGROOM_VAULT": os.path.join(work, "live")}
        sh(sr, "vault", "create", env["STRONGROOM_VAULT"], env=env)
        sh(sr, "protect", "vm", "vm", "--qmp", qmp, env=env)
        full = timed(sr, "backup", "vm", env=env)
        size = os.path.getsize(image)
        rng = random.Random(2)
        blocks = rng.sample(range(size // CHUNK // 2), max(1, size // CHUNK // 100))
        with QmpClient(control) as mon:
            for b in blocks:
                mon.hmp(f'qemu-io -d /machine/peripheral/vda/virtio-backend "write -P {rng.randrange(1, 255)} '
                        f'{b * CHUNK + MIB} {MIB}"')
        started = time.perf_counter()
        point = json.loads(sh(sr, "backup", "vm", "--json", env=env).stdout)
        incremental = time.perf_counter() - started
        return {"full": full, "incremental": incremental, "read": point["stats"]["bytes_read"],
                "chunks": len(blocks)}
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(sock_dir, ignore_errors=True)


def _machine() -> str:
    restic = sh("restic", "version").stdout.split()[1]
    borg = sh("borg", "--version").stdout.split()[-1]
    return f"{describe_machine()}; restic {restic}, borg {borg}"


def write_results(args, results: dict, live: dict, size: int) -> None:
    gib = size / (1 << 30)
    lines = [
        "# VM disk benchmark: a 4 GiB disk image against restic and BorgBackup", "",
        f"Image: a sparse {gib:.0f} GiB GPT disk, one ext4 partition made by `mke2fs -d` from "
        f"{gib / 2:.0f} GiB of incompressible files; the other half is free space (zeros).", "",
        f"Machine: {_machine()}.", "",
        "Each figure is the wall-clock time of one command run as a child process, into a local "
        "folder. *Incremental*: the second backup after 1% of the disk's 4 MiB blocks changed "
        "(1 MiB of new data in each). *Single file*: restore one 1 MiB file from inside the disk "
        "(restic and borg: restore the image, then `debugfs` dumps the file).", "",
        "| tool | first backup s | first backup MiB/s | incremental s | repository after 2 backups | single file s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for tool in ("strongroom", "restic", "borg"):
        r = results[tool]
        lines.append(f"| {tool} | {r['full']:.1f} | {size / MIB / r['full']:.0f} | {r['incremental']:.1f} | "
                     f"{r['size'] / MIB:.0f} MiB | {r['file']:.2f} |")
    lines += [
        "", "Live VM (QEMU, TCG, paused; the image as its raw disk): strongroom through QMP, "
        "fleecing and dirty bitmaps.", "",
        "| backup | seconds | MiB/s of disk | read |", "|---|---:|---:|---:|",
        f"| first | {live['full']:.1f} | {size / MIB / live['full']:.0f} | {size / MIB:.0f} MiB |",
        f"| incremental ({live['chunks']} blocks changed) | {live['incremental']:.1f} | "
        f"{size / MIB / live['incremental']:.0f} | {live['read'] / MIB:.0f} MiB |",
        "", f"Command: `python -m bench.vm.run --workdir {args.workdir} --size-gib {args.size_gib}`", "",
    ]
    with open(args.output, "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
