"""A files backup's scan carried on in a second process (:func:`scan`).

The scan (``scandir``, an ``lstat`` and an ``llistxattr`` per entry, an :class:`Entry`
made of each) runs between lines of Python, in the thread that also compares each file
with the parent point: a backup of a million unchanged files kept one core busy and
the other idle.  :func:`scan` yields what ``iter(scanner)`` yields, and leaves its
warnings in ``scanner.warnings``, but past the first :data:`HANDOVER_AFTER` entries,
with more than one CPU, the scan is handed over to a second process:

- This process scans on while the helper starts (a new Python program, about 80 ms),
  then stops at the first entry after which the helper has entries ready.
- The helper runs the same :class:`~.scan.Scanner` from the start, and sends its
  entries after the last one this process had yielded when it started the helper, in
  frames of :data:`FRAME_ENTRIES` (``marshal``, over a pipe of :data:`PIPE_BYTES`, so
  that it scans a folder or more ahead).  The files of one link of a folder, one after
  the other, go together: this process yields them as a :class:`~strongroom.FileRun`
  (at most a frame's), whose files the backup compares with the parent point as fields,
  without an :class:`Entry` made of each (the backup after a day of changes of the 2 GiB
  corpus: 1.31 s against 1.44 s).  Those up to the last entry this process
  yielded before it stopped are dropped, before an entry is made of them: the
  scanner's order is strict (the paths, split at ``/`` and encoded, increase), so "up
  to" is exact.  Its warnings about paths before that entry are dropped too, and those
  about the entry itself that this process has; this process's own warnings are kept.
- A hard link whose first name comes before the hand-over, but which this process did
  not yield as a file of several links (the tree changed between the two scans), is
  yielded as a plain file: its content is read, as it would be for a first name.
- The helper gets the scanner's settings on its standard input.  It is started with
  :func:`~strongroom.processes.start_child` (killed if the backup's thread ends, no
  secret in its environment) and ignores SIGINT, which the backup's process handles.
- A helper that cannot start, dies or fails is no error: the scan goes on in this
  process from the entry after the last one yielded (a log warning says so, unless the
  job is being stopped).

A tree of fewer entries than :data:`HANDOVER_AFTER` never starts the helper.  The files
workload scans this way only when the item has a parent point: a first backup is bound by
reading and sealing, not by the walk.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import marshal
import operator
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import BinaryIO

import attrs

import strongroom
from strongroom import (
    FILE, HARDLINK, Entry, FileRun, FileSource, FolderSource, LinkSource, SpecialSource, children_ended, cpus,
    start_child,
)

from .scan import ScannedEntry, Scanner, ScanWarning

__all__ = ["FRAME_ENTRIES", "HANDOVER_AFTER", "PIPE_BYTES", "main", "scan", "walk_key"]

log = logging.getLogger(__name__)

#: Entries scanned in this process before the helper is started (module docstring).
HANDOVER_AFTER = 4096
#: Entries per frame the helper sends.
FRAME_ENTRIES = 512
#: The size asked for the helper's pipe (Linux allows 1 MiB to any user by default):
#: with the default 64 KiB, the helper waited whenever this process loaded a folder of
#: the parent point, and a backup of a million unchanged files gained 5% instead of 30%.
PIPE_BYTES = 1 << 20
#: While the helper starts, whether it is ready is asked every this many entries.
_POLL_EVERY = 256

_HEADER = struct.Struct("<I")
_SOURCES = (FileSource, FolderSource, LinkSource, SpecialSource)  # by their code in a frame
_CODES = {kind: code for code, kind in enumerate(_SOURCES)}
#: The code of a run of plain files of one folder in a frame: ``(_RUN, folder, files)``.
_RUN = len(_SOURCES)
_FIELDS = operator.attrgetter(*(f.name for f in attrs.fields(Entry)))
_PACKAGES = [  # the folders holding this plugin and strongroom: the helper imports the same code
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    os.path.dirname(os.path.dirname(os.path.abspath(strongroom.__file__))),
]
_HELPER = (
    "import sys; sys.path[:0] = sys.argv[1:]; "
    "from strongroom_files.scanprocess import main; sys.exit(main())"
)


def walk_key(path: str) -> tuple[bytes, ...]:
    """The place of point path ``path`` in the scanner's order (module docstring of
    :mod:`.scan`): its components, encoded."""
    return tuple(os.fsencode(part) for part in path.split("/")) if path else ()


def scan(scanner: Scanner, *, handover_after: int | None = None) -> Iterator[ScannedEntry | FileRun]:
    """The entries of ``iter(scanner)``, the scan carried on in a helper process once
    ``handover_after`` (:data:`HANDOVER_AFTER`) entries are yielded (module docstring);
    the warnings are in ``scanner.warnings`` once the iteration is over."""
    limit = HANDOVER_AFTER if handover_after is None else handover_after
    emitted = _Emitted()
    entries = iter(scanner)
    for src in entries:
        emitted.note(src)
        yield src
        if emitted.count >= limit:
            break
    else:
        return
    helper = _Helper.start(scanner, emitted.last) if cpus() > 1 and sys.executable else None
    if helper is None:
        yield from entries
        return
    try:
        polled = 0
        for src in entries:
            emitted.note(src)
            yield src
            polled += 1
            if polled == _POLL_EVERY:
                polled = 0
                if helper.ready():
                    break
        else:
            return  # this process got to the end first
        entries.close()
        handed_over, warnings = emitted.last, list(scanner.warnings)
        try:
            yield from emitted.after(helper.entries(handed_over))
            scanner.warnings[:] = warnings + _after(handed_over, helper.warnings, warnings)
            return
        except _HelperLost as exc:
            if not children_ended():  # not ended by the job's stop (Ctrl-C)
                log.warning("the process scanning the files %s; the scan goes on in this process", exc)
    finally:
        helper.close()
    # from the entry after the last one yielded, in this process
    yield from emitted.after(iter(scanner))
    scanner.warnings[:] = warnings + _after(handed_over, scanner.warnings, warnings)


def _after(path: str, warnings: list[ScanWarning], known: list[ScanWarning]) -> list[ScanWarning]:
    """The ``warnings`` of a new scan about paths after point path ``path``, where the
    scan was handed over (a warning names the absolute path: the point path after a
    ``/``), and those about ``path`` itself not ``known`` (the scan stopped right after
    yielding it: the warning that its folder cannot be listed comes after)."""
    last = walk_key(path)
    kept = []
    for warning in warnings:
        key = walk_key(warning.path.lstrip("/"))
        if key > last or (key == last and warning not in known):
            kept.append(warning)
    return kept


class _Emitted:
    """What :func:`scan` has yielded: how many entries, the last one's path, and the
    paths of its files of several links (the first names that later hard links name)."""

    __slots__ = ("count", "last", "linked")

    def __init__(self) -> None:
        self.count = 0
        self.last = ""
        self.linked: set[str] = set()

    def note(self, src: ScannedEntry) -> None:
        self.count += 1
        self.last = src.path
        entry = src.entry
        if entry.nlink > 1 and entry.type == FILE:
            self.linked.add(src.path)

    def after(self, entries: Iterator[ScannedEntry | FileRun]) -> Iterator[ScannedEntry | FileRun]:
        """The entries of a new scan from the start (``entries``) that come after the
        last one yielded; a hard link to a first name not yielded as such becomes a file."""
        last = walk_key(self.last)
        linked = self.linked
        passed = False
        for src in entries:
            if type(src) is FileRun:  # plain files of one link each: no first name, no link
                if not passed:
                    files = _files_after(src.files, last)
                    if not files:
                        continue
                    passed = True
                    src = FileRun(src.folder, files)
                if src.files:
                    self.last = src.files[-1][0]
                    yield src
                continue
            if not passed:
                if walk_key(src.path) <= last:
                    continue
                passed = True
            entry = src.entry
            if entry.nlink > 1:
                if entry.type == HARDLINK and entry.target not in linked:
                    entry = attrs.evolve(entry, type=FILE, target="")
                    src = attrs.evolve(src, entry=entry)
                if entry.type == FILE:
                    linked.add(src.path)
            self.last = src.path
            yield src


class _HelperLost(Exception):
    """The helper ended before the end of its scan, or failed."""


class _Helper:
    """The helper process and its stream of entries."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.stream: BinaryIO = process.stdout  # type: ignore[assignment]
        self.warnings: list[ScanWarning] = []

    @classmethod
    def start(cls, scanner: Scanner, yielded: str) -> _Helper | None:
        """The helper scanning as ``scanner`` does, which sends the entries after point
        path ``yielded`` (this process has yielded those up to it), or None if it cannot
        be started."""
        settings = {
            "paths": scanner.paths, "excludes": scanner.excludes, "includes": scanner.includes,
            "one_file_system": scanner.one_file_system, "exclude_if_present": scanner.exclude_if_present,
            "exclude_caches": scanner.exclude_caches, "leave_out": scanner.leave_out,
        }
        try:
            process = start_child(
                [sys.executable, "-P", "-c", _HELPER, *_PACKAGES], end_signal=signal.SIGKILL,
                block_sigint=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, bufsize=PIPE_BYTES)  # a failure comes as a frame, or as the end
        except OSError as exc:
            log.debug("the process scanning the files did not start (%s)", exc)
            return None
        helper = cls(process)
        try:
            process.stdin.write(pickle.dumps((settings, yielded)))  # type: ignore[union-attr]
            process.stdin.close()  # type: ignore[union-attr]
        except OSError as exc:
            log.debug("the process scanning the files did not take its settings (%s)", exc)
            helper.close()
            return None
        return helper

    def ready(self) -> bool:
        """Whether the helper has sent something (entries, or its end)."""
        return bool(select.select([self.stream], [], [], 0)[0])

    def entries(self, yielded: str) -> Iterator[ScannedEntry | FileRun]:
        """The helper's entries after point path ``yielded`` (those up to it are dropped
        before an entry is made of them); :class:`_HelperLost` if it ends first.  Its
        warnings are in :attr:`warnings` once they are all yielded."""
        read, loads, sources = self.stream.read, marshal.loads, _SOURCES
        file_source, file_run, run_code = FileSource, FileRun, _RUN
        last = walk_key(yielded)
        passed = False
        while True:
            try:
                header = read(_HEADER.size)
                if len(header) < _HEADER.size:
                    raise _HelperLost("ended unexpectedly")
                (size,) = _HEADER.unpack(header)
                data = read(size)
                if len(data) < size:
                    raise _HelperLost("ended unexpectedly")
                frame = loads(data)
            except (OSError, ValueError, EOFError, TypeError) as exc:
                raise _HelperLost(f"sent what cannot be read ({exc})") from exc
            if type(frame) is tuple:
                what, value = frame
                if what != "end":
                    raise _HelperLost(f"failed ({value})")
                self.warnings = [ScanWarning(path, reason) for path, reason in value]
                return
            if not passed:
                frame = _after_in_frame(frame, last)
                passed = bool(frame)
            for item in frame:
                code = item[0]
                if code == run_code:
                    yield file_run(item[1], item[2])
                elif code == 0:
                    yield file_source(item[1], item[2], Entry(*item[3]))
                else:
                    yield sources[code](item[1], Entry(*item[3]), item[2])

    def close(self) -> None:
        """End the helper (killed if it still runs) and wait for it."""
        process = self.process
        if process.poll() is None:
            process.kill()
        try:
            self.stream.close()
        except OSError:
            pass
        process.wait()


