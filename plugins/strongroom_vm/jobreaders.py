"""The disk readers of one backup job that serves a point-in-time view of its disks over NBD.

A live backup (:mod:`strongroom_vm.live`: QEMU's NBD server) and a libvirt pull-mode backup
(:mod:`strongroom_vm.libvirt`: libvirt's backup job) both keep a job up while anything may
still read it, and end it once.  :class:`JobReaders` counts what holds the job: the
entries generator and each disk it yields (:meth:`JobReaders.hold`), or a disk opened
after the fact.  A reader (:meth:`JobReaders.open`) holds it until it is closed; when the
last holder lets go (:meth:`JobReaders.release`), the job's ``end`` is called.

The owner's ``end`` starts with :meth:`JobReaders.finish`, which is true only the first
time: the job is torn down once, whether its last reader closed, the backup failed or the
process exits.  Once the job has ended, a disk is refused with one line
(:class:`~strongroom_vm.errors.VmError`), as is a disk whose NBD export cannot be opened.

:meth:`JobReaders.finish` also waits (at most :data:`OPENING_WAIT` seconds) until no
reader is in the middle of its NBD handshake: the owner stops the job's NBD server right
after, and QEMU's ``nbd-server-stop`` was seen to wait for ever on a connection left in
its handshake (see :mod:`strongroom_vm.nbd`).  A reader whose handshake ends after the job
has ended closes its connection and is refused.
"""

from __future__ import annotations

import threading
from typing import Callable

from .errors import VmError
from .images import ClosingReader
from .nbd import NbdClient, NbdError, NbdReader

__all__ = ["JobReaders"]

OPENING_WAIT = 10.0  # seconds the end of a job waits for readers in their handshake


class JobReaders:
    """What holds one NBD backup job; ``end`` is called when the last holder lets go.
    ``ended`` says why a disk opened after that is refused ("the snapshot was released")."""

    def __init__(self, end: Callable[[], None], ended: str) -> None:
        self._end = end
        self._ended = ended
        self._lock = threading.Lock()
        self._opened = threading.Condition(self._lock)
        self._holders = 0
        self._opening = 0  # readers in their NBD handshake
        self._done = False

    def hold(self) -> None:
        """One more holder (the entries generator, a disk yielded to the engine)."""
        with self._lock:
            self._holders += 1

    def open(self, socket: str, export: str, size: int, what: str, held: bool = True) -> ClosingReader:
        """A reader of NBD export ``export`` on ``socket`` (``size`` bytes) that lets go of the job
        when closed; ``what`` names the disk in errors ("cannot read disk vda of the VM").  A disk
        not ``held`` when it was yielded is held now.  Once the job has ended, no disk is opened."""
        with self._lock:
            ended = self._done
            if not ended:
                if not held:
                    self._holders += 1
                self._opening += 1
        if ended:
            if held:
                self.release()
            raise VmError(message=f"{what}: {self._ended}")
        try:
            client = NbdClient(socket, export)
        except BaseException as exc:
            self._handshake_over()
            if not isinstance(exc, NbdError):
                raise
            self.release()
            raise VmError(message=f"{what}: {exc}") from None
        if self._handshake_over():  # the job ended meanwhile: its server is being stopped
            client.close()
            self.release()
            raise VmError(message=f"{what}: {self._ended}")
        return ClosingReader(NbdReader(client), size, self.release)

    def _handshake_over(self) -> bool:
        """One reader less in its handshake; whether the job has ended."""
        with self._lock:
            self._opening -= 1
            self._opened.notify_all()
            return self._done

    def release(self) -> None:
        """One holder less; the job ends when none is left."""
        with self._lock:
            self._holders -= 1
            last = self._holders <= 0
        if last:
            self._end()

    def finish(self) -> bool:
        """Mark the job ended: true the first time (the caller tears it down, once no reader
        is in its handshake), false after."""
        with self._lock:
            if self._done:
                return False
            self._done = True
            self._opened.wait_for(lambda: not self._opening, OPENING_WAIT)
            return True
