"""The server's ``/metrics``: backup health and request counts in Prometheus text format.

``GET /metrics`` needs ``Authorization: Bearer <token>`` of a user with a role on at
least one hosted vault (401 without a valid token, 403 with no role; both recorded as
refused); the vault and item series cover the vaults that user has a role on.  A
dedicated scrape user is a reader of every vault
(``strongroom server role assign prometheus --vault '*' --role reader``).

Everything comes from a registry of the server's own (never the process-global one):

- a custom collector reading the monitor's cached health (:mod:`.monitor`, a few
  seconds old at most), so a scrape does not read storage more than the dashboard does:
  per item ``strongroom_item_last_success_timestamp_seconds``,
  ``..._last_backup_duration_seconds``, ``..._last_backup_new_bytes``,
  ``..._last_backup_stored_bytes``, ``..._points``, ``..._overdue``,
  ``..._last_backup_failed``; per vault ``strongroom_vault_up``, ``..._stored_bytes``,
  ``..._protected_bytes``, ``..._dedup_ratio``, ``..._points``, ``..._jobs{state}``,
  ``..._alerts_open``, ``..._failed_jobs_24h``;
- ``strongroom_http_requests_total{role,route,method,status}`` and
  ``strongroom_http_request_duration_seconds{role,route}`` from :class:`Instrument`, an
  ASGI middleware that :func:`strongroom.server.app.create_app` installs: ``route`` is the
  route's template (``/vaults/{vault}/objects/{path:path}``, ``unmatched`` for none), so
  the label set stays small; ``role`` is the caller's role on the request's vault (or
  their strongest role elsewhere), ``none`` without a valid token or session.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Iterator

from .monitor import monitor_of
from .roles import highest

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

__all__ = ["Instrument", "ServerMetrics", "metrics_of", "routes"]

_METRICS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_METRICS_LOCK = threading.Lock()


class ServerMetrics:
    """The registry of one server state: the health collector and the request metrics."""

    def __init__(self, state: Any) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.state = state
        self.monitor = monitor_of(state)
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("strongroom_http_requests", "HTTP requests served, by role, route, method and status",
                                ["role", "route", "method", "status"], registry=self.registry)
        self.latency = Histogram("strongroom_http_request_duration_seconds", "HTTP request latency, by role and route",
                                 ["role", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

    def exposition(self, vaults: list[str]) -> bytes:
        """The text exposition with the health of ``vaults`` and every request metric."""
        from prometheus_client import CollectorRegistry, generate_latest

        health = CollectorRegistry(auto_describe=False)
        health.register(_HealthCollector(self.monitor, vaults))
        return generate_latest(health) + generate_latest(self.registry)


def metrics_of(state: Any) -> ServerMetrics:
    """The one :class:`ServerMetrics` of a server state."""
    with _METRICS_LOCK:
        found = _METRICS.get(state)
        if found is None:
            found = _METRICS[state] = ServerMetrics(state)
        return found


class _HealthCollector:
    """A prometheus_client collector over the monitor's health of some vaults."""

    def __init__(self, monitor: Any, vaults: list[str]) -> None:
        self.monitor, self.vaults = monitor, vaults

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        def family(name: str, doc: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"strongroom_{name}", doc, labels=list(labels))

        v_labels, i_labels = ("vault",), ("vault", "item")
        up = family("vault_up", "1 when the vault could be read", v_labels)
        stored = family("vault_stored_bytes", "Bytes the vault's recovery points' backups stored"
                        " (compressed, deduplicated)", v_labels)
        logical = family("vault_protected_bytes", "Bytes the vault's recovery points hold, summed over the points",
                         v_labels)
        ratio = family("vault_dedup_ratio", "Protected bytes per stored byte", v_labels)
        v_points = family("vault_points", "Recovery points in the vault", v_labels)
        jobs = family("vault_jobs", "Jobs of the vault by state", ("vault", "state"))
        alerts = family("vault_alerts_open", "Open (unacknowledged, unresolved) alerts", v_labels)
        failed = family("vault_failed_jobs_24h", "Jobs that failed in the last 24 hours", v_labels)
        last_ok = family("item_last_success_timestamp_seconds", "Creation time of the item's newest recovery point",
                         i_labels)
        duration = family("item_last_backup_duration_seconds", "Duration of the backup of the newest point", i_labels)
        new = family("item_last_backup_new_bytes", "New bytes of the backup of the newest point", i_labels)
        item_stored = family("item_last_backup_stored_bytes", "Bytes stored by the backup of the newest point",
                             i_labels)
        points = family("item_points", "Recovery points of the item", i_labels)
        overdue = family("item_overdue", "1 when the item missed its schedule", i_labels)
        failing = family("item_last_backup_failed", "1 when the item's newest backup job failed", i_labels)
        for name in self.vaults:
            h = self.monitor.vault(name)
            up.add_metric([name], 0 if h.error else 1)
            if h.error:
                continue
            stored.add_metric([name], h.stored_bytes)
            logical.add_metric([name], h.logical_bytes)
            ratio.add_metric([name], h.dedup_ratio)
            v_points.add_metric([name], h.points)
            for state, count in sorted(h.jobs_by_state.items()):
                jobs.add_metric([name, state], count)
            alerts.add_metric([name], len(h.open_alerts))
            failed.add_metric([name], len(h.failed_jobs))
            for item in h.items:
                labels = [name, item.name]
                if item.last_success is not None:
                    last_ok.add_metric(labels, item.last_success.timestamp())
                    duration.add_metric(labels, item.last_seconds or 0.0)
                    new.add_metric(labels, item.last_new_bytes)
                    item_stored.add_metric(labels, item.last_stored_bytes)
                points.add_metric(labels, item.points)
                overdue.add_metric(labels, 1 if item.overdue else 0)
                failing.add_metric(labels, 1 if item.failing else 0)
        yield from (up, stored, logical, ratio, v_points, jobs, alerts, failed,
                    last_ok, duration, new, item_stored, points, overdue, failing)


