"""Versioned documents: ``<prefix><key>/<time-id>``, the newest version wins.

Items (``items/<item-id>/``), policies (``policies/<name>/``), jobs (``jobs/<job-id>/``),
settings (``settings/``) and point statuses append a new document to change something;
nothing is rewritten in place.  A new version's name sorts after every existing one of
its prefix even when the writer's clock is behind theirs (:func:`version_name`).

Only the vault's own names count (:mod:`strongroom.repository.names`): a foreign object
under a prefix (``items/<item-id>/desktop.ini``) is never a version, however it sorts;
it is added to ``foreign`` when the caller gives a set.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ..models import time_id, time_of
from ..repository.names import vault_names

if TYPE_CHECKING:
    from ..storage import Store

__all__ = ["newest_versions", "version_name"]


def version_name(store: Store, prefix: str, now: dt.datetime, foreign: set[str] | None = None) -> str:
    """``prefix`` + a time id for a new version, sorting after every existing one."""
    newest = max(vault_names(store.list(prefix), foreign), default=None)
    if newest is not None:
        try:
            now = max(now, time_of(newest) + dt.timedelta(microseconds=1))
        except ValueError:
            pass
    return f"{prefix}{time_id(now)}"


def newest_versions(store: Store, prefix: str, foreign: set[str] | None = None) -> dict[str, str]:
    """``{key: name of its newest version}`` for documents ``<prefix><key>/<version>``."""
    depth = prefix.count("/") + 1
    newest: dict[str, str] = {}
    for name in vault_names(store.list(prefix), foreign):
        parts = name.split("/")
        if len(parts) == depth + 1 and name > newest.get(parts[depth - 1], ""):
            newest[parts[depth - 1]] = name
    return newest
