"""A store decorator that refuses every change: a vault opened where it must not be written.

:class:`ReadOnlyStore` passes reads (``get``, ``get_range``, ``size``, ``exists``,
``list``) and the inner store's capabilities through, and refuses ``put`` and
``delete`` with :class:`ReadOnlyStorage`, a :class:`~strongroom.errors.StorageError`:
the layers above treat it as storage that cannot be written (a restore goes on and
records its job on this machine; a backup fails in its job).  The vault installs it on
a geo secondary (:mod:`strongroom.services.geo`), which only replication writes.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import StorageError
from .base import Store
from .capabilities import Capabilities, capabilities_of

__all__ = ["ReadOnlyStorage", "ReadOnlyStore"]


class ReadOnlyStorage(StorageError):
    """Storage error: {url} is read-only here ({why}); {name} was not {action}."""


class ReadOnlyStore:
    """``inner``, with every change refused (see the module docstring)."""

    def __init__(self, inner: Store, why: str = "a geo secondary: only replication writes it") -> None:
        self.inner = inner
        self.why = why

    @property
    def url(self) -> str:
        return self.inner.url

    def capabilities(self) -> Capabilities:
        return capabilities_of(self.inner)

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        raise ReadOnlyStorage(url=self.url, why=self.why, name=name, action="written")

    def delete(self, name: str) -> None:
        raise ReadOnlyStorage(url=self.url, why=self.why, name=name, action="deleted")

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
