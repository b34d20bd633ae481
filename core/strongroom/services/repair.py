"""Repair and rebuild-index: an index of intact copies only, damage moved aside, losses named.

:meth:`RepairService.run` (``strongroom vault repair``) is a ``repair`` job.  It reads
every index file, every pack on storage (each blob opened and re-hashed,
:mod:`strongroom.engine.packscan`) and every point header, point status and settings
document, then decides (:func:`strongroom.engine.repair.plan_copies`):

- the new index names one intact copy of every blob, preferring the copy the current
  index names; intact blobs found only in damaged packs are copied out into new packs;
- damaged packs, damaged index files, point headers, point statuses and settings
  documents are moved aside under ``quarantine/`` (their names kept), never deleted.  A
  point whose header is damaged cannot be recovered: it is reported as lost.  A point
  whose status is moved aside falls back to an older status or its header's retention,
  until the next prune re-evaluates it;
- every point's tree is walked (:mod:`.losses`): the report names each point and file
  (point path) that needs data no intact copy holds.

Blobs that are lost are left out of the new index, so the next backup of an item stores
again any data it can still read from its source (the engine re-reads a file whose
chunks the index lacks, and does not deduplicate against what is not indexed).

Healing: ``heal(blob_id) -> bytes | None`` is asked for each blob a point needs and no
intact copy holds, before it is declared lost; it returns the blob's plaintext from
elsewhere (a replica) or None.  Plaintext whose keyed hash is not the blob id is
ignored.  Healed blobs are written into new packs.

The geo secondary (``secondary``, :mod:`.heal`): when the vault has one and it answers,
its checked copies are the ``heal`` of every blob, and the damaged or gone documents it
holds intact are copied back first (:mod:`.copyback`: only documents whose copy opens
under their own name, and only those damaged here or that the vault head lists as gone,
so nothing older replaces anything newer); the rest of the repair then sees the vault as
restored (a dry run reads the copies as if they were back).  A blob or document damaged
on both sides stays damaged: lost, as without the secondary.  A secondary that cannot be
reached is a one-line note (``secondary_error``); the repair does what it can here.

Rollback (:mod:`.head`): the repair reports what the vault head's check finds
(``rollback``).  Index files that a prune or rebuild-index removed and that are back
make the index be rewritten from the packs, which removes them.  What else went
backwards (a point header, a settings or item version, a key slot gone; a removed key
slot back; heads older than this client saw) stays a finding (``rollback_open``) unless
``accept_rollback`` is given: then the repair's vault head records storage as it is.  An
applied repair that changes anything writes a vault head, announcing the documents it
moves aside before it moves them; rebuild-index writes one too (a new index generation).

Without ``apply`` nothing is written but the job record: the report says what would be
done.  With ``apply`` the repair holds the exclusive lease (the one prune and
rebuild-index take, since it rewrites index files) and writes in the order of
:func:`strongroom.engine.repair.apply_copies`, then moves the damaged documents aside.
A vault with nothing to repair is left as it is.

:meth:`RepairService.rebuild_index` (``strongroom vault rebuild-index``) is the same
repair of packs and index, applied at once, without the documents and the walk of the
points; it is not a job.  With ``dry_run`` it reads every pack the same way and reports
what it would write, move aside and replace, taking no lease and writing nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import IntegrityError
from ..models import RecoveryPoint, VaultSettings
from ..repository.index import Index
from ..repository.indexstate import INDEX_PREFIX
from ..repository.pack import IndexEntry, pack_name
from .copyback import Copyback, apply_copyback, plan_copyback, without_restored
from .items import ITEM_PREFIX
from .losses import find_losses
from .points import POINT_PREFIX
from .pointstatus import STATUS_PREFIX, PointStatus
from .policies import POLICY_PREFIX
from .settings import SETTINGS_PREFIX
from .verify import read_documents

if TYPE_CHECKING:
    from ..engine.repair import CopyPlan, CopyResult
    from ..repository.indexstate import IndexState
    from ..repository.repository import Repository
    from .head import HeadService, Rollback
    from .heal import Secondary, SecondaryCopies
    from .items import ItemBook
    from .jobs import JobLog

__all__ = ["Heal", "RepairReport", "RepairService"]

#: ``heal(blob_id)``: the blob's plaintext from elsewhere, or None.
Heal = Callable[[bytes], "bytes | None"]


@attrs.define
class RepairReport:
    """What a repair found and did (or, in a dry run, would do)."""

    dry_run: bool
    damage: list[str] = attrs.field(factory=list)
    packs_read: int = 0
    bytes_read: int = 0
    blobs_indexed: int = 0
    blobs_rescued: int = 0
    blobs_healed: int = 0
    blobs_lost: int = 0
    moved_aside: list[str] = attrs.field(factory=list)
    index_files_written: int = 0
    index_files_removed: int = 0
    lost_points: list[dict] = attrs.field(factory=list)
    lost_files: list[dict] = attrs.field(factory=list)
    rollback: list[str] = attrs.field(factory=list)  # what the vault head's check found
    rollback_accepted: bool = False
    rollback_open: str = ""  # what went backwards and stays so, in one line (empty: nothing)
    secondary: str | None = None  # the geo secondary healed from (its URL), if any
    secondary_error: str = ""  # why it could not be (one line)
    objects_restored: list[str] = attrs.field(factory=list)  # documents copied back from the secondary
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No point has lost data that no intact copy (or ``heal``) supplies."""
        return not self.lost_points and not self.lost_files

    @property
    def changes(self) -> bool:
        """Whether the repair found damage or changes (or would change) anything."""
        return bool(self.damage or self.moved_aside or self.index_files_written or self.rollback
                    or self.objects_restored)

    def to_dict(self) -> dict:
        doc = attrs.asdict(self)
        doc["ok"] = self.ok
        return doc


