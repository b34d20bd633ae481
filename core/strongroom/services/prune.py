"""Prune: expire recovery points whose retention ended, then free the data nothing needs.

One run, under the ``prune`` lease (:mod:`strongroom.repository.leases`), recorded as a
``prune`` job once the lease is held (a prune that finds another one running records
nothing):

1. **Expire.**  Every item's points are evaluated against its policy and state
   (:meth:`.retention.Retention.evaluate`); statuses are written where retention
   changed.  While soft delete is on (:mod:`.softdelete`) each expired point is
   soft-deleted (``points_soft_deleted``, with its purge time); with it off, its header
   and status documents are deleted.  Soft-deleted points whose purge time has passed
   are purged: header and statuses deleted (``points_purged``).  Nothing of a
   soft-deleted point is removed before then: its header stays on storage, so step 2
   counts its data live.
   Statuses of points whose header is gone, and run claims of deleted items that have
   no point left, are removed.
2. **Collect garbage** (:mod:`strongroom.engine.gc`): the data reachable from the
   remaining points is live; the rest is marked, and swept a grace period later.

Vault heads (:mod:`.head`): a prune first checks that storage did not go back to an older
state, and refuses with :class:`~strongroom.errors.RollbackDetected` if it did (it would
free data that points whose headers are gone still need); it writes a head announcing
the points it expires before it deletes them, and one recording the index files it left
(a new index generation) at the end.

On storage with object lock, a point header or status still retained is kept
(:class:`~strongroom.errors.ObjectLocked`, counted in ``kept_by_lock``) and deleted by a
later prune once its lock lapsed: the lock of an expired point is no longer extended
(:mod:`.objectlocks`).

With ``dry_run`` nothing is written and no lease taken: the report says what would go.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Callable

import attrs

from ..engine.gc import GarbageCollector, GcReport
from ..errors import ObjectLocked
from ..models import DELETED, ProtectedItem, RecoveryPoint, iso, parse_iso
from ..repository.indexstate import INDEX_PREFIX
from .claims import Claims
from .pointstatus import STATUS_PREFIX, delete_statuses
from .points import POINT_PREFIX
from .softdelete import BY_PRUNE

if TYPE_CHECKING:
    from ..policy.prunesettings import PruneSettings
    from ..repository.indexstate import IndexState
    from ..repository.leases import Lease
    from ..repository.repository import Repository
    from .head import HeadService
    from .items import ItemBook
    from .jobs import JobLog
    from .points import DeletedPoint, PointBook
    from .retention import Retention
    from .softdelete import SoftDeletion

__all__ = ["PruneReport", "PruneService"]


@attrs.define
class PruneReport(GcReport):
    """What a prune did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    points_expired: list[dict] = attrs.field(factory=list)
    statuses_written: int = 0
    #: expired points soft-deleted instead of deleted: item, point, purge_at
    points_soft_deleted: list[dict] = attrs.field(factory=list)
    #: soft-deleted points whose purge time had passed, deleted: item, point, deleted_by
    points_purged: list[dict] = attrs.field(factory=list)
    seconds: float = 0.0
    #: what the object lock extension after the prune did (:mod:`.objectlocks`), if it ran
    object_locks: dict = attrs.field(factory=dict)

    def to_dict(self) -> dict:
        doc = attrs.asdict(self)
        order = ("dry_run", "points_expired", "points_soft_deleted", "points_purged", "statuses_written")
        return {**{key: doc.pop(key) for key in order}, **doc}


