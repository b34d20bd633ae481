"""Protected-item documents: ``items/<item-id>/<time-id>``, the newest version wins.

An item keeps its id for life; its name is unique among items that still have data
(a deleted item's name may be protected again, as a new item).  Changing an item
(stopping, resuming, a new policy) appends a version; :mod:`.lifecycle` decides which
changes are allowed.  Foreign objects under ``items/`` are never taken for versions
(:mod:`.versions`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import ItemNotFound
from ..models import DELETED, ProtectedItem
from .versions import newest_versions, version_name

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["ITEM_PREFIX", "ItemBook"]

ITEM_PREFIX = "items/"


class ItemBook:
    """The protected items of one vault."""

    def __init__(self, repo: Repository, clock: Callable[[], dt.datetime]) -> None:
        self.repo = repo
        self.clock = clock

    def list(self) -> list[ProtectedItem]:
        """Every item (deleted ones included), by name."""
        newest = newest_versions(self.repo.store, ITEM_PREFIX, self.repo.foreign)
        docs = self.repo.get_documents(sorted(newest.values()))
        return sorted((ProtectedItem.from_dict(doc, name) for name, doc in docs), key=lambda i: i.name)

    def get(self, name: str) -> ProtectedItem:
        """The item called ``name``; one whose data was deleted only if no other has the name."""
        matches = [item for item in self.list() if item.name == name]
        if not matches:
            raise ItemNotFound(item=name)
        live = [item for item in matches if item.state != DELETED]
        return (live or matches)[-1]

    def has_live(self, name: str) -> bool:
        """Whether an item that still has data is called ``name``."""
        return any(item.name == name and item.state != DELETED for item in self.list())

    def put(self, item: ProtectedItem) -> ProtectedItem:
        """Append a new version of ``item``; returns it as read back."""
        version = version_name(self.repo.store, f"{ITEM_PREFIX}{item.item_id}/", self.clock(), self.repo.foreign)
        self.repo.put_document(version, item.to_dict())
        return attrs.evolve(item, version=version)
