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
- :class:`StorageBackend` (:mod:`strongroom.storage.backends`) says which fsspec
  implementation serves a URL scheme, and how; backends are registered by plugins.

Names load when first used: the plugin that registers the built-in backends is read at
every start of the command line, which must not load fsspec.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Store": ".base", "check_name": ".base", "redact_url": ".base",
    "Capabilities": ".capabilities", "ObjectLock": ".capabilities", "capabilities_of": ".capabilities",
    "direct_read_folder_of": ".capabilities", "object_lock_of": ".capabilities",
    "FaultPlan": ".faults", "FaultyStore": ".faults",
    "FsspecStore": ".fsspec_store", "open_store": ".fsspec_store",
    "MemoryStore": ".memory", "RetryingStore": ".retry", "StorageBackend": ".backends",
    "LockingStore": ".locking", "describe_locking": ".locking", "lock_object": ".locking",
    "retention_of": ".locking",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'strongroom.storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .backends import StorageBackend  # noqa: F401
    from .base import Store, check_name, redact_url  # noqa: F401
    from .capabilities import Capabilities, ObjectLock, capabilities_of, direct_read_folder_of, object_lock_of  # noqa: F401
    from .faults import FaultPlan, FaultyStore  # noqa: F401
    from .fsspec_store import FsspecStore, open_store  # noqa: F401
    from .locking import LockingStore, describe_locking, lock_object, retention_of  # noqa: F401
    from .memory import MemoryStore  # noqa: F401
    from .retry import RetryingStore  # noqa: F401