class PruneService:
    """Prunes one vault."""

    def __init__(self, repo: Repository, index: IndexState, items: ItemBook, points: PointBook,
                 retention: Retention, jobs: JobLog, clock: Callable[[], dt.datetime], heads: HeadService,
                 soft: SoftDeletion | None = None) -> None:
        self.repo = repo
        self.index = index
        self.items = items
        self.points = points
        self.retention = retention
        self.jobs = jobs
        self.clock = clock
        self.heads = heads
        self.soft = soft  # None: points are deleted when they expire
        self._keep_last: int | None = None  # this run's --keep-last

    def run(self, settings: PruneSettings, *, dry_run: bool = False, keep_last: int | None = None,
            progress: Callable[[str], None] | None = None) -> PruneReport:
        """Prune with ``settings`` (see the module docstring); with ``keep_last``, also
        expire every active point of each item but its newest ``keep_last``
        (:meth:`beyond_keep_last` says which, for the caller's security checks)."""
        from ..repository.leases import Lease

        report = PruneReport(dry_run=dry_run)
        self._keep_last = keep_last
        if dry_run:
            self.heads.require()
            self._prune(settings, report, None, progress)
            return report
        with Lease(self.repo, "prune", ttl=settings.lease_ttl, clock=self.clock) as lease, \
                self.jobs.running("prune", None, grace=settings.grace) as run:
            self.heads.require()
            index_before = self.repo.list_names(INDEX_PREFIX)
            self._prune(settings, report, lease, progress)
            self.heads.record("prune", index_before=index_before)
            run.end("completed", bytes=max(report.bytes_freed, 0), details=report.to_dict())
        return report

    def _prune(self, settings: PruneSettings, report: PruneReport, lease: Lease | None,
               progress: Callable[[str], None] | None) -> None:
        started = time.monotonic()
        check = lease.check if lease is not None else (lambda: None)
        try:
            expired = self._expire(report, check, progress)
            GarbageCollector(
                self.repo, grace=settings.grace, repack_threshold=settings.repack_threshold,
                live_roots=lambda: self._live_roots(expired), report=report, clock=self.clock, check=check,
                dry_run=report.dry_run, progress=progress,
            ).run()
        finally:
            self.index.forget()
        report.seconds = round(time.monotonic() - started, 3)

    def beyond_keep_last(self, keep_last: int) -> list[tuple[ProtectedItem, RecoveryPoint]]:
        """The active points of each item older than its newest ``keep_last`` active ones."""
        out = []
        for item in self.items.list():
            active = [p for p in self.points.survey(item, notices=False).points if p.state == "active"]
            out.extend((item, point) for point in active[: max(0, len(active) - keep_last)])
        return out

    def _expire(self, report: PruneReport, check: Callable[[], None],
                progress: Callable[[str], None] | None) -> set[str]:
        if progress is not None:
            progress("expiring points")
        now = self.clock()
        expired: set[str] = set()
        doomed: list[RecoveryPoint] = []
        soft_days = self.soft.setting.days if self.soft is not None and self.soft.setting.on else None
        to_soft_delete: list[tuple[ProtectedItem, list[RecoveryPoint]]] = []
        purge_due: list[DeletedPoint] = []
        for item in self.items.list():
            survey = self.points.survey(item, notices=False)
            purge_due.extend(d for d in survey.deleted if d.purge_at and parse_iso(d.purge_at) <= now)
            points = list(survey.points)
            if not points:
                continue
            keep_last = self._keep_last
            active = [p.point_id for p in points if p.state == "active"]
            beyond = set(active[: max(0, len(active) - keep_last)]) if keep_last is not None else set()
            for point, verdict in zip(points, self.retention.evaluate(item, points, now)):
                if point.state != "active":
                    continue  # a later state (soft deleted) has its own rules
                if verdict.keep and point.point_id in beyond:
                    verdict = attrs.evolve(verdict, keep=False, reason=f"keep-last {keep_last}")
                if not verdict.keep:
                    report.points_expired.append(
                        {"item": item.name, "point": point.point_id, "created": point.created, "reason": verdict.reason})
                    if soft_days is not None:
                        if not to_soft_delete or to_soft_delete[-1][0] is not item:
                            to_soft_delete.append((item, []))
                        to_soft_delete[-1][1].append(point)
                        continue
                    expired.add(point.point_id)
                    doomed.append(point)
                elif self.retention.changed(point, verdict) and not report.dry_run:
                    self.retention.write(item, point, verdict, now)
                    report.statuses_written += 1
        if soft_days is not None:
            purge_at = iso(now + dt.timedelta(days=soft_days))
            for item, points in to_soft_delete:
                if not report.dry_run:
                    check()
                    purge_at = self.soft.remove(item, points, BY_PRUNE, now).purge_at or purge_at
                report.points_soft_deleted.extend(
                    {"item": item.name, "point": point.point_id, "purge_at": purge_at} for point in points)
        for due in purge_due:  # soft-deleted points whose purge time has passed
            expired.add(due.point_id)
            doomed.append(due.point)
            report.points_purged.append({"item": due.point.item_name, "point": due.point_id,
                                         "deleted_by": due.deleted_by, "purge_at": due.purge_at})
        if not report.dry_run:
            if doomed:  # announced in a vault head before they go: no reader takes it for a rollback
                check()
                self.heads.record("prune", removed=[point.object_name for point in doomed])
            for point in doomed:
                check()
                try:
                    self.repo.store.delete(point.object_name)
                    delete_statuses(self.repo, point.item_id, point.point_id)
                except ObjectLocked:
                    report.kept_by_lock += 1
                    expired.discard(point.point_id)  # its header stays: so does its data
            self._forget_orphans()
        return expired

    def _forget_orphans(self) -> None:
        """Delete statuses of points whose header is gone, and claims of deleted items.

        Statuses are listed before headers: a status is only written for a point whose
        header exists, so a header missing from the later listing is really gone."""
        statuses = self.repo.list_names(STATUS_PREFIX)
        headers = {tuple(n.split("/")[1:3]) for n in self.repo.list_names(POINT_PREFIX)}
        for name in statuses:
            parts = name.split("/")
            if len(parts) == 4 and (parts[1], parts[2]) not in headers:
                try:
                    self.repo.store.delete(name)
                except ObjectLocked:
                    pass  # its lock lapses: no point needs it
        with_points = {item_id for item_id, _ in headers}
        for item in self.items.list():
            if item.state == DELETED and item.item_id not in with_points:
                Claims(self.repo, item.item_id).forget()

    def _live_roots(self, expired: set[str]) -> list[bytes]:
        """The root trees of every point header on storage now, but those just expired."""
        names = [n for n in self.repo.list_names(POINT_PREFIX) if n.rsplit("/", 1)[-1] not in expired]
        return [bytes.fromhex(doc["root"]) for _, doc in self.repo.get_documents(names)]
