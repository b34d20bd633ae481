"""No NBD connection is left in its handshake behind a server that is being stopped.

QEMU's ``nbd-server-stop`` (sent by libvirt when strongroom aborts a backup job) waits for
every connection still in its handshake without reading them, so a connection whose end
QEMU had not yet read kept QEMU and libvirt's lock on the domain waiting for ever.  A
client therefore waits, when it closes or its handshake fails, until the server has closed
its end; and the end of a job waits until no reader is in its handshake.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from strongroom import list_processes
from strongroom_vm import nbd
from strongroom_vm.errors import VmError
from strongroom_vm.images import serve_image
from strongroom_vm.jobreaders import JobReaders
from strongroom_vm.nbd import NbdClient, NbdError
from vaultkit import wait_until
from vmkit import MIB


class SilentServer:
    """A unix socket server that accepts one connection and never greets: it waits for the
    client's end, holds on for ``linger`` seconds, then notes that it closed and closes."""

    def __init__(self, path: str, linger: float) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.linger = linger
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        while conn.recv(4096):
            pass
        time.sleep(self.linger)  # the client must not be gone before the server closes
        self.closing.set()
        conn.close()


def test_a_failed_handshake_ends_after_the_server_closed(tmp_path):
    """A handshake that fails (here the server never greets and the client times out)
    returns its error only once the server has closed the connection."""
    server = SilentServer(str(tmp_path / "s.sock"), linger=0.5)
    with pytest.raises(NbdError, match="NBD server at"):
        NbdClient(str(tmp_path / "s.sock"), "disk", timeout=0.3)
    assert server.closing.is_set()


def test_an_interrupted_handshake_ends_after_the_server_closed(tmp_path, monkeypatch):
    """Ctrl-C in the middle of the handshake: the KeyboardInterrupt comes through, once the
    server has closed the connection."""
    server = SilentServer(str(tmp_path / "s.sock"), linger=0.5)

    def interrupted(self, length):
        raise KeyboardInterrupt

    monkeypatch.setattr(NbdClient, "_recv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        NbdClient(str(tmp_path / "s.sock"), "disk")
    assert server.closing.is_set()


def test_a_server_that_never_closes_is_waited_for_a_bounded_time(tmp_path, monkeypatch):
    """A server that neither greets nor closes: the client still gives up, after HANG_UP_WAIT."""
    monkeypatch.setattr(nbd, "HANG_UP_WAIT", 0.2)
    server = SilentServer(str(tmp_path / "s.sock"), linger=3600)
    with pytest.raises(NbdError):
        NbdClient(str(tmp_path / "s.sock"), "disk", timeout=0.2)
    assert not server.closing.is_set()


@pytest.fixture
def stopped_server(tmp_path):
    """A qemu-nbd serving a small raw image, stopped (SIGSTOP) until the test continues it:
    a client that connects now waits in its handshake."""
    image = tmp_path / "d.img"
    image.write_bytes(os.urandom(MIB))
    with serve_image(str(image), "raw") as sock:
        (server,) = [p for p in list_processes("qemu-nbd") if p.argv[-1] == str(image)]
        os.kill(server.pid, signal.SIGSTOP)
        try:
            yield sock, server.pid
        finally:
            os.kill(server.pid, signal.SIGCONT)


def test_the_end_of_a_job_waits_for_a_reader_in_its_handshake(stopped_server):
    """A reader is in its handshake when the job ends: finish() returns only after that
    handshake is over, and the reader is refused (its connection closed), not served."""
    sock, server = stopped_server
    ended = []
    readers = JobReaders(lambda: ended.append(True), "the backup job has ended")
    readers.hold()  # the entries generator
    outcome = {}

    def open_disk():
        try:
            outcome["reader"] = readers.open(sock, "disk", MIB, "cannot read disk vda")
        except VmError as exc:
            outcome["error"] = str(exc)

    opener = threading.Thread(target=open_disk)
    readers.hold()  # the disk, as yielded
    opener.start()
    wait_until(lambda: readers._opening == 1, "the reader is in its handshake")  # its count, as finish() sees it
    finished = threading.Event()
    finisher = threading.Thread(target=lambda: readers.finish() and finished.set())
    finisher.start()
    assert not finished.wait(0.5), "the job ended while a reader was in its handshake"
    os.kill(server, signal.SIGCONT)
    opener.join(30)
    finisher.join(30)
    assert finished.is_set()
    assert outcome == {"error": "cannot read disk vda: the backup job has ended"}
    readers.release()  # the generator lets go: nothing holds the job now
    assert ended


def test_no_disk_is_opened_once_the_job_has_ended(stopped_server):
    """After finish(), open() refuses a disk at once, without connecting."""
    sock, server = stopped_server
    readers = JobReaders(lambda: None, "the backup job has ended")
    readers.hold()
    assert readers.finish()
    with pytest.raises(VmError, match="cannot read disk vda: the backup job has ended"):
        readers.open(sock, "disk", MIB, "cannot read disk vda")
    with pytest.raises(VmError, match="cannot read disk vdb: the backup job has ended"):
        readers.open(sock, "disk", MIB, "cannot read disk vdb", held=False)
