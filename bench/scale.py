"""Many small files for the scale run: ``count`` files of 64-2,048 bytes of seeded text.

The files go 1,000 to a folder (``d00000/f00000000.txt`` ...).  Sizes and offsets into
one text pool are drawn for all files at once, and each file is written with a single
``os.open``/``os.write``/``os.close``, so a million files take about a minute, not ten.

Run as a module, it measures how backup time and memory grow with the file count:

    python -m bench.scale --counts 10000,100000,1000000 [--runs 3] [--tools strongroom,restic]
                          [--trees /var/tmp/strongroom-bench] [--output FILE]

For each count (a tree ``TREES/scale-COUNT``, generated once and kept), ``--runs`` runs
in which each tool, in an order that rotates from run to run, makes a first and an
unchanged backup into a fresh repository (:meth:`bench.compare.Bench.scale_run`: each
command a child process, wall and CPU time and peak RSS measured).  It prints (and
writes to ``--output``) a markdown table of the medians, strongroom/tool ratios, every
run, and the load average before and after each count: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

import numpy as np

from bench.corpus import _text_pool

__all__ = ["generate_small_files", "scale_files"]

PER_FOLDER = 1000


def generate_small_files(root: str, count: int, seed: int = 3) -> int:
    """Write ``count`` small files under ``root``; returns the bytes written."""
    rng = np.random.Generator(np.random.PCG64([seed, 7]))
    pool = _text_pool(rng)
    sizes = rng.integers(64, 2049, size=count).tolist()
    starts = rng.integers(0, len(pool) - 2048, size=count).tolist()
    view = memoryview(pool)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    folder = root
    for i in range(count):
        if i % PER_FOLDER == 0:
            folder = os.path.join(root, f"d{i // PER_FOLDER:05d}")
            os.makedirs(folder)
        fd = os.open(os.path.join(folder, f"f{i:08d}.txt"), flags, 0o644)
        try:
            os.write(fd, view[starts[i]:starts[i] + sizes[i]])
        finally:
            os.close(fd)
    return sum(sizes)


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def scale_files(tree: str, count: int) -> int:
    """Generate the scale run's files in ``tree``, or reuse them from an earlier run (a
    marker file records the count and total size once the generation is complete)."""
    marker = tree + ".complete"
    if os.path.isdir(tree) and os.path.exists(marker):
        with open(marker) as f:
            files, size = map(int, f.read().split())
        if files == count:
            return size
    if os.path.exists(tree):
        shutil.rmtree(tree)
    size = generate_small_files(tree, count)
    with open(marker, "w") as f:
        f.write(f"{count} {size}\n")
    return size


def _ladder(counts: list[int], runs: int, tools: list[str], trees: str) -> list[str]:
    """Measure every count; the markdown lines of the report."""
    from bench.compare import Bench, order_of
    from bench.measure import Spawner

    lines = ["| files | operation | tool | median wall s | median CPU s | median peak RSS MiB | strongroom/tool wall |",
             "|---:|---|---|---:|---:|---:|---:|"]
    every = ["| files | run | order | tool | operation | wall s | CPU s | peak RSS MiB |", "|---:|---:|---:|---|---|---:|---:|---:|"]
    loads = []
    work = tempfile.mkdtemp(prefix="strongroom-scale-", dir=trees)
    try:
        with Spawner.start() as spawner:
            bench = Bench(spawner, work, trees, "", 0, runs)
            for count in counts:
                tree = os.path.join(trees, f"scale-{count}")
                scale_files(tree, count)
                before = _load()
                samples = []
                for run in range(1, runs + 1):
                    for position, tool in enumerate(order_of(tools, run), 1):
                        samples += bench.scale_run(tool, run, position, tree)
                loads.append(f"{count:,} files: load average {before} before, {_load()} after")
                for s in samples:
                    m = s.measurement
                    every.append(f"| {count:,} | {s.run} | {s.position} | {s.tool} | {s.op[6:]} | {m.wall:.2f} |"
                                 f" {m.cpu:.2f} | {m.rss_mib:.0f} |")
                for op in ("scale-first", "scale-unchanged"):
                    walls = {t: statistics.median(s.measurement.wall for s in samples if s.tool == t and s.op == op)
                             for t in tools}
                    for tool in tools:
                        mine = [s.measurement for s in samples if s.tool == tool and s.op == op]
                        ratio = walls.get("strongroom", float("nan")) / walls[tool]
                        lines.append(f"| {count:,} | {op[6:]} backup | {tool} | {walls[tool]:.2f} |"
                                     f" {statistics.median(m.cpu for m in mine):.2f} |"
                                     f" {statistics.median(m.rss_mib for m in mine):.0f} | {ratio:.2f} |")
                print("\n".join(lines), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [*lines, "", *loads, "", "Every run:", "", *every]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="10000,100000", help="file counts, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default="strongroom,restic")
    parser.add_argument("--trees", default="/var/tmp/strongroom-bench")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    os.makedirs(args.trees, exist_ok=True)
    text = "\n".join(_ladder(counts, args.runs, [t.strip() for t in args.tools.split(",")], args.trees)) + "\n"
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
