"""The ASGI application of the vault server, and the state every route shares.

:func:`create_app` mounts ``/healthz`` (200 "ok", no token needed: for readiness probes),
``/whoami`` (the caller's user, token id and roles as JSON; 401 without a valid token),
the gateway's routes (:mod:`.gateway`), the dashboard's (:mod:`.dashboard`) and the
metrics' (:mod:`.metrics`, whose :class:`~.metrics.Instrument` counts every request), behind
:class:`LimitBody`: a request body larger than
:data:`MAX_BODY` is refused with 413 before it is read whole, and a client that sends
nothing for :data:`RECEIVE_TIMEOUT` seconds in the middle of a body gets 408 and is
dropped, so a slow or huge upload does not hold a worker.

:meth:`ServerState.refused` records every refused request: a ``server.refused`` entry
(outcome ``refused``) in the hosted vault's audit journal, or, for a request that names
no hosted vault (or when the journal cannot be written), a JSON line in ``DIR/audit.log``.
It never raises.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import threading
from typing import Callable

import attrs
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..models import iso, utcnow
from ..repository.names import LARGE_MAX, PACK_MAX
from .hosted import Hosted
from .serverdir import Principal, ServerDir

__all__ = ["MAX_BODY", "RECEIVE_TIMEOUT", "LimitBody", "ServerState", "create_app"]

#: The largest request body: the largest object a vault holds, plus room for its envelope.
MAX_BODY = max(PACK_MAX, LARGE_MAX) + (1 << 20)
#: Seconds a client may stay silent in the middle of a request body.
RECEIVE_TIMEOUT = 30.0


@attrs.define(eq=False)
class ServerState:
    """What the routes share: the server folder, the hosted vaults, the clock (hashed by identity)."""

    dir: ServerDir
    hosted: Hosted
    clock: Callable[[], dt.datetime] = utcnow
    _audit_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def refused(self, vault: str | None, principal: Principal | None, what: str, detail: str) -> None:
        """Record a refused request (see the module docstring); never raises."""
        params = {"user": principal.user if principal else None,
                  "token_id": principal.token_id if principal else None, "route": what[:300]}
        try:
            if vault is not None and vault in self.hosted.names():
                self.hosted.vault(vault).journal.record("server.refused", params, "refused", detail=detail)
                return
        except Exception as exc:  # noqa: BLE001 - the audit line below says why
            params["journal_error"] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        try:
            line = json.dumps({"time": iso(self.clock()), "operation": "server.refused", "vault": vault,
                               **params, "detail": detail[:2000]}, sort_keys=True)
            with self._audit_lock:
                fd = os.open(self.dir.audit_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
        except Exception:  # noqa: BLE001 - never raises
            pass


class LimitBody:
    """ASGI middleware: 413 for a body over ``max_body``, 408 for a stalled one."""

    def __init__(self, app, max_body: int = MAX_BODY, timeout: float = RECEIVE_TIMEOUT) -> None:
        self.app, self.max_body, self.timeout = app, max_body, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _reply(send, 413, f"request body over {self.max_body} bytes")
            return
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                raise _Stalled() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge()
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except (_Stalled, _TooLarge) as exc:
            if not started:
                await _reply(send, exc.status, exc.text)


class _Stalled(Exception):
    status, text = 408, "request body stalled"


class _TooLarge(Exception):
    status, text = 413, "request body too large"


async def _reply(send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok\n")


def bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer TOKEN``, None without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def whoami(state: ServerState):
    async def endpoint(request: Request) -> Response:
        principal = state.dir.users.authenticate(bearer(request), state.clock())
        if principal is None:
            state.refused(None, None, "GET /whoami", "no valid token")
            return JSONResponse({"error": "a valid token is needed"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return JSONResponse({"user": principal.user, "token_id": principal.token_id, "roles": principal.roles})

    return endpoint


def create_app(state: ServerState) -> Starlette:
    """The server's application: ``/healthz``, ``/whoami``, the gateway, the dashboard and the
    metrics, with every request counted (:class:`.metrics.Instrument`) and its body limited."""
    from . import dashboard, gateway, metrics

    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"]),
                               Route("/whoami", whoami(state), methods=["GET"])]
    for part in (gateway, dashboard, metrics):
        routes += part.routes(state)
    app = Starlette(routes=routes, middleware=[Middleware(metrics.Instrument, state=state), Middleware(LimitBody)])
    app.state.server = state
    return app