def _files_after(files: tuple, last: tuple[bytes, ...]) -> tuple:
    """The files of a run (``(path, abspath, fields)`` each) after the entry whose
    :func:`walk_key` is ``last``."""
    return tuple(f for f in files if walk_key(f[0]) > last)


def _after_in_frame(frame: list, last: tuple[bytes, ...]) -> list:
    """The entries of ``frame`` (as the helper sends them) after the one whose
    :func:`walk_key` is ``last`` (of a run, the files after it)."""
    for i, item in enumerate(frame):
        if item[0] != _RUN:
            if walk_key(item[1]) > last:
                return frame[i:]
            continue
        files = _files_after(item[2], last)
        if files:  # the order is strict: what follows is after it too
            return [(_RUN, item[1], files), *frame[i + 1:]]
    return []


# --- the helper ---------------------------------------------------------------------------


def main() -> int:
    """The helper: read the scanner's settings and the path of the last entry the backup
    had yielded as it started the helper (a pickle) from standard input, and write the
    entries after that path and the warnings of the scan to standard output (module
    docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    out = sys.stdout.fileno()
    sys.stdout = sys.stderr  # standard output carries frames only
    try:
        fcntl.fcntl(out, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:
        pass  # a smaller pipe: slower, not wrong
    try:
        settings, yielded = pickle.load(sys.stdin.buffer)
        scanner = Scanner(**settings)
        codes, fields = _CODES, _FIELDS
        frame: list = []
        run: list = []  # plain files of one folder, after the frame's entries
        folder = ""  # theirs
        count = 0  # entries in the frame and the run
        last = walk_key(yielded)
        for src in itertools.dropwhile(lambda src: walk_key(src.path) <= last, scanner):
            entry = src.entry
            plain = type(src) is FileSource and entry.type == FILE and entry.nlink == 1
            here = src.path.rpartition("/")[0] if plain else None
            if run and here != folder:  # the run ends: a file of another folder, or another entry
                frame.append((_RUN, folder, tuple(run)))
                run = []
            if plain:
                folder = here
                run.append((src.path, src.abspath, fields(entry)))
            else:
                frame.append((codes[type(src)], src.path, src.abspath, fields(entry)))
            count += 1
            if count == FRAME_ENTRIES:
                if run:
                    frame.append((_RUN, folder, tuple(run)))
                    run = []
                _send(out, frame)
                frame, count = [], 0
        if run:
            frame.append((_RUN, folder, tuple(run)))
        if frame:
            _send(out, frame)
        _send(out, ("end", [(w.path, w.reason) for w in scanner.warnings]))
    except BrokenPipeError:
        return 0  # the backup stopped reading: it has what it needs
    except Exception as exc:  # noqa: BLE001 - told to the backup, which scans on itself
        try:
            _send(out, ("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
        return 1
    return 0


def _send(fd: int, message: object) -> None:
    data = marshal.dumps(message)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]
