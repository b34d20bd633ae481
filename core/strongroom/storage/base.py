"""The Store contract: named, immutable-in-practice objects on some storage.

Everything above the storage layer talks to a :class:`Store`; nothing above it calls
fsspec.  A store keeps whole objects under names and guarantees:

- **Names** are relative, ``/``-separated paths made of ``[A-Za-z0-9._-]`` components
  (``strongroom.json``, ``data/ab/<hex>``, ``keys/<id>``).  Empty components, ``.``,
  ``..``, a leading or trailing ``/`` and components starting with ``.tmp-`` (reserved for
  uploads in progress) are refused with :class:`ValueError`.  :func:`check_name` is the
  single place that enforces this.
- **put** stores a whole object.  A reader never sees a partial object under its name:
  it sees the old object, no object, or the new one.  Overwriting is allowed (the layers
  above never overwrite in place, but retrying a put must be harmless).
- **get**, **get_range** and **size** raise :class:`ObjectNotFound` for a missing object.
  ``get_range`` returns exactly ``length`` bytes, or fewer only when the object ends first.
- **list(prefix)** yields every object name that starts with ``prefix`` (a plain string
  prefix, not a directory), recursively; objects being uploaded are never listed; a
  prefix that matches nothing yields nothing.
- **delete** is idempotent: deleting a missing object is not an error.
- **Errors**: a failure that retrying may cure (connection reset, timeout) is a
  :class:`TransientStorageError`; anything else is a :class:`StorageError`.  Only the
  retry decorator (:mod:`strongroom.storage.retry`) retries, and only transient errors.
- **Threads**: every store may be used from several threads at once.

:func:`redact_url` strips passwords (and credential-like query values) from URLs so a
store's ``url`` can be shown and logged.
"""

from __future__ import annotations

import errno
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from ..errors import ObjectNotFound, StorageError, TransientStorageError

__all__ = [
    "TMP_PREFIX",
    "Store",
    "check_name",
    "close_store",
    "is_transient",
    "map_error",
    "redact_url",
]

#: Basename prefix of objects being uploaded; such names are never listed or accepted.
TMP_PREFIX = ".tmp-"

_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")
_NAME = re.compile(r"[A-Za-z0-9._/-]*")


@runtime_checkable
class Store(Protocol):
    """Whole named objects on one storage location (see the module docstring)."""

    url: str

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None: ...

    def get(self, name: str) -> bytes: ...

    def get_range(self, name: str, offset: int, length: int) -> bytes: ...

    def size(self, name: str) -> int: ...

    def exists(self, name: str) -> bool: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def delete(self, name: str) -> None: ...


def close_store(store: Any) -> None:
    """Close what ``store``, and each store it wraps (``inner``), keeps open (connections),
    where it can; a store without ``close`` keeps nothing open."""
    seen: set[int] = set()
    while store is not None and id(store) not in seen:
        seen.add(id(store))
        close = getattr(store, "close", None)
        if callable(close):
            close()
        store = getattr(store, "inner", None)


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid object name, else raise :class:`ValueError`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid object name {name!r}: must be a non-empty string")
    for part in name.split("/"):
        if not _COMPONENT.fullmatch(part) or part in (".", ".."):
            raise ValueError(
                f"invalid object name {name!r}: components must be non-empty, made of "
                "[A-Za-z0-9._-], and not '.' or '..'"
            )
        if part.startswith(TMP_PREFIX):
            raise ValueError(f"invalid object name {name!r}: {TMP_PREFIX!r} is reserved")
    return name


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it may start a valid name (``""`` and ``"data/"`` included)."""
    if not isinstance(prefix, str) or not _NAME.fullmatch(prefix) or prefix.startswith("/"):
        raise ValueError(f"invalid listing prefix {prefix!r}")
    if any(part in (".", "..") for part in prefix.split("/")[:-1]) or "//" in prefix:
        raise ValueError(f"invalid listing prefix {prefix!r}")
    return prefix


def check_range(offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise ValueError(f"invalid range: offset {offset}, length {length}")


# --- URLs ------------------------------------------------------------------------------

_SECRET_QUERY_KEYS = re.compile(r"pass|secret|token|sig|credential|key", re.IGNORECASE)


def _redact_one(url: str) -> str:
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{hostport}" if user else hostport
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{urllib.parse.quote(k, safe='')}="
            + ("***" if _SECRET_QUERY_KEYS.search(k) else urllib.parse.quote(v, safe=""))
            for k, v in pairs
        )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_url(url: str) -> str:
    """The URL with passwords and credential-like query values removed, for display.

    ``sftp://user:pw@host/p`` becomes ``sftp://user@host/p``; ``?sig=...`` becomes
    ``?sig=***``.  Chained fsspec URLs (``a::b``) are redacted part by part; plain paths
    are returned unchanged.
    """
    return "::".join(_redact_one(part) for part in url.split("::"))


# --- error classification --------------------------------------------------------------

_TRANSIENT_ERRNOS = frozenset(
    getattr(errno, code)
    for code in (
        "EAGAIN",
        "EINTR",
        "ETIMEDOUT",
        "ECONNRESET",
        "ECONNABORTED",
        "ECONNREFUSED",
        "EPIPE",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "EHOSTUNREACH",
        "EHOSTDOWN",
    )
    if hasattr(errno, code)
)

# Exception classes of storage drivers that mean "the connection failed, try again",
# matched by name anywhere in the exception's class hierarchy so that no driver has to
# be importable here (aiohttp, botocore, urllib3, requests, http.client, paramiko,
# asyncssh).
_TRANSIENT_CLASS_NAMES = frozenset(
    {
        "ClientConnectionError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ClientPayloadError",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "IncompleteRead",
        "ProtocolError",
        "ChunkedEncodingError",
        "NoValidConnectionsError",
        "RemoteDisconnected",
        "FSTimeoutError",
        "ConnectionLost",
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the operation that raised ``exc`` may succeed."""
    if isinstance(exc, TransientStorageError):
        return True
    if isinstance(exc, StorageError):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return True
    return any(cls.__name__ in _TRANSIENT_CLASS_NAMES for cls in type(exc).__mro__)


def map_error(exc: BaseException, name: str) -> BaseException:
    """Translate an exception raised while accessing ``name`` into the storage hierarchy.

    FileNotFoundError (and NotADirectoryError: a parent of the name is an object)
    becomes :class:`ObjectNotFound`; transient failures become
    :class:`TransientStorageError`; other ``OSError`` and exceptions of driver packages
    (any class not defined by Python itself) become :class:`StorageError`.  Python's own
    non-OS exceptions (``TypeError``, ``ValueError``, ...) are programming errors and are
    returned unchanged.
    """
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return ObjectNotFound(name=name)
    detail = f"{name}: {type(exc).__name__}: {exc}"
    if is_transient(exc):
        return TransientStorageError(message=detail)
    if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] != "builtins":
        return StorageError(message=detail)
    return exc
