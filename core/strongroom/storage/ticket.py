"""The guard ticket that authorized the critical operation running now, for stores that pass it on.

A vault on a server (:mod:`strongroom.storage.httpstore`) is checked twice: by the client's
own security service, and by the server, which enforces the vault's rules itself.  The
server must then see the guard's ticket too.  :meth:`SecurityService.authorize
<strongroom.services.security.SecurityService.authorize>` sets it here once a ticket let
an operation through; the HTTP store sends it with every request of the same context
(``X-Strongroom-Ticket``) until another ticket replaces it.  Stores that do not pass it
on ignore it.  A context variable: a thread or task of its own starts without one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["current_ticket", "set_ticket", "ticket_scope"]

_TICKET: ContextVar[str | None] = ContextVar("strongroom_guard_ticket", default=None)


def set_ticket(ticket: str | None) -> None:
    """Make ``ticket`` the one sent with this context's store requests (None: none)."""
    _TICKET.set(ticket)


@contextlib.contextmanager
def ticket_scope() -> Iterator[None]:
    """Within the block, start without a ticket; after it, the one before is back.  One
    command (or one operation of a long-running process) is one scope, so a ticket never
    outlives the operation it authorized."""
    token = _TICKET.set(None)
    try:
        yield
    finally:
        _TICKET.reset(token)


def current_ticket() -> str | None:
    """The ticket set by :func:`set_ticket` in this context, or None."""
    return _TICKET.get()