@attrs.frozen
class _IndexFiles:
    """The index files as stored: names, damaged ones, and the index they make."""

    names: tuple[str, ...]
    damaged: dict[str, str]
    current: Index
    by_pack: dict[str, list[IndexEntry]]


class RepairService:
    """Repairs one vault (see the module docstring)."""

    def __init__(self, repo: Repository, index: IndexState, items: ItemBook, jobs: JobLog,
                 lease_ttl: Callable[[], float], clock: Callable[[], dt.datetime], heads: HeadService) -> None:
        self.repo = repo
        self.index = index
        self.items = items
        self.jobs = jobs
        self.lease_ttl = lease_ttl
        self.clock = clock
        self.heads = heads

    def run(self, *, apply: bool = False, heal: Heal | None = None,
            progress: Callable[[str], None] | None = None, accept_rollback: bool = False,
            secondary: Secondary | None = None) -> RepairReport:
        """Repair the vault (``apply``) or say what a repair would do; ``accept_rollback``:
        take storage as it is where it went backwards; ``secondary``: the geo secondary
        reached, to heal from (see the module docstring)."""
        from ..repository.leases import Lease

        report = RepairReport(dry_run=not apply)
        if secondary is not None:
            report.secondary, report.secondary_error = secondary.url, secondary.error
        copies = secondary.copies if secondary is not None else None
        if heal is None and copies is not None:
            heal = copies.blob
        if not apply:
            with self.jobs.running("repair", None, apply=False) as run:
                self._repair(report, None, heal, progress, accept_rollback, copies)
                run.end("completed", bytes=report.bytes_read, details=_job_details(report))
            return report
        with Lease(self.repo, "repair", ttl=self.lease_ttl(), clock=self.clock) as lease, \
                self.jobs.running("repair", None, apply=True) as run:
            try:
                self._repair(report, lease.check, heal, progress, accept_rollback, copies)
            finally:
                self.index.forget()
            losses = [loss["description"] for loss in report.lost_points + report.lost_files]
            run.end("completed" if report.ok else "completed_with_warnings", bytes=report.bytes_read,
                    warnings=tuple(losses[:100]), details=_job_details(report))
        return report

    def rebuild_index(self, progress: Callable[[str], None] | None = None, *,
                      dry_run: bool = False) -> RepairReport:
        """Rewrite the index from every pack, naming intact copies only; damaged packs
        are moved aside (see the module docstring).  ``dry_run``: read every pack the same
        way and report what would be written, moved and replaced; no lease, nothing written."""
        from ..engine.repair import apply_copies
        from ..repository.leases import Lease

        report = RepairReport(dry_run=dry_run)
        started = time.monotonic()
        if dry_run:
            try:
                files = self._index_files(report, progress)
                plan = self._plan(files, report, progress)
            finally:
                self.index.forget()
            report.blobs_lost = len(plan.lost)
            report.blobs_rescued = len(plan.rescue)
            report.moved_aside = [pack_name(p) for p in sorted(plan.quarantine)] + sorted(files.damaged)
            report.index_files_written = bool(plan.chosen) + bool(plan.extra)
            report.index_files_removed = len(files.names)
            report.seconds = round(time.monotonic() - started, 3)
            return report
        with Lease(self.repo, "rebuild-index", ttl=self.lease_ttl(), clock=self.clock) as lease:
            try:
                files = self._index_files(report, progress)
                plan = self._plan(files, report, progress)
                report.blobs_lost = len(plan.lost)
                done = apply_copies(self.repo, plan, {}, old_index_files=files.names,
                                    damaged_index_files=files.damaged, check=lease.check)
                _applied(report, done)
                self.heads.record("rebuild-index", index_before=files.names)
            finally:
                self.index.forget()
        report.seconds = round(time.monotonic() - started, 3)
        return report

    # --- the steps ---------------------------------------------------------------------

    def _repair(self, report: RepairReport, check: Callable[[], None] | None, heal: Heal | None,
                progress: Callable[[str], None] | None, accept_rollback: bool = False,
                copies: SecondaryCopies | None = None) -> None:
        from ..engine.repair import apply_copies, move_aside

        started = time.monotonic()
        found = self.heads.check()  # before the index files are listed (services/head.py)
        report.rollback = list(found.lines)
        points, bad_docs = self._documents()
        back = Copyback()
        if copies is not None:  # documents first: the rest of the repair sees them back
            if progress is not None:
                progress("copying back documents from the secondary")
            others = [bad for prefix in (ITEM_PREFIX, POLICY_PREFIX)
                      for bad in read_documents(self.repo, prefix, lambda doc: doc)[1]]
            back = plan_copyback(self.repo, self.heads, [name for name, _ in bad_docs + others], copies)
            if back and check is not None:
                report.objects_restored = apply_copyback(self.repo, back, check)
                found = self.heads.check()  # what is still gone
            else:
                report.objects_restored = back.names
                found = without_restored(found, back.names)
            restored = set(report.objects_restored)
            report.damage += [f"{name}: {problem}; {'restored' if check is not None else 'to be restored'}"
                              " from the intact copy on the secondary"
                              for name, problem in bad_docs + others if name in back.damaged and name in restored]
            if check is not None and restored:
                points, bad_docs = self._documents()
            elif restored:  # a dry run: the copies as if they were back
                bad_docs = [(name, problem) for name, problem in bad_docs if name not in restored]
                points += [RecoveryPoint.from_dict(copies.opened(name, sealed))
                           for name, sealed in sorted({**back.damaged, **back.gone}.items())
                           if name.startswith(POINT_PREFIX)]
        files = self._index_files(report, progress)
        plan = self._plan(files, report, progress)
        bad_points = [(name, problem) for name, problem in bad_docs if name.startswith(POINT_PREFIX)]
        report.damage += [f"{name}: {problem}" for name, problem in bad_docs]
        names = self._item_names()
        for name, problem in bad_points:
            item_id, point_id = name.split("/")[1:3] if name.count("/") >= 2 else ("?", name)
            item = names.get(item_id, item_id)
            report.lost_points.append({"item": item, "point": point_id, "reason": problem,
                                       "description": f"{item}@{point_id[:8]}: its header is damaged;"
                                                      " the point cannot be recovered"})
        if progress is not None:
            progress("finding what the points need")
        healed: dict[bytes, tuple[int, bytes]] = {}
        lost: set[bytes] = set()
        losses = find_losses(points, self._have(plan, heal, healed, lost), self._tree_reader(plan, healed))
        report.lost_files = [{**loss.to_dict(), "description": loss.describe()} for loss in losses]
        report.blobs_lost = len(lost)
        report.blobs_healed = len(healed)
        rewrite = bool(report.damage or healed or not _index_matches(files, plan) or found.replayed)
        if rewrite:
            if check is None:  # a dry run: say what would be done
                report.blobs_rescued = len(plan.rescue)
                report.moved_aside = ([pack_name(p) for p in sorted(plan.quarantine)] + sorted(files.damaged)
                                      + [name for name, _ in bad_docs])
                report.index_files_written = bool(plan.chosen) + bool(plan.extra)
                report.index_files_removed = len(files.names)
            else:
                _applied(report, apply_copies(self.repo, plan, healed, old_index_files=files.names,
                                              damaged_index_files=files.damaged, check=check))
                check()  # the documents moved aside are announced before they go
                self.heads.record("repair", removed=[name for name, _ in bad_docs], index_before=files.names,
                                  accept=found if accept_rollback else None)
                for name, _ in bad_docs:
                    check()
                    if move_aside(self.repo.store, name) is not None:
                        report.moved_aside.append(name)
        elif check is not None and accept_rollback and found.found:
            self.heads.record("repair", accept=found)
        report.rollback_accepted = bool(found.found and accept_rollback and check is not None)
        left = found if check is None or not rewrite else found.without_index()
        report.rollback_open = "" if report.rollback_accepted else left.summary()
        report.seconds = round(time.monotonic() - started, 3)

    def _documents(self) -> tuple[list[RecoveryPoint], list[tuple[str, str]]]:
        """(intact point headers, [(name, problem)] of damaged point headers, point statuses
        and settings documents)."""
        points, bad = read_documents(self.repo, POINT_PREFIX, RecoveryPoint.from_dict)
        bad += read_documents(self.repo, STATUS_PREFIX, PointStatus.from_dict)[1]
        bad += read_documents(self.repo, SETTINGS_PREFIX, VaultSettings.from_dict)[1]
        return points, bad

    def _item_names(self) -> dict[str, str]:
        """item id -> name (empty if an item document cannot be read: ids are shown)."""
        try:
            return {item.item_id: item.name for item in self.items.list()}
        except (IntegrityError, KeyError, TypeError, ValueError):
            return {}

    def _index_files(self, report: RepairReport, progress: Callable[[str], None] | None) -> _IndexFiles:
        if progress is not None:
            progress("reading the index")
        names = tuple(sorted(self.repo.list_names(INDEX_PREFIX)))
        current = Index()
        damaged: dict[str, str] = {}
        by_pack: dict[str, list[IndexEntry]] = {}
        for name, entries in self.repo.read_index_files(names):
            if isinstance(entries, IntegrityError):
                damaged[name] = str(entries)
                report.damage.append(f"{name}: {entries}")
                continue
            current.add(entries)
            for entry in entries:
                by_pack.setdefault(entry.pack_id, []).append(entry)
        return _IndexFiles(names, damaged, current, by_pack)

    def _plan(self, files: _IndexFiles, report: RepairReport, progress: Callable[[str], None] | None) -> CopyPlan:
        from ..engine.packscan import scan_packs
        from ..engine.repair import plan_copies

        on_storage = self.repo.pack_ids_on_storage()
        checks = scan_packs(self.repo, on_storage, files.by_pack, progress=progress)
        plan = plan_copies(checks, files.current.lookup)
        report.packs_read, report.bytes_read = plan.packs_read, plan.bytes_read
        report.blobs_indexed = len(plan.available)
        report.damage += [f"{name}: named by the index but missing from storage"
                          for name in sorted(pack_name(p) for p in set(files.by_pack) - on_storage)]
        report.damage += list(plan.problems)
        for damage in plan.damaged:
            intact = plan.available.get(damage.entry.blob_id)
            where = f"an intact copy is in {pack_name(intact.pack_id)}" if intact is not None else "no intact copy"
            report.damage.append(f"{damage.describe()}; {where}")
        return plan

    def _have(self, plan: CopyPlan, heal: Heal | None, healed: dict[bytes, tuple[int, bytes]],
              lost: set[bytes]) -> Callable[[bytes, int], bool]:
        """Whether a blob will be readable after the repair; asks ``heal`` for the others
        and fills ``healed`` and ``lost``."""

        def have(blob: bytes, kind: int) -> bool:
            if blob in plan.available or blob in healed:
                return True
            if blob in lost:
                return False
            data = heal(blob) if heal is not None else None
            if data is not None and self.repo.blob_id(data) == blob:
                healed[blob] = (kind, bytes(data))
                return True
            lost.add(blob)
            return False
        return have

    def _tree_reader(self, plan: CopyPlan, healed: dict[bytes, tuple[int, bytes]]) -> Callable[[bytes], bytes | None]:
        def read_tree(blob: bytes) -> bytes | None:
            if blob in healed:
                return healed[blob][1]
            entry = plan.available[blob]
            try:
                return bytes(self.repo.read_blob(entry))
            except IntegrityError:  # its pack is missing, or it is damaged
                return None
        return read_tree



def _index_matches(files: _IndexFiles, plan: CopyPlan) -> bool:
    """Whether the index as stored already names the packs and copies the plan chooses
    (so rewriting it would change nothing a reader sees)."""
    planned = {e.pack_id for e in plan.chosen} | {e.pack_id for e in plan.extra}
    if files.damaged or plan.quarantine or set(files.by_pack) != planned:
        return False
    if len(files.current) != len(plan.available):
        return False
    return all(files.current.lookup(blob) == entry for blob, entry in plan.available.items())


def _applied(report: RepairReport, done: CopyResult) -> None:
    report.blobs_rescued = done.blobs_rescued
    report.blobs_healed = done.blobs_healed
    report.index_files_written = done.index_files_written
    report.index_files_removed = done.index_files_removed
    report.moved_aside = list(done.moved)


def _job_details(report: RepairReport) -> dict:
    """The report, with its long lists cut to their first 100 lines."""
    doc = report.to_dict()
    for key in ("damage", "moved_aside", "lost_points", "lost_files"):
        doc[key] = doc[key][:100]
    return doc
