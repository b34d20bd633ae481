"""Garbage collection: free the data no recovery point needs, in two phases with a grace.

One :meth:`GarbageCollector.run`, by prune (:mod:`strongroom.services.prune`), which holds
the prune lease and has already expired the points whose retention ended:

1. **Load.**  Every index file is read as stored; a pack's *age* is the time in the name
   of the oldest index file naming it (the clock of the host that wrote it).  The *live*
   set is every blob reachable from the roots ``live_roots()`` returns, called after the
   index files are read (every point header listed then).
2. **Sweep** each mark (:mod:`strongroom.engine.gcstate`) whose grace has passed, oldest
   first, and finish any sweep a killed prune left: a marked blob that is still not live
   is *dead*.  A pack whose blobs are all dead is deleted; one whose dead blobs are at
   least ``repack_threshold`` of its bytes is repacked (its other blobs are copied into
   new packs); otherwise it stays as it is.  Order: write the sweep document (the doomed
   packs), copy, replace every index file that names a doomed pack by one without those
   entries (same time, so ages are kept), delete the doomed packs, delete the sweep and
   mark documents.  A crash anywhere leaves a vault that verifies and restores; the next
   prune finishes the sweep.
3. **Mark** the blobs of packs at least ``grace`` old that no point needs (skipping packs
   where they are less than ``repack_threshold`` of the bytes, unless the pack is all
   garbage).  Blobs of index files that appeared after step 1, and packs younger than the
   grace, are never marked: a backup running elsewhere may be about to reference them.
   With a grace of 0 the new mark is swept at once (for vaults nothing else writes to).

On storage with object lock (:mod:`strongroom.services.objectlocks`) a delete may be
refused while the object is still retained (:class:`~strongroom.errors.ObjectLocked`):
the object is kept and counted (``kept_by_lock``), a doomed pack that an index file
whose delete was refused still names is not deleted either, and the cycle's mark and
sweep stay, so the next prune finishes the sweep once the locks have lapsed (garbage
is never extended).

``check()`` is called before every destructive step (prune passes its lease's check,
which raises when the lease was lost).  With ``dry_run`` nothing is written: the report
says what would go.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import ObjectLocked
from ..models import iso, time_id, time_of
from ..repository import maintenance
from ..repository.pack import pack_name
from .gcstate import Mark, Sweep, cycles_on_storage, read_part
from .progress import Step
from .pruneplan import PackState, plan_mark, plan_sweep

if TYPE_CHECKING:
    from ..repository.repository import Repository

__all__ = ["GarbageCollector", "GcReport"]


@attrs.define
class GcReport:
    """What garbage collection did (or, dry, would do)."""

    cycles_swept: int = 0
    cycles_pending: int = 0
    blobs_marked: int = 0
    bytes_marked: int = 0
    blobs_deleted: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    bytes_copied: int = 0
    bytes_freed: int = 0
    kept_by_lock: int = 0


class GarbageCollector:
    """One garbage collection of ``repo`` (see the module docstring)."""

    def __init__(self, repo: Repository, *, grace: float, repack_threshold: float,
                 live_roots: Callable[[], list[bytes]], report: GcReport, clock: Callable[[], dt.datetime],
                 check: Callable[[], None] = lambda: None, dry_run: bool = False,
                 progress: Callable[[str], None] | None = None) -> None:
        self.repo = repo
        self.grace = grace
        self.repack_threshold = repack_threshold
        self.live_roots = live_roots
        self.report = report
        self.clock = clock
        self.check = check
        self.dry_run = dry_run
        self._progress = progress or (lambda message: None)

    def run(self) -> None:
        now = self.clock()
        state = self._load()
        for cycle, parts in sorted(cycles_on_storage(self.repo).items()):
            mark = read_part(self.repo, cycle, "mark")
            if mark is None:  # a sweep finished all but removing its own document
                self._forget(cycle)
            elif "sweep" in parts or mark.sweepable(now):
                state = self._sweep(mark, state)
            else:
                self.report.cycles_pending += 1
        mark = self._mark(state, self.clock())
        if mark is not None and mark.sweepable(self.clock()):
            self.report.cycles_pending -= 1
            self._sweep(mark, self._load() if not self.dry_run else state)

    # --- 1. load -----------------------------------------------------------------------

    def _load(self) -> PackState:
        self._progress("reading the index")
        files = sorted(self.repo.list_names("index/"))
        state = PackState.from_files(self.repo.read_index_files(files), time_of)
        self._progress("finding the data points need")
        state.find_live(self.repo, self.live_roots())
        return state

    # --- 2. sweep ----------------------------------------------------------------------

    def _sweep(self, mark: Mark, state: PackState) -> PackState:
        self._progress(f"sweeping {mark.cycle}")
        old = read_part(self.repo, mark.cycle, "sweep")
        plan = plan_sweep(mark, state, self.repack_threshold, old.doomed if isinstance(old, Sweep) else frozenset())
        self.report.cycles_swept += 1
        self.report.blobs_deleted += plan.dead_blobs
        self.report.packs_deleted += len(plan.delete)
        self.report.packs_repacked += len(plan.repack)
        self.report.bytes_copied += sum(e.length for e in plan.copy)
        if self.dry_run:
            self.report.bytes_freed += plan.bytes_doomed - sum(e.length for e in plan.copy)
            return state
        if plan.doomed:
            sweep = Sweep(mark.cycle, iso(self.clock()), plan.doomed)
            self.repo.put_document(sweep.name, sweep.to_dict())
            self.check()
            copied = maintenance.copy_blobs(self.repo, list(plan.copy))
            for pack_id in {e.pack_id for e in copied}:
                self.report.bytes_freed -= self.repo.store.size(pack_name(pack_id))
            self.check()
            held: set[str] = set()  # doomed packs still named by an index file that stays
            for name, entries in state.files:
                if any(e.pack_id in plan.doomed for e in entries):
                    try:
                        maintenance.replace_index_file(
                            self.repo, name, [e for e in entries if e.pack_id not in plan.doomed])
                    except ObjectLocked:
                        self.report.kept_by_lock += 1
                        held |= {e.pack_id for e in entries if e.pack_id in plan.doomed}
            kept = 0
            doomed = sorted(plan.doomed)
            for number, pack_id in enumerate(doomed):
                self._progress(Step(f"deleting packs: {number}/{len(doomed)}", done=number, total=len(doomed),
                                    unit="packs"))
                self.check()
                try:
                    if pack_id not in held:
                        self.report.bytes_freed += maintenance.delete_pack(self.repo, pack_id)
                        continue
                except ObjectLocked:
                    pass
                kept += 1
                self.report.kept_by_lock += 1
                self.report.packs_deleted -= pack_id in plan.delete
            if kept or held:  # the next prune finishes this sweep
                return self._load()
        self._forget(mark.cycle)
        return self._load() if plan.doomed else state

    def _forget(self, cycle: str) -> None:
        if not self.dry_run:
            try:
                self.repo.store.delete(f"prune/{cycle}/sweep")
                self.repo.store.delete(f"prune/{cycle}/mark")
            except ObjectLocked:  # a bucket's default retention: the next prune forgets it
                self.report.kept_by_lock += 1

    # --- 3. mark -----------------------------------------------------------------------

    def _mark(self, state: PackState, now: dt.datetime) -> Mark | None:
        self._progress("marking unneeded data")
        pending: set[tuple[str, bytes]] = set()
        for cycle in cycles_on_storage(self.repo):
            found = read_part(self.repo, cycle, "mark")
            if isinstance(found, Mark):
                for marked in (found.packs, found.duplicates):
                    pending.update((pack, blob) for pack, blobs in marked.items() for blob in blobs)
        grace = self.grace
        young_limit = now - dt.timedelta(seconds=grace) if grace else dt.datetime.max.replace(tzinfo=dt.timezone.utc)
        garbage, duplicates = plan_mark(state, young_limit, self.repack_threshold, pending)
        if not garbage and not duplicates:
            return None
        mark = Mark(time_id(now), now, grace, garbage, duplicates)
        for marked in (garbage, duplicates):
            self.report.blobs_marked += sum(len(b) for b in marked.values())
            self.report.bytes_marked += sum(state.packs[p][b].length for p, blobs in marked.items() for b in blobs)
        self.report.cycles_pending += 1
        if not self.dry_run:
            self.check()
            self.repo.put_document(mark.name, mark.to_dict())
        return mark
