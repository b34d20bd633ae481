"""Geo replication: copy a vault's objects to a secondary store, in commit order.

:class:`Replicator` makes the secondary (any :class:`~strongroom.storage.Store`) a copy
of the primary vault that lags behind it, and promises that **the secondary is always a
consistent, older vault that opens on its own**, whenever a run stops (a crash, a kill,
its time bound, an unreachable store):

- **Names are immutable**: the same name holds the same object on both sides, so a run
  compares the two listings and copies only the vault's objects the secondary lacks
  (foreign objects, leases and quarantined objects are never copied).  The identity
  (``strongroom.json``) and key slots, which an upgrade or a re-keyed slot rewrites in
  place, are compared byte for byte; every other object by name (a store's put is whole
  or absent, so a copy cut short leaves no object, and the next run copies it).
- **Listing order**: the primary is listed in the reverse of commit order (heads first,
  the identity last), so everything a listed object needs (a point header's packs and
  index files, a head's points) was written before it and is in the listing too.
- **Copy order** (each phase completes before the next starts): key slots and
  settings, then the identity: a new secondary becomes a vault (an empty one) only when
  it can be unlocked and read; then packs, index files, items, policies and alert
  sinks, point headers and statuses, jobs, claims, prune records, alerts and tickets, the
  journal (one entry at a time, oldest first, so a run killed half-way leaves a prefix of
  the chain, never a gap), and the vault heads last, and only the heads listed first, so no head on
  the secondary names an object it lacks.
- **Deletions** follow the primary's, after every copy, only of objects the primary no
  longer has: point headers and statuses first (with every other document), then index
  files and removed key slots; packs only in a *later* run, one in which the secondary
  had no point that the primary lacked: a pack is never deleted while a point on the
  secondary may still need it.  A deletion the secondary refuses (an object lock) is
  left for a later run, never an error.
- **Refusals** (:class:`ReplicationRefused`, exit 17): a secondary holding another vault
  (another ``vault_id`` in its ``strongroom.json``), the primary itself (the same URL, or
  the same vault on the same storage under another URL: a probe object put on the
  secondary shows up on the primary), and a primary that is no vault.

Memory is bounded (one listing of names per side, and at most ``concurrency`` objects in
flight, from :func:`~strongroom.storage.capabilities.capabilities_of`); ``deadline`` (a
``time.monotonic()`` value) stops a run between copies: the rest waits for the next run.
:meth:`Replicator.lag` says what the secondary lacks without copying anything.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
import uuid
from collections.abc import Callable, Iterable

import attrs

from ..errors import ObjectNotFound, StorageError, StrongroomError
from ..repository.names import kind_of
from ..storage.base import Store
from ..storage.capabilities import capabilities_of

__all__ = ["COPY_ORDER", "Lag", "ReplicationRefused", "ReplicationReport", "Replicator"]

IDENTITY = "strongroom.json"

#: The phases of a copy, in order: the prefixes of each (see the module docstring).
COPY_ORDER: tuple[tuple[str, ...], ...] = (
    ("keys/", "datakeys/", "settings/"),  # data keys before anything sealed under them
    (IDENTITY,),
    ("data/",),
    ("index/",),
    ("items/", "policies/", "alert-sinks/"),
    ("points/", "point-status/"),
    ("jobs/", "runs/", "prune/", "alerts/", "alert-events/", "tickets/"),
    ("journal/",),
    ("heads/",),
)
#: Copied one at a time, oldest first: a run killed half-way leaves the secondary's journal a
#: prefix of the primary's (its chain whole), never an entry whose predecessor is missing.
IN_ORDER = ("journal/",)
#: Never copied: leases belong to the primary's running operations, quarantine is never read.
NOT_COPIED = ("leases/", "quarantine/")
#: Compared byte for byte, not by name: rewritten in place by an upgrade or a slot change.
REWRITTEN = ("keys/", IDENTITY)
PROBE_PREFIX = "strongroom-replication-probe-"


class ReplicationRefused(StrongroomError):
    """Cannot replicate to {secondary}: {reason}."""

    exit_code = 17


def _phase(name: str) -> int | None:
    for number, prefixes in enumerate(COPY_ORDER):
        if any(name.startswith(prefix) for prefix in prefixes):
            return number
    return None


@attrs.define
class ReplicationReport:
    """What one run did: objects and bytes copied and deleted, and whether it completed
    (``complete``: the secondary held everything the primary listed when it ended)."""

    copied: int = 0
    copied_bytes: int = 0
    deleted: int = 0
    deferred_deletes: int = 0
    complete: bool = False
    stopped: str | None = None  # why a run ended early: "deadline"

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class Lag:
    """How far the secondary is behind: objects and bytes it lacks, the oldest point it
    lacks (its creation time) and how many points."""

    objects: int
    bytes: int
    points: int
    oldest_point: str | None

    @property
    def in_sync(self) -> bool:
        return self.objects == 0

    def to_dict(self) -> dict:
        return {**attrs.asdict(self), "in_sync": self.in_sync}


@attrs.define
class Replicator:
    """Copies the vault on ``primary`` to ``secondary`` (see the module docstring);
    ``read_point``: the creation time of a point header's name (the lag's oldest point)."""

    primary: Store
    secondary: Store
    read_point: Callable[[str], str | None] | None = None
    concurrency: int = 0

    def __attrs_post_init__(self) -> None:
        if not self.concurrency:
            self.concurrency = max(1, capabilities_of(self.secondary).concurrency)

    # --- checks ------------------------------------------------------------------------

    def _refuse(self, reason: str) -> ReplicationRefused:
        return ReplicationRefused(secondary=self.secondary.url, reason=reason)

    def check(self) -> str:
        """The primary's vault id, once the secondary is known to be fit (else refused)."""
        if self.primary.url.rstrip("/") == self.secondary.url.rstrip("/"):
            raise self._refuse("it is the vault's own storage")
        mine = _vault_id(self.primary)
        if mine is None:
            raise ReplicationRefused(secondary=self.secondary.url, reason=f"{self.primary.url} holds no vault")
        theirs = _vault_id(self.secondary)
        if theirs is not None and theirs != mine:
            raise self._refuse(f"it holds another vault ({theirs}, not {mine})")
        if theirs == mine and self._same_storage():
            raise self._refuse("it is the vault's own storage, under another URL")
        return mine

    def _same_storage(self) -> bool:
        probe = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        self.secondary.put(probe, b"probe")
        try:
            return self.primary.exists(probe)
        finally:
            try:
                self.secondary.delete(probe)
            except StorageError:
                pass  # a bucket-default object lock keeps it: a foreign object, never read

    # --- listing -----------------------------------------------------------------------

    def _plan(self) -> tuple[list[list[str]], set[str], set[str]]:
        """(names to copy, per phase), the primary's names and the secondary's."""
        listed: set[str] = set()
        for prefixes in reversed(COPY_ORDER):  # commit order, reversed: see the docstring
            for prefix in prefixes:
                listed.update(n for n in self.primary.list(prefix) if kind_of(n) is not None
                              and (prefix != IDENTITY or n == IDENTITY))
        if IDENTITY not in listed:
            raise ReplicationRefused(secondary=self.secondary.url, reason=f"{self.primary.url} holds no vault")
        present = {n for n in self.secondary.list("") if kind_of(n) is not None}
        plan: list[list[str]] = [[] for _ in COPY_ORDER]
        for name in sorted(listed):
            phase = _phase(name)
            if phase is None:
                continue
            if name not in present or (name.startswith(REWRITTEN) and self._differs(name)):
                plan[phase].append(name)
        return plan, listed, present

    def _differs(self, name: str) -> bool:
        try:
            return self.primary.get(name) != self.secondary.get(name)
        except ObjectNotFound:
            return True

    # --- replicate ---------------------------------------------------------------------

    def run(self, *, deadline: float | None = None,
            progress: Callable[[str], None] | None = None) -> ReplicationReport:
        """Copy what the secondary lacks, then follow the primary's deletions; stop between
        copies once ``deadline`` (``time.monotonic()``) has passed."""
        self.check()
        report = ReplicationReport()
        plan, listed, present = self._plan()
        for number, names in enumerate(plan):
            in_order = COPY_ORDER[number] == IN_ORDER
            if not self._copy(names, report, deadline, concurrency=1 if in_order else None):
                report.stopped = "deadline"
                return report
            if progress and names:
                progress(f"copied {len(names)} object(s) of {'/'.join(COPY_ORDER[number])}")
        self._delete(listed, present, report)
        report.complete = True
        return report

    def _copy(self, names: list[str], report: ReplicationReport, deadline: float | None,
              concurrency: int | None = None) -> bool:
        """Copy ``names`` with ``concurrency`` (default: the store's) in flight, in the order
        given; False if the deadline stopped it."""
        if not names:
            return True
        concurrency = concurrency or self.concurrency
        with cf.ThreadPoolExecutor(concurrency, thread_name_prefix="replicate") as pool:
            pending: set[cf.Future] = set()
            for name in names:
                if deadline is not None and time.monotonic() >= deadline:
                    _count(cf.wait(pending).done, report)
                    return False
                pending.add(pool.submit(self._copy_one, name))
                if len(pending) >= concurrency:
                    done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    _count(done, report)
            _count(cf.wait(pending).done, report)
        return True

    def _copy_one(self, name: str) -> int | None:
        """Copy one object; its size, or None if the primary deleted it meanwhile."""
        try:
            data = self.primary.get(name)
        except ObjectNotFound:
            return None  # deleted on the primary since it was listed: its deletion follows
        self.secondary.put(name, data)
        return len(data)

    def _delete(self, listed: set[str], present: set[str], report: ReplicationReport) -> None:
        gone = sorted(n for n in present - listed if not n.startswith(NOT_COPIED) and n != IDENTITY)
        points_behind = any(n.startswith("points/") for n in gone)
        documents = [n for n in gone if not n.startswith(("data/", "index/", "keys/", "datakeys/"))]
        documents.sort(key=lambda n: not n.startswith(("points/", "point-status/")))  # point headers first
        later = [n for n in gone if n.startswith(("index/", "keys/", "datakeys/"))]
        packs = [n for n in gone if n.startswith("data/")]
        for name in documents + later:
            self._delete_one(name, report)
        if points_behind:
            report.deferred_deletes += len(packs)  # a point here may still need them: next run
        else:
            for name in packs:
                self._delete_one(name, report)

    def _delete_one(self, name: str, report: ReplicationReport) -> None:
        try:
            self.secondary.delete(name)
        except StorageError:
            report.deferred_deletes += 1  # refused (an object lock): left for a later run
        else:
            report.deleted += 1

    # --- lag ---------------------------------------------------------------------------

    def lag(self) -> Lag:
        """What the secondary lacks now (nothing is copied)."""
        self.check()
        plan, _, _ = self._plan()
        missing = [name for names in plan for name in names]
        size = 0
        for name in missing:
            try:
                size += self.primary.size(name)
            except ObjectNotFound:
                pass
        points = [n for n in missing if n.startswith("points/")]
        times = [t for t in map(self._point_time, points) if t]
        return Lag(len(missing), size, len(points), min(times) if times else None)

    def _point_time(self, name: str) -> str | None:
        if self.read_point is None:
            return None
        try:
            return self.read_point(name)
        except (StrongroomError, ObjectNotFound):
            return None


def _count(done: Iterable[cf.Future], report: ReplicationReport) -> None:
    for future in done:
        size = future.result()  # a failed copy raises here, in the caller's thread
        if size is not None:
            report.copied += 1
            report.copied_bytes += size


def _vault_id(store: Store) -> str | None:
    try:
        doc = json.loads(store.get(IDENTITY))
    except ObjectNotFound:
        return None
    except ValueError:
        return "(unreadable identity)"
    return doc.get("vault_id") if isinstance(doc, dict) else "(unreadable identity)"


def copy_names(names: Iterable[str]) -> list[str]:
    """``names`` in copy order (for tests and tools): the phase order of :data:`COPY_ORDER`."""
    return sorted((n for n in names if _phase(n) is not None), key=lambda n: (_phase(n), n))
