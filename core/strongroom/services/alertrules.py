"""Which events of a vault raise which alerts (:mod:`.alerts`), and when they are over.

The kinds raised here (the security service raises its own, category ``security``):

============================  ========  ========  =====================================
kind                          category  severity  raised when; deduplicated by
============================  ========  ========  =====================================
``backup.failed``             job       error     a backup job failed; one per item until
                                                  acknowledged or a backup of the item
                                                  completes
``verify.problems``           job       error     verify found problems; one until
                                                  acknowledged or a verify completes
``restore.failed``,           job       error     a job of that type failed (every one)
``<type>.failed``
``schedule.missed``           job       warning   a scheduled item went three run times
                                                  without a run (:mod:`.schedule`); one per
                                                  item until acknowledged or it runs again
``rollback.detected``         security  critical  the storage went back to an older state
                                                  (:mod:`.head`); one per finding
``alerts.sink-removed``       security  critical  an alert sink was removed (sent to it too)
============================  ========  ========  =====================================

Cancelled jobs (Ctrl-C, SIGTERM) raise nothing: a person stopped them.  Nothing here
raises into the caller (:meth:`AlertBook.raise_alert` never does).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Iterable

from ..errors import StrongroomError
from ..models import Job, iso
from .alerts import Alert, AlertBook, alert_digest

if TYPE_CHECKING:
    from .alertsinks import SinkConfig
    from .head import Rollback
    from .schedule import Overdue

__all__ = ["check_overdue", "job_finished", "overdue_items", "rollback_detected", "sink_removed"]

#: Job types whose failures are deduplicated per item (or per vault), and end with a completed job.
_RECOVERS = {"backup": "backup.failed", "verify": "verify.problems"}


def _job_kind(job: Job) -> str:
    if job.type == "verify":
        return "verify.problems"
    return re.sub(r"[^a-z0-9-]", "-", job.type.lower())[:40] + ".failed"


def job_finished(book: AlertBook, job: Job) -> Alert | None:
    """A job ended: a failed one raises a job alert; a completed backup or verify
    resolves the failure alert it ends."""
    kind = _RECOVERS.get(job.type)
    dedupe = f"{kind}:{job.item or ''}" if kind else None
    if job.state in ("completed", "completed_with_warnings"):
        if dedupe is not None:
            book.resolve(dedupe)
        return None
    if job.state != "failed":
        return None
    what = f"{job.type} of '{job.item}'" if job.item else job.type
    summary = f"{what} failed: {job.error or 'no reason recorded'}"
    details = {"job_id": job.job_id, "job_type": job.type, "error": job.error, "host": job.host}
    if job.details.get("problems"):
        details["problems"] = list(job.details["problems"])[:20]
    if job.details.get("trigger"):
        details["trigger"] = job.details["trigger"]
    return book.raise_alert("job", _job_kind(job), summary, details=details, item=job.item, dedupe=dedupe)


def rollback_detected(book: AlertBook, found: Rollback) -> Alert | None:
    """The storage went back to an older state: a security alert, once per finding."""
    return book.raise_alert(
        "security", "rollback.detected", f"the vault's storage went back to an older state: {found.summary()}",
        details={"findings": list(found.lines[:50]), "advice": found.advice()},
        dedupe=f"rollback.detected:{alert_digest(*found.lines)}")


def sink_removed(book: AlertBook, sink: SinkConfig) -> Alert | None:
    """An alert sink is being removed: a security alert, sent to it as well."""
    return book.raise_alert("security", "alerts.sink-removed", f"alert sink '{sink.name}' ({sink.type}) was removed",
                            details={"sink": sink.name, "type": sink.type, "category": sink.category})


def check_overdue(book: AlertBook, find: Callable[[], tuple[list[Overdue], list[str]]]) -> list[Alert]:
    """:func:`overdue_items` for what ``find()`` (:meth:`Scheduler.overdue
    <strongroom.services.schedule.Scheduler.overdue>`) says; a vault that cannot be
    read now is a note, not an error (the next check tries again)."""
    try:
        return overdue_items(book, *find())
    except StrongroomError as exc:
        book.notify(f"missed schedules not checked ({exc})")
        return []


def overdue_items(book: AlertBook, overdue: Iterable[Overdue], scheduled: Iterable[str]) -> list[Alert]:
    """Raise ``schedule.missed`` for every overdue item (once), and resolve the alerts of
    the ``scheduled`` items (ids) that are no longer overdue."""
    overdue = list(overdue)
    late = {o.item_id for o in overdue}
    raised = []
    for o in overdue:
        alert = book.raise_alert(
            "job", "schedule.missed",
            f"'{o.item}' has not been backed up by its schedule since {iso(o.since)}: {o.missed} run times missed",
            details={"policy": o.policy, "since": iso(o.since), "missed": o.missed, "first_missed": iso(o.first_missed)},
            item=o.item, dedupe=f"schedule.missed:{o.item_id}", severity="warning")
        if alert is not None:
            raised.append(alert)
    ran = {f"schedule.missed:{item_id}" for item_id in scheduled if item_id not in late}
    if ran:
        open_keys = {a.dedupe for a in book.list() if a.open and a.dedupe in ran}
        for key in open_keys:
            book.resolve(key)
    return raised
