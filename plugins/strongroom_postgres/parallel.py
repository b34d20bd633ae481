"""A whole database restored in parallel straight from the vault, with the dump's block map.

Given the map stored beside a dump (:mod:`.blockmap`), the restore runs in three phases,
each by ``pg_restore`` (so every session is set up exactly as ``pg_restore`` sets it up:
encoding, ``standard_conforming_strings``, ``search_path``, ``row_security``...):

1. *pre-data*: the dump's header and table of contents (the bytes before the first
   block, a few KiB to MiB) are written to ``toc.dump`` in the restore's temporary
   folder; ``pg_restore --section=pre-data`` on it creates the schema, while the loaders
   of phase 2 start (a loader reads its TOC before it connects: it waits for its input).
2. *data*: the data entries are shared among ``jobs`` loaders, largest block first to the
   loader with the fewest bytes so far; a table larger than a loader's share is cut into
   ``jobs`` pieces at the cuts the map notes (:mod:`.blockmap`), loaded at once into the
   same table by different loaders (its rows are the same; their order on disk may
   differ from the source's).  Each loader is one ``pg_restore -L list`` whose standard
   input is fed the TOC, then its blocks or pieces, in its list's order, read straight
   from the vault (only the chunks those ranges touch).  That input is a Unix socket, not
   a pipe: pg_restore reads it 4 KiB at a time, which on a full pipe wakes the writer at
   every read; the socket wakes it once three quarters of its buffer are read.  The
   buffer is made as large as the system allows (:data:`SEND_BUFFER`), so that the
   loader still has data to read while the writer is woken on a busy machine.  A loader
   with no block (sequence values and the like) just runs its SQL.
3. *post-data*: ``pg_restore --section=post-data -j jobs`` on ``toc.dump`` builds the
   indexes, constraints and triggers in parallel and applies the grants.

The first failure ends the restore: every other loader is killed, and the error (the
tool's line, or the vault's: a damaged chunk is an
:class:`~strongroom.errors.IntegrityError`) is returned or raised; the caller drops the
database.  The tools are children tied to strongroom (:func:`strongroom.start_child`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import socket
import struct
import subprocess
import tempfile
import threading
import time
from typing import Callable

from strongroom import Entry, PointView, start_child

from .blockmap import BLOCK_DATA, BlockMap
from .toc import ArchiveToc, DumpFormatError, read_toc

__all__ = ["SECTION_DATA", "MapDoesNotFit", "input_socket", "plan_loaders", "restore_with_map"]

log = logging.getLogger("strongroom.postgres.parallel")  # under "strongroom": shown by -vv

SECTION_DATA = 3  # teSection of pg_backup.h: NONE 1, PRE_DATA 2, DATA 3, POST_DATA 4
PIECE = 1 << 20  # bytes read from the vault at a time
END_OF_BLOCK = bytes(5)  # a zero length: the int 0 (sign byte, four bytes)
AHEAD = 4  # pieces read ahead of the socket, per loader
#: The loaders' input buffer asked for (Linux clamps it to net.core.wmem_max, then doubles it).
SEND_BUFFER = 1 << 20


class MapDoesNotFit(Exception):
    """The block map does not fit the dump's table of contents (nothing was restored)."""


class LoaderFailed(Exception):
    """Loader ``index``'s pg_restore exited with an error (its message is the tool's output)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


Piece = tuple[int, bytes, int, int, bytes]  # (dump_id, bytes before, start, end, bytes after)


def _cut(dump_id: int, start: int, end: int, cuts: tuple[int, ...], k: int) -> list[Piece]:
    """A table's block as up to ``k`` pieces of about equal size, cut at chunk headers:
    each piece but the first gets the block's header, each but the last a zero length."""
    chosen: list[int] = []
    for i in range(1, k):
        target = start + (end - start) * i // k
        cut = min(cuts, key=lambda c: abs(c - target))
        if not chosen or cut > chosen[-1]:
            chosen.append(cut)
    bounds = [start, *chosen, end]
    header = bytes((BLOCK_DATA, 0)) + struct.pack("<I", dump_id)
    last = len(bounds) - 2
    return [(dump_id, header if i else b"", bounds[i], bounds[i + 1], b"" if i == last else END_OF_BLOCK)
            for i in range(last + 1)]


