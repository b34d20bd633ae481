"""What a store can do, beyond the Store contract itself: capabilities.

The Store contract (:mod:`strongroom.storage.base`) is the same for every backend; the
layers above sometimes need to know more about the storage under it:

- ``remote``: the storage is reached over a network, so several requests in flight at
  once pay off (and a request costs milliseconds, not microseconds).
- ``concurrency``: how many operations the layers above should keep in flight at once
  (uploads while backing up, pack reads while restoring).  A hint, not a limit: the
  store itself stays safe with any number of threads.
- ``atomic_rename``: puts go through a temporary name and a rename (local folders,
  SFTP); object stores put a whole object in one request instead.  Either way a reader
  never sees a partial object; this only says how.
- ``listing_consistent``: an object is listed as soon as its put returns (true of every
  built-in backend, and of S3 since 2020).
- ``object_lock``: the backend can protect objects with a write-once lock (S3 object
  lock, which the immutability feature builds on).  Whether this location has one
  switched on is a question for the storage itself: :func:`object_lock_of`.

A store that has more to say offers a ``capabilities()`` method returning
:class:`Capabilities` (answered without any I/O), and, where ``object_lock`` is true, an
``object_lock()`` method that asks the storage once and returns :class:`ObjectLock`.
Decorators pass their inner store's answers through.  Callers use
:func:`capabilities_of` and :func:`object_lock_of`, which ask the store, follow
``inner`` through decorators that do not answer themselves, and fall back to
:data:`DEFAULT` (a local, non-remote store) and to "no object lock".

A store whose objects are the files of a local folder, under their names, may say which
folder with a ``direct_read_folder()`` method: :func:`direct_read_folder_of` gives it to
callers that read objects in another process (a restore's worker processes read their
packs themselves).  A decorator that changes what a read gives or when (injected faults,
a rate limit) answers None, so that every read goes through it.  (Where a vault lives,
whatever decorates it, is :func:`strongroom.storage.fsspec_store.local_folder_of`.)
"""

from __future__ import annotations

import attrs

__all__ = [
    "DEFAULT", "Capabilities", "ObjectLock", "capabilities_of", "direct_read_folder_of", "object_lock_of",
]

#: Operations in flight for a local folder: enough to overlap fsync with sealing.
LOCAL_CONCURRENCY = 4
#: Operations in flight for a remote store: enough to hide round trips on one link.
REMOTE_CONCURRENCY = 8

_LOCK_MODES = (None, "COMPLIANCE", "GOVERNANCE")


@attrs.frozen
class ObjectLock:
    """The write-once protection of a storage location (an S3 bucket's object lock).

    ``enabled``: objects can be locked at all (S3: the bucket was created with object
    lock, which also turns versioning on).  ``mode`` and ``days``/``years``: the
    bucket's default retention, applied to every new object; ``None`` without one.
    Under COMPLIANCE nobody can delete a locked object version before its date; under
    GOVERNANCE a user with the bypass permission can.
    """

    enabled: bool = False
    mode: str | None = attrs.field(default=None, validator=attrs.validators.in_(_LOCK_MODES))
    days: int | None = None
    years: int | None = None

    @property
    def default_retention(self) -> bool:
        """Whether every new object is locked by a bucket-default retention."""
        return self.enabled and self.mode is not None

    def describe(self) -> str:
        if not self.enabled:
            return "no object lock"
        if not self.mode:
            return "object lock enabled, no default retention"
        span = f"{self.years} year(s)" if self.years else f"{self.days} day(s)"
        return f"object lock: {self.mode} default retention of {span}"


@attrs.frozen
class Capabilities:
    """What a store can do; see the module docstring for each field."""

    remote: bool = False
    concurrency: int = attrs.field(default=LOCAL_CONCURRENCY, validator=attrs.validators.ge(1))
    atomic_rename: bool = True
    listing_consistent: bool = True
    object_lock: bool = False


#: What a store that says nothing about itself is taken to be.
DEFAULT = Capabilities()


def _ask(store: object, method: str):
    for _ in range(32):  # decorators nest a few levels deep, never cyclically
        if store is None:
            break
        ask = getattr(store, method, None)
        if callable(ask):
            return ask()
        store = getattr(store, "inner", None)
    return None


def capabilities_of(store: object) -> Capabilities:
    """The capabilities of ``store``, asking decorators' inner stores when needed."""
    return _ask(store, "capabilities") or DEFAULT


def object_lock_of(store: object) -> ObjectLock:
    """The object lock of the storage under ``store`` (asks the storage; may raise
    :class:`~strongroom.errors.StorageError`); "none" for backends without the notion."""
    if not capabilities_of(store).object_lock:
        return ObjectLock()
    return _ask(store, "object_lock") or ObjectLock()


def direct_read_folder_of(store: object) -> str | None:
    """The local folder whose files are ``store``'s objects (object ``name`` is the file
    ``<folder>/<name>``, the same bytes a read of the store gives), or None: a remote
    store, one that says nothing, or one behind a decorator that changes reads."""
    return _ask(store, "direct_read_folder")
