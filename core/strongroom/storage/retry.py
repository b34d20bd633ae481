"""RetryingStore: a Store decorator that retries transient failures with backoff.

Every Store operation is idempotent (a put overwrites with the same bytes, a delete of a
missing object succeeds), so any operation may be repeated.  The rules:

- Only transient errors are retried: :class:`TransientStorageError`, and the raw
  exceptions :func:`strongroom.storage.base.is_transient` recognises (connection resets,
  timeouts) should an inner store let one through.  :class:`ObjectNotFound` and every
  other :class:`StorageError` are permanent and raised at once.
- Attempt ``n`` (from 1) that fails transiently is followed by a sleep of
  ``d/2 + uniform(0, d/2)`` seconds with ``d = min(max_delay, base_delay * 2**(n-1))``
  ("equal jitter"): delays never shrink from one attempt to the next, and clients that
  failed together do not retry in lockstep.
- After ``attempts`` failed attempts a :class:`StorageError` is raised whose message names
  the operation, the object, the number of attempts and the last error; the last error
  is its ``__cause__``.
- The object-lock operations of :mod:`strongroom.storage.locking` (``lock_object``,
  ``retention``, ``hidden_objects``, ``unhide``) are passed to the inner store and
  retried by the same rules.
- ``list`` is retried as a whole: the inner listing is collected before the first name
  is yielded, so a failure half-way never yields names twice.
- Each call is a debug record of this module's logger (``strongroom -vv``): the
  operation and the object's name (never its bytes); each retry a warning.
- **Work its caller gave up on** (:func:`abandoning`): calls made in a context whose
  abandon event is set are not retried and log nothing: a transient failure, or a call
  begun after the event, is :class:`Abandoned` at once.  A bounded run left behind
  (:mod:`strongroom.services.bounded`) so ends at its next failure, silently, instead of
  retrying, and warning, into whatever command the process runs next.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import attrs

from ..errors import StorageError
from .base import Store, is_transient
from .capabilities import Capabilities, ObjectLock, capabilities_of, object_lock_of
from . import locking

__all__ = ["Abandoned", "RetryingStore", "abandoned", "abandoning"]

T = TypeVar("T")
log = logging.getLogger(__name__)

_ABANDON: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("strongroom_abandon", default=None)


class Abandoned(StorageError):
    """Storage error: {op} {name!r} on {url} was given up: the command that started it no longer waits for it."""


@contextlib.contextmanager
def abandoning(event: threading.Event) -> Iterator[None]:
    """Storage calls in this context (and in contexts copied from it) stop retrying, and
    logging, once ``event`` is set; see the module docstring."""
    token = _ABANDON.set(event)
    try:
        yield
    finally:
        _ABANDON.reset(token)


def abandoned() -> bool:
    """Whether the work running in this context was given up by its caller."""
    event = _ABANDON.get()
    return event is not None and event.is_set()


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


@attrs.define(eq=False)
class RetryingStore:
    """Retries the transient failures of ``inner``; see the module docstring."""

    inner: Store
    attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    base_delay: float = attrs.field(default=0.2, validator=_positive)
    max_delay: float = attrs.field(default=5.0, validator=_positive)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, repr=False)
    _random: random.Random = attrs.field(factory=random.Random, init=False, repr=False)

    @property
    def url(self) -> str:
        return self.inner.url

    def capabilities(self) -> Capabilities:
        return capabilities_of(self.inner)

    def object_lock(self) -> ObjectLock:
        return self._retry("object_lock", self.url, lambda: object_lock_of(self.inner))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return cap / 2 + self._random.uniform(0, cap / 2)

    def _retry(self, op: str, name: str, fn: Callable[[], T]) -> T:
        if log.isEnabledFor(logging.DEBUG):  # -vv: every storage call, by object name
            log.debug("%s %s", op, name or "(root)")
        for attempt in range(1, self.attempts + 1):
            if abandoned():
                raise Abandoned(op=op, name=name, url=self.url)
            try:
                return fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if abandoned():
                    raise Abandoned(op=op, name=name, url=self.url) from exc
                if attempt == self.attempts:
                    raise StorageError(
                        message=f"{op} {name!r} on {self.url} failed after {self.attempts} "
                        f"attempts; last error: {exc}"
                    ) from exc
                pause = self.delay(attempt)
                log.warning(
                    "%s %r failed (attempt %d of %d), retrying in %.2fs: %s",
                    op,
                    name,
                    attempt,
                    self.attempts,
                    pause,
                    exc,
                )
                self.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        self._retry("put", name, lambda: self.inner.put(name, data))

    def get(self, name: str) -> bytes:
        return self._retry("get", name, lambda: self.inner.get(name))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self._retry("get_range", name, lambda: self.inner.get_range(name, offset, length))

    def size(self, name: str) -> int:
        return self._retry("size", name, lambda: self.inner.size(name))

    def exists(self, name: str) -> bool:
        return self._retry("exists", name, lambda: self.inner.exists(name))

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(self._retry("list", prefix, lambda: list(self.inner.list(prefix))))

    def delete(self, name: str) -> None:
        self._retry("delete", name, lambda: self.inner.delete(name))

    # --- object lock (strongroom.storage.locking) -----------------------------------------

    def lock_object(self, name: str, until: dt.datetime, mode: str) -> locking.Retention:
        return self._retry("lock", name, lambda: locking.lock_object(self.inner, name, until, mode))

    def retention(self, name: str) -> locking.Retention | None:
        return self._retry("retention", name, lambda: locking.retention_of(self.inner, name))

    def hidden_objects(self, prefix: str = "") -> list[locking.HiddenObject]:
        return self._retry("hidden_objects", prefix, lambda: locking.hidden_objects(self.inner, prefix))

    def unhide(self, name: str) -> bool:
        return self._retry("unhide", name, lambda: locking.unhide(self.inner, name))
