"""Running one child process and measuring it; sizes and contents of trees on disk.

:class:`Spawner` runs each command in :mod:`bench.spawner`, a small helper process that
spawns the program itself (never a shell, whose own usage is what ``wait4`` would
report) with :class:`subprocess.Popen` and reaps it with :func:`os.wait4`, which returns
that child's resource usage: CPU time (user + system) and peak resident set size.  Wall
time is taken there with :func:`time.perf_counter` around spawn and reap.  The helper
exists because a child's ``ru_maxrss`` is never below its parent's RSS at ``fork``.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys

import attrs

__all__ = ["ChildFailed", "Measurement", "Spawner", "TreeSize", "differences", "manifest", "tree_size"]

MIB = 1 << 20


class ChildFailed(Exception):
    """A benchmarked command exited with a non-zero code; the message has its stderr."""


@attrs.frozen
class Measurement:
    """One child process: wall and CPU seconds, peak RSS in KiB (ru_maxrss on Linux)."""

    wall: float
    cpu: float
    maxrss_kib: int

    @property
    def rss_mib(self) -> float:
        return self.maxrss_kib / 1024


@attrs.define
class Spawner:
    """The helper process that runs and measures commands; a context manager.

    ``floor_kib`` is the helper's own peak RSS: no child's peak RSS can read below it.
    """

    _proc: subprocess.Popen
    floor_kib: int

    @classmethod
    def start(cls) -> Spawner:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spawner.py")
        proc = subprocess.Popen([sys.executable, "-I", "-S", script], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        return cls(proc, json.loads(proc.stdout.readline())["hwm"])

    def __enter__(self) -> Spawner:
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.stdin.close()
        self._proc.wait()

    def run(self, argv: list[str], env: dict[str, str], log: str, cwd: str | None = None) -> Measurement:
        """Run ``argv`` with its output in ``log``.out/.err; ChildFailed on a non-zero exit."""
        request = {"argv": argv, "env": env, "cwd": cwd, "log": log}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise ChildFailed(f"the spawner died running {' '.join(argv)}")
        answer = json.loads(line)
        self.floor_kib = max(self.floor_kib, answer["hwm"])
        if answer["code"] != 0:
            with open(log + ".err", errors="replace") as f:
                stderr = f.read()[-4000:]
            raise ChildFailed(f"{' '.join(argv)} exited with {answer['code']}:\n{stderr}")
        return Measurement(answer["wall"], answer["cpu"], answer["maxrss"])


@attrs.frozen
class TreeSize:
    """Bytes on disk (sum of st_blocks * 512, as du counts them) and apparent bytes."""

    disk: int
    apparent: int
    files: int


def tree_size(root: str) -> TreeSize:
    disk = apparent = files = 0
    for folder, _, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            disk += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return TreeSize(disk, apparent, files)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(root: str) -> dict[str, tuple[str, int, str]]:
    """Relative path -> (kind, size, SHA-256) for every folder and file under ``root``.

    Files are hashed on a few threads (hashlib releases the GIL on large buffers).
    """
    entries: dict[str, tuple[str, int, str]] = {}
    files: list[str] = []
    for folder, dirs, names in os.walk(root):
        rel = os.path.relpath(folder, root)
        for name in dirs:
            entries[os.path.normpath(os.path.join(rel, name))] = ("dir", 0, "")
        for name in names:
            files.append(os.path.normpath(os.path.join(rel, name)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        digests = pool.map(lambda p: _sha256(os.path.join(root, p)), files)
        for path, digest in zip(files, digests):
            entries[path] = ("file", os.path.getsize(os.path.join(root, path)), digest)
    return entries


def differences(expected: dict, actual: dict, limit: int = 5) -> list[str]:
    """Human lines for what differs between two manifests (at most ``limit``)."""
    lines = [f"missing: {p}" for p in sorted(expected.keys() - actual.keys())]
    lines += [f"unexpected: {p}" for p in sorted(actual.keys() - expected.keys())]
    lines += [f"differs: {p} ({expected[p][1]} vs {actual[p][1]} bytes)"
              for p in sorted(expected.keys() & actual.keys()) if expected[p] != actual[p]]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
