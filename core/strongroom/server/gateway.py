"""The object gateway: a hosted vault's store operations over HTTPS, each one authorized.

Routes, under ``/vaults/{vault}/`` (``{path}``: an object name, :func:`strongroom.storage.base.check_name`)::

    GET    objects/{path}       the object (200), or the bytes of ``Range: bytes=A-B`` (206)
    HEAD   objects/{path}       its size in Content-Length (200), 404 when missing
    PUT    objects/{path}       store the body as the object (204)
    DELETE objects/{path}       delete it (204; a missing object too)
    GET    list?prefix=P        every name starting with P, one a line (streamed, text/plain)

Every request carries ``Authorization: Bearer <token>``.  In this order a request is
refused with: 401 when the token is missing, wrong, revoked or expired; 404 for a vault the
server does not host; 400 for an invalid name or prefix (traversal, ``..``, absolute) or a
range it cannot read; 403 when the caller's role on the vault is too low for what the
request does (:mod:`.authorize`) or the vault's security rules refuse it (:mod:`.rules`,
which reads the guard ticket in ``X-Strongroom-Ticket``); 413 for a body over the limit
(:class:`.app.LimitBody`).  Every refusal is recorded (:meth:`.app.ServerState.refused`).
A refusal's body is one JSON object: ``error`` (one line), ``vault``, ``role`` (the
caller's, or null), ``needed`` (the role it would take, null when no role may) and ``what``.

Storage errors: 404 for a missing object, 503 for a transient failure (the client retries),
502 for any other (the message names the object, never the storage's credentials).
Storage calls run in worker threads, so a slow client or slow storage holds one request,
never the server.
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..errors import ObjectNotFound, StorageError, TransientStorageError
from ..storage.base import check_name, check_prefix
from .authorize import Action, Decision, Taken, decide
from .serverdir import Principal

__all__ = ["TICKET_HEADER", "routes"]

TICKET_HEADER = "x-strongroom-ticket"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def routes(state) -> list[BaseRoute]:
    """The gateway's routes, mounted by :func:`strongroom.server.app.create_app`."""
    gateway = _Gateway(state)
    return [
        Route("/vaults/{vault}/objects/{path:path}", gateway.objects, methods=["GET", "HEAD", "PUT", "DELETE"]),
        Route("/vaults/{vault}/list", gateway.listing, methods=["GET"]),
    ]


class _Refused(Exception):
    def __init__(self, status: int, error: str, role: str | None = None, needed: str | None = None,
                 what: str = "") -> None:
        super().__init__(error)
        self.status, self.error, self.role, self.needed, self.what = status, error, role, needed, what


