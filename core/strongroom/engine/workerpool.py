"""Worker processes that take tasks from any thread of strongroom's process.

Work made of many short C calls between lines of Python (sealing small files in a
backup, writing them in a restore) keeps threads waiting for the interpreter's lock
more than for the CPUs.  A :class:`WorkerPool` runs it in processes, each with an
interpreter of its own:

- The workers are new Python programs (a module's ``main``, run by the same Python with
  this package's folder first on its path), not forks of strongroom's process, whose
  other threads may hold locks at the moment of a fork; they import only what their
  work needs.  (``multiprocessing``'s fork server was tried first: it imports the
  program's ``__main__`` module again, so a user's script without a main guard would
  run twice.)  They talk over their standard input and output (:mod:`.workerpipe`).
- What they need for all their tasks (keys among it) is their first message: secrets go
  through no file, no argument and no environment variable, and the environment they
  get has none of strongroom's secrets (:func:`~strongroom.processes.start_child`).
- :meth:`WorkerPool.start` returns at once; a worker's first task waits the 50 ms it
  takes to start.
- The workers are tied to the thread that starts them, which must outlive them: they are
  killed if strongroom's process ends, however it ends
  (:func:`~strongroom.processes.start_child`).  They ignore SIGINT, which the terminal
  sends to every process of the job: strongroom's process handles it.
- A worker that dies (killed, out of memory) is not an error: :meth:`WorkerPool.call`
  returns None and the caller does that task itself; the others go on.  An error a
  worker raises (a bug) is raised by :meth:`WorkerPool.call`, as it would be in a thread.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from typing import Any, BinaryIO

from ..processes import children_ended, start_child
from .workerpipe import receive, send

__all__ = ["WorkerPool", "can_start"]

log = logging.getLogger(__name__)

#: Where the package is, for the workers to import the same code as their parent.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: The worker program: ``-P``, not the current folder first on its path (a folder of the
#: same name there would be imported instead); the folder of this very package first.
_PROGRAM = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from strongroom.engine.{module} import main; sys.exit(main())"
)

#: Seconds a worker whose input ended has to exit before it is killed.
_EXIT_WAIT = 5.0
#: The size asked for each worker's pipes (Linux allows 1 MiB to any user by default):
#: a task's payload of a few MiB then crosses in a few writes, not one per 64 KiB.
PIPE_BYTES = 1 << 20


def can_start() -> bool:
    """Whether this process can start workers (it knows its Python executable)."""
    return bool(sys.executable) and os.name == "posix"


def _widen(pipe: int) -> None:
    """Ask for a pipe of :data:`PIPE_BYTES` (kept as it is where that is refused)."""
    try:
        fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (OSError, AttributeError):
        pass


class _Worker:
    __slots__ = ("process", "requests", "answers", "started")

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.requests: int = process.stdin.fileno()  # type: ignore[union-attr]
        self.answers: BinaryIO = process.stdout  # type: ignore[assignment]
        self.started = False


class WorkerPool:
    """``workers`` processes running ``strongroom.engine.<module>.main``, each given
    ``first`` as its first message (see the module documentation).  ``doing`` and
    ``job`` name them in a warning: "a process {doing} ended abruptly (...); the {job}
    goes on without it".  :meth:`start` them from a thread that outlives them, then
    :meth:`call` from any thread; :meth:`close` at the end."""

    def __init__(self, module: str, first: Any, *, workers: int, doing: str, job: str) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self._argv = [sys.executable, "-P", "-c", _PROGRAM.format(module=module), _PACKAGE_ROOT]
        self._first = first
        self._doing, self._job = doing, job
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

    @property
    def ready(self) -> bool:
        """Whether there are workers to take tasks."""
        return bool(self._alive)

    def start(self) -> None:
        """Start the workers; returns without waiting for them to be ready.  A worker that
        cannot be started is left out (none: :attr:`ready` stays false)."""
        with self._changed:
            if self._started or self._closed:
                return
            self._started = True
        for _ in range(self.workers):
            try:
                process = start_child(self._argv, end_signal=signal.SIGKILL, block_sigint=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            except OSError as exc:
                log.debug("a process %s did not start (%s)", self._doing, exc)
                continue
            worker = _Worker(process)
            _widen(worker.requests)
            _widen(worker.answers.fileno())
            try:
                send(worker.requests, self._first)  # small: the pipe takes it at once
            except OSError as exc:
                self._end(worker, f"did not take its first message ({exc})")
                continue
            with self._changed:
                self._alive.append(worker)
                self._idle.append(worker)
                self._changed.notify()

    def call(self, message: Any, payload: bytes | bytearray | memoryview = b"") -> tuple[Any, memoryview] | None:
        """A worker's answer to ``message`` and ``payload``: its value and a view of its
        payload (valid until the calling thread's next call); None if no worker is left,
        or the one given the task died (the caller then does it itself)."""
        worker = self._take()
        if worker is None:
            return None
        try:
            if not worker.started:
                (kind, _), _ = receive(worker.answers)
                if kind != "ready":
                    raise EOFError(f"its first message was {kind!r}")
                worker.started = True
            send(worker.requests, message, payload)
            (kind, value), answer = receive(worker.answers, self._buffer())
        except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
            self._end(worker, f"ended abruptly ({exc})")
            return None
        with self._changed:
            self._idle.append(worker)
            self._changed.notify_all()
        if kind == "error":
            raise value
        return value, answer

    def _buffer(self) -> bytearray:
        """The calling thread's answer buffer (an answer's payload may be a few MiB, and a
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
        """Stop ``worker`` for good (``why``: a failure, logged; empty: the end of the job)."""
        with self._changed:
            if worker in self._alive:
                self._alive.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            self._changed.notify_all()
        if why and not children_ended():  # not killed by the job's end (Ctrl-C)
            log.warning("a process %s %s; the %s goes on without it", self._doing, why, self._job)
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
        """End the workers (each finishes the task it has; no task is taken after)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            while len(self._idle) < len(self._alive):  # a task is being done
                self._changed.wait()
            workers = list(self._alive)
        for worker in workers:
            self._end(worker, "")