def _bearer(headers: Any) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def routes(state: Any) -> list[BaseRoute]:
    """``GET /metrics`` (see the module docstring)."""
    from prometheus_client import CONTENT_TYPE_LATEST
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    metrics = metrics_of(state)

    async def scrape(request: Request) -> Response:
        principal = state.dir.users.authenticate(_bearer(request.headers), state.clock())
        if principal is None:
            state.refused(None, None, "GET /metrics", "metrics: missing, wrong, revoked or expired token")
            return PlainTextResponse("a valid token is needed (Authorization: Bearer ...)\n", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        vaults = [n for n in state.hosted.names() if principal.role_for(n)]
        if not vaults:
            state.refused(None, principal, "GET /metrics", "metrics: the user has no role on any vault")
            return PlainTextResponse(f"user '{principal.user}' has no role on any vault of this server\n",
                                     status_code=403)
        body = await run_in_threadpool(metrics.exposition, vaults)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", scrape, methods=["GET"])]


class Instrument:
    """ASGI middleware: count and time every HTTP request by role and route (see above)."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app, self.state = app, state
        self.metrics = metrics_of(state)
        self._sessions: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def tracked(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            role = self._role(scope)
            self.metrics.requests.labels(role, label, scope.get("method", ""), str(status[0])).inc()
            self.metrics.latency.labels(role, label).observe(time.perf_counter() - started)

    def _role(self, scope: dict) -> str:
        """The caller's role for this request's vault (their strongest elsewhere), ``none`` if unknown."""
        try:
            from starlette.requests import HTTPConnection

            conn = HTTPConnection(scope)
            now = self.state.clock()
            principal = self.state.dir.users.authenticate(_bearer(conn.headers), now)
            if principal is None and conn.cookies:
                from .dashboard.session import COOKIE, Sessions

                sessions = self._sessions = self._sessions or Sessions(self.state.dir)
                principal = sessions.principal(sessions.read(conn.cookies.get(COOKIE), now), now)
            if principal is None:
                return "none"
            vault = (scope.get("path_params") or {}).get("vault")
            role = principal.role_for(vault) if vault else highest(list(principal.roles.values()))
            return role or "none"
        except Exception:  # noqa: BLE001 - a label must never fail a request
            return "none"
