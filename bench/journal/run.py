"""What the audit journal costs a backup: objects written and storage requests and names listed
per backup, and time, with the journal on and (for the comparison only) off.

A local vault gets one small item (``--files`` files of 4 KiB), then ``--backups``
backups of the unchanged item, in-process.  Twice: as strongroom runs, and with
:meth:`Journal.record` replaced by a no-op.  The storage requests are counted on the
local store (``put``, ``get``, ``get_range``, ``list``, ``exists``, ``delete``).  The
journal lists only the day's entries (``journal/<day>/``) to append one, so its cost
should not grow with the number of entries: ``--history`` entries (one every three
minutes, ending a day ago, as a busy vault writes them) are written first to show it.

    python -m bench.journal.run [--backups 30] [--files 50] [--history 0,2000] [--output bench/journal/RESULTS.md]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

OPS = ("put", "get", "get_range", "list", "exists", "delete")


@contextmanager
def counting():
    from strongroom.storage.fsspec_store import FsspecStore

    counts: collections.Counter = collections.Counter()
    saved = {op: getattr(FsspecStore, op) for op in OPS}

    def wrap(op, fn):
        def counted(self, *args, **kwargs):
            counts[op] += 1
            result = fn(self, *args, **kwargs)
            if op == "list":
                result = list(result)
                counts["names listed"] += len(result)
            return result
        return counted

    for op, fn in saved.items():
        setattr(FsspecStore, op, wrap(op, fn))
    try:
        yield counts
    finally:
        for op, fn in saved.items():
            setattr(FsspecStore, op, fn)


@contextmanager
def journal_off(off: bool):
    from strongroom.services.journal import Journal

    saved = Journal.record
    if off:
        Journal.record = lambda self, *a, **k: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Journal.record = saved  # type: ignore[method-assign]


def run(backups: int, files: int, history: int, off: bool) -> dict:
    from strongroom.vault import Vault

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["STRONGROOM_HOME"] = os.path.join(tmp, "home")
        src = Path(tmp, "src")
        src.mkdir()
        for i in range(files):
            (src / f"f{i}").write_bytes(os.urandom(4096))
        vault = Vault.create(os.path.join(tmp, "vault"))
        vault.protect("files", "docs", {"paths": [str(src)]})
        # the history as a busy vault makes it: an entry every 3 minutes (10 items backed up
        # hourly, 2 entries each), ending a day ago
        # (the entries of the vault's creation, just written, go first: they would date the history)
        clock, start = vault.journal.clock, vault.clock() - dt.timedelta(days=1)
        if history and not off:
            for name in list(vault.store.list("journal/")):
                vault.store.delete(name)
        for i in range(history if not off else 0):
            moment = start - dt.timedelta(minutes=3 * (history - i))
            vault.journal.clock = lambda moment=moment: moment
            vault.journal.record("bench.filler", {"i": i})
        vault.journal.clock = clock
        vault.backup("docs")  # the first one stores the data
        objects_before = sum(1 for _ in vault.store.list(""))
        times = []
        with journal_off(off), counting() as counts:
            for _ in range(backups):
                started = time.perf_counter()
                vault.backup("docs")
                times.append(time.perf_counter() - started)
        objects_after = sum(1 for _ in vault.store.list(""))
    return {"objects": (objects_after - objects_before) / backups,
            "requests": {op: counts[op] / backups for op in (*OPS, "names listed")},
            "median_ms": statistics.median(times) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backups", type=int, default=30)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--history", default="0,2000")
    parser.add_argument("--output")
    args = parser.parse_args()
    rows = [("journal off", run(args.backups, args.files, 0, True))]
    for history in [int(h) for h in args.history.split(",")]:
        rows.append((f"journal on, {history} entries before", run(args.backups, args.files, history, False)))
    lines = [f"Per unchanged backup of {args.files} files ({args.backups} backups, local vault, median time):", "",
             "| | objects written | puts | gets | lists | names listed | time (ms) |", "|---|---|---|---|---|---|---|"]
    for label, r in rows:
        q = r["requests"]
        lines.append(f"| {label} | {r['objects']:.1f} | {q['put']:.1f} | {q['get'] + q['get_range']:.1f}"
                     f" | {q['list']:.1f} | {q['names listed']:.0f} | {r['median_ms']:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
