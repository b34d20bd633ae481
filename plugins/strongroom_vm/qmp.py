"""A small synchronous client for the QEMU Machine Protocol and the QEMU guest agent.

QMP is line-delimited JSON over a unix socket: a greeting, ``qmp_capabilities``, then
``{"execute": ..., "arguments": ..., "id": n}`` requests, each answered by a line with
the same ``id`` holding ``return`` or ``error``; asynchronous ``event`` lines may come
in between and are kept in :attr:`QmpClient.events`.  The guest agent speaks the same
JSON without greeting or ids; :class:`GuestAgent` re-synchronises a connection with
``guest-sync-delimited`` (the answer is preceded by a ``0xFF`` byte) before its first
command, as the protocol asks.

A socket that is missing, refuses the connection or stays silent past ``timeout``
raises :class:`~strongroom_vm.errors.QemuError` (or
:class:`~strongroom_vm.errors.GuestAgentError`) with one line.  A command that QEMU
rejects raises :class:`QmpCommandError`, which carries QEMU's ``class`` and ``desc``.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
from typing import Any

from .errors import GuestAgentError, QemuError, VmError

__all__ = ["GuestAgent", "QmpClient", "QmpCommandError", "peer_pid"]

TIMEOUT = 10.0


class QmpCommandError(QemuError):
    """QEMU at {socket}: {reason}"""

    def __init__(self, socket: str, command: str, error: dict) -> None:
        self.command = command
        self.error_class = error.get("class", "GenericError")
        self.desc = error.get("desc", "")
        super().__init__(socket=socket, reason=f"{command} failed: {self.desc or self.error_class}")


def _connect(path: str, timeout: float, error: type[VmError], missing: str) -> socket.socket:
    """A connected unix socket, or ``error`` saying why not (``missing`` when the socket does not exist)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except FileNotFoundError:
        sock.close()
        raise error(socket=path, reason=missing) from None
    except OSError as exc:
        sock.close()
        raise error(socket=path, reason=f"cannot connect ({exc.strerror or exc})") from None
    return sock


def peer_pid(sock: socket.socket) -> int | None:
    """The pid of the process at the other end of a unix socket, if the system tells."""
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is None:
        return None
    try:
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, so_peercred, struct.calcsize("3i")))
    except OSError:
        return None
    return pid or None


class QmpClient:
    """One QMP connection (QEMU serves one client at a time on a socket)."""

    def __init__(self, path: str, *, timeout: float | None = None) -> None:
        self.path = path
        self.events: list[dict] = []
        self._id = 0
        wait = TIMEOUT if timeout is None else timeout
        self._sock = _connect(path, wait, QemuError, "no such socket (is the VM running?)")
        self._file = self._sock.makefile("rb")
        try:
            greeting = self._line()
            if "QMP" not in greeting:
                raise QemuError(socket=path, reason="not a QMP socket (no QMP greeting)")
            self.version = greeting["QMP"].get("version", {}).get("qemu", {})
            self.execute("qmp_capabilities")
        except TimeoutError:
            self.close()
            raise QemuError(
                socket=path, reason=f"no answer within {wait:g} s (is another client connected to it?)"
            ) from None
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int | None:
        return peer_pid(self._sock)

    def _line(self) -> dict:
        try:
            raw = self._file.readline()
        except TimeoutError:
            raise
        except OSError as exc:
            raise QemuError(socket=self.path, reason=f"connection failed ({exc.strerror or exc})") from None
        if not raw:
            raise QemuError(socket=self.path, reason="QEMU closed the connection")
        try:
            return json.loads(raw)
        except ValueError:
            raise QemuError(socket=self.path, reason="QEMU sent a line that is not JSON") from None

    def execute(self, command: str, arguments: dict | None = None) -> Any:
        self._id += 1
        request: dict[str, Any] = {"execute": command, "id": self._id}
        if arguments:
            request["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            while True:
                reply = self._line()
                if "event" in reply:
                    self.events.append(reply)
                    continue
                if reply.get("id") != self._id:
                    continue
                if "error" in reply:
                    raise QmpCommandError(self.path, command, reply["error"])
                return reply.get("return")
        except TimeoutError:
            raise QemuError(socket=self.path, reason=f"no answer to {command}") from None
        except BrokenPipeError:
            raise QemuError(socket=self.path, reason="QEMU closed the connection") from None

    def hmp(self, command_line: str) -> str:
        """Run a human-monitor command (used by tests to write to a disk with qemu-io)."""
        return self.execute("human-monitor-command", {"command-line": command_line})

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._sock.close()

    def __enter__(self) -> "QmpClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GuestAgent:
    """A connection to the QEMU guest agent (``qemu-ga``) through its host-side socket."""

    def __init__(self, path: str, *, timeout: float | None = None) -> None:
        self.path = path
        wait = TIMEOUT if timeout is None else timeout
        self._sock = _connect(path, wait, GuestAgentError, "no such socket")
        self._buffer = b""
        try:
            self._sync()
        except BaseException:
            self._sock.close()
            raise

    def _recv_line(self) -> bytes:
        while b"\n" not in self._buffer:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                raise GuestAgentError(socket=self.path, reason="the agent does not answer (is it running in the guest?)") from None
            except OSError as exc:
                raise GuestAgentError(socket=self.path, reason=f"connection failed ({exc.strerror or exc})") from None
            if not data:
                raise GuestAgentError(socket=self.path, reason="the connection was closed")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _send(self, command: str, arguments: dict | None = None) -> None:
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise GuestAgentError(socket=self.path, reason=f"connection failed ({exc.strerror or exc})") from None

    def _sync(self) -> None:
        token = random.randrange(1, 2**31)
        self._sock.sendall(b"\xff")  # resets the agent's JSON parser
        self._send("guest-sync-delimited", {"id": token})
        while True:
            line = self._recv_line()
            start = line.rfind(b"\xff")
            if start >= 0:
                line = line[start + 1 :]
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if reply.get("return") == token:
                return

    def execute(self, command: str, arguments: dict | None = None) -> Any:
        self._send(command, arguments)
        while True:
            try:
                reply = json.loads(self._recv_line().lstrip(b"\xff"))
            except ValueError:
                continue
            if "error" in reply:
                desc = reply["error"].get("desc", reply["error"].get("class", "error"))
                raise GuestAgentError(socket=self.path, reason=f"{command} failed: {desc}")
            if "return" in reply:
                return reply["return"]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "GuestAgent":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cmdline_of(pid: int | None) -> list[str] | None:
    """The command line of a local process, or None if it cannot be read."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return [os.fsdecode(part) for part in raw.split(b"\0") if part] or None
