"""The object gateway: `/vaults/{name}/objects/{path}` and `/vaults/{name}/list` (filled in below)."""

from __future__ import annotations


def routes(state) -> list:
    """The gateway's routes, mounted by `create_app`."""
    return []
