"""Recovery points: their headers (``points/<item-id>/<point-id>``) with their newest
status applied, and read access to their trees.

A header is written once, as the commit of a backup; what changes later is a status
document (:mod:`.pointstatus`).  :meth:`PointBook.context` opens a point for a workload
(:class:`~strongroom.contexts.PointContext`), loading the vault's index first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..catalog.tree import TreeReader
from ..contexts import PointContext
from ..errors import AmbiguousPoint, PointNotFound
from ..models import ProtectedItem, RecoveryPoint
from .pointstatus import apply as apply_status, load_statuses

if TYPE_CHECKING:
    from ..repository.indexstate import IndexState
    from ..repository.repository import Repository
    from ..results import RestoreStats

__all__ = ["POINT_PREFIX", "PointBook"]

POINT_PREFIX = "points/"


class PointBook:
    """The recovery points of one vault."""

    def __init__(self, repo: Repository, index: IndexState) -> None:
        self.repo = repo
        self.index = index

    def of(self, item: ProtectedItem | None) -> list[RecoveryPoint]:
        """Points of ``item`` (or of every item), oldest first, with their current status."""
        item_id = item.item_id if item is not None else None
        prefix = f"{POINT_PREFIX}{item_id}/" if item_id else POINT_PREFIX
        names = list(self.repo.store.list(prefix))
        statuses = load_statuses(self.repo, item_id) if names else {}
        points = [apply_status(RecoveryPoint.from_dict(doc), statuses.get(doc["point_id"]))
                  for _, doc in self.repo.get_documents(names)]
        return sorted(points, key=lambda p: (p.created, p.point_id))

    def find(self, item: ProtectedItem, ref: str | None = None) -> RecoveryPoint:
        """The latest point of ``item``, or the one whose id starts with ``ref``."""
        points = self.of(item)
        if ref:
            points = [p for p in points if p.point_id.startswith(ref.lower())]
            if len(points) > 1:
                raise AmbiguousPoint(point=ref, count=len(points), item=item.name)
        if not points:
            raise PointNotFound(point=ref or "latest", item=item.name)
        return points[-1]

    def tree(self, point: RecoveryPoint) -> TreeReader:
        """A reader of the point's tree (the index is loaded first)."""
        self.index.load()
        return TreeReader(self.repo, bytes.fromhex(point.root), point=point.short_id)

    def context(self, item: ProtectedItem, point: RecoveryPoint,
                progress: Callable[[RestoreStats], None] | None = None) -> PointContext:
        """The point opened for a workload's browse or restore."""
        return PointContext(item, point, self.repo, self.tree(point), progress)
