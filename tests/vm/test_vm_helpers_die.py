"""Every helper an offline qcow2 backup starts dies with strongroom, whenever it is killed.

``strongroom backup`` (a real process) is killed with SIGKILL at several moments: while
``qemu-img`` checks the image's lock, as soon as ``qemu-nbd`` appears (it may still be
starting), and while the disk is being read.  Each time, no ``qemu-img`` or ``qemu-nbd``
of the image is left, the image is not locked (``qemu-img info`` without ``-U`` and a
``qemu-io`` write, as a VM starting would, both succeed), and the next backup succeeds.
``qemu-nbd`` is not started with ``--persistent``: with its clients gone it would end by
itself even if the kernel's death signal never came.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial

import pytest

from strongroom import list_processes
from vmkit import MIB, qcow2_vm_item
from vaultkit import wait_until as poll_until

STRONGROOM = os.path.join(os.path.dirname(sys.executable), "strongroom")


wait_until = partial(poll_until, step=0.002)


def helpers_of(image) -> list:
    real = os.path.realpath(image)
    return [p for p in list_processes() if p.program in ("qemu-nbd", "qemu-img")
            and any(os.path.realpath(a) == real for a in p.argv[1:])]


def children_of(pid: int, program: str) -> list:
    return [p for p in list_processes(program) if p.ppid == pid]


@pytest.fixture
def qcow2_item(tmp_path, vault):
    image = qcow2_vm_item(vault, tmp_path, 96 * MIB)
    yield vault, image
    for helper in helpers_of(image):
        os.kill(helper.pid, signal.SIGKILL)


MOMENTS = {
    # the lock check before anything is served
    "qemu-img": lambda proc: wait_until(lambda: children_of(proc.pid, "qemu-img") or children_of(proc.pid, "qemu-nbd"),
                                        "the backup started qemu-img"),
    # qemu-nbd just started, perhaps not listening yet
    "qemu-nbd starting": lambda proc: wait_until(lambda: children_of(proc.pid, "qemu-nbd"),
                                                 "the backup started qemu-nbd"),
    # qemu-nbd serving, the disk being read
    "reading": lambda proc: (wait_until(lambda: children_of(proc.pid, "qemu-nbd"), "the backup started qemu-nbd"),
                             time.sleep(0.3)),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_sigkill_leaves_no_helper_and_no_lock(qcow2_item, vault_url, moment):
    """SIGKILL of strongroom at this moment: no helper left, image unlocked, the next backup succeeds."""
    vault, image = qcow2_item
    proc = subprocess.Popen([STRONGROOM, "--vault", vault_url, "backup", "web"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    MOMENTS[moment](proc)
    proc.kill()
    proc.wait()
    wait_until(lambda: not helpers_of(image), "the helpers ended with strongroom", limit=30)
    # a killed helper leaves the process list (its memory is released) a moment before its
    # files are closed, and with them the image's lock: on a busy machine, moments apart
    poll_until(lambda: subprocess.run(["qemu-img", "info", str(image)], capture_output=True).returncode == 0,
               "the image's lock was released", limit=30, step=0.05)
    assert subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write 0 4k", str(image)],
                          capture_output=True).returncode == 0
    point = vault.reopen().backup("web")
    assert point.consistency == "crash" and point.warnings == ()
    assert not helpers_of(image)


def test_qemu_nbd_is_not_persistent(qcow2_item, vault_url):
    """The qemu-nbd a backup starts has no --persistent (it ends when its last client goes)."""
    vault, image = qcow2_item
    proc = subprocess.Popen([STRONGROOM, "--vault", vault_url, "backup", "web"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        [server] = wait_until(lambda: children_of(proc.pid, "qemu-nbd"), "the backup started qemu-nbd")
        assert "--persistent" not in server.argv and "-t" not in server.argv
        assert proc.wait(120) == 0
    finally:
        proc.kill()
        proc.wait()
