"""The client's store for a vault on a strongroom server: ``https://HOST:PORT/vaults/NAME``.

:class:`HttpStore` keeps the :class:`~strongroom.storage.base.Store` contract over the
server's object gateway (:mod:`strongroom.server.gateway`): each operation is one request,
over one pooled httpx client (HTTP/1.1 keep-alive, safe to share between threads).  It is
the ``server`` storage backend (:mod:`strongroom.storage.backends`), opened by
:func:`open_http_store` with these storage options:

- ``ca_file``: the CA certificate (or the server's self-signed one) to trust; without it,
  the system's trust store;
- ``token_file``: a file holding the token (the global ``--token-file``); without it, the
  ``STRONGROOM_TOKEN`` environment variable.  The token is sent as ``Authorization: Bearer``
  and is never part of the store's url, repr or any message;
- ``timeout``: seconds per request (default 120); ``concurrency``: requests in flight.

The guard ticket of the critical operation running (:mod:`strongroom.storage.ticket`) goes
with every request as ``X-Strongroom-Ticket``, so the server can check it too.

Answers become the storage layer's errors, one line each: a connection failure, a timeout,
408, 429, 500 and 503 are transient (the retry decorator retries them); 404 on an object is
:class:`~strongroom.errors.ObjectNotFound`; 401 is
:class:`~strongroom.errors.ServerTokenRefused`; 403 is
:class:`~strongroom.errors.AccessDenied` ("role reader on vault V may not write pack ...")
or, for a delete, :class:`~strongroom.errors.DeleteRefused` (an
:class:`~strongroom.errors.ObjectLocked`: what the engine already tolerates when storage
keeps an object, such as a lease or an old head an append-only operator may not delete);
any other refusal is :class:`~strongroom.errors.ServerRequestRefused`.
"""

from __future__ import annotations

import os
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx

from ..errors import (
    AccessDenied, DeleteRefused, ObjectNotFound, ServerRequestRefused, ServerTokenRefused, StorageError,
    TransientStorageError, UsageError,
)
from .base import check_name, check_prefix, check_range
from .capabilities import REMOTE_CONCURRENCY, Capabilities
from .ticket import current_ticket

__all__ = ["HttpStore", "TOKEN_ENV", "open_http_store"]

TOKEN_ENV = "STRONGROOM_TOKEN"
TICKET_HEADER = "X-Strongroom-Ticket"
_TRANSIENT_STATUS = frozenset({408, 429, 500, 503, 504})
_OPTIONS = frozenset({"ca_file", "token_file", "timeout", "concurrency"})


