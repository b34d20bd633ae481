"""systemd's notification protocol (``sd_notify``), for ``strongroom agent`` as a service.

When systemd starts a ``Type=notify`` unit it sets ``$NOTIFY_SOCKET``, a unix datagram
socket (a path, or ``@name`` in the abstract namespace); the service sends it lines such
as ``READY=1``.  :class:`Notifier` sends ``READY=1`` (:meth:`ready`), ``WATCHDOG=1``
(:meth:`watchdog`, only when ``$WATCHDOG_USEC`` asks for it, and ``$WATCHDOG_PID``, if set,
is this process) and ``STOPPING=1`` (:meth:`stopping`), each with an optional ``STATUS=``.
Without ``$NOTIFY_SOCKET`` it does nothing.  A datagram that cannot be sent at once (no
reader, a full queue) is dropped silently: notifying never blocks or fails the agent.  No dependency: one ``sendto`` per message.

:meth:`keep_alive` starts a daemon thread that sends ``WATCHDOG=1`` every half of the
watchdog period until the returned event is set, so that the watchdog restarts an agent
whose process stopped running (frozen, or an interpreter that hangs), never one that is
busy with a long backup; the agent also sends one after every pass.
"""

from __future__ import annotations

import os
import socket
import threading

import attrs

__all__ = ["Notifier"]


@attrs.frozen
class Notifier:
    """Where to notify (``None``: nowhere) and the watchdog period in seconds (``None``: none)."""

    address: str | None = None
    watchdog_seconds: float | None = None
    #: Set once ``STOPPING=1`` is sent: no ``WATCHDOG=1`` follows it (the lock orders the two;
    #: re-entrant, as the signal handler that sends ``STOPPING=1`` runs on the main thread).
    _stopped: threading.Event = attrs.field(factory=threading.Event, eq=False, repr=False, init=False)
    _order: threading.RLock = attrs.field(factory=threading.RLock, eq=False, repr=False, init=False)

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "Notifier":
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        period = None
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
            pid = int(env.get("WATCHDOG_PID") or os.getpid())
        except ValueError:
            usec, pid = 0, 0
        if usec > 0 and pid == os.getpid():
            period = usec / 1_000_000
        return cls(address, period)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``lines``; False if there is no socket or it failed."""
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # never wait: a reader that does not read must not stop the agent
                sock.sendto("\n".join(lines).encode("utf-8", "replace"), socket.MSG_DONTWAIT, target)
        except OSError:
            return False
        return True

    def _with_status(self, line: str, status: str | None) -> bool:
        return self.send(line, f"STATUS={status}") if status else self.send(line)

    def ready(self, status: str | None = None) -> bool:
        return self._with_status("READY=1", status)

    def stopping(self, status: str | None = None) -> bool:
        with self._order:
            self._stopped.set()
            return self._with_status("STOPPING=1", status)

    def watchdog(self) -> bool:
        with self._order:
            if not self.watchdog_seconds or self._stopped.is_set():
                return False
            return self.send("WATCHDOG=1")

    def keep_alive(self) -> threading.Event:
        """Send ``WATCHDOG=1`` every half period from a daemon thread until the event is set
        (nothing without a watchdog)."""
        done = threading.Event()
        if not (self.enabled and self.watchdog_seconds):
            return done
        half = self.watchdog_seconds / 2

        def beat() -> None:
            while not done.wait(half):
                self.watchdog()

        threading.Thread(target=beat, name="strongroom-watchdog", daemon=True).start()
        return done
