"""The strongroom command line with one more plugin: every backup waits at a gate.

``python gated_cli.py FIFO ARGS...`` runs ``strongroom ARGS...``; the ``gate`` plugin's
``strongroom_before_backup`` opens ``FIFO`` for reading and reads it to the end, so a
backup job stays running until the test lets it go (or signals it).  A test knows the
job reached the gate when it can open the FIFO for writing without blocking.
"""

from __future__ import annotations

import errno
import os
import sys
import time

from strongroom import hookimpl


class Gate:
    def __init__(self, fifo: str) -> None:
        self.fifo = fifo

    @hookimpl
    def strongroom_before_backup(self, vault, item):
        with open(self.fifo, "rb") as fh:
            fh.read()


def wait_at_gate(fifo: str, limit: float = 60.0) -> int:
    """Wait until a job is at the gate; returns the write end, which keeps it waiting until closed."""
    deadline = time.monotonic() + limit
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


if __name__ == "__main__":
    from strongroom.cli import build_cli
    from strongroom.plugins import PluginHost

    build_cli(PluginHost.create(extra_plugins=[("gate", Gate(sys.argv[1]))])).main(sys.argv[2:])
