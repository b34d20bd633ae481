"""The dashboard's pages: what each one shows, to whom, and its single write (acknowledge).

Every page needs a session (:mod:`.session`); without one it redirects to the login
page.  A user sees only the hosted vaults they have a role on: a page of another vault is
404, as if it did not exist, and is recorded as refused (:meth:`ServerState.refused`).
Every role may acknowledge an alert (Azure's matrix lets a Backup Reader resolve
alerts): a POST with the session's CSRF token; a POST without it is refused (403).
Nothing else on the dashboard changes a vault.  Pages are read from the monitor's
cached health (:mod:`strongroom.server.monitor`), the jobs' and journal's lists from
the vault (the server's own key slot).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...errors import NotFound, StrongroomError
from ..monitor import FAILED_STATES, Monitor, monitor_of
from ..serverdir import Principal
from .charts import human_bytes, size_and_duration
from .session import COOKIE, COOKIE_PATH, Session, Sessions, cookie_options

__all__ = ["Dashboard"]

JOB_LIMIT = 500
JOURNAL_DAYS = 7
JOURNAL_LIMIT = 500


def _ago(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("strongroom.server.dashboard", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
    env.filters["bytes"] = human_bytes
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M UTC") if d else "never"
    env.filters["isotime"] = lambda s: (s or "")[:19].replace("T", " ")
    return env


class Dashboard:
    """The dashboard of one server (see the module docstring)."""

    def __init__(self, state: Any, monitor: Monitor | None = None) -> None:
        self.state = state
        self.monitor = monitor or monitor_of(state)
        self.sessions = Sessions(state.dir)
        self.env = _environment()

    # --- plumbing -------------------------------------------------------------------------

    def _who(self, request: Request) -> tuple[Session | None, Principal | None]:
        now = self.state.clock()
        session = self.sessions.read(request.cookies.get(COOKIE), now)
        return session, self.sessions.principal(session, now)

    def _visible(self, principal: Principal) -> list[str]:
        return [n for n in self.state.hosted.names() if principal.role_for(n)]

    def _page(self, name: str, request: Request, principal: Principal | None, session: Session | None,
              status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(
            principal=principal, csrf=self.sessions.csrf(session) if session else "", now=self.state.clock(),
            ago=lambda d: _ago(d, self.state.clock()), **context)
        return HTMLResponse(html, status_code=status, headers={
            "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
                                       " form-action 'self'; frame-ancestors 'none'"})

    def _login_redirect(self) -> Response:
        response = RedirectResponse("/dashboard/login", status_code=303)
        response.delete_cookie(COOKIE, path=COOKIE_PATH)
        return response

    def _not_found(self, request: Request, session: Session | None, principal: Principal | None,
                   vault: str, what: str) -> HTMLResponse:
        self.state.refused(vault, principal, f"{request.method} {request.url.path}", what)
        return self._page("error.html", request, principal, session, status=404,
                          message=f"vault '{vault}' not found")

    # --- login -------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        return self._page("login.html", request, None, None, error=None)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", "")).strip()
        now = self.state.clock()
        principal = await run_in_threadpool(self.state.dir.users.authenticate, token, now)
        if principal is None:
            self.state.refused(None, None, "POST /dashboard/login", "dashboard login with a missing, wrong,"
                                                                     " revoked or expired token")
            return self._page("login.html", request, None, None, status=401,
                              error="That token is not valid (wrong, revoked or expired).")
        value, max_age = self.sessions.issue(principal, now)
        response = RedirectResponse("/dashboard/", status_code=303)
        response.set_cookie(COOKIE, value, **cookie_options(max_age))
        return response

    async def logout(self, request: Request) -> Response:
        session, _ = self._who(request)
        form = await request.form()
        if session is not None and not self.sessions.csrf_ok(session, form.get("csrf")):
            return HTMLResponse("bad CSRF token\n", status_code=403)
        return self._login_redirect()

    # --- pages ---------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        session, principal = self._who(request)
        if principal is None:
            return self._login_redirect()
        vaults = self.monitor.vaults(self._visible(principal))
        return self._page("overview.html", request, principal, session, vaults=vaults)

    def vault(self, request: Request) -> Response:
        session, principal = self._who(request)
        if principal is None:
            return self._login_redirect()
        name = request.path_params["vault"]
        if name not in self._visible(principal):
            return self._not_found(request, session, principal, name, "dashboard: no role on the vault")
        return self._page("vault.html", request, principal, session, v=self.monitor.vault(name),
                          role=principal.role_for(name))

    def item(self, request: Request) -> Response:
        session, principal = self._who(request)
        if principal is None:
            return self._login_redirect()
        name, item_name = request.path_params["vault"], request.path_params["item"]
        if name not in self._visible(principal):
            return self._not_found(request, session, principal, name, "dashboard: no role on the vault")
        health = self.monitor.vault(name)
        item = health.item(item_name)
        if item is None:
            return self._page("error.html", request, principal, session, status=404,
                              message=f"item '{item_name}' not found in vault '{name}'")
        vault = self.state.hosted.vault(name)
        jobs = [j for j in vault.jobs.list(item=item_name)][-50:][::-1]
        points = sorted(item.history, key=lambda s: s.created, reverse=True)
        return self._page("item.html", request, principal, session, v=health, item=item, jobs=jobs, points=points,
                          chart=size_and_duration(item.history))

    def jobs(self, request: Request) -> Response:
        session, principal = self._who(request)
        if principal is None:
            return self._login_redirect()
        q = request.query_params
        want = {k: q.get(k) or None for k in ("vault", "item", "state", "type")}
        visible = self._visible(principal)
        names = [want["vault"]] if want["vault"] in visible else ([] if want["vault"] else visible)
        rows = []
        for name in names:
            for job in self.state.hosted.vault(name).jobs.list(item=want["item"], type_=want["type"],
                                                               state=want["state"]):
                rows.append((name, job))
        rows.sort(key=lambda r: r[1].started, reverse=True)
        return self._page("jobs.html", request, principal, session, rows=rows[:JOB_LIMIT], total=len(rows),
                          want=want, vaults=visible, failed_states=FAILED_STATES,
                          states=("in_progress", "completed", "completed_with_warnings", "failed", "cancelled",
                                  "abandoned", "stale"))

    def alerts(self, request: Request) -> Response:
        session, principal = self._who(request)
        if principal is None:
            return self._login_redirect()
        show_all = request.query_params.get("all") == "1"
        rows = []
        for name in self._visible(principal):
            for alert in self.state.hosted.vault(name).alerts.list(include_acknowledged=show_all):
                rows.append((name, alert))
        rows.sort(key=lambda r: r[1].time, reverse=True)
        return self._page("alerts.html", request, principal, session, rows=rows, show_all=show_all)

    async def ack(self, request: Request) -> Response:
        session, principal = self._who(request)
        if principal is None:
            return self._login_redirect()
        form = await request.form()
        name, alert_id = request.path_params["vault"], request.path_params["alert"]
        if not self.sessions.csrf_ok(session, form.get("csrf")):
            self.state.refused(name, principal, f"POST {request.url.path}", "dashboard: bad CSRF token")
            return self._page("error.html", request, principal, session, status=403,
                              message="this form has expired: reload the page and try again")
        if name not in self._visible(principal):
            return self._not_found(request, session, principal, name, "dashboard: no role on the vault")
        try:
            vault = self.state.hosted.vault(name)
            await run_in_threadpool(vault.alerts.ack, alert_id, f"{principal.user} (dashboard)")
        except NotFound as exc:
            return self._page("error.html", request, principal, session, status=404, message=str(exc))
        except StrongroomError as exc:
            return self._page("error.html", request, principal, session, status=409, message=str(exc))
        self.monitor.forget(name)
        return RedirectResponse(str(form.get("back") or "/dashboard/alerts")
                                if str(form.get("back", "")).startswith("/dashboard/") else "/dashboard/alerts",
                                status_code=303)

    def journal(self, request: Request) -> Response:
        session, principal = self._who(request)
        if principal is None:
            return self._login_redirect()
        visible = self._visible(principal)
        wanted = request.query_params.get("vault") or None
        names = [wanted] if wanted in visible else ([] if wanted else visible)
        since = self.state.clock() - dt.timedelta(days=JOURNAL_DAYS)
        rows = []
        for name in names:
            for entry in self.state.hosted.vault(name).journal.entries(since=since):
                rows.append((name, entry))
        rows.sort(key=lambda r: r[1].time, reverse=True)
        return self._page("journal.html", request, principal, session, rows=rows[:JOURNAL_LIMIT], total=len(rows),
                          vaults=visible, wanted=wanted, days=JOURNAL_DAYS)
