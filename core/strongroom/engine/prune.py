"""Prune: expire recovery points whose retention ended, then free the data nothing needs.

One run, under the ``prune`` lease (:mod:`strongroom.repository.leases`):

1. **Expire.**  Every item's points are evaluated against its policy and state
   (:func:`strongroom.lifecycle.evaluate_item`); the header and status documents of each
   expired point are deleted, and statuses are written where retention changed.
2. **Load.**  Every index file is read as stored; a pack's *age* is the time in the name
   of the oldest index file naming it (the clock of the host that wrote it).  The *live*
   set is every blob reachable from every point header listed now.
3. **Sweep** each mark (:mod:`strongroom.engine.gcstate`) whose grace has passed, oldest
   first, and finish any sweep a killed prune left: a marked blob that is still not live
   is *dead*.  A pack whose blobs are all dead is deleted; one whose dead blobs are at
   least ``repack_threshold`` of its bytes is repacked (its other blobs are copied into
   new packs); otherwise it stays as it is.  Order: write the sweep document (the doomed
   packs), copy, replace every index file that names a doomed pack by one without those
   entries (same time, so ages are kept), delete the doomed packs, delete the sweep and
   mark documents.  A crash anywhere leaves a vault that verifies and restores; the next
   prune finishes the sweep.
4. **Mark** the blobs of packs at least ``grace`` old that no point needs (skipping packs
   where they are less than ``repack_threshold`` of the bytes, unless the pack is all
   garbage).  Blobs of index files that appeared after step 2, and packs younger than the
   grace, are never marked: a backup running elsewhere may be about to reference them.
   With a grace of 0 the new mark is swept at once (for vaults nothing else writes to).

With ``dry_run`` nothing is written and no lease taken: the report says what would go.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Callable

import attrs

from ..lifecycle import evaluate_item
from ..models import iso, time_id, time_of
from ..pointstatus import STATUS_PREFIX, PointStatus, delete_statuses, write_status
from ..policy.schedule import Schedule
from ..repository import maintenance
from ..repository.leases import Lease
from ..repository.pack import pack_name
from .gcstate import Mark, Sweep, cycles_on_storage, read_part
from .pruneplan import PackState, plan_mark, plan_sweep

if TYPE_CHECKING:
    from ..vault import Vault

__all__ = ["PruneReport", "PruneSettings", "Pruner"]


def _check_fraction(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} must be above 0 and at most 1, not {value}")


def _check_non_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, not {value}")


@attrs.frozen
class PruneSettings:
    """Vault settings of prune: when ``run-due`` runs it, and how it is careful."""

    schedule: Schedule | None = attrs.field(factory=lambda: Schedule("daily", times=("03:00",)))
    grace: float = attrs.field(default=6 * 3600.0, converter=float, validator=_check_non_negative)
    repack_threshold: float = attrs.field(default=0.2, converter=float, validator=_check_fraction)
    lease_ttl: float = attrs.field(default=300.0, converter=float, validator=_check_non_negative)

    def to_dict(self) -> dict:
        return {"schedule": self.schedule.to_dict() if self.schedule else None, "grace": self.grace,
                "repack_threshold": self.repack_threshold, "lease_ttl": self.lease_ttl}

    @classmethod
    def from_dict(cls, doc: dict) -> PruneSettings:
        defaults = cls()
        schedule = doc.get("schedule", defaults.schedule.to_dict() if defaults.schedule else None)
        return cls(schedule=Schedule.from_dict(schedule) if schedule else None,
                   grace=doc.get("grace", defaults.grace),
                   repack_threshold=doc.get("repack_threshold", defaults.repack_threshold),
                   lease_ttl=doc.get("lease_ttl", defaults.lease_ttl))


@attrs.define
class PruneReport:
    """What a prune did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    points_expired: list[dict] = attrs.field(factory=list)
    statuses_written: int = 0
    cycles_swept: int = 0
    cycles_pending: int = 0
    blobs_marked: int = 0
    bytes_marked: int = 0
    blobs_deleted: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    bytes_copied: int = 0
    bytes_freed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return attrs.asdict(self)


