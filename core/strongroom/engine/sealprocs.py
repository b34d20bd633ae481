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
- The workers run :mod:`.sealworker` in a :class:`~.workerpool.WorkerPool`: new Python
  programs, not forks of the backup's process.  They get the vault's writing data key,
  id key and compression level as their first message
  (:meth:`~strongroom.repository.envelope.Envelope.writing_state`): the keys go through
  no file, no argument and no environment variable.
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

from ..repository.envelope import Envelope
from .workerpool import WorkerPool, can_start

__all__ = ["Sealed", "SmallFileSealers", "can_start"]

#: One file's result: blob id, plaintext length, sealed blob (a view of the calling
#: thread's answer buffer, valid until that thread's next :meth:`SmallFileSealers.seal`).
Sealed = tuple[bytes, int, memoryview]


class SmallFileSealers:
    """``workers`` processes sealing batches of small files with ``envelope``'s writing
    key, ids under ``id_key`` (see the module docstring).  :meth:`start` them from a
    thread that outlives them, then :meth:`seal` batches from any thread; :meth:`close`
    at the end."""

    def __init__(self, envelope: Envelope, id_key: bytes, *, level: int, workers: int) -> None:
        #: the data key the workers seal with (what the parent's packs must record)
        self.key_id = envelope.key_id
        self.workers = workers
        self._pool = WorkerPool("sealworker", (envelope.writing_state(), bytes(id_key), level), workers=workers,
                                doing="reading small files", job="backup")

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers alive."""
        return self._pool.pids

    def start(self) -> None:
        """Start the workers; returns without waiting for them to be ready.  A worker that
        cannot be started is left out (none: :attr:`ready` stays false)."""
        self._pool.start()

    @property
    def ready(self) -> bool:
        """Whether there are workers to take batches."""
        return self._pool.ready

    def seal(self, files: list[tuple[str, int]]) -> list[Sealed | None] | None:
        """Each file of ``files`` (path, listed size) read and sealed by a worker
        (:func:`.sealworker.seal_files`), or ``None``: no worker is left, or the one
        given the batch died (the caller then reads the batch itself)."""
        answer = self._pool.call(files)
        if answer is None:
            return None
        value, payload = answer
        return [None if placed is None else (placed[0], placed[1], payload[placed[2]:placed[2] + placed[3]])
                for placed in value]

    def close(self) -> None:
        """End the workers (each finishes the batch it has; no batch is taken after)."""
        self._pool.close()
