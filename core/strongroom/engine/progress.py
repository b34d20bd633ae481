"""Throttled progress callbacks shared by the engines: at most one call every ``interval``
seconds, and :meth:`Throttled.final` for the last numbers."""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


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
        with self._lock:
            if now - self._last < self._interval:
                return
            self._last = now
        self._callback(state)

    def final(self, state: T) -> None:
        """Call ``callback(state)`` now, however recent the last call: the last numbers."""
        if self._callback is not None:
            with self._lock:
                self._last = time.monotonic()
            self._callback(state)
