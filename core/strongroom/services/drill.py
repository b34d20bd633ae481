"""Restore drills: a point restored into a scratch location, checked, removed, recorded.

:meth:`DrillService.drill` is a ``drill`` job.  It opens a point of an item (the latest
intact one, or the one ``ref`` names, as restore does: a damaged header or a
soft-deleted point is refused the same way), makes an empty scratch folder (under
``scratch_root``, default the system's temporary folder), and hands both to the item's
workload (:meth:`strongroom.workload.Workload.drill`): the default restores the point's
tree as files and compares every file's size and SHA-256 with the point's; a workload
may drill its own way (a scratch database, disks compared chunk by chunk).  The report's
``method`` says how; for a workload other than files without a drill of its own, it says
that the check was file-level only.

The scratch folder is always removed, whatever the drill did or raised; the report says
whether it is gone.  The job records the report in its ``details`` (``report``) and the
mismatches under ``problems``; a drill with a mismatch ends the job ``failed`` (so the
vault raises a ``drill.failed`` alert naming them, :mod:`.alertrules`) and raises an
:class:`~strongroom.errors.IntegrityError` naming the first mismatches (its ``report``
attribute holds the :class:`DrillReport`); a scratch
folder that could not be removed is a warning.  Nothing is written to the vault but
the job record.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from typing import TYPE_CHECKING, Callable

import attrs

from ..errors import IntegrityError
from ..workload import Workload

if TYPE_CHECKING:
    from ..contexts import PointContext
    from .jobs import JobLog

__all__ = ["DrillReport", "DrillService"]

#: Mismatches named in the error line (the job and the report keep them all, up to MAX_KEPT).
SHOWN = 3
#: Mismatches kept in the report and the job record.
MAX_KEPT = 1000


@attrs.frozen
class DrillReport:
    """The outcome of one drill (``strongroom drill --json`` prints :meth:`to_dict`)."""

    item: str
    point: str
    workload: str
    method: str
    files: int
    bytes: int
    mismatches: tuple[str, ...]
    seconds: float
    scratch: str
    scratch_removed: bool
    source: str = "primary"

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict:
        doc = attrs.asdict(self)
        doc["mismatches"] = list(self.mismatches)
        doc["ok"] = self.ok
        return doc


def _remove(path: str) -> bool:
    """Remove the scratch folder, read-only entries included; whether it is gone."""
    def retry(func, name, _exc) -> None:
        try:
            os.chmod(os.path.dirname(name), 0o700)
            if not os.path.islink(name):
                os.chmod(name, stat.S_IMODE(os.lstat(name).st_mode) | 0o700)
            func(name)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)
    return not os.path.lexists(path)


class DrillService:
    """Restore drills of one vault's items."""

    def __init__(self, open_point: Callable[[str, str | None], PointContext], jobs: JobLog,
                 workload: Callable[[str], Workload], scratch_root: str | None = None) -> None:
        self.open_point = open_point
        self.jobs = jobs
        self.workload = workload
        self.scratch_root = scratch_root

    def drill(self, name: str, ref: str | None = None, *, source: str = "primary",
              trigger: str = "on_demand") -> DrillReport:
        """Drill a point of item ``name`` (see the module docstring); ``source`` names the
        copy of the vault read (``primary``, ``secondary``) in the report; ``trigger``
        (``on_demand``, ``scheduled``: run-due's) is kept in the job's details."""
        with self.jobs.running("drill", name, ref=ref, source=source, trigger=trigger) as run:
            ctx = self.open_point(name, ref)
            workload = self.workload(ctx.item.workload)
            started = time.monotonic()
            scratch = tempfile.mkdtemp(prefix="strongroom-drill-", dir=self.scratch_root)
            try:
                result = workload.drill(ctx, scratch)
            finally:
                removed = _remove(scratch)
            method = result.method
            if type(workload).drill is Workload.drill and workload.name != "files":
                method += f"; a file-level check only: the {workload.name} workload has no drill of its own"
            report = DrillReport(
                item=name, point=ctx.point.point_id, workload=workload.name or ctx.item.workload,
                method=method, files=result.files, bytes=result.bytes,
                mismatches=tuple(result.mismatches[:MAX_KEPT]), seconds=round(time.monotonic() - started, 3),
                scratch=scratch, scratch_removed=removed, source=source)
            warnings = () if removed else (f"the scratch folder {scratch} could not be removed",)
            details = {"report": report.to_dict(), "problems": list(report.mismatches[:100])}
            if report.ok:
                run.end("completed_with_warnings" if warnings else "completed", point=report.point,
                        bytes=report.bytes, warnings=warnings, details=details)
            else:
                run.end("failed", point=report.point, bytes=report.bytes, warnings=warnings, details=details,
                        error=f"{len(result.mismatches)} mismatch(es): {_shown(result.mismatches)}")
        if not report.ok:
            error = IntegrityError(what=f"recovery point {ctx.point.short_id} of '{name}'",
                                   reason=f"restore drill: {len(result.mismatches)} mismatch(es): "
                                          f"{_shown(result.mismatches)}")
            error.report = report  # for a caller that shows the report too (drill --json)
            raise error
        return report


def _shown(mismatches) -> str:
    more = f" (and {len(mismatches) - SHOWN} more)" if len(mismatches) > SHOWN else ""
    return "; ".join(mismatches[:SHOWN]) + more
