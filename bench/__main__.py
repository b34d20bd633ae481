"""Compare strongroom, restic and BorgBackup on the same seeded corpus; write bench/RESULTS.md.

    python -m bench [--size 2G] [--runs 3] [--corpus DIR] [--work DIR]
                    [--tools strongroom,restic,borg] [--scale-files 1000000] [--scale-runs N]
                    [--index-entries 1000000] [--repeats 10] [--quick] [--restore-on own-fs|work]
                    [--output bench/RESULTS.md]

or ``make bench BENCH_ARGS='--runs 5'``.  restic and borgbackup are installed with apt-get
when missing (as root; otherwise the command stops and says what to install).

What it does, in order:

1. Generates the corpus (``bench.corpus``, seed 1, ``--size``) in ``--corpus`` unless that
   folder exists (default ``/var/tmp/strongroom-bench/corpus``; it is only read).
2. Times ``strongroom --help`` ``--repeats`` times (default 10), and measures
   strongroom's in-memory index per entry with ``--index-entries`` random entries
   (``python -m bench.indexmem``).
3. ``--runs`` runs; in each, every tool (in an order that rotates from run to run) gets a
   fresh copy of the corpus in ``WORK/src`` and a fresh repository, and these are timed as
   child processes: first backup, unchanged backup, backup after ``bench.corpus.mutate``
   (seed 2), full restore, single-file restore, verify reading all data.  In the first
   run the restores are compared with the source, and each tool's listing command is
   timed ``--repeats`` times.  See ``bench/tools.py`` for every command line.  The
   restores write onto a fresh ext4 with a journal, loop-mounted from an image in the
   scratch folder (``bench/restorefs.py`` says why; as root, else the scratch folder, and
   the results say so; ``--restore-on work``: the scratch folder).
4. The scale run: ``--scale-files`` small files generated once in ``WORK/scale``, then for
   each tool (alternating, ``--scale-runs`` times) a first and an unchanged backup.
5. Writes the medians, the targets, and every raw run to ``--output``.

``--quick`` is for CI: a 100 MiB corpus in its own folder, one run, 2,000 files for the
scale run, 100,000 index entries and 3 repeats; it proves the command works end to
end.  Options given with ``--quick`` still win.  Any tool exiting with an error, or a
restore that differs from its source, stops the benchmark (exit code 1) with the
tool's stderr.  The scratch folder is removed at the end (of a given ``--work``, only
what the benchmark put there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from bench.compare import Bench, BenchError, order_of, pick_single_file
from bench.corpus import MIB, generate, parse_size
from bench.machine import describe_file_system, describe_machine
from bench.measure import ChildFailed, Spawner, tree_size
from bench.report import Results, render
from bench.restorefs import RestoreFileSystem
from bench.scale import scale_files
from bench.tools import LISTING, NAMES, STRONGROOM, command_lines, ensure_installed, version_of

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = "/var/tmp/strongroom-bench/corpus"
#: Defaults of a full run, and of --quick.
FULL = {"size": "2G", "runs": 3, "corpus": CORPUS, "scale_files": 1_000_000, "index_entries": 1_000_000,
        "repeats": 10}
QUICK = {"size": "100M", "runs": 1, "corpus": CORPUS + "-quick", "scale_files": 2_000,
         "index_entries": 100_000, "repeats": 3}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", help="corpus size when it is generated (default 2G; --quick 100M)")
    parser.add_argument("--runs", type=int, help="alternating runs per tool on the corpus (default 3; --quick 1; "
                        "0 runs only the scale run)")
    parser.add_argument("--corpus", help=f"corpus folder, generated if missing (default {CORPUS})")
    parser.add_argument("--work", help="scratch folder (default: a new one beside the corpus); "
                                       "what the bench puts there is removed at the end")
    parser.add_argument("--tools", default=",".join(NAMES), help="comma-separated (default: all three)")
    parser.add_argument("--scale-files", type=int, help="files of the scale run, 0 to skip (default 1000000)")
    parser.add_argument("--scale-tree", help="folder of the scale run's files, generated if missing and kept "
                        "(default: generated in the scratch folder and removed)")
    parser.add_argument("--scale-tools", help="tools of the scale run (default: --tools)")
    parser.add_argument("--scale-runs", type=int, help="runs of the scale run (default: --runs)")
    parser.add_argument("--index-entries", type=int,
                        help="entries of the index measurement (default 1000000)")
    parser.add_argument("--repeats", type=int, help="runs of each start-up timing (default 10; --quick 3)")
    parser.add_argument("--quick", action="store_true", help="for CI: a 100 MiB corpus (own folder), 1 run, 2,000 scale files, "
                             "100,000 index entries, 3 repeats")
    parser.add_argument("--warm-repositories", action="store_true",
                        help="read each repository as its tool left it in the page cache (default: every "
                             "repository is dropped from the page cache before each restore and verify)")
    parser.add_argument("--restore-on", choices=("own-fs", "work"), default="own-fs",
                        help="where the restores write: own-fs (default), a fresh ext4 with a journal loop-mounted "
                             "from an image in the scratch folder (as root; where it cannot be made, the scratch "
                             "folder, and the results say why); work, the scratch folder (bench/restorefs.py)")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"), help="default bench/RESULTS.md")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.scale_runs is None:
        args.scale_runs = args.runs or 1
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.scale_tools = ([t.strip() for t in args.scale_tools.split(",") if t.strip()]
                        if args.scale_tools else list(args.tools))
    unknown = sorted((set(args.tools) | set(args.scale_tools)) - set(NAMES))
    if unknown or not args.tools:
        parser.error(f"--tools: unknown {', '.join(unknown) or 'empty list'} "
                     f"(choose from {', '.join(NAMES)})")
    if min(args.scale_runs, args.repeats, args.index_entries) < 1 or min(args.runs, args.scale_files) < 0:
        parser.error("--scale-runs, --repeats and --index-entries must be at least 1, "
                     "--runs and --scale-files at least 0")
    if not args.runs and not args.scale_files:
        parser.error("nothing to run: --runs 0 and --scale-files 0")
    return args


def _corpus(path: str, size: str) -> None:
    if os.path.isdir(path) and os.listdir(path):
        return
    print(f"generating the corpus ({size}, seed 1) in {path}", flush=True)
    stats = generate(path, parse_size(size), seed=1)
    print(f"wrote {stats.files} files, {stats.bytes / MIB:.0f} MiB", flush=True)


def _work(path: str | None, corpus: str) -> tuple[str, bool]:
    """The scratch folder, and whether the bench created it (then it removes it whole)."""
    if path is None:
        return tempfile.mkdtemp(prefix="strongroom-bench-work-", dir=os.path.dirname(corpus)), True
    if os.path.isdir(path) and os.listdir(path):
        raise SystemExit(f"bench: --work {path} is not empty")
    created = not os.path.exists(path)
    os.makedirs(path, exist_ok=True)
    return os.path.abspath(path), created


def _startup(bench: Bench) -> list[float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env["STRONGROOM_HOME"] = os.path.join(bench.work, "startup-home")
    return bench.time_repeatedly([STRONGROOM, "--help"], env, os.path.join(bench.logs(), "help"))


def _index(entries: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.indexmem", str(entries)], capture_output=True,
                         text=True, cwd=os.path.dirname(HERE))
    if out.returncode != 0:
        raise BenchError(f"bench.indexmem failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


@contextlib.contextmanager
def _restore_folder(choice: str, work: str, size: int) -> Iterator[tuple[str | None, str]]:
    """The folder the restores write in (None: each tool's folder in ``work``) and how the
    results name it; with ``own-fs``, a file system of their own while the block runs."""
    if choice == "work":
        yield None, f"the work folder, {describe_file_system(work)} (`--restore-on work`)"
        return
    with RestoreFileSystem(work, size) as own:
        if own is None:
            yield None, (f"the work folder, {describe_file_system(work)} (a file system of their own could not "
                         "be made here)")
        else:
            yield own, f"a file system of their own, made fresh for this benchmark: {describe_file_system(own)}"


def run(args: argparse.Namespace, argv: list[str], work: str, spawner: Spawner) -> Results:
    started = time.perf_counter()
    corpus = os.path.abspath(args.corpus)
    size = tree_size(corpus)
    by_kind = {kind: tree_size(os.path.join(corpus, kind)).apparent for kind in sorted(os.listdir(corpus))}
    single = pick_single_file(corpus)
    print(f"corpus {corpus}: {size.apparent / MIB:.0f} MiB in {size.files} files; single file {single}",
          flush=True)
    bench = Bench(spawner, work, corpus, single, args.runs, args.scale_runs, args.repeats,
                  cold_repositories=not args.warm_repositories)
    startup = {"strongroom --help": _startup(bench)}
    print(f"strongroom --help: {min(startup['strongroom --help']):.3f} s (best of {args.repeats})",
          flush=True)
    index = _index(args.index_entries)
    print(f"index: {index['reported']:.1f} bytes per entry ({args.index_entries} entries)", flush=True)
    samples = []
    with _restore_folder(args.restore_on, work, 2 * size.apparent + 1024 * MIB) as (bench.restores, restores):
        if args.runs:
            print(f"restores: onto {restores}", flush=True)
        for number in range(1, args.runs + 1):
            for position, tool in enumerate(order_of(args.tools, number), 1):
                got, listing = bench.corpus_run(tool, number, position)
                samples += got
                if listing:
                    startup[dict(command_lines(tool))[LISTING]] = listing
    scale_bytes = 0
    if args.scale_files:
        tree = os.path.abspath(args.scale_tree) if args.scale_tree else os.path.join(work, "scale")
        t0 = time.perf_counter()
        scale_bytes = scale_files(tree, args.scale_files)
        print(f"scale: {args.scale_files} files ready in {time.perf_counter() - t0:.1f} s", flush=True)
        for number in range(1, args.scale_runs + 1):
            for position, tool in enumerate(order_of(args.scale_tools, number), 1):
                samples += bench.scale_run(tool, number, position, tree)
        if not args.scale_tree:
            shutil.rmtree(tree)
    return Results(
        command=" ".join(["python -m bench", *map(shlex.quote, argv)]), machine=describe_machine(work),
        versions={t: version_of(t) for t in args.tools}, tools=args.tools, runs=args.runs,
        scale_runs=args.scale_runs, scale_files=args.scale_files, scale_bytes=scale_bytes, quick=args.quick,
        corpus_path=corpus, corpus=size, by_kind=by_kind, single_file=single,
        single_size=os.path.getsize(os.path.join(corpus, single)), samples=samples, startup=startup,
        index=index, rss_floor_kib=spawner.floor_kib, seconds=time.perf_counter() - started,
        cold_repositories=not args.warm_repositories, restores=restores)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    ensure_installed(sorted(set(args.tools) | set(args.scale_tools)))
    _corpus(args.corpus, args.size)
    work, created = _work(args.work, os.path.abspath(args.corpus))
    try:
        with Spawner.start() as spawner:
            results = run(args, argv, work, spawner)
    except (ChildFailed, BenchError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if created:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for name in os.listdir(work):
                shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    text = render(results)
    with open(args.output, "w") as f:
        f.write(text)
    print(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
