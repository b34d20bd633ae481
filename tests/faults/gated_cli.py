"""The strongroom command line with one more plugin: every backup waits at a gate.

``python gated_cli.py FOLDER ARGS...`` runs ``strongroom ARGS...``; the ``gate`` plugin's
``strongroom_before_backup`` creates ``FOLDER/arrived`` and then waits, in short sleeps,
until ``FOLDER/open`` exists, so a backup job stays running until the test lets it go (or
signals it).  Sleeping rather than blocking in a system call keeps the wait as a real
command's work is: a signal is handled within one sleep.
"""

from __future__ import annotations

import os
import sys
import time

from strongroom import hookimpl


class Gate:
    def __init__(self, folder: str) -> None:
        self.folder = folder

    @hookimpl
    def strongroom_before_backup(self, vault, item):
        open(os.path.join(self.folder, "arrived"), "w").close()
        while not os.path.exists(os.path.join(self.folder, "open")):
            time.sleep(0.01)


class Waiting:
    """A job waiting at the gate; :meth:`release` lets it go on."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def release(self) -> None:
        open(os.path.join(self.folder, "open"), "w").close()


def wait_at_gate(folder: str, limit: float = 60.0) -> Waiting:
    """Wait until a job is at the gate."""
    deadline = time.monotonic() + limit
    while not os.path.exists(os.path.join(folder, "arrived")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no job reached the gate in {folder} within {limit:g} s")
        time.sleep(0.01)
    return Waiting(folder)


if __name__ == "__main__":
    from strongroom.cli import build_cli
    from strongroom.plugins import PluginHost

    build_cli(PluginHost.create(extra_plugins=[("gate", Gate(sys.argv[1]))])).main(sys.argv[2:])
