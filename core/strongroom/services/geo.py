"""Geo redundancy for an open vault: replicate to its secondary, report the lag, find it again.

:class:`GeoService` is what the vault facade uses when its redundancy is ``geo``
(:mod:`strongroom.policy.redundancy`):

- :meth:`~GeoService.replicate` runs a :class:`~strongroom.services.replication.Replicator`
  from the vault's storage to the secondary, opened (once per service) with the user's storage
  options for its URL (``[storage."URL"]`` of ``config.toml``, never the vault's);
  refusals and storage errors are the caller's.
  With a ``timeout`` (``vault replicate`` without ``--wait``) the run is bounded in
  time as below, and a secondary not reached within it is :class:`ReplicationLate`.
  A failed run raises a ``replication.lag`` job alert (one open at a time: dedupe key
  ``replication.lag:<vault-id>``), resolved by the next complete one.
- :meth:`~GeoService.after_backup` runs one bounded in time (``replication_timeout``
  seconds of ``config.toml``, or ``STRONGROOM_REPLICATION_TIMEOUT``, default
  :data:`DEFAULT_TIMEOUT`; zero: none): the rest waits for the next run.  **The bound
  holds whatever the secondary does**: opening it, the checks, the listings and the copies
  run in a thread of their own (and their pools, of daemon threads) that the caller waits
  for ``timeout`` seconds at most; new copies stop at :data:`COPY_SHARE` of it.  A
  secondary out of reach, whose store retries for many seconds, never holds a backup up,
  nor the exit of the process; the thread, left behind, is abandoned
  (:mod:`strongroom.services.bounded`): its storage calls stop retrying and logging, its
  progress reaches no one, and it stops at its next failure, or with the process (a
  replication killed at any moment leaves a consistent secondary).
  It never raises: a secondary that cannot be reached, or one more than
  :data:`LAG_ALERT_AFTER` behind (its oldest missing point), raises the alert.
- **Object lock on the secondary**: with the vault's ``object_locks``
  (:class:`~strongroom.services.objectlocks.ObjectLockService`), every copy to a
  secondary whose storage has object lock is locked as the primary's writes are, while
  the vault's immutability is on, and a complete run extends the locks there when due
  (:mod:`strongroom.services.geolocks`; its state beside the vault's, in
  ``object-locks/<vault-id>.secondary.json`` of this machine's home).
- **Deletions** reach the secondary only for what the primary removed on purpose, as its
  authenticated heads and index files say (``heads``: :mod:`.georemovals`); what it lost by
  accident stays there, counted (``missing_on_primary``) in the report and the lag.
- :meth:`~GeoService.status` is ``vault info``'s ``replication``: the secondary, and its
  lag (objects and bytes pending, the oldest point it lacks, objects missing on the
  primary kept there), or the error reaching it
  (bounded in time the same way, by :data:`DEFAULT_TIMEOUT` at least).

**Finding the secondary without the primary.**  Each client remembers, in
``$STRONGROOM_HOME/secondaries.json``, the secondary of every geo vault it opened, keyed
by the primary's URL: ``--from-secondary`` (:func:`recorded_secondary`) opens it when the
primary's storage is gone.  **Opening the secondary** (its URL is the one its settings
name) gives a read-only vault (:class:`~strongroom.storage.readonly.ReadOnlyStore`:
only replication writes it) whose rollback checks keep their own record
(:func:`head_state_name`): the secondary is older than the primary by design, never a
rollback of it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import attrs

from ..config import _load_file, config_path
from ..errors import StorageError, StrongroomError
from ..policy.redundancy import Redundancy
from ..storage.base import Store
from .bounded import Late, given_up, run_bounded
from .geolocks import extend_secondary_locks, secondary_lock_policy
from .georemovals import PrimaryRecords
from .replication import Lag, ReplicationReport, Replicator

__all__ = [
    "DEFAULT_TIMEOUT", "LAG_ALERT_AFTER", "GeoService", "ReplicationLate", "head_state_name", "is_secondary",
    "recorded_secondary", "redundancy_of", "remember_secondary", "secondary_lock_policy",
]

#: Seconds a replication after a backup may take; the rest waits for the next run.
DEFAULT_TIMEOUT = 5.0
TIMEOUT_ENV = "STRONGROOM_REPLICATION_TIMEOUT"
#: The share of a bound in which new copies start: the copies in flight then land within it.
COPY_SHARE = 0.75
#: A secondary whose oldest missing point is older than this raises ``replication.lag``.
LAG_ALERT_AFTER = dt.timedelta(hours=1)
RECORDS = "secondaries.json"


def _key(url: str) -> str:
    url = url.rstrip("/")
    return url if "://" in url else os.path.abspath(url)


def redundancy_of(doc: dict) -> Redundancy:
    """The redundancy record of a settings document's ``redundancy`` field."""
    return Redundancy.from_dict(doc)


