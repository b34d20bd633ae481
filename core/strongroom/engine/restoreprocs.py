"""A restore's small files written in worker processes, a pack at a time.

Restoring a small file is a few short C calls (decrypt, hash, open, write, metadata,
close) between lines of Python: a restore's threads doing it wait for the interpreter's
lock more than for the CPUs (the 48,000 text files of the 2 GiB bench corpus kept 1.2 of
2 cores busy).  :class:`PackWriters` hands whole packs to worker processes
(:mod:`.restoreworker`), each with an interpreter of its own:

- A task is one pack whose every needed blob goes to files that have all their content
  in that pack (nearly every small file).  A feeding thread of the restore (one per
  worker) sends the files (path, length, creation mode, metadata), where each blob goes,
  and the data keys the blobs were sealed with.  From a vault in a local folder the
  worker reads the pack's file itself; from any other store the thread reads the pack's
  sealed blobs and sends them as the task's payload.  The worker opens and checks each
  blob, creates, writes and ends the files, and answers which it created, finished,
  found damaged or saw refused.
- The restore keeps the walk, the layout (:meth:`~.fswrite.TreeWriter.prepare_file`
  clears each file's path before a worker creates it), files spread over several packs,
  hardlinks and folder metadata.
- The workers run in a :class:`~.workerpool.WorkerPool`: new Python programs, not forks
  of the restore's process, tied to it and given their keys as their first message (no
  file, argument or environment variable).  A worker that dies is not an error: the
  thread writes that pack itself.
"""

from __future__ import annotations

from ..repository.repository import Repository
from .newfiles import NewFiles
from .restoreworker import Blob, File, Written
from .workerpool import WorkerPool, can_start

__all__ = ["PackWriters", "can_start"]


class PackWriters:
    """``workers`` processes writing packs of small files of ``repo`` with ``new_files``'
    root and ``restore_owner`` (see the module docstring).  :meth:`start` them from a
    thread that outlives them, then :meth:`write` packs from any thread; :meth:`close`
    at the end."""

    def __init__(self, repo: Repository, new_files: NewFiles, *, workers: int) -> None:
        envelope = repo.envelope
        first = (new_files.root, new_files.restore_owner, bytes(repo.master.id_key.value),
                 envelope.base_key_id, envelope.data_key(envelope.base_key_id))
        self.workers = workers
        self._pool = WorkerPool("restoreworker", first, workers=workers, doing="writing restored files",
                                job="restore")

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers alive."""
        return self._pool.pids

    @property
    def ready(self) -> bool:
        """Whether there are workers to take packs."""
        return self._pool.ready

    def start(self) -> None:
        """Start the workers; returns without waiting for them to be ready."""
        self._pool.start()

    def write(self, keys: dict[bytes, bytes], files: list[File], blobs: list[Blob],
              payload: bytes | memoryview, pack_file: tuple[str, int | None] | None = None) -> Written | None:
        """A worker's :data:`~.restoreworker.Written` for the task (see
        :data:`~.restoreworker.Task`); None if no worker is left, or the one given it
        died or handed it back (the caller writes the pack itself, after removing
        whatever of its files the worker had created)."""
        answer = self._pool.call((keys, files, blobs, pack_file), payload)
        return None if answer is None else answer[0]

    def close(self) -> None:
        """End the workers (each finishes the pack it has; none is taken after)."""
        self._pool.close()
