"""Damage one object of a real vault at a time and record what every command does; write
bench/damage/RESULTS.md.

    python -m bench.damage [--quick] [--kinds pack,index,...] [--damages "bit flip,..."]
                           [--at COMMIT] [--jobs N] [--work DIR] [--keep] [--output FILE]

The matrix is every object kind (pack, index, point header, status document, tree node,
key slot beside another, the only key slot, settings, strongroom.json) times every damage
(bit flip in the middle, truncation to half, deletion).  Each cell (:mod:`bench.damage.cell`)
builds a fresh vault with the venv's ``strongroom`` in its own folder and
``STRONGROOM_HOME``, damages one object, then runs verify, points, restores, a backup,
``vault repair`` (dry run and ``--apply``) and the same again, comparing every restore with
its source byte for byte.  Only exit codes and restored bytes are judged, never messages.

By default the code measured is the checkout's working tree, as the venv's editable
install imports it.  ``--at COMMIT`` measures a commit instead: ``git archive`` extracts
its ``core``, ``plugins`` and ``contrib`` into the scratch folder, and every child
process imports strongroom from there (``PYTHONPATH``), with the venv's ``strongroom``
command and dependencies; a checkout that others are editing can then be measured at a
known state.  The results say which code ran.

``--quick`` measures three cells (a pack with a bit flip, a point header cut short, a tree
node deleted) and writes, unless ``--output`` says otherwise, to a file in the system's
temporary folder: it proves the tool works end to end.  The command exits 0 once the
results are written, flagged cells or not (the flags are the results; they are listed on
standard error too); 2 for a bad option.  Scratch folders are removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from bench.damage.cell import Cell, run_cell
from bench.damage.report import Run, render
from bench.damage.runner import EXE
from bench.damage.targets import DAMAGES, KINDS
from bench.machine import describe_machine

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
QUICK = (("pack", "bit flip"), ("point header", "truncation"), ("tree node", "deletion"))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.damage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three cells only (for a test)")
    parser.add_argument("--kinds", help=f"comma-separated object kinds (default all: {', '.join(KINDS)})")
    parser.add_argument("--damages", help=f"comma-separated damages (default all: {', '.join(DAMAGES)})")
    parser.add_argument("--at", metavar="COMMIT", help="measure this commit's code instead of the working tree")
    parser.add_argument("--jobs", type=int, default=1, help="cells measured at once (default 1)")
    parser.add_argument("--work", help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep every cell's folder (vault, sources, restores)")
    parser.add_argument("--output", help="results file (default bench/damage/RESULTS.md; with --quick, "
                                         "a file in the temporary folder)")
    args = parser.parse_args(argv)
    for option, known in (("kinds", KINDS), ("damages", DAMAGES)):
        value = getattr(args, option)
        names = [n.strip() for n in value.split(",")] if value else list(known)
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"unknown --{option}: {', '.join(unknown)} (known: {', '.join(known)})")
        setattr(args, option, names)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def cells_of(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.quick:
        return [c for c in QUICK if c[0] in args.kinds and c[1] in args.damages]
    return [(kind, damage) for kind in args.kinds for damage in args.damages]


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def extract(commit: str, folder: str) -> str:
    """Extract ``commit``'s code into ``folder``; returns the full commit id."""
    full = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
    if not full:
        raise SystemExit(f"bench.damage: no commit {commit!r} in {ROOT}")
    archive = subprocess.run(["git", "archive", "--format=tar", full, "core", "plugins", "contrib"],
                             cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return full


def import_path(folder: str | None) -> str:
    """``PYTHONPATH`` for the code extracted in ``folder``: core, plugins, each contrib package."""
    contrib = os.path.join(folder, "contrib")
    extra = sorted(os.path.join(contrib, d) for d in os.listdir(contrib)) if os.path.isdir(contrib) else []
    return os.pathsep.join([os.path.join(folder, "core"), os.path.join(folder, "plugins"), *extra])


def describe_code(commit: str | None, code: str | None) -> tuple[str, str]:
    """The strongroom version, and which code the children imported (``code``: the
    folder ``commit`` was extracted into)."""
    done = subprocess.run([EXE, "--version"], capture_output=True, text=True)
    version = done.stdout.strip().split()[-1] if done.returncode == 0 and done.stdout.strip() else "unknown"
    where = subprocess.run([sys.executable, "-c", "import strongroom; print(strongroom.__file__)"],
                           capture_output=True, text=True).stdout.strip()
    if commit:
        imported = os.path.realpath(where).startswith(os.path.realpath(code or "") + os.sep)
        return version, f"commit {commit[:7]}, its code extracted with `git archive`" + (
            "" if imported else f" (but strongroom was imported from {where}: the results are not that commit's)")
    head = _git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [line for line in _git("status", "--porcelain", "--", "core", "plugins").splitlines() if line]
    state = f"with {len(changed)} uncommitted changed file(s) under core/ and plugins/" if changed else "clean"
    return version, f"working tree of commit {head}, {state}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.exists(EXE):
        print(f"bench.damage: no strongroom beside {sys.executable}: run it with the venv's python", file=sys.stderr)
        return 1
    output = args.output or (os.path.join(tempfile.gettempdir(), "strongroom-damage-quick.md") if args.quick
                             else os.path.join(HERE, "RESULTS.md"))
    work = tempfile.mkdtemp(prefix="strongroom-damage-", dir=args.work)
    commit = code = None
    cells = cells_of(args)
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.perf_counter()

    def one(numbered: tuple[int, tuple[str, str]]) -> Cell:
        number, (kind, damage) = numbered
        folder = os.path.join(work, f"cell-{number:02d}")
        try:
            cell = run_cell(kind, damage, folder)
        except Exception as exc:  # a fault of the bench itself: reported in the results, the run goes on
            cell = Cell(kind, damage, None, "", "", [], [], [], [], error=f"the bench failed: {exc!r}")
        state = "; ".join(cell.flags) or cell.error or "no flag"
        print(f"[{number}/{len(cells)}] {kind} × {damage}: {state}", file=sys.stderr, flush=True)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        return cell

    try:
        if args.at:
            code = os.path.join(work, "code")
            commit = extract(args.at, code)
            os.environ["PYTHONPATH"] = import_path(code)  # every child process imports this code
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(one, enumerate(cells, 1)))
        version, described = describe_code(commit, code)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    run = Run(command=shlex.join(["python", "-m", "bench.damage", *(argv if argv is not None else sys.argv[1:])]),
              machine=describe_machine(), version=version, code=described,
              started=started.strftime("%Y-%m-%d %H:%M UTC"), seconds=time.perf_counter() - clock,
              quick=args.quick, cells=results)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        f.write(render(run))
    flagged = [c for c in results if c.flags or c.error]
    print(f"Wrote {output}: {len(results)} cells, {len(flagged)} flagged"
          + (f" (kept in {work})" if args.keep else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
