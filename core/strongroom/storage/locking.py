"""Per-object retention (S3 object lock) and hidden objects, through any stack of decorators.

A storage location with object lock (:func:`~strongroom.storage.capabilities.object_lock_of`
says whether it has one) can keep each object version from being deleted or
overwritten until a *retain-until* date, in one of two modes: GOVERNANCE (an identity
with the bypass permission may still delete it) or COMPLIANCE (nobody can, not even
the account's owner).  Such a bucket is versioned: a plain delete there only adds a
*delete marker* that hides the object, and every version stays.

The functions here ask the store that can answer (the
:class:`~strongroom.storage.fsspec_store.FsspecStore` at the bottom of a stack),
following ``inner`` through decorators that do not answer themselves, the way
:func:`~strongroom.storage.capabilities.object_lock_of` does; the retry decorator
retries them like any other operation.  A store that cannot lock objects raises
:class:`~strongroom.errors.StorageError` saying so.

- :func:`lock_object`: lock ``name``'s current version until ``until`` in ``mode``.  A
  retention only moves forward: a date earlier than the one in force, or a weaker mode,
  is not applied; the :class:`Retention` in force afterwards is returned (its mode
  stays GOVERNANCE when the credentials may not change it).
- :func:`retention_of`: the :class:`Retention` of ``name``, None when it has none.
- :func:`hidden_objects`: objects under a prefix whose newest version is a delete marker
  (someone deleted them without a version id); :func:`unhide` removes the markers,
  which brings the object back as it was.

The store's own ``delete`` keeps the Store contract on such a bucket: it removes every
version (space is freed, no marker is left) or raises
:class:`~strongroom.errors.ObjectLocked` when a version is still retained, leaving the
object readable.

:class:`LockingStore` is the decorator the vault installs when immutability is on: it
locks every object it puts, until now + the policy's span, in the policy's mode,
except the transient objects of :data:`TRANSIENT_PREFIXES` (leases, run claims, prune
marks and quarantined copies, which strongroom deletes in its normal course).  Vault
heads are locked too, so that whoever holds the storage credentials cannot delete the
evidence rollback detection reads (the extension keeps the newest few locked; older
ones lapse and go).  The put and the lock are two requests: an object whose lock failed, or whose
process died in between, is unlocked until the next extension
(:mod:`strongroom.services.objectlocks`) locks it.  Its clock is the real time, never
a test's replayed vault clock: retain-until dates are compared with the storage's own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, Callable

import attrs

from ..errors import StorageError
from .base import Store
from .capabilities import Capabilities, ObjectLock, capabilities_of, object_lock_of

__all__ = [
    "LOCK_MODES",
    "TRANSIENT_PREFIXES",
    "HiddenObject",
    "LockPolicy",
    "LockingStore",
    "Retention",
    "describe_locking",
    "hidden_objects",
    "is_transient_name",
    "lock_object",
    "retention_of",
    "unhide",
]

LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
#: Objects that strongroom deletes in its normal course: never locked.
TRANSIENT_PREFIXES = ("leases/", "runs/", "prune/", "quarantine/")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def is_transient_name(name: str) -> bool:
    """Whether ``name`` is an object that :class:`LockingStore` leaves unlocked."""
    return name.startswith(TRANSIENT_PREFIXES)


@attrs.frozen
class Retention:
    """The retention of one object version: ``mode`` until ``until`` (UTC)."""

    mode: str = attrs.field(validator=attrs.validators.in_(LOCK_MODES))
    until: dt.datetime

    def to_dict(self) -> dict:
        return {"mode": self.mode, "until": self.until.isoformat(timespec="seconds")}


@attrs.frozen
class HiddenObject:
    """An object whose newest version is a delete marker: ``marker`` is the marker's
    version id, ``hidden_at`` when it was made."""

    name: str
    marker: str
    hidden_at: str

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class LockPolicy:
    """How :class:`LockingStore` locks what it puts: ``mode`` for ``span`` from now."""

    mode: str = attrs.field(validator=attrs.validators.in_(LOCK_MODES))
    span: dt.timedelta

    def until(self, now: dt.datetime) -> dt.datetime:
        return now + self.span


def _answerer(store: object, method: str) -> Callable[..., Any]:
    """The ``method`` of the first store down the ``inner`` chain that has it."""
    at = store
    for _ in range(32):  # decorators nest a few levels deep, never cyclically
        if at is None:
            break
        found = getattr(at, method, None)
        if callable(found):
            return found
        at = getattr(at, "inner", None)
    raise StorageError(message=f"{getattr(store, 'url', store)} cannot lock objects (no S3 object lock)")


def describe_locking(store: Store) -> dict:
    """What the storage under ``store`` can do to lock objects, for ``vault security``:
    ``enabled`` (objects can be locked), ``description`` (one line), the bucket's default
    retention (``default_mode``, ``default_days``, ``default_years``) and whether a
    version is kept under every delete (``versioned``).  StorageError when the storage
    cannot say."""
    lock = object_lock_of(store)
    description = lock.describe()
    if lock.enabled:
        description += "; strongroom locks each object it writes while immutability is on"
    return {"enabled": lock.enabled, "description": description, "default_mode": lock.mode,
            "default_days": lock.days, "default_years": lock.years, "versioned": lock.enabled}


def lock_object(store: Store, name: str, until: dt.datetime, mode: str) -> Retention:
    """Lock ``name`` until ``until`` in ``mode`` (see the module docstring); the
    retention in force afterwards.  ObjectNotFound for a missing object."""
    if mode not in LOCK_MODES:
        raise ValueError(f"unknown lock mode {mode!r}: one of {', '.join(LOCK_MODES)}")
    return _answerer(store, "lock_object")(name, until, mode)


def retention_of(store: Store, name: str) -> Retention | None:
    """The retention of ``name``'s current version; None without one."""
    return _answerer(store, "retention")(name)


def hidden_objects(store: Store, prefix: str = "") -> list[HiddenObject]:
    """Objects under ``prefix`` hidden by a delete marker, by name."""
    return _answerer(store, "hidden_objects")(prefix)


def unhide(store: Store, name: str) -> bool:
    """Remove the delete markers that hide ``name``; whether there were any."""
    return _answerer(store, "unhide")(name)


@attrs.define(eq=False)
class LockingStore:
    """Locks every object put through it, as ``policy()`` says (None: no lock); see the
    module docstring.  ``locked`` counts the objects it locked."""

    inner: Store
    policy: Callable[[], LockPolicy | None] = attrs.field(repr=False)
    clock: Callable[[], dt.datetime] = attrs.field(default=_utcnow, repr=False)
    locked: int = attrs.field(default=0, init=False)

    @property
    def url(self) -> str:
        return self.inner.url

    def capabilities(self) -> Capabilities:
        return capabilities_of(self.inner)

    def object_lock(self) -> ObjectLock:
        return object_lock_of(self.inner)

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        self.inner.put(name, data)
        if is_transient_name(name):
            return
        policy = self.policy()
        if policy is not None:
            lock_object(self.inner, name, policy.until(self.clock()), policy.mode)
            self.locked += 1

    def get(self, name: str) -> bytes:
        return self.inner.get(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        return self.inner.get_range(name, offset, length)

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self.inner.delete(name)
