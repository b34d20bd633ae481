"""Backup health of the hosted vaults, as the dashboard and ``/metrics`` show it.

:meth:`Monitor.vault` reads one hosted vault through its facade (``state.hosted.vault``):
its items, recovery points, jobs, open alerts and schedule, and sums them up as a
:class:`VaultHealth`:

- per item (:class:`ItemHealth`): the newest backup job and its state, the newest
  recovery point (the last success) with its duration and bytes (the point's backup
  stats), the number of points, whether it is **overdue** (an open ``schedule.missed``
  alert names it, or its schedule has had it due for :data:`OVERDUE_AFTER` or longer)
  and the size and duration of every point (the item page's chart);
- per vault: failed jobs of the last 24 hours, open alerts, jobs by state, points, and
  storage as the backups' stats say: ``logical_bytes`` (what the points hold, summed
  over the points), ``stored_bytes`` (what their backups wrote, compressed and
  deduplicated), ``saved_bytes`` (the difference: what deduplication and compression
  saved).  A pruned point's data no longer counts.

A result is cached for :attr:`Monitor.ttl` seconds (a dashboard that polls does not
read storage on every request); :meth:`Monitor.forget` drops it after a change made
through the dashboard.  A vault that cannot be read is a :class:`VaultHealth` with
``error`` set (one line), never an exception: one broken vault does not take the
overview down.  Reading writes nothing to the vault.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections import Counter
from typing import Any, Callable

import attrs

from ..errors import StrongroomError
from ..models import Job, RecoveryPoint, parse_iso

__all__ = ["OVERDUE_AFTER", "ItemHealth", "Monitor", "PointSample", "VaultHealth", "monitor_of"]

#: An item whose schedule has had it due this long is overdue (before the vault's alert says so).
OVERDUE_AFTER = dt.timedelta(hours=1)
#: Failed jobs younger than this are shown on the overview.
FAILED_WINDOW = dt.timedelta(hours=24)
BACKUP = "backup"
FAILED_STATES = ("failed", "abandoned", "stale")


@attrs.frozen
class PointSample:
    """One recovery point on the item page's chart."""

    point_id: str
    created: dt.datetime
    bytes_total: int
    new_bytes: int
    stored_bytes: int
    seconds: float


@attrs.frozen
class ItemHealth:
    """The backup health of one protected item (see the module docstring)."""

    name: str
    workload: str
    state: str
    policy: str | None
    points: int
    last_job: Job | None = None
    last_success: dt.datetime | None = None
    last_seconds: float | None = None
    last_new_bytes: int = 0
    last_stored_bytes: int = 0
    overdue: bool = False
    history: tuple[PointSample, ...] = ()

    @property
    def last_state(self) -> str | None:
        """The state of the newest backup job (None: never backed up)."""
        return self.last_job.state if self.last_job else None

    @property
    def failing(self) -> bool:
        return self.last_state in FAILED_STATES


@attrs.frozen
class VaultHealth:
    """The backup health of one hosted vault (see the module docstring)."""

    name: str
    read_at: dt.datetime
    vault_id: str = ""
    items: tuple[ItemHealth, ...] = ()
    points: int = 0
    failed_jobs: tuple[Job, ...] = ()
    open_alerts: tuple[Any, ...] = ()
    jobs_by_state: dict[str, int] = attrs.field(factory=dict)
    logical_bytes: int = 0
    stored_bytes: int = 0
    error: str | None = None

    @property
    def saved_bytes(self) -> int:
        return max(self.logical_bytes - self.stored_bytes, 0)

    @property
    def dedup_ratio(self) -> float:
        """Logical bytes per stored byte (1.0 for an empty vault)."""
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 1.0

    @property
    def overdue(self) -> list[ItemHealth]:
        return [i for i in self.items if i.overdue]

    def item(self, name: str) -> ItemHealth | None:
        return next((i for i in self.items if i.name == name), None)


def _when(text: str | None) -> dt.datetime | None:
    try:
        return parse_iso(text) if text else None
    except ValueError:
        return None


def _sample(point: RecoveryPoint) -> PointSample:
    s = point.stats or {}
    return PointSample(point.point_id, _when(point.created) or dt.datetime.min.replace(tzinfo=dt.timezone.utc),
                       int(s.get("bytes_total", 0)), int(s.get("new_bytes", 0)), int(s.get("stored_bytes", 0)),
                       float(s.get("seconds", 0.0)))