def plan_loaders(toc: ArchiveToc, blockmap: BlockMap, jobs: int) -> list[list[Piece]] | None:
    """The loaders' work: per loader, the pieces it is fed, in order (``start == end``:
    an entry without a block, sequence values and the like).  A table whose block is
    larger than a loader's fair share is cut into ``jobs`` pieces, each for another
    loader; the rest go largest first to the loader with the fewest bytes.  None when the
    map does not fit the TOC (a data entry with a dumper but no block)."""
    blocks = blockmap.by_id()
    data = [e for e in toc.entries if e.section == SECTION_DATA]
    data_ids = {e.dump_id for e in data}
    if any(e.had_dumper and e.dump_id not in blocks for e in data) or not set(blocks) <= data_ids:
        return None
    jobs = max(1, jobs)
    loads = [0] * jobs
    work: list[list[Piece]] = [[] for _ in range(jobs)]
    share = sum(end - start for _, _, start, end in blocks.values()) / jobs
    for dump_id, kind, start, end in sorted(blocks.values(), key=lambda b: b[2] - b[3]):
        cuts = blockmap.cuts.get(dump_id, ())
        if jobs > 1 and kind == BLOCK_DATA and cuts and end - start > share:
            pieces = _cut(dump_id, start, end, cuts, jobs)
        else:
            pieces = [(dump_id, b"", start, end, b"")]
        order = sorted(range(jobs), key=lambda k: loads[k])
        for k, piece in zip(order, sorted(pieces, key=lambda p: p[2] - p[3])):
            work[k].append(piece)
            loads[k] += piece[3] - piece[2]
    for entry in data:
        if entry.dump_id not in blocks:
            work[loads.index(min(loads))].append((entry.dump_id, b"", 0, 0, b""))
    return [w for w in work if w]


def restore_with_map(ctx: PointView, entry: Entry, blockmap: BlockMap, *, pg_restore: list[str],
                     env: dict[str, str], workdir: str, jobs: int,
                     progress: Callable[[int], None]) -> str | None:
    """Restore the dump ``entry`` as the module docstring says; ``pg_restore`` is the
    command and its options (connection, owners) without an input.  Returns the first
    failure's text, or None; raises :class:`MapDoesNotFit` before doing anything when the
    map does not fit the dump."""
    with ctx.open(entry) as reader:
        buffered = io.BufferedReader(reader, 256 * 1024)  # type: ignore[arg-type]
        try:
            toc = read_toc(buffered)
        except DumpFormatError:
            raise MapDoesNotFit() from None
        if buffered.tell() != blockmap.toc_end:
            raise MapDoesNotFit()
        reader.seek(0)
        head = reader.read(blockmap.toc_end)
    plan = plan_loaders(toc, blockmap, jobs)
    if plan is None:
        raise MapDoesNotFit()
    tocfile = os.path.join(workdir, "toc.dump")
    with open(tocfile, "wb") as fh:
        fh.write(head)

    started = time.monotonic()
    times: list[float] = []
    failure = _load(ctx, entry, head, plan, pg_restore, env, workdir, progress,
                    lambda: _Phase(pg_restore + ["--section=pre-data", tocfile], env, times))
    if failure is not None:
        return failure
    loaded = times[0]
    progress(blockmap.size)
    post = time.monotonic()
    failure = _Phase(pg_restore + ["--section=post-data", f"--jobs={max(1, jobs)}", tocfile], env).result()
    log.debug("parallel restore: pre-data %.2f s, data %.2f s (%d loaders), post-data %.2f s",
              loaded - started, post - loaded, len(plan), time.monotonic() - post)
    return failure


def input_socket() -> tuple[socket.socket, socket.socket]:
    """(ours, theirs): a Unix socket pair for a tool's standard input (``theirs``), which
    we write (``ours``, with the largest send buffer the system allows; see the module
    docstring)."""
    ours, theirs = socket.socketpair()
    with contextlib.suppress(OSError):  # a system that refuses it keeps its default
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    return ours, theirs


