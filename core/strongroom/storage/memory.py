"""MemoryStore: a dict-backed Store for tests and throw-away vaults.

It follows the whole Store contract (:mod:`strongroom.storage.base`): names are checked,
objects are copied in and out (a caller mutating its buffer after ``put`` changes
nothing), every operation holds one lock, so it is safe from several threads.
Nothing is persisted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import attrs

from ..errors import ObjectNotFound
from .base import check_name, check_prefix, check_range
from .capabilities import Capabilities

__all__ = ["MemoryStore"]


@attrs.define(eq=False)
class MemoryStore:
    """All objects in one dict, guarded by one lock."""

    url: str = "memory-store:"
    _objects: dict[str, bytes] = attrs.field(factory=dict, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def capabilities(self) -> Capabilities:
        return Capabilities(remote=False, atomic_rename=False)

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        check_name(name)
        value = bytes(data)
        with self._lock:
            self._objects[name] = value

    def _fetch(self, name: str) -> bytes:
        check_name(name)
        with self._lock:
            try:
                return self._objects[name]
            except KeyError:
                raise ObjectNotFound(name=name) from None

    def get(self, name: str) -> bytes:
        return self._fetch(name)

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        return self._fetch(name)[offset : offset + length]

    def size(self, name: str) -> int:
        return len(self._fetch(name))

    def exists(self, name: str) -> bool:
        check_name(name)
        with self._lock:
            return name in self._objects

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        with self._lock:
            names = sorted(n for n in self._objects if n.startswith(prefix))
        return iter(names)

    def delete(self, name: str) -> None:
        check_name(name)
        with self._lock:
            self._objects.pop(name, None)
