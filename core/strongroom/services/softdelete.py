"""Soft delete: deleted recovery points stay recoverable until their purge time.

Every deletion of backup data goes through :class:`SoftDeletion`: ``points delete``,
``items stop --delete-data`` (:mod:`.lifecycle`) and prune's expiry of points whose
retention ended (:mod:`.prune`).  While the vault's soft delete is on
(:class:`~strongroom.policy.security.SoftDelete`), a deletion writes a ``soft-deleted``
status (:mod:`.pointstatus`) with ``deleted_at``, ``purge_at`` (now plus the soft delete
days in force *at the time of deletion*) and ``deleted_by``; the header, statuses and
data stay.  With soft delete off, the header and statuses are deleted at once (a vault
head announces it first, :mod:`.head`) and the next prune frees the data.

What it promises:

- a soft-deleted point is never restored, browsed, opened, listed by plain ``points``,
  taken for the latest point or a backup's parent (:mod:`.points`);
- nothing of it is removed before ``purge_at``: prune purges it (header and statuses
  deleted, so garbage collection frees its data) only once that time has passed, whatever
  the soft delete setting is by then;
- ``points undelete`` brings a point back active, its retention evaluated again (a point
  whose retention has ended is soft-deleted again by the next prune); ``items undelete``
  (:mod:`.lifecycle`) brings back the points the item's deletion soft-deleted.

What it refuses: ``points delete`` of a point immutability keeps
(:meth:`.security.SecurityService.require_deletable`), or without the guard's
``points.delete`` ticket when the vault has a guard; undeleting a single point of a
deleted item (the item is undeleted instead).  Every deletion and undeletion is
journaled; a deletion of points by a command raises the security alert "recovery points
deleted" (:meth:`SoftDeletion.alert_deleted`, the one place it is raised).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable, Iterable

import attrs

from ..errors import ItemStateError, UsageError
from ..models import DELETED, ProtectedItem, RecoveryPoint, iso
from .pointstatus import ACTIVE, SOFT_DELETED, PointStatus, delete_statuses, write_status

if TYPE_CHECKING:
    from ..policy.security import SoftDelete
    from ..repository.repository import Repository
    from .head import HeadService
    from .items import ItemBook
    from .journal import Journal
    from .points import DeletedPoint, PointBook
    from .retention import Retention
    from .security import SecurityService

__all__ = ["BY_ITEM", "BY_POINTS", "BY_PRUNE", "Deletion", "SoftDeletion"]

#: ``deleted_by`` of each way to delete (:data:`.pointstatus.DELETED_BY`).
BY_POINTS, BY_ITEM, BY_PRUNE = "points delete", "items stop --delete-data", "prune: expired"


@attrs.frozen
class Deletion:
    """What a deletion did: the points, and whether they were soft-deleted (until ``purge_at``)."""

    item: str
    points: tuple[str, ...]
    soft: bool
    purge_at: str | None = None
    #: a dry run: what the deletion would do; nothing was written
    dry_run: bool = False

    def to_dict(self) -> dict:
        return attrs.asdict(self)


class SoftDeletion:
    """Deleting, undeleting and purging the points of one vault (see the module docstring)."""

    def __init__(self, repo: Repository, items: ItemBook, points: PointBook, retention: Retention,
                 security: SecurityService, journal: Journal, heads: HeadService,
                 alert: Callable[..., object], clock: Callable[[], dt.datetime]) -> None:
        self.repo = repo
        self.items = items
        self.points = points
        self.retention = retention
        self.security = security
        self.journal = journal
        self.heads = heads
        self.alert = alert
        self.clock = clock

    @property
    def setting(self) -> SoftDelete:
        return self.security.settings.soft_delete

    # --- points delete / undelete --------------------------------------------------------

    def delete_point(self, name: str, ref: str, *, ticket: str | None = None, dry_run: bool = False) -> Deletion:
        """``points delete ITEM@POINT``: soft-delete (or, with soft delete off, delete) one point.
        ``dry_run``: the same checks under the security service's rehearsal, nothing written."""
        if dry_run:
            with self.security.rehearsal():
                return self._delete_point(name, ref, ticket, dry_run=True)
        return self._delete_point(name, ref, ticket, dry_run=False)

    def _delete_point(self, name: str, ref: str, ticket: str | None, *, dry_run: bool) -> Deletion:
        if not ref:
            raise UsageError(message="name the point to delete: ITEM@POINT")
        item = self.items.get(name)
        point = self.points.find(item, ref)  # a soft-deleted point: PointSoftDeleted
        now = self.clock()
        params = {"item": item.name, "point": point.point_id}
        self.security.require_deletable(point, now)
        self.security.authorize("points.delete", params, ticket)
        if dry_run:
            return self.would_remove(item, [point], now)
        with self.journal.operation("points.delete", params):
            done = self.remove(item, [point], BY_POINTS, now)
        self.alert_deleted(done)
        return done

    def undelete_point(self, name: str, ref: str) -> RecoveryPoint:
        """``points undelete ITEM@POINT``: bring a soft-deleted point back."""
        if not ref:
            raise UsageError(message="name the point to undelete: ITEM@POINT")
        item = self.items.get(name)
        if item.state == DELETED:
            raise ItemStateError(item=item.name, state=item.state,
                                 reason=f"its data was deleted; undelete the item: strongroom items undelete {item.name}")
        found = self.points.find_deleted(item, ref)
        with self.journal.operation("points.undelete", {"item": item.name, "point": found.point_id}):
            self.restore(item, [found])
        return self.points.find(item, found.point_id)

    # --- the steps, also used by items stop/undelete and by prune -------------------------

    def would_remove(self, item: ProtectedItem, points: Iterable[RecoveryPoint], now: dt.datetime) -> Deletion:
        """What :meth:`remove` of ``points`` at ``now`` would do; writes nothing."""
        setting = self.setting
        purge_at = iso(now + dt.timedelta(days=setting.days)) if setting.on else None
        return Deletion(item.name, tuple(p.point_id for p in points), soft=setting.on, purge_at=purge_at,
                        dry_run=True)

    def remove(self, item: ProtectedItem, points: Iterable[RecoveryPoint], by: str,
               now: dt.datetime) -> Deletion:
        """Soft-delete ``points`` of ``item`` (deleted ``by``), or delete them now when soft
        delete is off."""
        points = list(points)
        setting = self.setting
        if not setting.on:
            self.purge(points, by)
            return Deletion(item.name, tuple(p.point_id for p in points), soft=False)
        purge_at = iso(now + dt.timedelta(days=setting.days))
        for point in points:
            write_status(self.repo, PointStatus(
                point.point_id, item.item_id, SOFT_DELETED, point.expires_at, point.tags, point_reason(by),
                deleted_at=iso(now), purge_at=purge_at, deleted_by=by), now)
        if points:
            self.heads.record("points soft-delete")
        return Deletion(item.name, tuple(p.point_id for p in points), soft=True, purge_at=purge_at)

    def restore(self, item: ProtectedItem, deleted: Iterable[DeletedPoint]) -> int:
        """Make ``deleted`` active again, then re-evaluate the retention of ``item``'s points."""
        now = self.clock()
        count = 0
        for found in deleted:
            status = found.status
            write_status(self.repo, PointStatus(found.point_id, item.item_id, ACTIVE, status.expires_at,
                                                status.tags, "undeleted"), now)
            count += 1
        self.retention.reevaluate([item], now)
        self.heads.record("points undelete")
        return count

    def purge(self, points: Iterable[RecoveryPoint], operation: str) -> list[str]:
        """Delete the headers and statuses of ``points`` (announced in a vault head first);
        garbage collection then frees the data no other point needs."""
        points = list(points)
        if not points:
            return []
        self.heads.record(operation, removed=[p.object_name for p in points])
        for point in points:
            self.repo.store.delete(point.object_name)
            delete_statuses(self.repo, point.item_id, point.point_id)
        return [p.point_id for p in points]

    def alert_deleted(self, done: Deletion) -> None:
        """The security alert "recovery points deleted" (the one place it is raised)."""
        if not done.points:
            return
        how = f"soft-deleted until {done.purge_at[:19]}" if done.soft and done.purge_at else "deleted"
        self.alert("security", "points.deleted",
                   f"recovery points deleted: {len(done.points)} point(s) of item '{done.item}' {how}",
                   details=done.to_dict())


def point_reason(by: str) -> str:
    return f"soft-deleted by {by}"