class _Phase:
    """One ``pg_restore`` of the TOC file, started; :meth:`result` waits for it (its
    failure's text, or None) and notes when it ended in ``times``; :meth:`kill` ends it."""

    def __init__(self, argv: list[str], env: dict[str, str], times: list[float] | None = None) -> None:
        self._err = tempfile.TemporaryFile()
        self._times = times
        try:
            self.proc = start_child(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=self._err)
        except BaseException:
            self._err.close()
            raise

    def result(self) -> str | None:
        try:
            code = self.proc.wait()
        except BaseException:
            self.kill()
            raise
        if self._times is not None:
            self._times.append(time.monotonic())
        with self._err:
            if code:
                self._err.seek(0)
                return self._err.read(64 * 1024).decode("utf-8", "replace")
        return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._err.close()


def _load(ctx: PointView, entry: Entry, head: bytes, plan: list[list[Piece]], pg_restore: list[str],
          env: dict[str, str], workdir: str, progress: Callable[[int], None],
          pre_data: Callable[[], _Phase]) -> str | None:
    """Start ``pre_data``, start the loaders while it runs (a loader reads its TOC from its
    standard input before it connects: it waits until it is fed), then feed them once the
    schema is there."""
    stop = threading.Event()
    lock = threading.Lock()
    done = [len(head)]
    errors: list[BaseException] = []
    procs: list[subprocess.Popen] = []
    stderrs = []
    threads: list[threading.Thread] = []
    phase: _Phase | None = None
    socks: list[socket.socket] = []  # the loaders' standard input, ours to write
    failure: str | None = None

    def count(n: int) -> None:
        with lock:
            done[0] += n
            progress(done[0])

    def fail(exc: BaseException) -> None:
        with lock:
            errors.append(exc)
        stop.set()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    def feed(index: int, proc: subprocess.Popen, sock: socket.socket, work: list[Piece]) -> None:
        pieces: queue.Queue = queue.Queue(AHEAD)
        halt = threading.Event()

        def fetch() -> None:
            try:
                with ctx.open(entry) as reader:
                    for _, before, start, end, after in work:
                        if before:
                            pieces.put(before)
                        reader.seek(start)
                        left = end - start
                        while left and not (stop.is_set() or halt.is_set()):
                            data = reader.read(min(PIECE, left))
                            if not data:
                                raise EOFError("the dump is shorter than its block map says")
                            left -= len(data)
                            pieces.put(data)
                        if after:
                            pieces.put(after)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                pieces.put(exc)
                return
            pieces.put(None)

        fetcher = threading.Thread(target=fetch, name="pg-load-fetch", daemon=True)
        fetcher.start()
        try:
            sock.sendall(head)
            while True:
                item = pieces.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                sock.sendall(item)
                count(len(item))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the loader exited: its exit code says why
        except BaseException as exc:  # noqa: BLE001
            fail(exc)
        finally:
            sock.close()  # the loader reads what was sent, then the end of its input
            halt.set()
            while fetcher.is_alive():
                try:
                    pieces.get(timeout=0.1)
                except queue.Empty:
                    pass
            if proc.wait() != 0 and not stop.is_set():
                fail(LoaderFailed(index))

    try:
        phase = pre_data()
        for k, work in enumerate(plan):
            listing = os.path.join(workdir, f"load{k}.list")
            with open(listing, "w", encoding="utf-8") as fh:
                fh.write("".join(f"{piece[0]};\n" for piece in work))
            err = tempfile.TemporaryFile()
            stderrs.append(err)
            ours, theirs = input_socket()
            socks.append(ours)
            with theirs:
                proc = start_child(pg_restore + [f"--use-list={listing}"], env=env, stdin=theirs,
                                   stdout=subprocess.DEVNULL, stderr=err)
            procs.append(proc)
        failure = phase.result()
        for k, work in enumerate(plan if failure is None else ()):  # else the waiting loaders are killed below
            thread = threading.Thread(target=feed, args=(k, procs[k], socks[k], work), name=f"pg-load-{k}",
                                      daemon=True)
            threads.append(thread)
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except BaseException:
        stop.set()
        if phase is not None:
            phase.kill()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for thread in threads:
            if thread.ident is not None:  # a signal may have ended start() before the thread began
                thread.join()
        raise
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for sock in socks:
            sock.close()
    try:
        if failure is not None:
            return failure
        if not errors:
            return None
        first = errors[0]
        if not isinstance(first, LoaderFailed):
            raise first
        err = stderrs[first.index]
        err.seek(0)
        return err.read(64 * 1024).decode("utf-8", "replace") or "pg_restore failed without a message"
    finally:
        for err in stderrs:
            err.close()
