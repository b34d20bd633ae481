"""Throttled progress callbacks shared by the engines: at most one call every ``interval``
seconds, and :meth:`Throttled.final` for the last numbers."""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Step(str):
    """A progress message that also carries numbers: ``done`` of ``total`` ``unit``
    (packs, objects) and ``bytes`` of ``total_bytes`` (None: not known).  It is a
    ``str``, so a callback that takes messages shows it as it is; the command line's
    progress line (``strongroom.cli.output.Progress``) draws percent, rate and ETA."""

    done: int
    total: int | None
    unit: str
    bytes: int
    total_bytes: int | None

    def __new__(cls, text: str, *, done: int = 0, total: int | None = None, unit: str = "",
                bytes: int = 0, total_bytes: int | None = None) -> "Step":
        step = super().__new__(cls, text)
        step.done, step.total, step.unit = done, total, unit
        step.bytes, step.total_bytes = bytes, total_bytes
        return step


class Throttled(Generic[T]):
    """Calls ``callback(state)`` at most every ``interval`` seconds (none: does nothing)."""

    def __init__(self, callback: Callable[[T], None] | None, interval: float = 0.2) -> None:
        self._callback = callback
        self._interval = interval
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, state: T) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if now - self._last < self._interval:  # most calls (one per entry of a walk): no lock taken
            return
        with self._lock:
            if now - self._last < self._interval:  # another thread's call came first
                return
            self._last = now
        self._callback(state)

    def final(self, state: T) -> None:
        """Call ``callback(state)`` now, however recent the last call: the last numbers."""
        if self._callback is not None:
            with self._lock:
                self._last = time.monotonic()
            self._callback(state)
