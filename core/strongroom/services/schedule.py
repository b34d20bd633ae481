"""``run-due`` and the ``agent``: run every scheduled backup whose time has come, and prune.

:meth:`Scheduler.rows` says, for every item and for the vault's prune, when it last ran,
when it runs next and whether it is due now (:func:`strongroom.policy.due.due_slot`):

- an item is scheduled while it is ``protected`` and has a policy; its baseline is the
  slot of its last scheduled run (its claim), or the time it was protected or resumed;
  with no recovery point yet it is due at once;
- prune follows the vault's prune schedule (``strongroom prune settings``).

:meth:`Scheduler.run_due` claims each due slot (:mod:`.claims`) and runs it: the
backups first, then the prune.  A failed backup does not stop the others; it is recorded
as a failed job with its error, and the next slot runs as usual.  Calling it again at once
does nothing (the slots are claimed), so cron or a systemd timer can call it every minute,
and two calls at the same time run each backup once.

:class:`Agent` calls ``run_due`` in a loop on a fresh vault each time, waking every
``interval`` seconds, until :meth:`Agent.stop` (the command line calls it on SIGTERM):
work in progress finishes, nothing new starts.

:meth:`Scheduler.overdue` names the items that missed their schedule: protected, with a
policy, and :data:`MISSED_RUNS` run times of their schedule or more have passed since
their baseline (the slot of their last scheduled run, or when they were protected or
resumed) without a run: due for two intervals or longer.  ``run-due`` does not run
them any sooner (a due item runs once, whatever it missed); the vault raises a
``schedule.missed`` alert for each (:mod:`.alertrules`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import TYPE_CHECKING, Callable, Collection, Protocol

import attrs

from ..errors import LeaseHeld, StrongroomError
from ..models import PROTECTED, RecoveryPoint, iso, time_of
from ..policy.due import due_slot
from .claims import Claims
from .points import POINT_PREFIX

if TYPE_CHECKING:
    from ..policy.prunesettings import PruneSettings
    from ..repository.repository import Repository
    from .items import ItemBook
    from .policies import PolicyBook

__all__ = ["MISSED_RUNS", "Agent", "DueReport", "Overdue", "ScheduleRow", "Scheduler"]

PRUNE_SUBJECT = "prune"
#: An item is overdue once this many run times of its schedule passed without a run.
MISSED_RUNS = 3


@attrs.frozen
class ScheduleRow:
    """One line of ``strongroom schedule``: a backup of an item, or the vault's prune."""

    kind: str  # "backup" or "prune"
    name: str
    policy: str | None
    state: str
    last_run: dt.datetime | None
    next_run: dt.datetime | None
    due: bool
    slot: dt.datetime | None = None
    subject: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "policy": self.policy, "state": self.state,
                "last_run": iso(self.last_run) if self.last_run else None,
                "next_run": iso(self.next_run) if self.next_run else None, "due": self.due}


@attrs.frozen
class Overdue:
    """An item that missed its schedule: ``missed`` run times since ``since``."""

    item: str
    item_id: str
    policy: str
    since: dt.datetime
    first_missed: dt.datetime
    missed: int


@attrs.frozen
class DueReport:
    """What one ``run-due`` did: (kind, name, outcome, detail) per due slot."""

    started: dt.datetime
    results: tuple[tuple[str, str, str, str], ...]

    @property
    def failed(self) -> list[tuple[str, str, str, str]]:
        return [r for r in self.results if r[2] == "failed"]

    def to_dict(self) -> dict:
        return {"started": iso(self.started), "results": [
            {"kind": k, "name": n, "outcome": o, "detail": d} for k, n, o, d in self.results]}