def is_secondary(doc: dict, url: str) -> bool:
    """Whether ``url`` is the geo secondary that the settings' ``redundancy`` names."""
    redundancy = redundancy_of(doc)
    return redundancy.kind == "geo" and redundancy.secondary is not None and _key(redundancy.secondary) == _key(url)


def head_state_name(vault_id: str, secondary: bool) -> str:
    """The name of this client's rollback record (``state/``) for the vault or its secondary."""
    return f"{vault_id}.secondary.json" if secondary else f"{vault_id}.json"


def _records(home: Path) -> dict:
    try:
        doc = json.loads((home / RECORDS).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def remember_secondary(home: Path, primary: str, vault_id: str, secondary: str) -> None:
    """Record ``secondary`` as the secondary of the vault at ``primary`` (if not yet); a
    home that cannot be written is no error (``--from-secondary`` then needs the URL)."""
    records = _records(home)
    entry = {"vault_id": vault_id, "secondary": secondary}
    if records.get(_key(primary)) == entry:
        return
    records[_key(primary)] = entry
    try:
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".{RECORDS}.{os.getpid()}"
        tmp.write_text(json.dumps(records, indent=1, sort_keys=True))
        os.replace(tmp, home / RECORDS)
    except OSError:
        pass


def recorded_secondary(home: Path, primary: str) -> str | None:
    """The secondary recorded for the vault at ``primary``, or None."""
    entry = _records(home).get(_key(primary))
    return entry.get("secondary") if isinstance(entry, dict) else None


def replication_timeout() -> float:
    """Seconds for a replication after a backup: the environment, ``config.toml``, the default."""
    for value in (os.environ.get(TIMEOUT_ENV), _load_file(config_path()).get("replication_timeout")):
        if value not in (None, ""):
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                pass
    return DEFAULT_TIMEOUT


@attrs.define
class GeoService:
    """Replication of one vault to its geo secondary (see the module docstring)."""

    primary: Store
    vault_id: str
    redundancy: Callable[[], Redundancy]
    open_store: Callable[[str], Store]
    read_point: Callable[[str], str | None]
    alert: Callable[..., Any]
    resolve: Callable[[str], Any]
    clock: Callable[[], dt.datetime]
    #: The vault's ObjectLockService (its immutability and lock day): copies are locked by its rules.
    object_locks: Any = None
    #: The vault's HeadService: what the primary removed on purpose (:mod:`.georemovals`); None: nothing
    #: the primary lacks is deleted on the secondary but job records and the like.
    heads: Any = None
    _stores: dict[str, Store] = attrs.field(factory=dict, init=False, repr=False)

    @property
    def enabled(self) -> bool:
        return self.redundancy().kind == "geo"

    @property
    def dedupe(self) -> str:
        return f"replication.lag:{self.vault_id}"

    def secondary_store(self) -> Store:
        """The secondary's store, opened once (the user's storage options for its URL)."""
        secondary = self.redundancy().secondary
        if not self.enabled or not secondary:
            raise StrongroomError("This vault has no geo secondary ('strongroom vault redundancy set geo --secondary URL').")
        store = self._stores.get(secondary)
        if store is None:
            store = self._stores[secondary] = self.open_store(secondary)
        return store

    def replicator(self) -> Replicator:
        store = self.secondary_store()
        locks = self.object_locks
        policy = None if locks is None else (lambda: secondary_lock_policy(locks, store))
        removals = None if self.heads is None else PrimaryRecords(self.heads).judge
        return Replicator(self.primary, store, read_point=self.read_point, lock_policy=policy, removals=removals)

    def replicate(self, *, timeout: float | None = None,
                  progress: Callable[[str], None] | None = None) -> ReplicationReport:
        """Replicate now: ``timeout`` seconds at most (see the module docstring), None or
        infinite: until done.  A failure raises the alert, then is raised."""
        try:
            report = self._bounded_run(timeout, progress, check_lag=False)
        except StrongroomError as exc:
            self._failed(exc)
            raise
        if report.complete:
            self.resolve(self.dedupe)
        return report

    def after_backup(self, timeout: float | None = None) -> ReplicationReport | None:
        """A replication bounded in time (see the module docstring); a failure or a long lag
        is an alert, never an error."""
        if not self.enabled:
            return None
        limit = replication_timeout() if timeout is None else timeout
        if limit <= 0:
            return None  # replication after backups is off
        try:
            report = self._bounded_run(limit, None, check_lag=True)
        except StrongroomError as exc:
            self._failed(exc)
            return None
        if report.complete:
            self.resolve(self.dedupe)
        return report

    def _bounded_run(self, timeout: float | None, progress: Callable[[str], None] | None, *,
                     check_lag: bool) -> ReplicationReport:
        """A run in a thread waited for ``timeout`` seconds at most; cut short once the
        secondary answered, it is reported stopped by its deadline (it goes on, left behind)."""
        report = ReplicationReport()
        bounded = timeout is not None and not math.isinf(timeout)
        deadline = time.monotonic() + timeout * COPY_SHARE if bounded else None

        def told(step: Any) -> None:  # nothing reaches the command's output once it stopped waiting
            if progress is not None and not given_up():
                progress(step)

        def run() -> ReplicationReport:
            done = self.replicator().run(deadline=deadline, progress=told if progress else None, report=report)
            if done.complete and self.object_locks is not None:
                state = self.object_locks.state_file
                extend_secondary_locks(self.object_locks, self.secondary_store(),
                                       state.with_name(f"{self.vault_id}.secondary.json") if state else None)
            if check_lag and not done.complete:
                self._check_lag(self.replicator().lag())
            return done
        if not bounded:
            return run()
        try:
            return _bounded(run, timeout)  # type: ignore[arg-type]
        except ReplicationLate:
            if not report.passes:
                raise  # the secondary was not reached
            return attrs.evolve(report, complete=False, stopped="deadline")

    def _failed(self, exc: StrongroomError) -> None:
        self.alert("job", "replication.lag",
                   f"the geo secondary {self.redundancy().secondary} was not replicated: {exc}",
                   details={"secondary": self.redundancy().secondary, "error": str(exc)},
                   dedupe=self.dedupe, severity="warning")

    def _check_lag(self, lag: Lag) -> None:
        if lag.oldest_point is None:
            return
        since = dt.datetime.fromisoformat(lag.oldest_point)
        if self.clock() - since > LAG_ALERT_AFTER:
            self.alert("job", "replication.lag",
                       f"the geo secondary {self.redundancy().secondary} lacks {lag.points} point(s) since "
                       f"{lag.oldest_point} ({lag.objects} objects, {lag.bytes} bytes pending)",
                       details={"secondary": self.redundancy().secondary, **lag.to_dict()},
                       dedupe=self.dedupe, severity="warning")

    def status(self) -> dict | None:
        """``vault info``'s ``replication``: the secondary and its lag, or the error reaching it."""
        if not self.enabled:
            return None
        doc: dict = {"secondary": self.redundancy().secondary}
        try:
            doc["lag"] = _bounded(lambda: self.replicator().lag(), max(replication_timeout(), DEFAULT_TIMEOUT)).to_dict()
        except (StorageError, StrongroomError) as exc:
            doc["error"] = str(exc)
        return doc


class ReplicationLate(StorageError):
    """Storage error: the geo secondary did not answer within {seconds:g} s (out of reach?)."""


def _bounded(work: Callable[[], Any], limit: float) -> Any:
    """``work()`` in a thread of its own, waited for ``limit`` seconds at most;
    ReplicationLate when it is not done by then (it goes on, abandoned:
    :mod:`strongroom.services.bounded`)."""
    try:
        return run_bounded(work, limit, name="strongroom-replication")
    except Late:
        raise ReplicationLate(seconds=limit) from None
