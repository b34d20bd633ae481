"""The storage layer: whole named objects on any fsspec filesystem.

The contract every store keeps is written in :mod:`strongroom.storage.base`; the
byte-level rules are in ``docs/formats.md`` ("Storage layer").  Nothing above this
package calls fsspec directly.

- :func:`open_store` turns a local path or an fsspec URL into a store, retrying
  transient failures unless asked not to.
- :class:`FsspecStore` is the store over an fsspec filesystem; :class:`MemoryStore` a
  dict-backed one for tests.
- :class:`RetryingStore` is the retry decorator; other decorators wrap a store the same
  way and expose the wrapped one as ``inner``.
"""

from .base import Store, check_name, redact_url
from .fsspec_store import FsspecStore, open_store
from .memory import MemoryStore
from .retry import RetryingStore

__all__ = [
    "FsspecStore",
    "MemoryStore",
    "RetryingStore",
    "Store",
    "check_name",
    "open_store",
    "redact_url",
]
