"""Reading points back: browse, item-level and whole restore, through the item's workload.

Every restore is a ``restore`` job.  The workload does the restoring with a
:class:`~strongroom.contexts.PointContext`; a result that lists files or folders whose
data was damaged or missing fails the job with an :class:`~strongroom.errors.IntegrityError`
naming them (everything else was restored), and the plugins' ``after_restore`` hook
runs only after a restore without errors.  What the target refused is raised by the
restore itself (:class:`~strongroom.errors.TargetError`), and fails the job the same way.

A damaged point header is never opened: asking for that point is an
:class:`~strongroom.errors.IntegrityError`.  Neither is a soft-deleted point
(:mod:`.softdelete`): asking for it is :class:`~strongroom.errors.PointSoftDeleted`,
naming the undelete command.  "The latest point" is the latest intact one that is not
soft-deleted (:class:`~.points.PointBook`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import attrs

from ..errors import IntegrityError

if TYPE_CHECKING:
    from ..contexts import PointContext
    from ..results import RestoreResult, RestoreStats
    from ..workload import BrowseItem, Workload
    from .hooks import VaultHooks
    from .items import ItemBook
    from .jobs import JobLog
    from .points import PointBook

__all__ = ["RestoreService"]


class RestoreService:
    """Browse and restore the points of one vault's items."""

    def __init__(self, items: ItemBook, points: PointBook, jobs: JobLog, hooks: VaultHooks,
                 workload: Callable[[str], Workload]) -> None:
        self.items = items
        self.points = points
        self.jobs = jobs
        self.hooks = hooks
        self.workload = workload

    def open(self, name: str, ref: str | None = None,
             progress: Callable[[RestoreStats], None] | None = None, *,
             options: dict | None = None) -> PointContext:
        """A point of item ``name`` (the latest, or the one whose id starts with ``ref``);
        ``options``: the restore's."""
        item = self.items.get(name)
        return self.points.context(item, self.points.find(item, ref), progress, options=options)

    def browse(self, name: str, ref: str | None = None, path: str = "") -> list[BrowseItem]:
        ctx = self.open(name, ref)
        return self.workload(ctx.item.workload).browse(ctx, path)

    def restore(self, name: str, ref: str | None, target: str | None, paths: Sequence[str] = (), *,
                options: dict | None = None,
                progress: Callable[[RestoreStats], None] | None = None) -> RestoreResult:
        """Restore a point of ``name``; ``options`` are the workload's restore options."""
        with self.jobs.running("restore", name, target=target, paths=list(paths)) as run:
            ctx = self.open(name, ref, progress, options=options)
            result = self.workload(ctx.item.workload).restore(ctx, target, paths, dict(options or {}))
            damaged_index = self.points.index.problems
            if damaged_index:
                result = attrs.evolve(result, warnings=result.warnings + tuple(
                    f"{problem}; its packs were read from their own trailers"
                    " (run 'strongroom vault repair --apply')" for problem in damaged_index))
            if result.errors:
                shown = "; ".join(result.errors[:3])
                more = f" (and {len(result.errors) - 3} more)" if len(result.errors) > 3 else ""
                raise IntegrityError(
                    what=f"recovery point {ctx.point.short_id}",
                    reason=f"{len(result.errors)} path(s) not restored, everything else was: {shown}{more}",
                )
            self.hooks.after_restore(ctx.point, target)
            run.end("completed_with_warnings" if result.warnings else "completed", point=ctx.point.point_id,
                    bytes=result.stats.bytes_written, warnings=result.warnings,
                    details={"stats": result.stats.to_dict()})
        return result
