"""The server's dashboard: server-rendered pages for the vaults a user has a role on.

Filled in below; `routes(state)` is what `strongroom.server.app.create_app` mounts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.routing import BaseRoute


def routes(state: Any) -> list[BaseRoute]:
    """The dashboard's routes (none yet)."""
    return []
