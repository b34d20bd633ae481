"""Running the venv's ``strongroom`` as a child process, one :class:`Step` per command.

A :class:`Runner` belongs to one cell of the matrix: it runs every command with that
cell's private ``STRONGROOM_HOME`` and vault, no terminal (standard input is
``/dev/null``, so nothing can prompt), no ``STRONGROOM_*`` variable of the caller's
environment, and a timeout.  It records what the matrix judges by - the exit code, the
first line of standard error, whether a traceback was printed - and never parses a
message: other people change the messages.
"""

from __future__ import annotations

import os
import subprocess
import sys

import attrs

__all__ = ["EXE", "Runner", "Step"]

#: The venv's ``strongroom``, beside the Python that runs the bench.
EXE = os.path.join(os.path.dirname(sys.executable), "strongroom")
#: Exit code of a command that did not end within the timeout (never a real code).
HUNG = -1
TIMEOUT = 600


@attrs.frozen
class Step:
    """One command of a cell and what came of it; ``outcome`` is set when it is judged."""

    label: str
    shown: str  # the command line, with the cell's folder and point ids replaced by names
    exit: int
    first_line: str
    traceback: bool
    stdout: str = attrs.field(default="", repr=False)
    outcome: str = ""
    note: str = ""

    @property
    def crashed(self) -> bool:
        """A traceback or exit 99 (an internal error): never acceptable."""
        return self.traceback or self.exit == 99


@attrs.define
class Runner:
    """Runs ``strongroom`` for one cell; ``names`` maps text to show in its place."""

    home: str
    vault: str
    names: dict[str, str] = attrs.field(factory=dict)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
        env.update(STRONGROOM_HOME=self.home, STRONGROOM_VAULT=self.vault, **(extra or {}))
        return env

    def show(self, text: str) -> str:
        for real, name in sorted(self.names.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(real, name)
        return text

    def run(self, label: str, *args: str, env: dict[str, str] | None = None) -> Step:
        """Run ``strongroom ARGS``; a command still running after the timeout is killed."""
        argv = [EXE, *args]
        shown = self.show(" ".join(["strongroom", *args]))
        try:
            done = subprocess.run(argv, env=self.env(env), stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, errors="replace", timeout=TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            return Step(label, shown, HUNG, f"no exit after {TIMEOUT} s", "Traceback (most recent" in err)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        first = self.show(lines[0].strip()) if lines else ""
        traceback = "Traceback (most recent call last)" in done.stderr + done.stdout
        return Step(label, shown, done.returncode, first[:300], traceback, stdout=done.stdout)
