"""RateLimitedStore: a Store decorator that caps the bytes per second put and got.

Two independent token buckets (:class:`TokenBucket`), one for uploads and one for
downloads, each optional.  The promises:

- ``put`` takes its object's length from the upload bucket *before* the inner put;
  ``get`` and ``get_range`` take the length of what came back from the download bucket
  *after* the inner call (the size is known only then), so a burst is paid for by the
  next call's wait.  Over any stretch of time the bytes moved stay within
  ``rate * seconds + burst``.
- A bucket holds at most ``burst`` bytes (one second's worth by default) and starts
  full; an object larger than the burst is let through once the bucket has filled, and
  leaves the bucket that far in debt (later calls wait it off), so no object is ever
  refused for being large.
- Every other operation (``size``, ``exists``, ``list``, ``delete``, the object-lock
  ones) passes through unlimited: their bytes are headers.
- Time comes from an injectable ``clock`` and waits go to an injectable ``sleep``, so the
  accounting can be tested without a wall clock.  Thread-safe: concurrent transfers
  share a bucket (each waits its turn under the bucket's lock).

:func:`open_store` builds this decorator from the storage options ``limit_upload`` and
``limit_download`` (KiB/s, see :data:`LIMIT_OPTIONS`), which the command line sets with
``--limit-upload``/``--limit-download`` and the config file per vault URL.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator

import attrs

from ..errors import StorageError
from .base import Store
from .capabilities import Capabilities, ObjectLock, capabilities_of, object_lock_of
from . import locking

__all__ = ["LIMIT_OPTIONS", "RateLimitedStore", "TokenBucket", "limit_from_option", "limited"]

#: The storage options that set a limit, in KiB/s: upload (put), download (get).
LIMIT_OPTIONS = ("limit_upload", "limit_download")


def limit_from_option(name: str, value: object) -> float | None:
    """Bytes per second for storage option ``name`` given in KiB/s (``None``: no limit).

    Raises ValueError with a one-line message for anything but a positive number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"storage option {name} must be a positive number of KiB/s, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"storage option {name} must be a positive number of KiB/s, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise ValueError(f"storage option {name} must be a positive number of KiB/s, got {value!r}")
    return number * 1024


@attrs.define(eq=False)
class TokenBucket:
    """``rate`` bytes per second, at most ``burst`` saved up (default: one second's worth)."""

    rate: float = attrs.field(validator=attrs.validators.gt(0))
    burst: float = attrs.field(default=None)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, repr=False)
    #: Bytes taken so far, and seconds spent waiting (for tests and reports).
    taken: int = attrs.field(default=0, init=False)
    waited: float = attrs.field(default=0.0, init=False)
    _tokens: float = attrs.field(init=False, repr=False)
    _stamp: float = attrs.field(init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.burst is None:
            self.burst = self.rate
        if self.burst <= 0:
            raise ValueError(f"burst must be positive, got {self.burst!r}")
        self._tokens = self.burst
        self._stamp = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, n: int) -> float:
        """Wait until ``n`` bytes may pass (see the module docstring); the seconds waited."""
        if n <= 0:
            return 0.0
        with self._lock:
            self._refill()
            # wait until the bucket holds what is asked, or is full for an object larger
            # than the burst (which then leaves it in debt)
            need = min(float(n), self.burst)
            pause = (need - self._tokens) / self.rate if self._tokens < need else 0.0
            if pause > 0:
                self.sleep(pause)
                self.waited += pause
                self._refill()
                self._tokens = max(self._tokens, need)  # a sleep that came back early
            self._tokens -= n
            self.taken += n
            return pause

    def pay(self, n: int) -> float:
        """Account ``n`` bytes already moved: wait off any debt they leave (a download,
        whose size is known only when it has arrived)."""
        if n <= 0:
            return 0.0
        with self._lock:
            self._refill()
            self._tokens -= n
            self.taken += n
            pause = -self._tokens / self.rate if self._tokens < 0 else 0.0
            if pause > 0:
                self.sleep(pause)
                self.waited += pause
                self._refill()
            return pause


@attrs.define(eq=False)
class RateLimitedStore:
    """Limits the bytes ``inner`` puts and gets; see the module docstring."""

    inner: Store
    upload: TokenBucket | None = None
    download: TokenBucket | None = None

    @property
    def url(self) -> str:
        return self.inner.url

    def capabilities(self) -> Capabilities:
        return capabilities_of(self.inner)

    def object_lock(self) -> ObjectLock:
        return object_lock_of(self.inner)

    def direct_read_folder(self) -> None:
        """None: every read is counted against the limit, never around it."""
        return None

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        if self.upload is not None:
            self.upload.take(len(data))
        self.inner.put(name, data)

    def get(self, name: str) -> bytes:
        data = self.inner.get(name)
        if self.download is not None:
            self.download.pay(len(data))
        return data

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        data = self.inner.get_range(name, offset, length)
        if self.download is not None:
            self.download.pay(len(data))
        return data

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    # --- object lock (strongroom.storage.locking), passed through -----------------------

    def lock_object(self, name: str, until: dt.datetime, mode: str) -> locking.Retention:
        return locking.lock_object(self.inner, name, until, mode)

    def retention(self, name: str) -> locking.Retention | None:
        return locking.retention_of(self.inner, name)

    def hidden_objects(self, prefix: str = "") -> list[locking.HiddenObject]:
        return locking.hidden_objects(self.inner, prefix)

    def unhide(self, name: str) -> bool:
        return locking.unhide(self.inner, name)


def limited(options: dict) -> Callable[[Store], Store]:
    """Take ``limit_upload``/``limit_download`` out of storage ``options`` (in place) and
    return what wraps a store in the limits they set (the store itself when none is set).

    StorageError (one line) for a value that is not a positive number."""
    try:
        upload, download = (limit_from_option(key, options.pop(key, None)) for key in LIMIT_OPTIONS)
    except ValueError as exc:
        raise StorageError(message=str(exc)) from None

    def wrap(store: Store) -> Store:
        if upload is None and download is None:
            return store
        return RateLimitedStore(store, upload=upload and TokenBucket(upload),
                                download=download and TokenBucket(download))

    return wrap
