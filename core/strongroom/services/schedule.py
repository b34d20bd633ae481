"""``run-due`` and the ``agent``: run every scheduled backup whose time has come, drills, and prune.

:meth:`Scheduler.rows` says, for every item and for the vault's prune, when it last ran,
when it runs next and whether it is due now (:func:`strongroom.policy.due.due_slot`):

- an item is scheduled while it is ``protected`` and has a policy; its baseline is the
  slot of its last scheduled run (its claim), or the time it was protected or resumed;
  with no recovery point yet it is due at once;
- an item whose policy schedules drills (:mod:`strongroom.policy.drills`) and which has a
  recovery point is due for a drill when its last drill is the policy's interval or more
  ago: the last is the later of its last claimed drill slot and the start of its last
  drill run by hand (a ``drill`` job not triggered by ``run-due``, read only then);
- prune follows the vault's prune schedule (``strongroom prune settings``).

:meth:`Scheduler.run_due` claims each due slot (:mod:`.claims`) and runs it: the
backups first, then the prune, then the drills (each on the item's latest point, from
the vault or its geo secondary as the policy says; the vault runs them after its geo
catch-up, so a drill from the secondary sees the new points).  A failed backup does not
stop the others; it is recorded as a failed job with its error, and the next slot runs
as usual.  A failed drill is a failed ``drill`` job too (which raises a ``drill.failed``
alert), and the next drill is an interval later.  Calling it again at once
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
from ..policy.drills import drill_due
from .claims import Claims, drill_subject
from .points import POINT_PREFIX

if TYPE_CHECKING:
    from ..models import ProtectedItem
    from ..policy.prunesettings import PruneSettings
    from ..policy.record import Policy
    from ..repository.repository import Repository
    from .drill import DrillReport
    from .items import ItemBook
    from .policies import PolicyBook

__all__ = ["MISSED_RUNS", "Agent", "DueReport", "Overdue", "ScheduleRow", "Scheduler"]

PRUNE_SUBJECT = "prune"
#: The order ``run_due`` runs due work in.
ORDER = {"backup": 0, "prune": 1, "drill": 2}
#: An item is overdue once this many run times of its schedule passed without a run.
MISSED_RUNS = 3


@attrs.frozen
class ScheduleRow:
    """One line of ``strongroom schedule``: a backup or a drill of an item, or the vault's prune."""

    kind: str  # "backup", "drill" or "prune"
    name: str
    policy: str | None
    state: str
    last_run: dt.datetime | None
    next_run: dt.datetime | None
    due: bool
    slot: dt.datetime | None = None
    subject: str = ""
    from_secondary: bool = False  # a drill from the geo secondary

    def to_dict(self) -> dict:
        doc = {"kind": self.kind, "name": self.name, "policy": self.policy, "state": self.state,
               "last_run": iso(self.last_run) if self.last_run else None,
               "next_run": iso(self.next_run) if self.next_run else None, "due": self.due}
        if self.kind == "drill":
            doc["from_secondary"] = self.from_secondary
        return doc


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
    """Scheduled backups, drills and prune of one vault; ``backup``, ``drill`` and ``prune`` run them.

    ``drill(name, from_secondary=...)`` drills the latest point of an item (and returns
    its :class:`~strongroom.services.drill.DrillReport`); ``drills_since(moment)`` gives
    the start of the newest drill of each item run by hand since ``moment``."""

    def __init__(self, repo: Repository, items: ItemBook, policies: PolicyBook,
                 prune_settings: Callable[[], PruneSettings], backup: Callable[..., RecoveryPoint],
                 prune: Callable[[], object], clock: Callable[[], dt.datetime],
                 drill: Callable[..., DrillReport] | None = None,
                 drills_since: Callable[[dt.datetime], dict[str, dt.datetime]] = lambda moment: {}) -> None:
        self.repo = repo
        self.items = items
        self.policies = policies
        self.prune_settings = prune_settings
        self.backup = backup
        self.prune = prune
        self.clock = clock
        self.drill = drill
        self.drills_since = drills_since

    def rows(self, now: dt.datetime | None = None, kinds: Collection[str] | None = None) -> list[ScheduleRow]:
        """Every item and the prune, with their last and next runs at ``now``; only the
        rows of ``kinds`` (``backup``, ``drill``, ``prune``) when given."""
        now = now or self.clock()
        wanted = set(kinds) if kinds is not None else set(ORDER)
        rows: list[ScheduleRow] = []
        drills: list[tuple[ProtectedItem, Policy]] = []
        policies = {p.name: p for p in self.policies.list()} if wanted & {"backup", "drill"} else {}
        for item in self.items.list() if policies or "backup" in wanted else ():
            policy = policies.get(item.policy) if item.policy else None
            if item.state != PROTECTED or policy is None:
                state = item.state if item.state != PROTECTED else ("no policy" if not item.policy else "policy missing")
                if "backup" in wanted:
                    rows.append(ScheduleRow("backup", item.name, item.policy, state, None, None, False))
                continue
            if "backup" not in wanted and policy.drill is None:
                continue
            has_points = bool(self.repo.list_names(f"{POINT_PREFIX}{item.item_id}/"))
            if "backup" in wanted:
                last = Claims(self.repo, item.item_id).last_slot()
                since = time_of(item.version) if item.version else None
                due = due_slot(policy.schedule, now, last_slot=last, since=since, at_once=not has_points)
                rows.append(ScheduleRow("backup", item.name, policy.name, item.state, last, due.next_run, due.due,
                                        due.slot, item.item_id))
            if "drill" in wanted and policy.drill is not None and has_points:
                drills.append((item, policy))
        rows.extend(self._drill_rows(drills, now))
        if "prune" not in wanted:
            return rows
        schedule = self.prune_settings().schedule
        if schedule is None:
            rows.append(ScheduleRow("prune", "(vault)", None, "not scheduled", None, None, False))
        else:
            last = Claims(self.repo, PRUNE_SUBJECT).last_slot()
            due = due_slot(schedule, now, last_slot=last)
            rows.append(ScheduleRow("prune", "(vault)", None, "scheduled", last, due.next_run, due.due, due.slot,
                                    PRUNE_SUBJECT))
        return rows

    def _drill_rows(self, drills: list[tuple[ProtectedItem, Policy]], now: dt.datetime) -> list[ScheduleRow]:
        """The drill rows of items with points whose policy drills (see the module docstring)."""
        rows = []
        manual: dict[str, dt.datetime] | None = None  # read only if a claim says due
        for item, policy in drills:
            every = policy.drill.every
            last = Claims(self.repo, drill_subject(item.item_id)).last_slot()
            due = drill_due(every, now, last)
            if due.due:
                if manual is None:
                    longest = max(p.drill.every for _, p in drills)
                    manual = self.drills_since(now - dt.timedelta(seconds=longest))
                by_hand = manual.get(item.name)
                if by_hand is not None and (last is None or by_hand > last):
                    last = by_hand
                    due = drill_due(every, now, last)
            rows.append(ScheduleRow("drill", item.name, policy.name, item.state, last, due.next_run, due.due,
                                    due.slot, drill_subject(item.item_id), from_secondary=policy.drill.from_secondary))
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
        """Run every due backup, then the prune if due, then the due drills; see the module
        docstring.  ``kinds`` (``"backup"``, ``"prune"``, ``"drill"``) limits what runs: a
        vault server, which holds no sources, runs only the prune."""
        now = self.clock()
        results: list[tuple[str, str, str, str]] = []
        kinds = set(kinds) if kinds is not None else set(ORDER)
        if self.drill is None:
            kinds.discard("drill")
        rows = [r for r in self.rows(now, kinds) if r.due]
        for row in sorted(rows, key=lambda r: (ORDER[r.kind], r.name)):
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
                elif row.kind == "drill":
                    drilled = self.drill(row.name, from_secondary=row.from_secondary)
                    where = " on the secondary" if row.from_secondary else ""
                    results.append((row.kind, row.name, "completed",
                                    f"point {drilled.point[:8]}{where}: {drilled.files} file(s) checked"))
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
