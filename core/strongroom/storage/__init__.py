"""The storage layer: whole named objects on any fsspec filesystem.

The contract every store keeps is written in :mod:`strongroom.storage.base`; the
byte-level rules are in ``docs/formats.md`` ("Storage layer").  Nothing above this
package calls fsspec directly.

- :func:`open_store` turns a local path or an fsspec URL into a store, retrying
  transient failures unless asked not to.
- :class:`FsspecStore` is the store over an fsspec filesystem; :class:`MemoryStore` a
  dict-backed one for tests.
- :class:`RetryingStore` is the retry decorator; other decorators wrap a store the same
  way and expose the wrapped one as ``inner``.  :class:`FaultyStore` injects faults on a
  seeded schedule, for tests.
- :func:`capabilities_of` says what a store can do (remote, operations to keep in
  flight, object lock support); :func:`object_lock_of` asks the storage whether its
  objects can be locked (:mod:`strongroom.storage.capabilities`).
- :mod:`strongroom.storage.backends` says which fsspec implementation serves each
  URL scheme, and why.
"""

from .base import Store, check_name, redact_url
from .capabilities import Capabilities, ObjectLock, capabilities_of, object_lock_of
from .faults import FaultPlan, FaultyStore
from .fsspec_store import FsspecStore, open_store
from .memory import MemoryStore
from .retry import RetryingStore

__all__ = [
    "Capabilities",
    "FaultPlan",
    "FaultyStore",
    "FsspecStore",
    "MemoryStore",
    "ObjectLock",
    "RetryingStore",
    "Store",
    "capabilities_of",
    "check_name",
    "object_lock_of",
    "open_store",
    "redact_url",
]
