"""Geo redundancy for an open vault: replicate to its secondary, report the lag, find it again.

:class:`GeoService` is what the vault facade uses when its redundancy is ``geo``
(:mod:`strongroom.policy.redundancy`):

- :meth:`~GeoService.replicate` runs a :class:`~strongroom.services.replication.Replicator`
  from the vault's storage to the secondary, opened with the user's storage options for
  its URL (``[storage."URL"]`` of ``config.toml``, never the vault's); refusals and
  storage errors are the caller's.
- :meth:`~GeoService.after_backup` runs one bounded in time (``replication_timeout``
  seconds of ``config.toml``, or ``STRONGROOM_REPLICATION_TIMEOUT``, default
  :data:`DEFAULT_TIMEOUT`): the rest waits for the next run.  It runs in a thread of its
  own that the caller waits for that long (and :data:`GRACE` more): a secondary out of
  reach, whose store retries for many seconds, never holds a backup up; the thread, left
  behind, stops at its next failure or with the process (a replication killed at any
  moment leaves a consistent secondary).  It never raises: a
  secondary that cannot be reached, or one more than :data:`LAG_ALERT_AFTER` behind
  (its oldest missing point), raises a ``replication.lag`` job alert (one open at a
  time: dedupe key ``replication.lag:<vault-id>``), resolved once the secondary holds
  everything.
- :meth:`~GeoService.status` is ``vault info``'s ``replication``: the secondary, and its
  lag (objects and bytes pending, the oldest point it lacks), or the error reaching it
  (bounded in time the same way).

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
import threading
import time
from pathlib import Path
from typing import Any, Callable

import attrs

from ..config import _load_file, config_path
from ..errors import StorageError, StrongroomError
from ..policy.redundancy import Redundancy
from ..storage.base import Store
from .replication import Lag, ReplicationReport, Replicator

__all__ = [
    "DEFAULT_TIMEOUT", "LAG_ALERT_AFTER", "GeoService", "head_state_name", "is_secondary",
    "recorded_secondary", "redundancy_of", "remember_secondary",
]

#: Seconds a replication after a backup may take; the rest waits for the next run.
DEFAULT_TIMEOUT = 5.0
TIMEOUT_ENV = "STRONGROOM_REPLICATION_TIMEOUT"
#: Seconds a bounded call is waited for beyond its bound (the listing and the checks).
GRACE = 2.0
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

    @property
    def enabled(self) -> bool:
        return self.redundancy().kind == "geo"

    @property
    def dedupe(self) -> str:
        return f"replication.lag:{self.vault_id}"

    def replicator(self) -> Replicator:
        secondary = self.redundancy().secondary
        if not self.enabled or not secondary:
            raise StrongroomError("This vault has no geo secondary ('strongroom vault redundancy set geo --secondary URL').")
        return Replicator(self.primary, self.open_store(secondary), read_point=self.read_point)

    def replicate(self, *, timeout: float | None = None,
                  progress: Callable[[str], None] | None = None) -> ReplicationReport:
        """Replicate now (``timeout`` seconds at most, None: until done)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        report = self.replicator().run(deadline=deadline, progress=progress)
        if report.complete:
            self.resolve(self.dedupe)
        return report

    def after_backup(self, timeout: float | None = None) -> ReplicationReport | None:
        """A replication bounded in time; a failure or a long lag is an alert, never an error."""
        if not self.enabled:
            return None
        limit = replication_timeout() if timeout is None else timeout

        def run() -> ReplicationReport:
            report = self.replicate(timeout=limit)
            if not report.complete:
                self._check_lag(self.replicator().lag())
            return report
        try:
            return _bounded(run, limit)
        except StrongroomError as exc:
            self.alert("job", "replication.lag",
                       f"the geo secondary {self.redundancy().secondary} was not replicated: {exc}",
                       details={"secondary": self.redundancy().secondary, "error": str(exc)},
                       dedupe=self.dedupe, severity="warning")
            return None

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
            doc["lag"] = _bounded(lambda: self.replicator().lag(), replication_timeout()).to_dict()
        except (StorageError, StrongroomError) as exc:
            doc["error"] = str(exc)
        return doc


class ReplicationLate(StorageError):
    """Storage error: the geo secondary did not answer within {seconds:g} s (out of reach?)."""


def _bounded(work: Callable[[], Any], limit: float) -> Any:
    """``work()`` in a thread of its own, waited for ``limit`` + :data:`GRACE` seconds at most;
    ReplicationLate when it is not done by then (it goes on, left behind)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
    thread = threading.Thread(target=run, name="strongroom-replication", daemon=True)
    thread.start()
    thread.join(None if math.isinf(limit) else limit + GRACE)
    if thread.is_alive():
        raise ReplicationLate(seconds=limit + GRACE)
    if "error" in box:
        raise box["error"]
    return box["result"]
