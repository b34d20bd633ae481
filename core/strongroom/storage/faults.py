"""FaultyStore: a Store decorator that injects faults on a seeded schedule (for tests).

Wrap a store in :class:`FaultyStore` with a :class:`FaultPlan`, then wrap the result in
the retry decorator, as :func:`~strongroom.storage.open_store` does for real stores::

    RetryingStore(FaultyStore(store, FaultPlan(seed=7, transient=0.05)))

The faults, each with its own probability per operation:

- ``transient``: raise :class:`~strongroom.errors.TransientStorageError` instead of
  doing the operation (a dropped connection; the retry decorator retries it).
- ``permanent``: raise a permanent :class:`~strongroom.errors.StorageError` (access
  denied, quota exceeded; nobody retries it).
- ``delay``: sleep ``delay_seconds`` before the operation (a slow link).
- ``truncate`` (puts only): store only a prefix of the bytes, then raise a transient
  error, the way a connection dropped in the middle of an upload leaves a non-atomic
  backend.  Retrying the put writes the whole object.
- ``bitflip`` (``get`` and ``get_range`` only): return the bytes with one bit flipped,
  as failing disks and buggy middleboxes do.  Nothing raises: the layers above must
  notice by themselves.

**The schedule is deterministic**: whether a fault hits is decided from the seed, the
operation, the object name and how many times that operation has been called on that
name, never from the order in which threads happen to run.  ``operations`` limits the
faults to some operations, ``prefixes`` to some names (``("data/",)``: packs only).
Every injected fault is counted in :attr:`FaultyStore.injected`, by kind.  The
object-lock operations of :mod:`strongroom.storage.locking` pass through untouched.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from typing import Callable

import attrs

from ..converters import to_tuple
from ..errors import StorageError, TransientStorageError
from .base import Store
from .capabilities import Capabilities, ObjectLock, capabilities_of, object_lock_of
from . import locking

__all__ = ["FaultPlan", "FaultyStore", "OPERATIONS"]

OPERATIONS = frozenset({"put", "get", "get_range", "size", "exists", "list", "delete"})


def _probability(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability between 0 and 1, got {value!r}")


def _operations(value: object) -> frozenset[str]:
    ops = frozenset(value)  # type: ignore[arg-type]
    unknown = ops - OPERATIONS
    if unknown:
        raise ValueError(f"unknown store operation(s): {', '.join(sorted(unknown))}")
    return ops


@attrs.frozen
class FaultPlan:
    """Which faults to inject, how often, and where; see the module docstring."""

    seed: int = 0
    transient: float = attrs.field(default=0.0, validator=_probability)
    permanent: float = attrs.field(default=0.0, validator=_probability)
    delay: float = attrs.field(default=0.0, validator=_probability)
    delay_seconds: float = 0.05
    truncate: float = attrs.field(default=0.0, validator=_probability)
    bitflip: float = attrs.field(default=0.0, validator=_probability)
    operations: frozenset[str] = attrs.field(default=OPERATIONS, converter=_operations)
    prefixes: tuple[str, ...] = attrs.field(default=("",), converter=to_tuple)

    def applies(self, op: str, name: str) -> bool:
        return op in self.operations and name.startswith(self.prefixes)


@attrs.define(eq=False)
class FaultyStore:
    """Injects the faults of ``plan`` into the operations of ``inner``."""

    inner: Store
    plan: FaultPlan
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, repr=False)
    injected: collections.Counter = attrs.field(factory=collections.Counter, init=False)
    _calls: collections.Counter = attrs.field(factory=collections.Counter, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    @property
    def url(self) -> str:
        return self.inner.url

    def capabilities(self) -> Capabilities:
        return capabilities_of(self.inner)

    def object_lock(self) -> ObjectLock:
        return object_lock_of(self.inner)

    def direct_read_folder(self) -> None:
        """None: its faults are injected into reads, never around it."""
        return None

    # --- the schedule ------------------------------------------------------------------

    def _dice(self, op: str, name: str) -> random.Random:
        with self._lock:
            self._calls[op, name] += 1
            n = self._calls[op, name]
        digest = hashlib.blake2b(f"{self.plan.seed}\0{op}\0{name}\0{n}".encode(), digest_size=8)
        return random.Random(int.from_bytes(digest.digest(), "big"))

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def _before(self, op: str, name: str) -> random.Random | None:
        """Raise or delay as the schedule says; the dice for later faults, if any apply."""
        if not self.plan.applies(op, name):
            return None
        dice = self._dice(op, name)
        plan = self.plan
        if plan.delay and dice.random() < plan.delay:
            self._count("delay")
            self.sleep(plan.delay_seconds)
        if plan.permanent and dice.random() < plan.permanent:
            self._count("permanent")
            raise StorageError(message=f"injected permanent fault: {op} {name!r} refused")
        if plan.transient and dice.random() < plan.transient:
            self._count("transient")
            raise TransientStorageError(message=f"injected transient fault: {op} {name!r} dropped")
        return dice

    # --- the Store protocol ------------------------------------------------------------

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        dice = self._before("put", name)
        if dice is not None and self.plan.truncate and dice.random() < self.plan.truncate:
            view = memoryview(data).cast("B")
            self.inner.put(name, view[: dice.randrange(len(view))] if len(view) else view)
            self._count("truncate")
            raise TransientStorageError(message=f"injected fault: put {name!r} cut off mid-upload")
        self.inner.put(name, data)

    def _flip(self, dice: random.Random | None, data: bytes) -> bytes:
        if dice is None or not data or not self.plan.bitflip or dice.random() >= self.plan.bitflip:
            return data
        flipped = bytearray(data)
        bit = dice.randrange(len(flipped) * 8)
        flipped[bit // 8] ^= 1 << (bit % 8)
        self._count("bitflip")
        return bytes(flipped)

    def get(self, name: str) -> bytes:
        dice = self._before("get", name)
        return self._flip(dice, self.inner.get(name))

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        dice = self._before("get_range", name)
        return self._flip(dice, self.inner.get_range(name, offset, length))

    def size(self, name: str) -> int:
        self._before("size", name)
        return self.inner.size(name)

    def exists(self, name: str) -> bool:
        self._before("exists", name)
        return self.inner.exists(name)

    def list(self, prefix: str = "") -> Iterator[str]:
        self._before("list", prefix)
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self._before("delete", name)
        self.inner.delete(name)

    # --- object lock (strongroom.storage.locking): passed through -----------------------

    def lock_object(self, name: str, until: dt.datetime, mode: str) -> locking.Retention:
        return locking.lock_object(self.inner, name, until, mode)

    def retention(self, name: str) -> locking.Retention | None:
        return locking.retention_of(self.inner, name)

    def hidden_objects(self, prefix: str = "") -> list[locking.HiddenObject]:
        return locking.hidden_objects(self.inner, prefix)

    def unhide(self, name: str) -> bool:
        return locking.unhide(self.inner, name)
