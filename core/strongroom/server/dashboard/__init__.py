"""The server's dashboard: server-rendered pages of the vaults a user has a role on.

Routes (all under ``/dashboard``; Jinja2 templates in ``templates/``, no JavaScript)::

    GET  /dashboard/login                      the login form (a server token)
    POST /dashboard/login                      -> a session cookie (:mod:`.session`)
    POST /dashboard/logout                     drops it
    GET  /dashboard/                           overview of every vault the user has a role on
    GET  /dashboard/vaults/{vault}             one vault: its items and their health
    GET  /dashboard/vaults/{vault}/items/{item}  points, jobs, size and duration chart
    GET  /dashboard/jobs?vault=&item=&state=&type=   jobs, newest first
    GET  /dashboard/alerts[?all=1]             open alerts (every alert with all=1)
    POST /dashboard/vaults/{vault}/alerts/{alert}/ack  acknowledge (any role, CSRF token)
    GET  /dashboard/journal[?vault=]           the audit journal of the last days

What each page shows and refuses: :mod:`.views`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

__all__ = ["routes"]


def routes(state: Any) -> list[BaseRoute]:
    """The dashboard's routes for ``state`` (a :class:`strongroom.server.app.ServerState`)."""
    from starlette.responses import RedirectResponse
    from starlette.routing import Route

    from .views import Dashboard

    d = Dashboard(state)
    return [
        Route("/dashboard", lambda request: RedirectResponse("/dashboard/", status_code=307), methods=["GET"]),
        Route("/dashboard/login", d.login_form, methods=["GET"]),
        Route("/dashboard/login", d.login, methods=["POST"]),
        Route("/dashboard/logout", d.logout, methods=["POST"]),
        Route("/dashboard/", d.overview, methods=["GET"]),
        Route("/dashboard/vaults/{vault}", d.vault, methods=["GET"]),
        Route("/dashboard/vaults/{vault}/items/{item}", d.item, methods=["GET"]),
        Route("/dashboard/vaults/{vault}/alerts/{alert}/ack", d.ack, methods=["POST"]),
        Route("/dashboard/jobs", d.jobs, methods=["GET"]),
        Route("/dashboard/alerts", d.alerts, methods=["GET"]),
        Route("/dashboard/journal", d.journal, methods=["GET"]),
    ]