class Pruner:
    """One prune run on ``vault`` (see the module docstring)."""

    def __init__(self, vault: Vault, settings: PruneSettings, *, dry_run: bool = False,
                 progress: Callable[[str], None] | None = None) -> None:
        self.vault = vault
        self.repo = vault.repo
        self.settings = settings
        self.dry_run = dry_run
        self.report = PruneReport(dry_run=dry_run)
        self._progress = progress or (lambda message: None)
        self._lease: Lease | None = None
        self._expired: set[str] = set()

    def _check(self) -> None:
        if self._lease is not None:
            self._lease.check()

    def run(self, *, on_lease: Callable[[], None] | None = None) -> PruneReport:
        """Prune; ``on_lease`` is called once the lease is held (not for a dry run)."""
        started = time.monotonic()
        if not self.dry_run:
            self._lease = Lease(self.repo, "prune", ttl=self.settings.lease_ttl, clock=self.vault.clock).acquire()
        try:
            if on_lease is not None and self._lease is not None:
                on_lease()
            now = self.vault.clock()
            self._expire(now)
            state = self._load()
            for cycle, parts in sorted(cycles_on_storage(self.repo).items()):
                mark = read_part(self.repo, cycle, "mark")
                if mark is None:  # a sweep finished all but removing its own document
                    self._forget(cycle)
                elif "sweep" in parts or mark.sweepable(now):
                    state = self._sweep(mark, state)
                else:
                    self.report.cycles_pending += 1
            mark = self._mark(state, self.vault.clock())
            if mark is not None and mark.sweepable(self.vault.clock()):
                self.report.cycles_pending -= 1
                self._sweep(mark, self._load() if not self.dry_run else state)
        finally:
            if self._lease is not None:
                self._lease.release()
            self.vault.forget_index()
        self.report.seconds = round(time.monotonic() - started, 3)
        return self.report

    # --- 1. expire ---------------------------------------------------------------------

    def _expire(self, now: dt.datetime) -> None:
        self._progress("expiring points")
        for item in self.vault.items():
            points = self.vault.points_of(item)
            if not points:
                continue
            for point, verdict in zip(points, evaluate_item(self.vault, item, points, now)):
                if point.state != "active":
                    continue  # a later state (soft deleted) has its own rules
                if not verdict.keep:
                    self._expired.add(point.point_id)
                    self.report.points_expired.append(
                        {"item": item.name, "point": point.point_id, "created": point.created, "reason": verdict.reason})
                    if not self.dry_run:
                        self._check()
                        self.repo.store.delete(point.object_name)
                        delete_statuses(self.repo, item.item_id, point.point_id)
                    continue
                expires = iso(verdict.expires_at) if verdict.expires_at else None
                if (expires, verdict.tags) != (point.expires_at, point.tags) and not self.dry_run:
                    write_status(self.repo, PointStatus(point.point_id, item.item_id, point.state, expires,
                                                        verdict.tags, verdict.reason), now)
                    self.report.statuses_written += 1
        if not self.dry_run:
            self._forget_orphans()

    def _forget_orphans(self) -> None:
        """Delete statuses of points whose header is gone, and claims of deleted items.

        Statuses are listed before headers: a status is only written for a point whose
        header exists, so a header missing from the later listing is really gone."""
        statuses = list(self.repo.store.list(STATUS_PREFIX))
        headers = {tuple(n.split("/")[1:3]) for n in self.repo.store.list("points/")}
        for name in statuses:
            parts = name.split("/")
            if len(parts) == 4 and (parts[1], parts[2]) not in headers:
                self.repo.store.delete(name)
        from ..policy.claims import Claims

        with_points = {item_id for item_id, _ in headers}
        for item in self.vault.items():
            if item.state == "deleted" and item.item_id not in with_points:
                Claims(self.repo, item.item_id).forget()

    # --- 2. load -----------------------------------------------------------------------

    def _load(self) -> PackState:
        self._progress("reading the index")
        files = sorted(self.repo.store.list("index/"))
        state = PackState.from_files(self.repo.read_index_files(files), time_of)
        self._progress("finding the data points need")
        roots = []
        names = [n for n in self.repo.store.list("points/") if n.rsplit("/", 1)[-1] not in self._expired]
        for _, doc in self.repo.get_documents(names):
            roots.append(bytes.fromhex(doc["root"]))
        state.find_live(self.repo, roots)
        return state

    # --- 3. sweep ----------------------------------------------------------------------

    def _sweep(self, mark: Mark, state: PackState) -> PackState:
        self._progress(f"sweeping {mark.cycle}")
        old = read_part(self.repo, mark.cycle, "sweep")
        plan = plan_sweep(mark, state, self.settings.repack_threshold,
                          old.doomed if isinstance(old, Sweep) else frozenset())
        self.report.cycles_swept += 1
        self.report.blobs_deleted += plan.dead_blobs
        self.report.packs_deleted += len(plan.delete)
        self.report.packs_repacked += len(plan.repack)
        self.report.bytes_copied += sum(e.length for e in plan.copy)
        if self.dry_run:
            self.report.bytes_freed += plan.bytes_doomed - sum(e.length for e in plan.copy)
            return state
        if plan.doomed:
            sweep = Sweep(mark.cycle, iso(self.vault.clock()), plan.doomed)
            self.repo.put_document(sweep.name, sweep.to_dict())
            self._check()
            copied = maintenance.copy_blobs(self.repo, list(plan.copy))
            for pack_id in {e.pack_id for e in copied}:
                self.report.bytes_freed -= self.repo.store.size(pack_name(pack_id))
            self._check()
            for name, entries in state.files:
                if any(e.pack_id in plan.doomed for e in entries):
                    maintenance.replace_index_file(self.repo, name, [e for e in entries if e.pack_id not in plan.doomed])
            for pack_id in sorted(plan.doomed):
                self._check()
                self.report.bytes_freed += maintenance.delete_pack(self.repo, pack_id)
        self._forget(mark.cycle)
        return self._load() if plan.doomed else state

    def _forget(self, cycle: str) -> None:
        if not self.dry_run:
            self.repo.store.delete(f"prune/{cycle}/sweep")
            self.repo.store.delete(f"prune/{cycle}/mark")

    # --- 4. mark -----------------------------------------------------------------------

    def _mark(self, state: PackState, now: dt.datetime) -> Mark | None:
        self._progress("marking unneeded data")
        pending: set[tuple[str, bytes]] = set()
        for cycle in cycles_on_storage(self.repo):
            found = read_part(self.repo, cycle, "mark")
            if isinstance(found, Mark):
                for marked in (found.packs, found.duplicates):
                    pending.update((pack, blob) for pack, blobs in marked.items() for blob in blobs)
        grace = self.settings.grace
        young_limit = now - dt.timedelta(seconds=grace) if grace else dt.datetime.max.replace(tzinfo=dt.timezone.utc)
        garbage, duplicates = plan_mark(state, young_limit, self.settings.repack_threshold, pending)
        if not garbage and not duplicates:
            return None
        mark = Mark(time_id(now), now, self.settings.grace, garbage, duplicates)
        for marked in (garbage, duplicates):
            self.report.blobs_marked += sum(len(b) for b in marked.values())
            self.report.bytes_marked += sum(state.packs[p][b].length for p, blobs in marked.items() for b in blobs)
        self.report.cycles_pending += 1
        if not self.dry_run:
            self._check()
            self.repo.put_document(mark.name, mark.to_dict())
        return mark

