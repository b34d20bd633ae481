"""A backup's batches of small files read, hashed, compressed and sealed in worker processes.

Backing up a small file is a few short C calls (open, read, close, BLAKE3, zstd,
AES-GCM) between lines of Python: threads doing it wait for the interpreter's lock more
than for the CPUs (the 48,000 text files of the 2 GiB bench corpus kept 1.4 cores of 2
busy).  :class:`SmallFileSealers` hands whole batches to worker processes, each with an
interpreter of its own:

- A task is one batch: the files' paths and listed sizes.  The worker
  (:mod:`.sealworker`) reads each file and sends back its blob id, its length and the
  blob sealed as :class:`~strongroom.repository.blobwriter.BlobWriter` seals it, the
  sealed blobs of a batch sent as one payload of raw bytes.  The parent keeps the walk,
  the index (which blobs are new), the packs and the tree nodes: it puts the new sealed
  blobs in its packs (:meth:`~strongroom.repository.blobwriter.BlobWriter.add_sealed_many`).
  A file the worker cannot read as listed (gone, unreadable, grown) comes back as
  ``None``, and the parent reads it the usual way, which warns as it does.
- The workers are new Python programs (:mod:`.sealworker`, run by the same Python with
  this package's folder first on its path), not forks of the backup's process, whose
  other threads may hold locks at the moment of a fork; they import only what sealing
  needs.  (``multiprocessing``'s fork server was tried first: it imports the program's
  ``__main__`` module again, so a user's script without a main guard would run twice.)
  They get the vault's writing data key, id key and compression level through their
  standard input (:meth:`~strongroom.repository.envelope.Envelope.writing_state`): the
  keys go through no file, no argument and no environment variable, and the environment
  they get has none of strongroom's secrets (:func:`~strongroom.processes.start_child`).
- :meth:`SmallFileSealers.start` returns at once; a worker's first batch waits the
  50 ms it takes to start.  A backup of a few files never starts them (the engine asks
  for them from its :data:`~.backup.PROCESSES_FROM_BATCH`-th batch on).
- The workers are tied to the thread that starts them (the backup's walk), which
  outlives them: they are killed if the backup's process ends, however it ends
  (:func:`~strongroom.processes.start_child`).  They ignore SIGINT, which the terminal
  sends to every process of the job: the backup's process handles it.
- A worker that dies (killed, out of memory) is not an error: :meth:`SmallFileSealers.seal`
  says so, and the caller reads that batch itself; the backup goes on with the
  other workers, or with threads.  An error a worker raises (a bug) fails the backup
  as it would in a thread.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from typing import BinaryIO

from ..processes import children_ended, start_child
from ..repository.envelope import Envelope
from .sealworker import receive, send

__all__ = ["Sealed", "SmallFileSealers", "can_start"]

log = logging.getLogger(__name__)

#: One file's result: blob id, plaintext length, sealed blob (a view of the calling
#: thread's answer buffer, valid until that thread's next :meth:`SmallFileSealers.seal`).
Sealed = tuple[bytes, int, memoryview]

#: Where the package is, for the workers to import the same code as the backup.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: The worker program: ``-P``, not the current folder first on its path (a folder of the
#: same name there would be imported instead); the folder of this very package first.
_WORKER = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from strongroom.engine.sealworker import main; sys.exit(main())"
)


#: Seconds a worker whose input ended has to exit before it is killed.
_EXIT_WAIT = 5.0


def can_start() -> bool:
    """Whether this process can start workers (it knows its Python executable)."""
    return bool(sys.executable) and os.name == "posix"


class _Worker:
    __slots__ = ("process", "requests", "answers", "started")

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.requests: int = process.stdin.fileno()  # type: ignore[union-attr]
        self.answers: BinaryIO = process.stdout  # type: ignore[assignment]
        self.started = False


class SmallFileSealers:
    """``workers`` processes sealing batches of small files with ``envelope``'s writing
    key, ids under ``id_key`` (see the module docstring).  :meth:`start` them from a
    thread that outlives them, then :meth:`seal` batches from any thread; :meth:`close`
    at the end."""

    def __init__(self, envelope: Envelope, id_key: bytes, *, level: int, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        #: the data key the workers seal with (what the parent's packs must record)
        self.key_id = envelope.key_id
        self.workers = workers
        self._first = (envelope.writing_state(), bytes(id_key), level)
        self._idle: list[_Worker] = []
        self._alive: list[_Worker] = []
        self._changed = threading.Condition()
        self._buffers = threading.local()  # each calling thread's answer buffer, reused
        self._started = False
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers alive."""
        with self._changed:
            return sorted(worker.process.pid for worker in self._alive)

    def start(self) -> None:
        """Start the workers; returns without waiting for them to be ready.  A worker that
        cannot be started is left out (none: :attr:`ready` stays false)."""
        with self._changed:
            if self._started or self._closed:
                return
            self._started = True
        for _ in range(self.workers):
            try:
                process = start_child(
                    [sys.executable, "-P", "-c", _WORKER, _PACKAGE_ROOT], end_signal=signal.SIGKILL,
                    block_sigint=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            except OSError as exc:
                log.debug("a worker for small files did not start (%s)", exc)
                continue
            worker = _Worker(process)
            try:
                send(worker.requests, self._first)  # a few hundred bytes: the pipe takes them at once
            except OSError as exc:
                self._end(worker, f"did not take its keys ({exc})")
                continue
            with self._changed:
                self._alive.append(worker)
                self._idle.append(worker)
                self._changed.notify()

    @property
    def ready(self) -> bool:
        """Whether there are workers to take batches."""
        return bool(self._alive)

    def seal(self, files: list[tuple[str, int]]) -> list[Sealed | None] | None:
        """Each file of ``files`` (path, listed size) read and sealed by a worker
        (:func:`.sealworker.seal_files`), or ``None``: no worker is left, or the one
        given the batch died (the caller then reads the batch itself)."""
        worker = self._take()
        if worker is None:
            return None
        try:
            if not worker.started:
                (kind, _), _ = receive(worker.answers)
                if kind != "ready":
                    raise EOFError(f"its first message was {kind!r}")
                worker.started = True
            send(worker.requests, files)
            (kind, value), payload = receive(worker.answers, self._buffer())
        except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
            self._end(worker, f"ended abruptly ({exc})")
            return None
        with self._changed:
            self._idle.append(worker)
            self._changed.notify_all()
        if kind == "error":
            raise value
        return [None if placed is None else (placed[0], placed[1], payload[placed[2]:placed[2] + placed[3]])
                for placed in value]

    def _buffer(self) -> bytearray:
        """The calling thread's answer buffer (a batch's sealed blobs are a few MiB, and a
        new buffer of that size costs a few hundred page faults); a new one if a view of
        the last answer is still held, so that it cannot grow."""
        buffer = getattr(self._buffers, "buffer", None)
        if buffer is not None:
            try:
                buffer.append(0)  # refused while a view of it exists
            except BufferError:
                buffer = None
            else:
                del buffer[-1]
        if buffer is None:
            buffer = self._buffers.buffer = bytearray()
        return buffer

    def _take(self) -> _Worker | None:
        with self._changed:
            while not self._idle:
                if not self._alive or self._closed:
                    return None
                self._changed.wait()
            return self._idle.pop()

    def _end(self, worker: _Worker, why: str) -> None:
        """Stop ``worker`` for good (``why``: a failure, logged; empty: the end of the backup)."""
        with self._changed:
            if worker in self._alive:
                self._alive.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            self._changed.notify_all()
        if why and not children_ended():  # not killed by the job's end (Ctrl-C)
            log.warning("a process reading small files %s; the backup goes on without it", why)
        process = worker.process
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        try:
            process.wait(timeout=_EXIT_WAIT)  # its input ended: it exits
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """End the workers (each finishes the batch it has; no batch is taken after)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            while len(self._idle) < len(self._alive):  # a batch is being sealed
                self._changed.wait()
            workers = list(self._alive)
        for worker in workers:
            self._end(worker, "")
