"""A backup: the workload's source entries become a committed recovery point.

:meth:`BackupService.run` backs up one protected item:

1. the item must be ``protected``; ``retain_until`` must be ahead (and past the floors);
2. a ``backup`` job is recorded around everything below, and the plugins' hooks run
   around it (``hooks.before_backup``, ``hooks.around_backup``, ``hooks.point_created``);
3. the vault head is checked (:mod:`.head`): storage that went back to an older state
   (a point header gone, an index file that a prune or rebuild-index removed put back)
   stops the backup with :class:`~strongroom.errors.RollbackDetected` before the index
   is taken as the truth for deduplication; the index is brought up to date (after the
   heads are read), prune's marks and sweeps are read
   (:class:`~strongroom.engine.gcstate.GcView`, after the index), and packs that no index
   names (an interrupted backup's) are adopted;
4. the workload yields source entries (given a :class:`~strongroom.contexts.BackupContext`
   with a view of the item's latest point, and the vault's local folder if it has one)
   and the engine stores them; a workload that returns a context manager instead has it
   entered first and exited once the engine has read every entry (its snapshot is
   released then).  The parent is the item's latest *intact* point that is not
   soft-deleted (a point whose header is damaged, or a soft-deleted one, is never one).  If
   the top of its tree cannot be read, even with the index files written since the index
   was loaded (another backup of the item may have committed it meanwhile), the backup goes on
   without a parent; a deeper folder of it that cannot be read is backed up without the
   parent's copy of that folder (:mod:`~strongroom.engine.backup`); either way with a
   warning on the point;
5. data a prune marked meanwhile and this point needs is rescued, the point's initial
   retention is computed, and its header is written: the commit (with the operator's
   ``tags``, this host's name and the source's paths, for ``points --tag/--host/--path``).
   Until then nothing
   refers to the new data, so a failed or killed backup leaves no point and the next
   backup reuses the packs it uploaded.  A vault head then records the point.

:meth:`BackupService.copy_in` commits a point from entries the caller yields instead of
the workload's (a point copied from another vault, ``strongroom copy``): the same steps 3
to 5, recorded as a ``backup`` job with trigger ``copy``, without the backup hooks (nothing
is quiesced: no source is read), and with header fields the caller gives (the original
point's time, host, paths and tags, and where it came from in ``extra``).

Foreign objects the backup met in its listings (names that are not the vault's, such as
a sync tool's ``data/ab/desktop.ini``: :mod:`strongroom.repository.names`) are left
alone and make one warning on the point, with their count.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import attrs

from ..catalog.tree import FAST_FROM_ENTRIES, decode_fast_now
from ..contexts import BackupContext, PointView
from ..errors import IntegrityError, ItemStateError
from ..models import PROTECTED, ProtectedItem, RecoveryPoint, iso, new_id
from ..policy.retention import PointFacts
from ..storage.fsspec_store import local_folder_of

if TYPE_CHECKING:
    from ..catalog.tree import TreeReader
    from ..results import BackupStats
    from ..repository.indexstate import IndexState
    from ..repository.repository import Repository
    from ..workload import Workload
    from .head import HeadService
    from .hooks import VaultHooks
    from .items import ItemBook
    from .jobs import JobLog
    from .points import PointBook
    from .retention import Retention
    from .settings import SettingsBook

__all__ = ["BackupService"]


class BackupService:
    """Backs up items of one vault."""

    def __init__(self, repo: Repository, index: IndexState, settings: SettingsBook, items: ItemBook,
                 points: PointBook, retention: Retention, jobs: JobLog, hooks: VaultHooks,
                 workload: Callable[[str], Workload], clock: Callable[[], dt.datetime], heads: HeadService) -> None:
        self.repo = repo
        self.index = index
        self.settings = settings
        self.items = items
        self.points = points
        self.retention = retention
        self.jobs = jobs
        self.hooks = hooks
        self.workload = workload
        self.clock = clock
        self.heads = heads

    def run(self, name: str, *, progress: Callable[[BackupStats], None] | None = None,
            retain_until: dt.datetime | None = None, trigger: str = "on_demand",
            slot: dt.datetime | None = None, tags: Sequence[str] = ()) -> RecoveryPoint:
        """Back up item ``name`` now; ``retain_until`` keeps the point at least that long;
        ``trigger`` and ``slot`` record a scheduled run (``run-due``); ``tags`` go into the
        point header (``user_tags``)."""
        item = self.items.get(name)
        if item.state != PROTECTED:
            raise ItemStateError(item=item.name, state=item.state, reason="backups need a protected item; resume it first")
        if retain_until is not None:
            self.retention.check_retain_until(retain_until)
        with self.jobs.running("backup", item.name, trigger=trigger, slot=iso(slot) if slot else None) as run:
            self.hooks.before_backup(item)
            point = self.hooks.around_backup(item, lambda: self._commit(item, progress, retain_until, trigger, tags))
            self.hooks.point_created(item, point)
            run.end("completed_with_warnings" if point.warnings else "completed", point=point.point_id,
                    bytes=point.stats.get("bytes_read", 0), warnings=point.warnings,
                    details={**run.job.details, "stats": point.stats})
        return point

    def copy_in(self, name: str, produce: Callable[[BackupContext], Iterable[Any]], *, header: dict,
                progress: Callable[[BackupStats], None] | None = None) -> RecoveryPoint:
        """Commit a point of item ``name`` from the source entries ``produce(ctx)`` yields
        (see the module docstring); ``header`` overrides fields of the new point's header
        (``created``, ``host``, ``paths``, ``user_tags``, ``consistency``, ``extra``)."""
        item = self.items.get(name)
        if item.state != PROTECTED:
            raise ItemStateError(item=item.name, state=item.state, reason="copies need a protected item; resume it first")
        with self.jobs.running("backup", item.name, trigger="copy") as run:
            point = self._commit(item, progress, None, "copy", produce=produce, header=header)
            run.end("completed_with_warnings" if point.warnings else "completed", point=point.point_id,
                    bytes=point.stats.get("bytes_read", 0), warnings=point.warnings,
                    details={**run.job.details, "stats": point.stats})
        return point

    def _commit(self, item: ProtectedItem, progress: Callable[[BackupStats], None] | None,
                retain_until: dt.datetime | None, trigger: str, tags: Sequence[str] = (), *,
                produce: Callable[[BackupContext], Any] | None = None, header: dict | None = None) -> RecoveryPoint:
        from ..engine.backup import BackupEngine
        from ..engine.gcstate import GcView

        repo = self.repo
        damaged_index: list[str] = []

        def load_index() -> frozenset[str]:
            damaged_index[:] = self.index.refresh(tolerant=True)
            return self.index.files

        self.heads.require(index_files=load_index)  # a rolled-back index is no truth for deduplication
        gc = GcView.load(repo, self.index.files)  # after the index: see gcstate's rules
        # packs no readable index file names (an interrupted backup's, or those of a damaged
        # index file) are indexed anew from their trailers
        adopted, _ = repo.adopt_packs(repo.pack_ids_on_storage() - repo.index.named_pack_ids() - gc.doomed)
        workload = self.workload(item.workload)
        parents = self.points.of(item)
        parent = parents[-1] if parents else None
        parent_tree, lost = self._parent_tree(parent)
        if parent_tree is not None and _entries_of(parent) >= FAST_FROM_ENTRIES:
            decode_fast_now()  # the walk reads every folder of it
        if lost:
            parent = None
        ctx = BackupContext(item, PointView(item, parent, repo, parent_tree) if parent and parent_tree else None,
                            vault_location=local_folder_of(repo.store))
        engine = BackupEngine(repo, self.settings.chunker, progress=progress, parent=parent_tree,
                              compression_level=self.settings.current.compression_level)
        ctx._progress = engine.workload_progress
        produced = (produce or workload.backup)(ctx)
        entered = produced if hasattr(produced, "__enter__") else contextlib.nullcontext(produced)
        with gc.masking(repo), entered as entries:  # a context manager exits once every entry is read
            result = engine.run(entries)
        now = self.clock()
        stats = result.stats.to_dict()
        stats["packs_adopted"] = adopted
        stats["blobs_rescued"] = gc.before_commit(repo, result.root, now, item.name)
        point_id = new_id(8)
        made = dt.datetime.fromisoformat(header["created"]) if header and "created" in header else now
        verdicts = self.retention.evaluate(item, parents, now, extra=PointFacts(point_id, made, retain_until))
        verdict = next(v for v in verdicts if v.point_id == point_id)
        point = RecoveryPoint(
            point_id=point_id, item_id=item.item_id, item_name=item.name, workload=item.workload,
            created=iso(now), root=result.root.hex(), parent=parent.point_id if parent else None,
            consistency=ctx.consistency or workload.consistency, stats=stats,
            warnings=tuple(ctx.warnings) + result.warnings + tuple(lost) + tuple(
                f"{problem}; skipped: packs only it named are indexed from their trailers"
                " (run 'strongroom vault repair --apply' to set it aside)" for problem in damaged_index)
            + _foreign_warning(repo.foreign),
            expires_at=iso(verdict.expires_at) if verdict.expires_at else None, tags=verdict.tags,
            retain_until=iso(retain_until) if retain_until else None, trigger=trigger,
            user_tags=tuple(dict.fromkeys(tags)), host=socket.gethostname(), paths=_source_paths(item),
        )
        if header:
            point = attrs.evolve(point, **header)
        repo.put_document(point.object_name, point.to_dict())  # the commit point
        self.heads.record("backup")
        return point

    def _parent_tree(self, parent: RecoveryPoint | None) -> tuple[TreeReader | None, list[str]]:
        """The tree of the parent point, if at least its top folder can be read; else
        None and the warning to put on the new point."""
        if parent is None:
            return None, []
        try:
            return self._readable_tree(parent), []
        except IntegrityError:
            # another backup may have committed the parent after this one loaded the index:
            # the index files written since then name its tree nodes
            self.index.refresh(tolerant=True)
        try:
            return self._readable_tree(parent), []
        except IntegrityError as exc:
            return None, [f"the parent point {parent.short_id} cannot be read ({exc}); backed up without a parent"]

    def _readable_tree(self, point: RecoveryPoint) -> TreeReader:
        """The tree of ``point``, its top folder read (IntegrityError if it cannot be)."""
        tree = self.points.tree(point)
        tree.listdir("")
        return tree


def _entries_of(point: RecoveryPoint) -> int:
    """How many files and folders ``point`` lists, as its stats say (0 if they do not)."""
    counts = [point.stats.get(key) for key in ("files", "dirs")]
    return sum(count for count in counts if isinstance(count, int))


def _source_paths(item: ProtectedItem) -> tuple[str, ...]:
    """The paths the item's source lists (``paths`` of a files item), as text; none otherwise."""
    paths = item.source.get("paths")
    return tuple(str(p) for p in paths) if isinstance(paths, (list, tuple)) else ()


def _foreign_warning(foreign: set[str]) -> tuple[str, ...]:
    """The one warning about the foreign objects met, if any."""
    if not foreign:
        return ()
    return (f"{len(foreign)} foreign object(s) on storage (names that are not the vault's, such as"
            f" {min(foreign)}) were left alone; 'strongroom vault verify' lists them",)