class _Gateway:
    def __init__(self, state) -> None:
        self.state = state
        self.taken = Taken()

    # --- the routes ----------------------------------------------------------------------

    async def objects(self, request: Request) -> Response:
        vault = request.path_params["vault"]
        name = request.path_params["path"]
        principal = None
        try:
            principal, role = self._caller(request, vault)
            try:
                check_name(name)
            except ValueError as exc:
                raise _Refused(400, str(exc), role, None, f"{request.method} {name!r}") from None
            method = request.method
            if method in ("GET", "HEAD"):
                self._require(decide(role, Action.READ, name), role, vault)
                return await run_in_threadpool(self._read, request, vault, name)
            if method == "PUT":
                body = await request.body()
                return await run_in_threadpool(self._put, request, vault, name, body, principal, role)
            return await run_in_threadpool(self._delete, request, vault, name, principal, role)
        except _Refused as refused:
            return await self._refuse(request, vault, principal, refused)

    async def listing(self, request: Request) -> Response:
        vault = request.path_params["vault"]
        principal = None
        try:
            principal, role = self._caller(request, vault)
            prefix = request.query_params.get("prefix", "")
            try:
                check_prefix(prefix)
            except ValueError as exc:
                raise _Refused(400, str(exc), role, None, f"list {prefix!r}") from None
            self._require(decide(role, Action.LIST, None), role, vault)
            store = await run_in_threadpool(self.state.hosted.store, vault)
            names = await run_in_threadpool(_listing, store, prefix)
            return StreamingResponse(iter(names), media_type="text/plain; charset=utf-8")
        except _Refused as refused:
            return await self._refuse(request, vault, principal, refused)

    # --- who is asking ---------------------------------------------------------------------

    def _caller(self, request: Request, vault: str) -> tuple[Principal, str | None]:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        principal = self.state.dir.users.authenticate(token.strip() if scheme.lower() == "bearer" else None,
                                                      self.state.clock())
        if principal is None:
            raise _Refused(401, "the server refused the token (missing, wrong, revoked or expired)")
        if vault not in self.state.hosted.names():
            raise _Refused(404, f"this server hosts no vault '{vault}'")
        role = principal.role_for(vault)
        request.scope["strongroom.role"] = role or "none"  # for the request metrics
        return principal, role

    @staticmethod
    def _require(decision: Decision, role: str | None, vault: str) -> None:
        if decision.allowed:
            return
        shown = role or "none"
        error = f"role {shown} on vault {vault} may not {decision.what}"
        if decision.needed:
            error += f" (it takes {decision.needed})"
        raise _Refused(decision.status, error, role, decision.needed, decision.what)

    async def _refuse(self, request: Request, vault: str, principal: Principal | None, refused: _Refused) -> Response:
        what = f"{request.method} {request.url.path}"
        known = refused.status != 404 and principal is not None
        await run_in_threadpool(self.state.refused, vault if known else None, principal, what,
                                f"{refused.status}: {refused.error}")
        return JSONResponse({"error": refused.error, "vault": vault, "role": refused.role, "needed": refused.needed,
                             "what": refused.what}, status_code=refused.status)

    # --- the operations (worker threads) ---------------------------------------------------

    def _read(self, request: Request, vault: str, name: str) -> Response:
        store = self.state.hosted.store(vault)
        try:
            if request.method == "HEAD":
                return Response(status_code=200, headers={"content-length": str(store.size(name))})
            wanted = request.headers.get("range")
            if wanted is None:
                return Response(store.get(name), media_type="application/octet-stream")
            m = _RANGE.fullmatch(wanted.strip())
            if m is None:
                raise _Refused(400, f"unsupported range {wanted[:80]!r}: use bytes=START-END")
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else None
            if end is not None and end < start:
                raise _Refused(400, f"invalid range {wanted[:80]!r}")
            length = (end - start + 1) if end is not None else store.size(name) - start
            data = store.get_range(name, start, max(0, length))
            return Response(data, status_code=206, media_type="application/octet-stream",
                            headers={"content-range": f"bytes {start}-{start + len(data) - 1}/*"})
        except StorageError as exc:
            return _storage_error(exc, name)

    def _put(self, request: Request, vault: str, name: str, body: bytes, principal: Principal,
             role: str | None) -> Response:
        store = self.state.hosted.store(vault)
        try:
            exists = store.exists(name)
            action = Action.OVERWRITE if exists else Action.CREATE
            decision = decide(role, action, name, taken_by_caller=self.taken.by(vault, name, principal.token_id))
            if not decision.allowed and exists:
                decision = decide(role, action, name, same_bytes=_same(store, name, body))
            self._require(decision, role, vault)
            self._rules(request, vault, role, action, name, body)
            store.put(name, body)
        except StorageError as exc:
            return _storage_error(exc, name)
        self.taken.record(vault, name, principal.token_id)
        return Response(status_code=204)

    def _delete(self, request: Request, vault: str, name: str, principal: Principal, role: str | None) -> Response:
        store = self.state.hosted.store(vault)
        taken = self.taken.by(vault, name, principal.token_id)
        self._require(decide(role, Action.DELETE, name, taken_by_caller=taken), role, vault)
        try:
            self._rules(request, vault, role, Action.DELETE, name, None)
            store.delete(name)
        except StorageError as exc:
            return _storage_error(exc, name)
        self.taken.forget(vault, name)
        return Response(status_code=204)

    def _rules(self, request: Request, vault: str, role: str | None, action: Action, name: str,
               body: bytes | None) -> None:
        from .rules import VaultRules

        if not _checked(action, name):
            return
        rules = VaultRules(self.state.hosted.vault(vault), self.state.clock)
        refused = rules.check(role or "none", action, name, body, request.headers.get(TICKET_HEADER))
        if refused is not None and refused.needed:  # a role question after all
            self._require(refused, role, vault)
        if refused is not None:
            error = f"vault {vault} refuses to {refused.what}"
            raise _Refused(refused.status, error, role, refused.needed, refused.what)


def _checked(action: Action, name: str) -> bool:
    """Whether :mod:`.rules` has anything to say about ``action`` on ``name`` (saves opening the vault)."""
    top = name.partition("/")[0]
    if action is Action.DELETE:
        return top in ("points", "keys", "heads") or name == "strongroom.json"
    return top in ("items", "point-status", "settings", "jobs", "policies")


def _same(store, name: str, body: bytes) -> bool:
    """Whether the object ``name`` holds exactly ``body`` (a retried put)."""
    try:
        return store.size(name) == len(body) and store.get(name) == body
    except ObjectNotFound:
        return False


def _listing(store, prefix: str) -> list[bytes]:
    return [f"{name}\n".encode() for name in store.list(prefix)]


def _storage_error(exc: StorageError, name: str) -> Response:
    if isinstance(exc, ObjectNotFound):
        return JSONResponse({"error": f"object '{name}' not found"}, status_code=404)
    status = 503 if isinstance(exc, TransientStorageError) else 502
    return JSONResponse({"error": str(exc).splitlines()[0][:500]}, status_code=status)
