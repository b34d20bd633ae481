"""Freezing a guest's file systems around the snapshot point, with a guard that always thaws.

A frozen guest blocks every write of its applications, so a backup must never leave it
frozen, whatever happens to the backup process.  The freeze and the thaw are therefore
done by a small **guard process** (``python -m strongroom_vm.freeze SOCKET SECONDS``),
started in its own session so that a signal sent to the backup's process group does
not reach it.  It owns the only connection to the guest agent and obeys lines on its
standard input:

- at start it asks ``guest-fsfreeze-status``; a guest left frozen (by a guard that was
  itself killed) is thawed at once and reported as ``ready thawed-leftover``, else
  ``ready``;
- ``freeze`` -> ``guest-fsfreeze-freeze`` -> ``frozen N``; ``thaw`` ->
  ``guest-fsfreeze-thaw`` -> ``thawed N``; failures answer ``error MESSAGE``;
- when its standard input closes (the backup ended or was killed, even by SIGKILL),
  when the guest has been frozen longer than SECONDS, or on SIGTERM, it thaws the
  guest before it exits.

:class:`Freezer` is the backup's side: a context manager that starts the guard and
offers :meth:`Freezer.freeze` and :meth:`Freezer.thaw`; leaving it closes the pipe, so
the guard thaws if the thaw was not confirmed.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

from strongroom import child_environment

from .errors import GuestAgentError

from .qmp import GuestAgent

__all__ = ["Freezer", "main"]

MAX_FROZEN = 60.0  # seconds a guest may stay frozen before the guard thaws it
ANSWER_TIMEOUT = 120.0


class Freezer:
    """The backup's handle on the guard process (see the module documentation)."""

    def __init__(self, agent_socket: str, *, max_frozen: float = MAX_FROZEN) -> None:
        self.socket = agent_socket
        self.max_frozen = max_frozen
        self.thawed_leftover = False
        self.frozen = False
        self._proc: subprocess.Popen | None = None
        self._buffer = b""

    def __enter__(self) -> "Freezer":
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "strongroom_vm.freeze", self.socket, str(self.max_frozen)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, env=child_environment(),
        )
        try:
            answer = self._answer()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.thawed_leftover = answer == "ready thawed-leftover"
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        try:
            proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass  # it thaws and exits on its own; never kill it while the guest may be frozen
        proc.stdout.close()  # type: ignore[union-attr]

    def _answer(self) -> str:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                raise GuestAgentError(socket=self.socket, reason="the agent does not answer")
            data = os.read(fd, 4096)
            if not data:
                raise GuestAgentError(socket=self.socket, reason="the freeze guard stopped unexpectedly")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        text = line.decode("utf-8", "replace").strip()
        if text.startswith("error "):
            raise GuestAgentError(socket=self.socket, reason=text[6:])
        return text

    def _say(self, command: str) -> str:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(command.encode() + b"\n")
            self._proc.stdin.flush()
        except OSError:
            raise GuestAgentError(socket=self.socket, reason="the freeze guard stopped unexpectedly") from None
        return self._answer()

    def freeze(self) -> int:
        answer = self._say("freeze")
        self.frozen = True
        return int(answer.split()[-1])

    def thaw(self) -> int:
        answer = self._say("thaw")
        self.frozen = False
        return int(answer.split()[-1])


# --- the guard process -----------------------------------------------------------------


def _thaw(agent: GuestAgent) -> int:
    try:
        return int(agent.execute("guest-fsfreeze-thaw"))
    except GuestAgentError:
        if agent.execute("guest-fsfreeze-status") == "thawed":
            return 0
        raise


def main(argv: list[str]) -> int:
    socket_path, max_frozen = argv[0], float(argv[1])
    out = sys.stdout.buffer

    def say(text: str) -> None:
        try:
            out.write(text.encode() + b"\n")
            out.flush()
        except OSError:
            pass  # the backup is gone; keep going until the guest is thawed

    def on_term(signum, frame):  # noqa: ARG001
        raise SystemExit(1)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        agent = GuestAgent(socket_path)
    except GuestAgentError as exc:
        say(f"error {exc.fields['reason']}")
        return 1
    frozen = False
    try:
        leftover = agent.execute("guest-fsfreeze-status") == "frozen"
        if leftover:
            _thaw(agent)
        say("ready thawed-leftover" if leftover else "ready")
        buffer = b""
        frozen_since = 0.0
        while True:
            timeout = max(0.0, frozen_since + max_frozen - time.monotonic()) if frozen else None
            ready, _, _ = select.select([0], [], [], timeout)
            if not ready:  # frozen for too long: the backup is stuck
                _thaw(agent)
                frozen = False
                continue
            data = os.read(0, 4096)
            if not data:
                return 0  # the backup ended or died; ``finally`` thaws
            buffer += data
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                command = line.decode().strip()
                try:
                    if command == "freeze":
                        frozen, frozen_since = True, time.monotonic()
                        say(f"frozen {int(agent.execute('guest-fsfreeze-freeze'))}")
                    elif command == "thaw":
                        count = _thaw(agent)
                        frozen = False
                        say(f"thawed {count}")
                    else:
                        say(f"error unknown command {command!r}")
                except GuestAgentError as exc:
                    if command == "freeze":  # the agent thaws what it froze when a freeze fails
                        frozen = agent.execute("guest-fsfreeze-status") == "frozen"
                    say(f"error {exc.fields['reason']}")
    finally:
        if frozen:
            try:
                _thaw(agent)
            except GuestAgentError:
                pass
        agent.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