class Scheduler:
    """Scheduled backups and prune of one vault; ``backup`` and ``prune`` run them."""

    def __init__(self, repo: Repository, items: ItemBook, policies: PolicyBook,
                 prune_settings: Callable[[], PruneSettings], backup: Callable[..., RecoveryPoint],
                 prune: Callable[[], object], clock: Callable[[], dt.datetime]) -> None:
        self.repo = repo
        self.items = items
        self.policies = policies
        self.prune_settings = prune_settings
        self.backup = backup
        self.prune = prune
        self.clock = clock

    def rows(self, now: dt.datetime | None = None) -> list[ScheduleRow]:
        """Every item and the prune, with their last and next runs at ``now``."""
        now = now or self.clock()
        rows = []
        policies = {p.name: p for p in self.policies.list()}
        for item in self.items.list():
            policy = policies.get(item.policy) if item.policy else None
            if item.state != PROTECTED or policy is None:
                state = item.state if item.state != PROTECTED else ("no policy" if not item.policy else "policy missing")
                rows.append(ScheduleRow("backup", item.name, item.policy, state, None, None, False))
                continue
            last = Claims(self.repo, item.item_id).last_slot()
            has_points = bool(self.repo.list_names(f"{POINT_PREFIX}{item.item_id}/"))
            since = time_of(item.version) if item.version else None
            due = due_slot(policy.schedule, now, last_slot=last, since=since, at_once=not has_points)
            rows.append(ScheduleRow("backup", item.name, policy.name, item.state, last, due.next_run, due.due,
                                    due.slot, item.item_id))
        schedule = self.prune_settings().schedule
        if schedule is None:
            rows.append(ScheduleRow("prune", "(vault)", None, "not scheduled", None, None, False))
        else:
            last = Claims(self.repo, PRUNE_SUBJECT).last_slot()
            due = due_slot(schedule, now, last_slot=last)
            rows.append(ScheduleRow("prune", "(vault)", None, "scheduled", last, due.next_run, due.due, due.slot,
                                    PRUNE_SUBJECT))
        return rows

    def overdue(self, now: dt.datetime | None = None) -> tuple[list[Overdue], list[str]]:
        """(the overdue items, the ids of every scheduled item) at ``now``; see the module docstring."""
        now = now or self.clock()
        policies = {p.name: p for p in self.policies.list()}
        late, scheduled = [], []
        for item in self.items.list():
            policy = policies.get(item.policy) if item.policy else None
            if item.state != PROTECTED or policy is None:
                continue
            scheduled.append(item.item_id)
            marks = [m for m in (Claims(self.repo, item.item_id).last_slot(),
                                 time_of(item.version) if item.version else None) if m is not None]
            if not marks:
                continue
            since = max(marks)
            missed = policy.schedule.runs_between(since, now)
            if len(missed) >= MISSED_RUNS:
                late.append(Overdue(item.name, item.item_id, policy.name, since, missed[0], len(missed)))
        return late, scheduled

    def run_due(self, *, should_stop: Callable[[], bool] = lambda: False,
                on_start: Callable[[ScheduleRow], None] | None = None,
                kinds: Collection[str] | None = None) -> DueReport:
        """Run every due backup, then the prune if due; see the module docstring.  ``kinds``
        (``"backup"``, ``"prune"``) limits what runs: a vault server, which holds no sources,
        runs only the prune."""
        now = self.clock()
        results: list[tuple[str, str, str, str]] = []
        rows = [r for r in self.rows(now) if r.due and (kinds is None or r.kind in kinds)]
        for row in sorted(rows, key=lambda r: (r.kind != "backup", r.name)):
            if should_stop():
                results.append((row.kind, row.name, "skipped", "shutting down"))
                continue
            if not Claims(self.repo, row.subject).claim(row.slot, self.clock()):
                results.append((row.kind, row.name, "skipped", "taken by another run"))
                continue
            if on_start is not None:
                on_start(row)
            try:
                if row.kind == "backup":
                    point = self.backup(row.name, trigger="scheduled", slot=row.slot)
                    outcome = "completed_with_warnings" if point.warnings else "completed"
                    results.append((row.kind, row.name, outcome, point.point_id))
                else:
                    report = self.prune()
                    results.append((row.kind, row.name, "completed",
                                    f"{len(report.points_expired)} point(s) expired, {report.bytes_freed} bytes freed"))
            except LeaseHeld as exc:
                results.append((row.kind, row.name, "skipped", str(exc)))
            except Exception as exc:  # one item's failure, even a bug, must not stop the others
                results.append((row.kind, row.name, "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        return DueReport(now, tuple(results))


class DueRunner(Protocol):
    """What the agent runs each time: a vault's ``run_due``."""

    def run_due(self, *, should_stop: Callable[[], bool] = ...) -> DueReport: ...


class Agent:
    """``run_due`` in a loop until stopped; ``open_vault`` gives a fresh vault each time."""

    def __init__(self, open_vault: Callable[[], DueRunner], *, interval: float = 60.0,
                 on_report: Callable[[DueReport], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.open_vault = open_vault
        self.interval = interval
        self.on_report = on_report or (lambda report: None)
        self.on_error = on_error or (lambda exc: None)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Finish the work in progress, start nothing new, return from :meth:`run`."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.on_report(self.open_vault().run_due(should_stop=self._stop.is_set))
            except (StrongroomError, OSError) as exc:  # storage down, key missing: try again later
                self.on_error(exc)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
