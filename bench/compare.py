"""The runs of the comparison: every operation of every tool, alternating, measured.

:meth:`Bench.corpus_run` is one tool in one run on a fresh copy of the corpus;
:meth:`Bench.scale_run` is one tool's first and unchanged backup of the many-small-files
tree.  Both return :class:`Sample` records; :mod:`bench.report` turns them into tables.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import attrs

from bench.corpus import MIB, mutate
from bench.measure import Measurement, Spawner, TreeSize, differences, manifest, tree_size
from bench.pagecache import evict
from bench.tools import Session, make_session

__all__ = ["OPS", "SCALE_OPS", "Bench", "BenchError", "Sample", "order_of", "pick_single_file"]

#: Operation key -> label, in the order they run.
OPS = {
    "first": "first backup",
    "unchanged": "unchanged backup",
    "mutated": "backup after mutation",
    "restore": "full restore",
    "restore-file": "single-file restore",
    "verify": "verify (read all data)",
}
SCALE_OPS = {"scale-first": "first backup", "scale-unchanged": "unchanged backup"}
BACKUPS = ("first", "unchanged", "mutated", "scale-first", "scale-unchanged")
#: Operations that read the repository: with cold repositories it is dropped from the page cache before each.
READS = ("restore", "restore-file", "verify")


class BenchError(Exception):
    """The benchmark cannot go on (a restore differs from its source, a tool failed...)."""


@attrs.frozen
class Sample:
    """One timed operation: run number (from 1), position of the tool in that run's order."""

    run: int
    position: int
    tool: str
    op: str
    measurement: Measurement
    vault: TreeSize | None = None


def order_of(tools: list[str], run: int) -> list[str]:
    """The tools of run ``run`` (from 1), rotated so that each goes first in turn."""
    shift = (run - 1) % len(tools)
    return tools[shift:] + tools[:shift]


def pick_single_file(corpus: str) -> str:
    """A fixed file of 8-32 MiB under ``binary/`` (else the one nearest 16 MiB), relative."""
    folder = os.path.join(corpus, "binary")
    sizes = {name: os.path.getsize(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}
    if not sizes:
        raise BenchError(f"no file under {folder}")
    fitting = [n for n, s in sizes.items() if 8 * MIB <= s <= 32 * MIB]
    name = fitting[0] if fitting else min(sizes, key=lambda n: (abs(sizes[n] - 16 * MIB), n))
    return os.path.join("binary", name)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fresh(path: str) -> str:
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


@attrs.define
class Bench:
    """What every run shares: the spawner, the scratch folder ``work``, the corpus."""

    spawner: Spawner
    work: str
    corpus: str
    single: str
    runs: int
    scale_runs: int
    repeats: int = 10
    cold_repositories: bool = True
    #: the folder the restores write in (bench.restorefs), None: the tool's own folder
    restores: str | None = None

    def logs(self) -> str:
        """A fresh folder for the output of the next commands."""
        return _fresh(os.path.join(self.work, "logs"))

    def time_repeatedly(self, argv: list[str], env: dict[str, str], log: str) -> list[float]:
        """Wall seconds of ``repeats`` runs of a cheap command."""
        return [self.spawner.run(argv, env, log).wall for _ in range(self.repeats)]

    def corpus_run(self, tool: str, run: int, position: int) -> tuple[list[Sample], list[float]]:
        """Copy the corpus to ``work/src``, then back up, mutate, back up, restore, verify.

        In run 1 the full restore is compared with the source, and the tool's cheap
        listing command is timed ``repeats`` times on the repository at the end (those
        wall times are returned with the samples; an empty list in the other runs).
        """
        first = run == 1
        src = os.path.join(self.work, "src")
        shutil.rmtree(src, ignore_errors=True)
        subprocess.run(["cp", "-a", "--sparse=always", self.corpus, src], check=True)
        home = os.path.join(self.work, f"{tool}-run{run}")
        session, timer = self._set_up(tool, home, src, f"run {run}/{self.runs}", run, position)
        timer.timed("first", session.backup())
        timer.timed("unchanged", session.backup())
        mutate(src, seed=2)
        timer.timed("mutated", session.backup())
        restores = self.restores or home
        target = _fresh(os.path.join(restores, "restore-full"))
        timer.timed("restore", *session.restore_all(target))
        if first:
            wanted, got = manifest(src), manifest(session.restored_root(target))
            if wanted != got:
                raise BenchError(f"{tool}: the full restore differs from the source:\n  "
                                 + "\n  ".join(differences(wanted, got)))
        shutil.rmtree(target)
        target = _fresh(os.path.join(restores, "restore-file"))
        timer.timed("restore-file", *session.restore_file(target, self.single))
        restored = os.path.join(session.restored_root(target), self.single)
        if not os.path.isfile(restored) or _sha256(restored) != _sha256(os.path.join(src, self.single)):
            raise BenchError(f"{tool}: the single-file restore of {self.single} is missing or differs")
        shutil.rmtree(target)
        timer.timed("verify", session.verify())
        listing = self.time_repeatedly(session.listing(), session.env, timer.log("listing")) if first else []
        shutil.rmtree(home)
        shutil.rmtree(src)
        return timer.samples, listing

    def scale_run(self, tool: str, run: int, position: int, tree: str) -> list[Sample]:
        """First and unchanged backup of the small-files ``tree`` into a fresh repository."""
        home = os.path.join(self.work, f"scale-{tool}-run{run}")
        session, timer = self._set_up(tool, home, tree, f"scale {run}/{self.scale_runs}", run, position)
        timer.timed("scale-first", session.backup())
        timer.timed("scale-unchanged", session.backup())
        shutil.rmtree(home)
        return timer.samples

    def _set_up(self, tool: str, home: str, src: str, title: str, run: int, position: int) -> tuple[Session, _Timer]:
        """A session of ``tool`` backing up ``src`` into a fresh repository under ``home``,
        its untimed set-up commands run, and the timer of its operations."""
        session = make_session(tool, home, src)
        timer = _Timer(self.spawner, session, title, run, position, self.logs(), self.cold_repositories)
        for argv in session.setup():
            timer.untimed(argv)
        return session, timer


@attrs.define
class _Timer:
    """Runs a session's commands, prints a progress line, collects samples."""

    spawner: Spawner
    session: Session
    title: str
    run: int
    position: int
    logs: str
    cold_repositories: bool
    samples: list[Sample] = attrs.Factory(list)

    def untimed(self, argv: list[str], cwd: str | None = None) -> None:
        self.spawner.run(argv, self.session.env, self.log("setup"), cwd)

    def timed(self, op: str, argv: list[str], cwd: str | None = None) -> Measurement:
        if self.cold_repositories and op in READS:
            evict(self.session.repo)
        m = self.spawner.run(argv, self.session.env, self.log(op), cwd)
        vault = tree_size(self.session.repo) if op in BACKUPS or op == "verify" else None
        self.samples.append(Sample(self.run, self.position, self.session.name, op, m, vault))
        label = OPS.get(op) or SCALE_OPS[op]
        size = f", vault {vault.disk / MIB:.1f} MiB" if vault else ""
        print(f"{self.title}  {self.session.name:<10} {label:<24} {m.wall:8.2f} s  "
              f"(CPU {m.cpu:.2f} s, peak RSS {m.rss_mib:.0f} MiB{size})", flush=True)
        return m

    def log(self, op: str) -> str:
        return os.path.join(self.logs, f"{self.session.name}-{self.run}-{op}")