class HttpStore:
    """A vault's objects on a strongroom server (see the module docstring)."""

    def __init__(self, url: str, token: str, *, ca_file: str | None = None, timeout: float = 120.0,
                 concurrency: int = REMOTE_CONCURRENCY) -> None:
        parts = urllib.parse.urlsplit(url)
        path = parts.path.rstrip("/")
        if parts.scheme != "https" or not parts.hostname or not path.startswith("/vaults/") \
                or path.count("/") != 2 or parts.query or parts.username:
            raise UsageError(message=f"a vault on a server is https://HOST:PORT/vaults/NAME, not {url!r}")
        self.url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.vault = path.rsplit("/", 1)[1]
        self._token = token
        self._concurrency = concurrency
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file \
            else ssl.create_default_context()
        limits = httpx.Limits(max_connections=max(32, concurrency * 2), max_keepalive_connections=max(32, concurrency * 2))
        self._new_client = lambda: httpx.Client(base_url=self.url + "/", verify=verify, timeout=timeout,
                                                limits=limits, headers={"Authorization": f"Bearer {token}"},
                                                http2=False)
        self._client_lock = threading.Lock()
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"HttpStore({self.url!r})"

    def close(self) -> None:
        """Close the connections kept open to the server (a request after it opens new ones).
        A command closes them when it ends: a process that runs many commands (an API
        user, the tests' in-process command line) would otherwise hold every command's
        pool open until the server drops idle connections, and a server takes at most
        ``MAX_CONNECTIONS`` at once."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _connections(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def capabilities(self) -> Capabilities:
        return Capabilities(remote=True, concurrency=self._concurrency)

    # --- the Store protocol ---------------------------------------------------------------

    def put(self, name: str, data: bytes | bytearray | memoryview) -> None:
        check_name(name)
        self._request("PUT", name, content=bytes(data))

    def get(self, name: str) -> bytes:
        check_name(name)
        return self._request("GET", name).content

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        check_name(name)
        check_range(offset, length)
        if length == 0:
            return b""
        response = self._request("GET", name, headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        data = response.content
        if response.status_code == 200:  # the whole object
            data = data[offset:offset + length]
        return data[:length]

    def size(self, name: str) -> int:
        check_name(name)
        response = self._request("HEAD", name)
        return int(response.headers.get("content-length", "0"))

    def exists(self, name: str) -> bool:
        try:
            self.size(name)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        response = self._send("GET", "list", params={"prefix": prefix})
        self._check(response, "GET", f"list {prefix!r}")
        for line in response.text.splitlines():
            if line:
                yield line

    def delete(self, name: str) -> None:
        check_name(name)
        self._request("DELETE", name)

    # --- requests and answers --------------------------------------------------------------

    def _request(self, method: str, name: str, **kwargs: Any) -> httpx.Response:
        response = self._send(method, "objects/" + urllib.parse.quote(name, safe="/"), **kwargs)
        self._check(response, method, name)
        return response

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        ticket = current_ticket()
        if ticket:
            kwargs["headers"] = {**kwargs.get("headers", {}), TICKET_HEADER: ticket}
        try:
            return self._connections().request(method, path, **kwargs)
        except httpx.TransportError as exc:  # connect, read, write, protocol, timeouts
            raise TransientStorageError(message=f"{self.url}: {type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise StorageError(message=f"{self.url}: {type(exc).__name__}: {exc}") from None

    def _check(self, response: httpx.Response, method: str, name: str) -> None:
        status = response.status_code
        if status < 300:
            return
        error = _error_of(response)
        if status == 404 and not error.startswith("this server hosts no vault"):
            raise ObjectNotFound(name=name)
        if status == 401:
            raise ServerTokenRefused(url=self.url)
        if status == 403:
            raise (DeleteRefused if method == "DELETE" else AccessDenied)(message=error, name=name)
        if status in _TRANSIENT_STATUS:
            raise TransientStorageError(message=f"{self.url}: {method} {name}: HTTP {status}: {error}")
        raise ServerRequestRefused(url=self.url, message=f"{method} {name}: HTTP {status}: {error}")


def _error_of(response: httpx.Response) -> str:
    """The one-line reason the server gave."""
    text = ""
    if method_has_body(response):
        try:
            doc = response.json()
            text = str(doc.get("error", "")) if isinstance(doc, dict) else ""
        except ValueError:
            text = response.text
    return (text.strip().splitlines() or [response.reason_phrase or f"HTTP {response.status_code}"])[0][:500]


def method_has_body(response: httpx.Response) -> bool:
    return response.request.method != "HEAD" and bool(response.content)


def open_http_store(url: str, options: dict[str, Any], *, create: bool = False) -> HttpStore:
    """The store of the served vault at ``url`` (see the module docstring); ``create`` changes
    nothing: the server's administrator adds the vault (``strongroom server vault add``)."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        from ..errors import UnknownStorageOption

        raise UnknownStorageOption(option=unknown[0], origin="", storage="a strongroom server",
                                   hint=f"; it takes {', '.join(sorted(_OPTIONS))}.")
    token_file = options.get("token_file")
    if token_file:
        try:
            with open(os.path.expanduser(str(token_file)), encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise UsageError(message=f"cannot read the token file {token_file}: {exc.strerror or exc}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(message=f"a vault on a server needs a token: set {TOKEN_ENV} or give --token-file FILE")
    ca_file = options.get("ca_file")
    if ca_file and not os.path.isfile(os.path.expanduser(str(ca_file))):
        raise UsageError(message=f"storage option ca_file: no such file {ca_file}")
    try:
        timeout = float(options.get("timeout", 120.0))
        concurrency = int(options.get("concurrency", REMOTE_CONCURRENCY))
    except (TypeError, ValueError):
        raise UsageError(message="storage options timeout and concurrency must be numbers") from None
    return HttpStore(url, token, ca_file=os.path.expanduser(str(ca_file)) if ca_file else None,
                     timeout=timeout, concurrency=concurrency)
