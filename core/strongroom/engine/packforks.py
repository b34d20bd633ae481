"""Checking packs in worker processes forked from this one (``verify --read-data`` of a local vault).

Opening a blob (decrypt, decompress, re-hash) is a few short C calls between lines of
Python.  With many small blobs, threads wait for the interpreter's lock more than for
the CPUs: two reading threads use about 1.3 cores of 2.  Worker processes each have an
interpreter of their own.

- :class:`PackCheckers` forks its workers when it is entered, before the caller starts
  any other thread of its own: the workers inherit the opened repository (its store, keys
  and index) and no lock that another thread holds.  Enter it first.
- Only a local store's repository is forked, and only from a process running no other
  thread (:func:`can_fork`): a remote store's connections and event loops are not to be
  shared with a child, and a lock held by another thread at the fork stays held in it.
- A worker checks one pack per task (:func:`.packscan.check_pack`, with the index entries
  that name the pack, from the mapping it inherited) and sends back the
  :class:`~.packscan.PackCheck`.  The pack's bytes never cross between processes.
- :meth:`PackCheckers.check` yields the checks in the order of the pack ids it is given,
  with a few packs per worker in flight: what is held does not grow with the vault.
- A worker ignores SIGINT (the terminal sends it to every process of the job; the parent
  handles it and stops the workers) and is killed if the parent dies (``PR_SET_PDEATHSIG``).
  A worker that dies (killed, out of memory) fails the check with :class:`StorageError`,
  never a hang.  An error of a worker (a storage failure) is raised by the parent as it is.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

from ..errors import StorageError
from ..processes import tied_to_parent
from ..repository.envelope import Scratch
from ..repository.pack import IndexEntry
from ..storage import capabilities_of
from .packscan import PackCheck, check_pack

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["IN_FLIGHT", "PackCheckers", "can_fork"]

#: Packs queued per worker: enough that none waits for the next task, few enough that
#: the checks waiting for an earlier one to be yielded hold little.
IN_FLIGHT = 4

# What a worker inherits (set in the parent only while it forks): the repository and each
# pack's index entries; and its decryption buffer, made at its first task.
_repo: Repository | None = None
_indexed: Mapping[str, list[IndexEntry]] = {}
_scratch: Scratch | None = None


def can_fork(repo: Repository) -> bool:
    """Whether ``repo`` may be checked by forked workers: a local store, on a system that
    forks, from a process running no other thread (the command line's, not a server's,
    whose other threads may hold a lock that a worker would then wait for forever)."""
    return hasattr(os, "fork") and threading.active_count() == 1 and not capabilities_of(repo.store).remote


def _worker_started(tie) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if tie is not None:
        tie()


def _ready() -> int:
    return os.getpid()


def _check(pack_id: str) -> PackCheck:
    global _scratch
    if _scratch is None:
        _scratch = Scratch()
    return check_pack(_repo, pack_id, _indexed.get(pack_id, ()), scratch=_scratch)


class PackCheckers:
    """``workers`` processes checking packs of ``repo``, whose index entries by pack are
    ``indexed``; a context manager (see the module docstring)."""

    def __init__(self, repo: Repository, workers: int, indexed: Mapping[str, list[IndexEntry]]) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.repo = repo
        self.workers = workers
        self.indexed = indexed
        self.pids: list[int] = []  # the workers' process ids, once entered
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> PackCheckers:
        global _repo, _indexed
        _repo, _indexed = self.repo, self.indexed
        try:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("fork"),
                initializer=_worker_started, initargs=(tied_to_parent(signal.SIGKILL),))
            # the first task forks every worker (a fork context starts them all at once), now
            self._pool.submit(_ready).result()
            self.pids = sorted(getattr(self._pool, "_processes", None) or ())
        except BaseException:
            self._close()
            raise
        finally:
            _repo, _indexed = None, {}
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)  # a worker ends the pack it checks
            self._pool = None

    def check(self, pack_ids: Iterable[str]) -> Iterator[PackCheck]:
        """:func:`.packscan.check_pack` of each of ``pack_ids``, in their order."""
        if self._pool is None:
            raise RuntimeError("PackCheckers used outside its with block")
        todo = iter(pack_ids)
        queued: deque[Future] = deque()
        limit = self.workers * IN_FLIGHT
        try:
            while True:
                while len(queued) < limit:
                    pack_id = next(todo, None)
                    if pack_id is None:
                        break
                    queued.append(self._pool.submit(_check, pack_id))
                if not queued:
                    return
                try:
                    check = queued.popleft().result()
                except BrokenProcessPool as exc:
                    raise StorageError(message=f"a process checking packs ended abruptly ({exc})") from None
                yield check
        finally:
            for future in queued:
                future.cancel()
