"""No qemu-nbd outlives strongroom: a backup killed with SIGKILL or ended with SIGTERM
while qemu-nbd serves its qcow2 disk leaves no qemu-nbd holding the image's lock, and a
qemu-nbd left by an older strongroom is ended before the next backup.

To make the moment deterministic, the test stops (SIGSTOP) the qemu-nbd that the backup
started as soon as it appears: the backup then waits for it, and the signal to strongroom
always lands while the disk is being served.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest

from strongroom import ProcessId, list_processes
from strongroom_vm.images import end_stale_servers, serve_image
from vmkit import MIB, qcow2_vm_item
from vaultkit import wait_until

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")




def servers_of(image) -> list:
    real = os.path.realpath(image)
    return [p for p in list_processes("qemu-nbd") if os.path.realpath(p.argv[-1]) == real]


def writable(image) -> bool:
    """Whether a VM could start on the image: QEMU gets its write lock."""
    return subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write 0 4k", str(image)],
                          capture_output=True).returncode == 0


def locked(image) -> bool:
    """Whether a process holds one of QEMU's image locks (open file description locks on
    the image's bytes 100 and up, as ``/proc/locks`` lists them).  Unlike :func:`writable`,
    looking takes no lock, so it cannot make a qemu-nbd that is just opening the image fail."""
    st = os.stat(image)
    node = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as fh:
        return any(fields[1] == "OFDLCK" and fields[5] == node
                   for fields in (line.split() for line in fh) if len(fields) > 5)


@pytest.fixture
def qcow2_vm(tmp_path, vault):
    """A vault with an offline VM item on a 64 MiB qcow2 disk full of data."""
    image = qcow2_vm_item(vault, tmp_path, 64 * MIB)
    yield vault, image
    for server in servers_of(image):
        os.kill(server.pid, signal.SIGKILL)


def start_backup(vault_url: str) -> tuple[subprocess.Popen, int]:
    """Start ``strongroom backup web``; stop its qemu-nbd as soon as it runs; returns both."""
    proc = subprocess.Popen([STRONGROOM, "--vault", vault_url, "backup", "web"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = wait_until(lambda: [p for p in list_processes("qemu-nbd") if p.ppid == proc.pid],
                        "the backup started qemu-nbd")[0]
    os.kill(server.pid, signal.SIGSTOP)
    return proc, server.pid


def resume(pid: int) -> None:
    """Continue a stopped process (it acts on a SIGTERM only then), if it still exists."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def jobs(vault_url: str) -> list[dict]:
    return json.loads(subprocess.run([STRONGROOM, "--vault", vault_url, "jobs", "--json"],
                                     capture_output=True, text=True, check=True).stdout)


class TestChildrenDieWithStrongroom:
    def test_sigkill_of_a_backup_ends_its_qemu_nbd(self, qcow2_vm, vault_url):
        """SIGKILL while qemu-nbd serves the disk: qemu-nbd ends, the image can be written, the job is abandoned."""
        vault, image = qcow2_vm
        proc, server = start_backup(vault_url)
        proc.kill()
        proc.wait()
        resume(server)
        wait_until(lambda: not servers_of(image), "qemu-nbd ended with strongroom", limit=30)
        assert writable(image)
        assert [j["state"] for j in jobs(vault_url)] == ["abandoned"]
        assert vault.points("web") == []

    def test_sigterm_cancels_the_backup_and_ends_qemu_nbd(self, qcow2_vm, vault_url):
        """SIGTERM while qemu-nbd serves the disk: exit 143, job cancelled, no qemu-nbd, no socket folder."""
        vault, image = qcow2_vm
        proc, server = start_backup(vault_url)
        proc.send_signal(signal.SIGTERM)
        resume(server)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 143, err
        assert err.strip().splitlines()[-1] == "strongroom: terminated (SIGTERM)"
        assert [j["state"] for j in jobs(vault_url)] == ["cancelled"]
        assert servers_of(image) == [] and writable(image)
        folders = [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f"strongroom-nbd-{proc.pid}-")]
        assert folders == []


class TestStaleServers:
    def _orphan_server(self, image, folder_prefix: str) -> None:
        """A qemu-nbd as strongroom starts it, left to init (its parent shell exits at once)."""
        folder = tempfile.mkdtemp(prefix=folder_prefix)
        argv = ["qemu-nbd", "--read-only", "--persistent", "--shared=8", "--format", "qcow2",
                "--socket", os.path.join(folder, "nbd.sock"), "--export-name", "disk", "--cache=none",
                "--aio=threads", str(image)]
        subprocess.run(["setsid", "sh", "-c", " ".join(argv) + " >/dev/null 2>&1 &"], check=True)
        wait_until(lambda: servers_of(image), "the orphan qemu-nbd runs")
        wait_until(lambda: locked(image), "the orphan qemu-nbd holds the image's lock")
        assert not writable(image)

    def test_a_server_left_by_an_older_strongroom_is_ended_by_the_next_backup(self, qcow2_vm):
        """A qemu-nbd in an old-style socket folder whose parent is gone: the next backup ends it."""
        vault, image = qcow2_vm
        self._orphan_server(image, "strongroom-nbd-")
        vault.backup("web")
        assert servers_of(image) == [] and writable(image)

    def test_a_server_whose_owner_is_gone_is_ended(self, qcow2_vm):
        """A qemu-nbd in a socket folder naming a strongroom process that is gone is ended."""
        vault, image = qcow2_vm
        gone = subprocess.Popen(["true"])
        gone.wait()
        owner = ProcessId.of(os.getpid())
        tag = ProcessId(owner.host, gone.pid, owner.start.partition("/")[0] + "/1").tag
        self._orphan_server(image, f"strongroom-nbd-{tag}-")
        assert len(end_stale_servers(str(image))) == 1
        assert servers_of(image) == [] and writable(image)

    def test_the_server_of_a_running_strongroom_is_left_alone(self, qcow2_vm):
        """A qemu-nbd this (running) process serves is not stale: it keeps serving."""
        vault, image = qcow2_vm
        with serve_image(str(image), "qcow2") as sock:
            assert end_stale_servers(str(image)) == []
            assert len(servers_of(image)) == 1 and os.path.exists(sock)
        assert servers_of(image) == []