def read_health(name: str, vault: Any, now: dt.datetime) -> VaultHealth:
    """The health of ``vault`` (an open :class:`strongroom.Vault`) at ``now``."""
    items = vault.items()
    points = vault.points()
    jobs: list[Job] = vault.jobs.list()
    alerts = vault.alerts.list()
    open_alerts = tuple(a for a in alerts if a.open)
    missed = {a.item for a in open_alerts if a.kind == "schedule.missed"}
    due_since = {row.name: row.slot for row in vault.schedule(now) if row.kind == BACKUP and row.due}
    by_item: dict[str, list[RecoveryPoint]] = {}
    for point in points:
        by_item.setdefault(point.item_name, []).append(point)
    last_job: dict[str, Job] = {}
    for job in jobs:  # oldest first: the newest wins
        if job.type == BACKUP and job.item:
            last_job[job.item] = job
    healths = []
    for item in items:
        history = tuple(sorted((_sample(p) for p in by_item.get(item.name, [])), key=lambda s: s.created))
        newest = history[-1] if history else None
        slot = due_since.get(item.name)
        overdue = item.name in missed or (slot is not None and now - slot >= OVERDUE_AFTER)
        healths.append(ItemHealth(
            name=item.name, workload=item.workload, state=item.state, policy=item.policy, points=len(history),
            last_job=last_job.get(item.name), last_success=newest.created if newest else None,
            last_seconds=newest.seconds if newest else None,
            last_new_bytes=newest.new_bytes if newest else 0, last_stored_bytes=newest.stored_bytes if newest else 0,
            overdue=overdue, history=history))
    failed = tuple(j for j in jobs if j.state in FAILED_STATES
                   and (when := _when(j.ended or j.started)) is not None and now - when <= FAILED_WINDOW)
    samples = [_sample(p) for p in points]
    return VaultHealth(
        name=name, read_at=now, vault_id=vault.vault_id, items=tuple(healths), points=len(points),
        failed_jobs=failed, open_alerts=open_alerts, jobs_by_state=dict(Counter(j.state for j in jobs)),
        logical_bytes=sum(s.bytes_total for s in samples), stored_bytes=sum(s.stored_bytes for s in samples))


@attrs.define
class Monitor:
    """Cached :class:`VaultHealth` of every hosted vault (see the module docstring)."""

    hosted: Any  # strongroom.server.hosted.Hosted
    clock: Callable[[], dt.datetime]
    ttl: float = 5.0
    monotonic: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, VaultHealth]] = attrs.field(factory=dict, init=False)
    _locks: dict[str, threading.Lock] = attrs.field(factory=dict, init=False)
    _guard: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def names(self) -> list[str]:
        return list(self.hosted.names())

    def vault(self, name: str) -> VaultHealth:
        """The health of hosted vault ``name``, at most :attr:`ttl` seconds old."""
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:  # one reader per vault; the others wait for its result
            cached = self._cache.get(name)
            if cached is not None and self.monotonic() - cached[0] < self.ttl:
                return cached[1]
            now = self.clock()
            try:
                health = read_health(name, self.hosted.vault(name), now)
            except (StrongroomError, OSError) as exc:
                health = VaultHealth(name=name, read_at=now, error=str(exc).splitlines()[0] if str(exc) else
                                     type(exc).__name__)
            self._cache[name] = (self.monotonic(), health)
            return health

    def vaults(self, names: list[str] | None = None) -> list[VaultHealth]:
        return [self.vault(n) for n in (self.names() if names is None else names)]

    def forget(self, name: str) -> None:
        """Drop the cached health of ``name`` (it changed)."""
        with self._guard:
            self._cache.pop(name, None)


_MONITORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MONITORS_LOCK = threading.Lock()


def monitor_of(state: Any) -> Monitor:
    """The one :class:`Monitor` of a server state, shared by the dashboard and ``/metrics``."""
    with _MONITORS_LOCK:
        monitor = _MONITORS.get(state)
        if monitor is None:
            monitor = _MONITORS[state] = Monitor(state.hosted, state.clock)
        return monitor
